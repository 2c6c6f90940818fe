//! K-means clustering on persistent threads that survives kill -9: the points, the centroids
//! and every worker thread live in the persistent heap, and a kill loses at most part of an
//! iteration.
//!
//! ```text
//! cargo run --release --example kmeans -- --points 200000 --k 16 --iters 60 --seed 7 --threads 4
//! ```
//!
//! Output contract (stdout): `iter <i>` as each iteration this run computes starts, then
//! `result <checksum>` as the last line, where the checksum (16 hex digits) covers the bit
//! patterns of the final centroids. Kill the program at any moment and run the same command
//! again: it resumes every thread where the last checkpoint stopped it and prints the same
//! `result` as a run that was never interrupted. Notes go to stderr, among them
//! `resuming at iteration <i>` after a restore.
//!
//! The algorithm (`common/kmeans.rs`) is shared with the std benchmark: see there for how the
//! work is split and why the result does not depend on `--threads`. Cost: an iteration computes
//! `points × k` distances in `dim` dimensions (default 64), about a tenth of a second on two
//! cores in a release build: long enough for a kill to land in the middle of one.

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

#[macro_use]
mod common;
#[path = "common/cr.rs"]
mod cr;
#[path = "common/kmeans.rs"]
mod kmeans;

fn main() -> std::process::ExitCode {
    cr::main::<kmeans::Kmeans>()
}
