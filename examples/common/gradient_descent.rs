//! Gradient descent for logistic regression, on worker threads that read a shared model under
//! a reader-writer lock while one writer applies each epoch's update.
//!
//! The data: `--samples` points of `--features` coordinates, uniform in [-1, 1), drawn from a
//! SplitMix64 stream seeded with `--seed`, labelled by a hidden linear model plus noise. The
//! samples are cut into shards of [`SHARD`] samples, a partition that does not depend on the
//! number of threads; worker `w` of `t` owns a contiguous share of the shards. One epoch:
//!
//! 1. every worker takes the model's read lock and, for each of its shards, computes the
//!    shard's loss and gradient at the current weights into that shard's slot (each slot has
//!    its own mutex, taken only by its worker and by the writer), then releases the read lock
//!    and waits at the barrier;
//! 2. worker 0, the writer, takes the write lock, adds the shard gradients in shard order,
//!    takes a step of `--rate` against the mean gradient (plus L2 regularisation), counts the
//!    epoch done and reports the next one, and everybody meets at the barrier again.
//!
//! Determinism: each shard is summed in sample order and the shards are added in shard order,
//! so identical arguments give bit-identical weights, whatever `--threads` is and however the
//! threads are scheduled.
//!
//! Under crthreads a worker's release of the read lock and the writer's release of the write
//! lock are the checkpoints (policy `every-release`): about two per epoch once group commit
//! merges the workers'.

use std::sync::Arc;

use crate::common::{
    Example, Flag, Fnv, Progress, Runtime, SplitMix64, in_range, join_all, parse_flags, share, spawn_n, to_usize,
};

/// Samples per shard: the unit of work and of summation.
pub const SHARD: usize = 4096;
/// L2 regularisation strength.
const LAMBDA: f64 = 1e-4;

/// The run's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GradientDescent {
    samples: usize,
    features: usize,
    epochs: u64,
    /// The learning rate, in thousandths.
    rate: u64,
    seed: u64,
    threads: usize,
}

const FLAGS: &[Flag] = &[
    Flag { name: "--samples", expects: "an integer from 1 to 16777216" },
    Flag { name: "--features", expects: "an integer from 1 to 4096" },
    Flag { name: "--epochs", expects: "a non-negative integer" },
    Flag { name: "--rate", expects: "a learning rate in thousandths, 1 to 100000" },
    Flag { name: "--seed", expects: "an integer from 0 to 18446744073709551615" },
    Flag { name: "--threads", expects: "an integer from 1 to 256" },
];

impl Example for GradientDescent {
    const NAME: &'static str = "gradient_descent";
    const USAGE: &'static str =
        "usage: gradient_descent [--samples N] [--features D] [--epochs E] [--rate R] [--seed S] [--threads T]

  --samples N   number of generated samples, 1..=16777216 (default 200000)
  --features D  features per sample, 1..=4096 (default 64)
  --epochs E    number of full-batch gradient steps (default 300)
  --rate R      learning rate in thousandths, 1..=100000 (default 2000, i.e. 2.0)
  --seed S      seed of the data generator, 0..2^64-1 (default 1)
  --threads T   worker threads, 1..=256 (default 4); the result does not depend on it

Fits a logistic regression by gradient descent. Prints `iter <i>` as each epoch starts and
`result <checksum>` at the end (the checksum covers the weights and the last loss). Checkpoints
go to $CRTHREADS_DIR; after a crash, the same command resumes from the last checkpoint.";

    fn parse(args: Vec<String>) -> Result<Option<GradientDescent>, String> {
        let Some(flags) = parse_flags(args, FLAGS)? else { return Ok(None) };
        let mut p = GradientDescent { samples: 200_000, features: 64, epochs: 300, rate: 2000, seed: 1, threads: 4 };
        for (flag, v) in flags {
            match flag {
                "--samples" => p.samples = to_usize(in_range(v, 1, 1 << 24, flag)?, flag)?,
                "--features" => p.features = to_usize(in_range(v, 1, 4096, flag)?, flag)?,
                "--epochs" => p.epochs = v,
                "--rate" => p.rate = in_range(v, 1, 100_000, flag)?,
                "--seed" => p.seed = v,
                _ => p.threads = to_usize(in_range(v, 1, 256, flag)?, flag)?,
            }
        }
        if (p.samples as u64) * (p.features as u64) > 1 << 30 {
            return Err("`--samples` × `--features` must be at most 2^30 (8 GiB of data)".into());
        }
        Ok(Some(p))
    }

    fn describe(&self) -> String {
        format!(
            "--samples {} --features {} --epochs {} --rate {} --seed {} --threads {}",
            self.samples, self.features, self.epochs, self.rate, self.seed, self.threads
        )
    }

    fn units(&self) -> u64 {
        self.epochs
    }

