//! Branch and bound for the travelling salesman problem, on worker threads that share the best
//! tour found so far under a mutex.
//!
//! The instance: `--cities` points with integer coordinates drawn from a SplitMix64 stream
//! seeded with `--seed`, and integer distances (Euclidean, rounded), so tour lengths compare
//! exactly. Tours start at city 0.
//!
//! The search tree is cut into tasks, one per choice of the second and third city: task `i`
//! explores every tour beginning `0, a, b` depth first, nearest cities first. Workers take the
//! tasks in order from a counter in the shared [`Queue`], and print `iter <i>` as they take task
//! `i`. A subtree is pruned when a lower bound on any tour through it (the length so far plus,
//! for the last city and every unvisited one, the shortest edge leaving it) exceeds the best
//! length known. A worker reads the best length from an atomic mirror at every node and takes
//! the mutex only to take a task or to offer a better tour.
//!
//! Determinism: tours are ordered by length, then lexicographically by their city sequence,
//! and the result is the least tour in that order. Pruning only drops subtrees that cannot hold
//! a tour before the best one known (longer bound, or equal bound and a prefix already after
//! the best tour's), so the result is the same whatever order the threads explore the tasks in.
//! The search starts from a nearest-neighbour tour improved by 2-opt, a deterministic upper
//! bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::common::{
    Example, Flag, Fnv, Progress, Runtime, SplitMix64, in_range, join_all, parse_flags, spawn_n, to_usize,
};

/// The most cities (a visited set is a `u64`; far fewer are practical anyway).
const MAX_CITIES: u64 = 40;

/// The run's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tsp {
    cities: usize,
    seed: u64,
    threads: usize,
}

const FLAGS: &[Flag] = &[
    Flag { name: "--cities", expects: "an integer from 4 to 40" },
    Flag { name: "--seed", expects: "an integer from 0 to 18446744073709551615" },
    Flag { name: "--threads", expects: "an integer from 1 to 256" },
];

impl Example for Tsp {
    const NAME: &'static str = "tsp";
    const USAGE: &'static str = "usage: tsp [--cities N] [--seed S] [--threads T]

  --cities N   number of cities, 4..=40 (default 20); the work grows exponentially with it
  --seed S     seed of the instance generator, 0..2^64-1 (default 1)
  --threads T  worker threads, 1..=256 (default 4); the result does not depend on it

Finds a shortest round trip through all cities (the least one in city order among several).
Prints `iter <i>` as each of the (N-1)(N-2) tasks is taken and `result <checksum>` at the end
(the checksum covers the tour's length and cities). Checkpoints go to $CRTHREADS_DIR; after a
crash, the same command resumes from the last checkpoint.";

    fn parse(args: Vec<String>) -> Result<Option<Tsp>, String> {
        let Some(flags) = parse_flags(args, FLAGS)? else { return Ok(None) };
        let mut p = Tsp { cities: 20, seed: 1, threads: 4 };
        for (flag, v) in flags {
            match flag {
                "--cities" => p.cities = to_usize(in_range(v, 4, MAX_CITIES, flag)?, flag)?,
                "--seed" => p.seed = v,
                _ => p.threads = to_usize(in_range(v, 1, 256, flag)?, flag)?,
            }
        }
        Ok(Some(p))
    }

    fn describe(&self) -> String {
        format!("--cities {} --seed {} --threads {}", self.cities, self.seed, self.threads)
    }

    fn units(&self) -> u64 {
        ((self.cities - 1) * (self.cities - 2)) as u64
    }

    fn run<R: Runtime>(&self, progress: &Progress) -> u64 {
        let inst = Instance::generate(self.cities, self.seed);
        let first = inst.heuristic_tour();
        let n = self.cities as u8;
        let tasks: Vec<(u8, u8)> = (1..n).flat_map(|a| (1..n).filter(move |&b| b != a).map(move |b| (a, b))).collect();
        let shared: Arc<Shared<R>> = Arc::new(Shared {
            best_len: AtomicU32::new(first.len),
            queue: R::mutex(Queue { next: 0, best: first }),
            inst,
            tasks,
        });
        let nodes: u64 =
            join_all::<R, _>(spawn_n::<R, _, _>(self.threads, &shared, progress, worker::<R>)).iter().sum();
        let q = R::into_inner(Arc::into_inner(shared).expect("every worker has ended").queue);
        eprintln!("tsp: shortest tour {} long, {nodes} search nodes", q.best.len);
        let mut h = Fnv::new();
        h.word(self.cities as u64).word(u64::from(q.best.len));
        for &c in &q.best.tour {
            h.word(u64::from(c));
        }
        h.0
    }
}

/// The cities and their distances.
struct Instance {
    n: usize,
    /// `dist[a * n + b]`.
    dist: Vec<u32>,
    /// Per city, the other cities nearest first (ties by index).
    near: Vec<Vec<u8>>,
    /// Per city, its shortest edge.
    min_out: Vec<u32>,
}

/// A complete tour from city 0.
#[derive(Clone)]
struct Tour {
    len: u32,
    tour: Vec<u8>,
}

impl Tour {
    /// Whether `self` comes before `other`: shorter, or as long and first in city order.
    fn before(&self, other: &Tour) -> bool {
        (self.len, &self.tour) < (other.len, &other.tour)
    }
}

/// What the workers share.
struct Shared<R: Runtime> {
    inst: Instance,
    /// The tasks: the second and third city of the tours they explore.
    tasks: Vec<(u8, u8)>,
    queue: R::Mutex<Queue>,
    /// The best tour's length, mirrored from the queue for reading without the lock.
    best_len: AtomicU32,
}

/// The shared state under the mutex.
struct Queue {
    /// The next task to take.
    next: usize,
    best: Tour,
}

impl Instance {
    fn generate(n: usize, seed: u64) -> Instance {
        let mut rng = SplitMix64(seed);
        let xy: Vec<(i64, i64)> = (0..n).map(|_| (rng.below(1000) as i64, rng.below(1000) as i64)).collect();
        let mut dist = vec![0u32; n * n];
        for (a, &(xa, ya)) in xy.iter().enumerate() {
            for (b, &(xb, yb)) in xy.iter().enumerate() {
                let (dx, dy) = ((xa - xb) as f64, (ya - yb) as f64);
                dist[a * n + b] = (dx * dx + dy * dy).sqrt().round() as u32;
            }
        }
        let near: Vec<Vec<u8>> = (0..n)
            .map(|a| {
                let mut v: Vec<u8> = (0..n as u8).filter(|&b| b as usize != a).collect();
                v.sort_by_key(|&b| (dist[a * n + b as usize], b));
                v
            })
            .collect();
        let min_out = (0..n).map(|a| dist[a * n + near[a][0] as usize]).collect();
        Instance { n, dist, near, min_out }
    }

