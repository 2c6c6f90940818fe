//! K-means clustering that survives kill -9: points, assignments and centroids live in the
//! persistent root, and every iteration ends with a checkpoint.
//!
//! ```text
//! cargo run --release --example kmeans -- --points 200000 --k 16 --iters 40 --seed 7
//! ```
//!
//! Output contract (stdout): `iter <i>` at the start of each iteration this run computes, then
//! `result <checksum>` as the last line, where the checksum (16 hex digits) covers the bit
//! patterns of the final centroids. Kill the program at any moment and run the same command
//! again: it resumes at the first iteration the last checkpoint did not cover and prints the
//! same `result` as a run that was never interrupted. Progress notes go to stderr.
//!
//! Consistency: the root holds the number of the next iteration to compute, and it is updated
//! together with the centroids before the checkpoint that ends the iteration. A checkpoint
//! therefore always holds the centroids of exactly `next_iter` completed iterations; work done
//! after it (a partial iteration) is lost on a crash and redone, never skipped or counted twice.
//!
//! Determinism: the points come from a SplitMix64 stream seeded with `--seed`, every loop runs
//! in a fixed order on one thread, ties go to the lower cluster index and an empty cluster
//! keeps its centroid, so identical arguments give bit-identical centroids.
//!
//! Cost: an iteration computes `points × k` distances in `dim` dimensions (default 64), so the
//! default sizes take a few tenths of a second per iteration in release builds: long enough for
//! a kill to land in the middle of one.

use std::io::Write;
use std::process::ExitCode;

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const USAGE: &str = "usage: kmeans [--points N] [--k K] [--iters I] [--seed S] [--dim D]

  --points N   number of generated points (default 200000)
  --k K        number of clusters, 1 <= K <= N (default 16)
  --iters I    number of iterations (default 40)
  --seed S     seed of the point generator, 0..2^64-1 (default 1)
  --dim D      dimensions per point, 1..=1024 (default 64)

Prints `iter <i>` as each iteration starts and `result <checksum>` at the end. Checkpoints go
to $CRTHREADS_DIR; after a crash, the same command resumes from the last checkpoint.";

/// Upper bound on `points * dim`, so that a typo cannot ask for more memory than the
/// persistent region can hold (2^30 coordinates = 8 GiB).
const MAX_COORDS: u64 = 1 << 30;

/// The run's parameters; stored in the root so that a restore can check them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Params {
    points: usize,
    k: usize,
    iters: u64,
    seed: u64,
    dim: usize,
}

impl Params {
    fn describe(&self) -> String {
        format!(
            "--points {} --k {} --iters {} --seed {} --dim {}",
            self.points, self.k, self.iters, self.seed, self.dim
        )
    }
}

/// Parses the command line (without the program name). `Ok(None)` means `--help`.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Params>, String> {
    let mut p = Params { points: 200_000, k: 16, iters: 40, seed: 1, dim: 64 };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if !matches!(flag.as_str(), "--points" | "--k" | "--iters" | "--seed" | "--dim") {
            return Err(format!("unknown argument `{arg}`"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("`{flag}` needs a value")),
        };
        let num = |what: &str| -> Result<u64, String> {
            value.trim().parse::<u64>().map_err(|_| format!("`{flag}` expects {what}, got `{value}`"))
        };
        match flag.as_str() {
            "--points" => p.points = to_usize(num("a positive integer")?, &flag)?,
            "--k" => p.k = to_usize(num("a positive integer")?, &flag)?,
            "--iters" => p.iters = num("a non-negative integer")?,
            "--seed" => p.seed = num("an integer from 0 to 18446744073709551615")?,
            _ => p.dim = to_usize(num("an integer from 1 to 1024")?, &flag)?,
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
    if (p.points as u64).saturating_mul(p.dim as u64) > MAX_COORDS {
        return Err(format!("`--points` × `--dim` must be at most {MAX_COORDS} (8 GiB of coordinates)"));
    }
    Ok(Some(p))
}

fn to_usize(v: u64, flag: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("`{flag}` value {v} is too large"))
}

/// SplitMix64: a small, fast, well-mixed generator (Steele, Lea & Flood, 2014).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1), with 53 random bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [0, n) for n > 0 (the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The persistent root: everything the computation needs to continue after a restore.
struct State {
    params: Params,
    /// Points, row-major: point `i` is `points[i * dim..(i + 1) * dim]`.
    points: Vec<f64>,
    /// Cluster of each point after the last completed iteration.
    assign: Vec<u32>,
    /// Centroids, row-major, `k * dim`.
    centroids: Vec<f64>,
    /// The next iteration to compute: iterations `0..next_iter` are done.
    next_iter: u64,
    /// Sum of squared distances in the last completed iteration's assignment step.
    inertia: f64,
    /// Points that changed cluster in the last completed iteration.
    moved: u64,
}