    fn run<R: Runtime>(&self, progress: &Progress) -> u64 {
        let p = *self;
        let (x, y) = generate(&p);
        let shards = p.samples.div_ceil(SHARD);
        let shared: Arc<Shared<R>> = Arc::new(Shared {
            p,
            x,
            y,
            model: R::rwlock(Model { w: vec![0.0; p.features], epoch: 0, loss: f64::NAN }),
            slots: (0..shards).map(|_| R::mutex(Slot { grad: vec![0.0; p.features], loss: 0.0 })).collect(),
            barrier: R::barrier(p.threads),
        });
        if p.epochs > 0 {
            progress.iter::<R>(0);
        }
        join_all::<R, _>(spawn_n::<R, _, _>(p.threads, &shared, progress, worker::<R>));
        let m = R::rw_into_inner(Arc::into_inner(shared).expect("every worker has ended").model);
        eprintln!("gradient_descent: done: {} epochs, loss {:.9} before the last step", m.epoch, m.loss);
        Fnv::new().word(p.features as u64).word(m.epoch).word(m.loss.to_bits()).floats(&m.w).0
    }
}

/// What the workers share.
struct Shared<R: Runtime> {
    p: GradientDescent,
    /// Samples, row-major: sample `i` is `x[i * features..(i + 1) * features]`. Read-only.
    x: Vec<f64>,
    /// Labels, 0 or 1. Read-only.
    y: Vec<f64>,
    model: R::RwLock<Model>,
    /// Per shard, its gradient at the current weights.
    slots: Vec<R::Mutex<Slot>>,
    barrier: R::Barrier,
}

/// The model: read by every worker during an epoch, written by the writer between epochs.
struct Model {
    w: Vec<f64>,
    /// The next epoch: epochs `0..epoch` are done.
    epoch: u64,
    /// The mean loss at the weights before the last step.
    loss: f64,
}

/// One shard's contribution to an epoch: sums over its samples.
struct Slot {
    grad: Vec<f64>,
    loss: f64,
}

impl Slot {
    /// Loss and gradient sums of the samples `x`, `y` at weights `w`.
    fn compute(&mut self, x: &[f64], y: &[f64], w: &[f64]) {
        self.grad.fill(0.0);
        self.loss = 0.0;
        for (xi, &yi) in x.chunks_exact(w.len()).zip(y) {
            let z: f64 = xi.iter().zip(w).map(|(a, b)| a * b).sum();
            // log(1 + e^z) - y z, computed without overflow.
            self.loss += z.max(0.0) + (-z.abs()).exp().ln_1p() - yi * z;
            let err = 1.0 / (1.0 + (-z).exp()) - yi;
            for (g, a) in self.grad.iter_mut().zip(xi) {
                *g += err * a;
            }
        }
    }
}

/// Worker `w`: its share of the shards every epoch; worker 0 also writes the model.
fn worker<R: Runtime>(sh: &Shared<R>, w: usize, progress: &Progress) {
    let GradientDescent { samples, features: d, epochs, rate, threads, .. } = sh.p;
    let mine = share(sh.slots.len(), threads, w);
    loop {
        let epoch = {
            let m = R::read(&sh.model);
            if m.epoch >= epochs {
                return;
            }
            for s in mine.clone() {
                let (lo, hi) = (s * SHARD, ((s + 1) * SHARD).min(samples));
                R::lock(&sh.slots[s]).compute(&sh.x[lo * d..hi * d], &sh.y[lo..hi], &m.w);
            }
            m.epoch
        };
        R::barrier_wait(&sh.barrier);
        if w == 0 {
            let mut m = R::write(&sh.model);
            let mut grad = vec![0.0; d];
            let mut loss = 0.0;
            for slot in &sh.slots {
                let s = R::lock(slot);
                for (g, x) in grad.iter_mut().zip(&s.grad) {
                    *g += x;
                }
                loss += s.loss;
            }
            let (n, step) = (samples as f64, rate as f64 / 1000.0);
            for (wj, g) in m.w.iter_mut().zip(&grad) {
                *wj -= step * (g / n + LAMBDA * *wj);
            }
            m.loss = loss / n;
            m.epoch = epoch + 1;
            if epoch + 1 < epochs {
                progress.iter::<R>(epoch + 1);
            }
        }
        R::barrier_wait(&sh.barrier);
    }
}

/// Generates the samples and their labels: a hidden weight vector, and a label that says on
/// which side of it a sample lies, flipped near the boundary by noise.
fn generate(p: &GradientDescent) -> (Vec<f64>, Vec<f64>) {
    let mut rng = SplitMix64(p.seed);
    let hidden: Vec<f64> = (0..p.features).map(|_| rng.unit() * 2.0 - 1.0).collect();
    let mut x = Vec::with_capacity(p.samples * p.features);
    let mut y = Vec::with_capacity(p.samples);
    for _ in 0..p.samples {
        let start = x.len();
        x.extend((0..p.features).map(|_| rng.unit() * 2.0 - 1.0));
        let z: f64 = x[start..].iter().zip(&hidden).map(|(a, b)| a * b).sum();
        let noise = (rng.unit() - 0.5) * 2.0;
        y.push(if z + noise > 0.0 { 1.0 } else { 0.0 });
    }
    (x, y)
}