    fn d(&self, a: u8, b: u8) -> u32 {
        self.dist[a as usize * self.n + b as usize]
    }

    fn length(&self, tour: &[u8]) -> u32 {
        (0..tour.len()).map(|i| self.d(tour[i], tour[(i + 1) % tour.len()])).sum()
    }

    /// Nearest neighbour from city 0, then 2-opt moves until none shortens it.
    fn heuristic_tour(&self) -> Tour {
        let mut tour = vec![0u8];
        let mut seen = 1u64;
        while tour.len() < self.n {
            let last = tour[tour.len() - 1] as usize;
            let next = self.near[last].iter().copied().find(|&c| seen & (1 << c) == 0).expect("an unvisited city");
            seen |= 1 << next;
            tour.push(next);
        }
        let n = self.n;
        let mut improved = true;
        while improved {
            improved = false;
            for i in 1..n - 1 {
                for j in i + 1..n {
                    let (a, b, c, d) = (tour[i - 1], tour[i], tour[j], tour[(j + 1) % n]);
                    if self.d(a, c) + self.d(b, d) < self.d(a, b) + self.d(c, d) {
                        tour[i..=j].reverse();
                        improved = true;
                    }
                }
            }
        }
        Tour { len: self.length(&tour), tour }
    }
}

/// A worker: takes tasks until none is left; returns how many search nodes it visited.
fn worker<R: Runtime>(sh: &Shared<R>, _: usize, progress: &Progress) -> u64 {
    let inst = &sh.inst;
    let mut nodes = 0;
    loop {
        let (task, mut best) = {
            let mut q = R::lock(&sh.queue);
            let t = q.next;
            if t >= sh.tasks.len() {
                return nodes;
            }
            q.next += 1;
            progress.iter::<R>(t as u64);
            (sh.tasks[t], q.best.clone())
        };
        let (a, b) = task;
        let mut s = Search {
            inst,
            best_len: &sh.best_len,
            path: vec![0, a, b],
            visited: 1 | 1 << a | 1 << b,
            rest: inst.min_out.iter().sum::<u32>() - inst.min_out[0] - inst.min_out[a as usize],
            nodes: 0,
        };
        let len = inst.d(0, a) + inst.d(a, b);
        s.rest -= inst.min_out[b as usize];
        s.dfs(len, &mut best, &mut |found: &Tour, mine: &mut Tour| {
            let mut q = R::lock(&sh.queue);
            if found.before(&q.best) {
                q.best = found.clone();
                sh.best_len.store(found.len, Ordering::Relaxed);
            }
            mine.clone_from(&q.best);
        });
        nodes += s.nodes;
    }
}

/// One depth-first search.
struct Search<'a> {
    inst: &'a Instance,
    best_len: &'a AtomicU32,
    /// The tour so far, from city 0.
    path: Vec<u8>,
    /// The cities on `path`, as bits.
    visited: u64,
    /// The sum of `min_out` over the unvisited cities.
    rest: u32,
    nodes: u64,
}

impl Search<'_> {
    /// Explores every completion of `path` (of length `len`); `best` is the best tour this
    /// worker knows, `offer` shares a better one and refreshes `best`.
    fn dfs(&mut self, len: u32, best: &mut Tour, offer: &mut dyn FnMut(&Tour, &mut Tour)) {
        self.nodes += 1;
        let inst = self.inst;
        let last = *self.path.last().expect("a non-empty path");
        if self.path.len() == inst.n {
            let tour = Tour { len: len + inst.d(last, 0), tour: self.path.clone() };
            if tour.before(best) {
                offer(&tour, best);
            }
            return;
        }
        let bound = len + inst.min_out[last as usize] + self.rest;
        if self.prune(bound, best) {
            return;
        }
        for &c in &inst.near[last as usize] {
            if self.visited & (1 << c) != 0 {
                continue;
            }
            let next = len + inst.d(last, c);
            // The bound of the child, cheaply: the edge taken instead of the shortest one.
            if next + self.rest > self.best_len.load(Ordering::Relaxed) {
                continue;
            }
            self.visited |= 1 << c;
            self.rest -= inst.min_out[c as usize];
            self.path.push(c);
            self.dfs(next, best, offer);
            self.path.pop();
            self.rest += inst.min_out[c as usize];
            self.visited &= !(1 << c);
        }
    }

    /// Whether no tour through `path` with lower bound `bound` can come before `best`.
    fn prune(&self, bound: u32, best: &Tour) -> bool {
        let shared = self.best_len.load(Ordering::Relaxed);
        if bound > shared.min(best.len) {
            return true;
        }
        // As long as the best: only a tour first in city order could still win.
        bound == best.len && self.path.as_slice() > &best.tour[..self.path.len()]
    }
}
