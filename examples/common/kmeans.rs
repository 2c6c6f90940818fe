//! K-means clustering (Lloyd's algorithm) on worker threads that meet at a barrier twice per
//! iteration.
//!
//! The points are cut into blocks of [`BLOCK`] points, a partition that does not depend on the
//! number of threads; worker `w` of `t` owns a contiguous share of the blocks. One iteration:
//!
//! 1. every worker copies the centroids (under the model's mutex), assigns each point of its
//!    blocks to the nearest centroid, and sums the points of each cluster per block;
//! 2. it stores its blocks' partial sums in the model (under the mutex) and waits at the
//!    barrier;
//! 3. worker 0 adds the partial sums in block order, moves each centroid to the mean of its
//!    points, counts the iteration done and reports the next one (under the mutex), and
//!    everybody meets at the barrier again.
//!
//! Determinism: the points come from a SplitMix64 stream seeded with `--seed`; each block is
//! summed in point order and the blocks are added in block order, ties go to the lower cluster
//! index and an empty cluster keeps its centroid. So identical arguments give bit-identical
//! centroids, whatever `--threads` is and however the threads are scheduled.
//!
//! Under crthreads every release of the model's mutex is a checkpoint (policy `every-release`),
//! about `2 × threads + 1` releases per iteration, which group commit merges into a few
//! checkpoints: a kill loses at most part of an iteration.

use std::sync::Arc;

use crate::common::{
    Example, Flag, Fnv, Progress, Runtime, SplitMix64, join_all, parse_flags, share, spawn_n, to_usize,
};

/// Points per block: the unit of work and of summation.
pub const BLOCK: usize = 2048;
/// Upper bound on `points * dim`, so that a typo cannot ask for more memory than the
/// persistent region can hold (2^30 coordinates = 8 GiB).
const MAX_COORDS: u64 = 1 << 30;

/// The run's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kmeans {
    points: usize,
    k: usize,
    iters: u64,
    seed: u64,
    dim: usize,
    threads: usize,
}

const FLAGS: &[Flag] = &[
    Flag { name: "--points", expects: "a positive integer" },
    Flag { name: "--k", expects: "a positive integer" },
    Flag { name: "--iters", expects: "a non-negative integer" },
    Flag { name: "--seed", expects: "an integer from 0 to 18446744073709551615" },
    Flag { name: "--dim", expects: "an integer from 1 to 1024" },
    Flag { name: "--threads", expects: "an integer from 1 to 256" },
];

impl Example for Kmeans {
    const NAME: &'static str = "kmeans";
    const USAGE: &'static str = "usage: kmeans [--points N] [--k K] [--iters I] [--seed S] [--dim D] [--threads T]

  --points N   number of generated points (default 200000)
  --k K        number of clusters, 1 <= K <= N (default 16)
  --iters I    number of iterations (default 60)
  --seed S     seed of the point generator, 0..2^64-1 (default 1)
  --dim D      dimensions per point, 1..=1024 (default 64)
  --threads T  worker threads, 1..=256 (default 4); the result does not depend on it

Prints `iter <i>` as each iteration starts and `result <checksum>` at the end. Checkpoints go
to $CRTHREADS_DIR; after a crash, the same command resumes from the last checkpoint.";

    fn parse(args: Vec<String>) -> Result<Option<Kmeans>, String> {
        let Some(flags) = parse_flags(args, FLAGS)? else { return Ok(None) };
        let mut p = Kmeans { points: 200_000, k: 16, iters: 60, seed: 1, dim: 64, threads: 4 };
        for (flag, v) in flags {
            match flag {
                "--points" => p.points = to_usize(v, flag)?,
                "--k" => p.k = to_usize(v, flag)?,
                "--iters" => p.iters = v,
                "--seed" => p.seed = v,
                "--dim" => p.dim = to_usize(v, flag)?,
                _ => p.threads = to_usize(v, flag)?,
            }
        }
        if p.points == 0 {
            return Err("`--points` must be at least 1".into());
        }
        if p.k == 0 {
            return Err("`--k` must be at least 1".into());
        }
        if p.k > p.points {
            return Err(format!("`--k` ({}) must not exceed `--points` ({})", p.k, p.points));
        }
        if p.dim == 0 || p.dim > 1024 {
            return Err(format!("`--dim` must be from 1 to 1024, got {}", p.dim));
        }
        if p.threads == 0 || p.threads > 256 {
            return Err(format!("`--threads` must be from 1 to 256, got {}", p.threads));
        }
        if (p.points as u64).saturating_mul(p.dim as u64) > MAX_COORDS {
            return Err(format!("`--points` × `--dim` must be at most {MAX_COORDS} (8 GiB of coordinates)"));
        }
        Ok(Some(p))
    }