impl State {
    /// Generates `p.points` points around `p.k` random centres, and picks the initial
    /// centroids among the points, one from each of `k` equal strata of indices.
    fn generate(p: &Params) -> State {
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
        State {
            params: *p,
            points,
            assign: vec![u32::MAX; p.points],
            centroids,
            next_iter: 0,
            inertia: f64::NAN,
            moved: 0,
        }
    }

    /// One Lloyd iteration: assign every point to its nearest centroid, then move each
    /// centroid to the mean of its points.
    fn step(&mut self) {
        let (dim, k) = (self.params.dim, self.params.k);
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0u64; k];
        let mut inertia = 0.0;
        let mut moved = 0;
        for (point, slot) in self.points.chunks_exact(dim).zip(self.assign.iter_mut()) {
            let mut best = 0;
            let mut best_d = f64::INFINITY;
            for (c, centroid) in self.centroids.chunks_exact(dim).enumerate() {
                let d = dist2(point, centroid);
                if d < best_d {
                    best_d = d;
                    best = c;
                }
            }
            if *slot != best as u32 {
                *slot = best as u32;
                moved += 1;
            }
            inertia += best_d;
            counts[best] += 1;
            for (s, x) in sums[best * dim..(best + 1) * dim].iter_mut().zip(point) {
                *s += x;
            }
        }
        for (c, &n) in counts.iter().enumerate() {
            if n > 0 {
                let mean = sums[c * dim..(c + 1) * dim].iter().map(|s| s / n as f64);
                for (dst, m) in self.centroids[c * dim..(c + 1) * dim].iter_mut().zip(mean) {
                    *dst = m;
                }
            }
        }
        self.inertia = inertia;
        self.moved = moved;
    }

    /// FNV-1a over the shape and the bit patterns of the centroids.
    fn checksum(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let words = [self.params.k as u64, self.params.dim as u64, self.next_iter];
        for w in words.into_iter().chain(self.centroids.iter().map(|x| x.to_bits())) {
            for b in w.to_le_bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        h
    }
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |acc, (x, y)| {
        let d = x - y;
        acc + d * d
    })
}

fn run(p: Params) -> Result<(), String> {
    let start = crthreads::init_from_env().map_err(|e| format!("cannot start crthreads: {e}"))?;
    // SAFETY: State holds only plain numbers and Vecs allocated after `init`, in the
    // persistent heap.
    let mut st =
        unsafe { crthreads::root(|| State::generate(&p)) }.map_err(|e| format!("cannot take the root: {e}"))?;
    let ckpt = || crthreads::checkpoint().map_err(|e| format!("checkpoint failed: {e}"));
    match start {
        crthreads::Start::Fresh | crthreads::Start::Plain => {
            // Keep the generated points: a crash in iteration 0 resumes without regenerating them.
            ckpt()?;
        }
        crthreads::Start::Restored { seq } => {
            if st.params != p {
                let dir = crthreads::config().map(|c| c.get_dir().display().to_string()).unwrap_or_default();
                return Err(format!(
                    "the checkpoint in {dir} was taken with `{}`, not `{}`: run with the same arguments, or \
                     remove the directory to start over",
                    st.params.describe(),
                    p.describe()
                ));
            }
            eprintln!("kmeans: restored checkpoint {seq}: resuming at iteration {} of {}", st.next_iter, p.iters);
        }
    }
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| format!("cannot write to stdout: {e}");
    while st.next_iter < p.iters {
        let i = st.next_iter;
        writeln!(out, "iter {i}").and_then(|()| out.flush()).map_err(io)?;
        st.step();
        st.next_iter = i + 1;
        ckpt()?;
    }
    eprintln!(
        "kmeans: done: {} iterations, inertia {:.6e}, {} points moved in the last one",
        st.next_iter, st.inertia, st.moved
    );
    writeln!(out, "result {:016x}", st.checksum()).and_then(|()| out.flush()).map_err(io)?;
    Ok(())
}

fn main() -> ExitCode {
    let params = match parse_args(std::env::args().skip(1)) {
        Ok(Some(p)) => p,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kmeans: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(params) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kmeans: {e}");
            ExitCode::FAILURE
        }
    }
}