    fn describe(&self) -> String {
        format!(
            "--points {} --k {} --iters {} --seed {} --dim {} --threads {}",
            self.points, self.k, self.iters, self.seed, self.dim, self.threads
        )
    }

    fn units(&self) -> u64 {
        self.iters
    }

    fn run<R: Runtime>(&self, progress: &Progress) -> u64 {
        let p = *self;
        let (points, centroids) = generate(&p);
        let blocks = p.points.div_ceil(BLOCK);
        let model = Model {
            centroids,
            next_iter: 0,
            partials: (0..blocks).map(|_| Partial::new(p.k, p.dim)).collect(),
            inertia: f64::NAN,
            moved: 0,
        };
        let shared: Arc<Shared<R>> =
            Arc::new(Shared { p, points, model: R::mutex(model), barrier: R::barrier(p.threads) });
        if p.iters > 0 {
            progress.iter::<R>(0);
        }
        join_all::<R, _>(spawn_n::<R, _, _>(p.threads, &shared, progress, worker::<R>));
        let sh = Arc::into_inner(shared).expect("every worker has ended");
        let m = R::into_inner(sh.model);
        eprintln!(
            "kmeans: done: {} iterations, inertia {:.6e}, {} points moved in the last one",
            m.next_iter, m.inertia, m.moved
        );
        Fnv::new().word(p.k as u64).word(p.dim as u64).word(m.next_iter).floats(&m.centroids).0
    }
}

/// What the workers share.
struct Shared<R: Runtime> {
    p: Kmeans,
    /// Points, row-major: point `i` is `points[i * dim..(i + 1) * dim]`. Read-only.
    points: Vec<f64>,
    model: R::Mutex<Model>,
    barrier: R::Barrier,
}

/// The clustering, as of the last completed iteration, and the current iteration's partial sums.
struct Model {
    /// Centroids, row-major, `k * dim`.
    centroids: Vec<f64>,
    /// The next iteration to compute: iterations `0..next_iter` are done.
    next_iter: u64,
    /// Per block, the sums of the iteration under way.
    partials: Vec<Partial>,
    /// Sum of squared distances in the last completed iteration's assignment step.
    inertia: f64,
    /// Points that changed cluster in the last completed iteration.
    moved: u64,
}

/// One block's contribution to an iteration.
struct Partial {
    /// Per cluster, the sum of its points (`k * dim`).
    sums: Vec<f64>,
    counts: Vec<u64>,
    inertia: f64,
    moved: u64,
}

impl Partial {
    fn new(k: usize, dim: usize) -> Partial {
        Partial { sums: vec![0.0; k * dim], counts: vec![0; k], inertia: 0.0, moved: 0 }
    }

    /// Assigns the points of one block (`assign` holds their previous clusters) and sums them.
    fn compute(&mut self, points: &[f64], centroids: &[f64], dim: usize, assign: &mut [u32]) {
        self.sums.fill(0.0);
        self.counts.fill(0);
        self.inertia = 0.0;
        self.moved = 0;
        for (point, slot) in points.chunks_exact(dim).zip(assign.iter_mut()) {
            let mut best = 0;
            let mut best_d = f64::INFINITY;
            for (c, centroid) in centroids.chunks_exact(dim).enumerate() {
                let d = dist2(point, centroid);
                if d < best_d {
                    best_d = d;
                    best = c;
                }
            }
            if *slot != best as u32 {
                *slot = best as u32;
                self.moved += 1;
            }
            self.inertia += best_d;
            self.counts[best] += 1;
            for (s, x) in self.sums[best * dim..(best + 1) * dim].iter_mut().zip(point) {
                *s += x;
            }
        }
    }
}

impl Model {
    /// Adds the partial sums in block order and moves every centroid to the mean of its points.
    fn reduce(&mut self, k: usize, dim: usize) {
        let mut total = Partial::new(k, dim);
        for part in &self.partials {
            for (t, s) in total.sums.iter_mut().zip(&part.sums) {
                *t += s;
            }
            for (t, n) in total.counts.iter_mut().zip(&part.counts) {
                *t += n;
            }
            total.inertia += part.inertia;
            total.moved += part.moved;
        }
        for (c, &n) in total.counts.iter().enumerate() {
            if n > 0 {
                let mean = total.sums[c * dim..(c + 1) * dim].iter().map(|s| s / n as f64);
                for (dst, m) in self.centroids[c * dim..(c + 1) * dim].iter_mut().zip(mean) {
                    *dst = m;
                }
            }
        }
        self.inertia = total.inertia;
        self.moved = total.moved;
    }
}

/// Worker `w`: its share of the blocks, every iteration.
fn worker<R: Runtime>(sh: &Shared<R>, w: usize, progress: &Progress) {
    let Kmeans { points: n, k, iters, dim, threads, .. } = sh.p;
    let blocks = share(n.div_ceil(BLOCK), threads, w);
    let first_point = blocks.start * BLOCK;
    let mut assign = vec![u32::MAX; (blocks.end * BLOCK).min(n).saturating_sub(first_point)];
    let mut mine: Vec<Partial> = blocks.clone().map(|_| Partial::new(k, dim)).collect();
    let mut centroids = vec![0.0; k * dim];
    loop {
        let i = {
            let m = R::lock(&sh.model);
            centroids.copy_from_slice(&m.centroids);
            m.next_iter
        };
        if i >= iters {
            return;
        }
        for (b, part) in blocks.clone().zip(mine.iter_mut()) {
            let (lo, hi) = (b * BLOCK, ((b + 1) * BLOCK).min(n));
            part.compute(
                &sh.points[lo * dim..hi * dim],
                &centroids,
                dim,
                &mut assign[lo - first_point..hi - first_point],
            );
        }
        {
            let mut m = R::lock(&sh.model);
            for (b, part) in blocks.clone().zip(mine.iter_mut()) {
                std::mem::swap(&mut m.partials[b], part);
            }
        }
        R::barrier_wait(&sh.barrier);
        if w == 0 {
            let mut m = R::lock(&sh.model);
            m.reduce(k, dim);
            m.next_iter = i + 1;
            if i + 1 < iters {
                progress.iter::<R>(i + 1);
            }
        }
        R::barrier_wait(&sh.barrier);
    }
}

/// Generates `p.points` points around `p.k` random centres, and picks the initial centroids
/// among the points, one from each of `k` equal strata of indices.
fn generate(p: &Kmeans) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SplitMix64(p.seed);
    let centres: Vec<f64> = (0..p.k * p.dim).map(|_| rng.unit() * 100.0).collect();
    let mut points = Vec::with_capacity(p.points * p.dim);
    for _ in 0..p.points {
        let c = rng.below(p.k as u64) as usize;
        let spread = 2.0 + 6.0 * (c as f64 / p.k as f64);
        for d in 0..p.dim {
            // Sum of three uniforms: a cheap bell-shaped offset in [-1.5, 1.5).
            let noise = rng.unit() + rng.unit() + rng.unit() - 1.5;
            points.push(centres[c * p.dim + d] + spread * noise);
        }
    }
    let stratum = p.points / p.k;
    let mut centroids = Vec::with_capacity(p.k * p.dim);
    for c in 0..p.k {
        let i = c * stratum + rng.below(stratum as u64) as usize;
        centroids.extend_from_slice(&points[i * p.dim..(i + 1) * p.dim]);
    }
    (points, centroids)
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| {
        let d = x - y;
        acc + d * d
    })
}
