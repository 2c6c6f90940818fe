//! Gradient descent for logistic regression on persistent threads that survives kill -9: the
//! data, the model behind its reader-writer lock and every worker thread live in the persistent
//! heap, and a kill loses at most part of an epoch.
//!
//! ```text
//! cargo run --release --example gradient_descent -- --samples 200000 --features 64 --epochs 300
//! ```
//!
//! Output contract (stdout): `iter <i>` as each epoch this run computes starts, then
//! `result <checksum>` as the last line, covering the bit patterns of the final weights and
//! loss. Kill the program at any moment and run the same command again: it resumes every thread
//! where the last checkpoint stopped it and prints the same `result` as an uninterrupted run.
//!
//! Workers compute shard gradients under the model's read lock; one writer applies the epoch's
//! update under the write lock, between two barriers. The algorithm is in
//! `common/gradient_descent.rs`, shared with the std benchmark.

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

#[macro_use]
mod common;
#[path = "common/cr.rs"]
mod cr;
#[path = "common/gradient_descent.rs"]
mod gradient_descent;

fn main() -> std::process::ExitCode {
    cr::main::<gradient_descent::GradientDescent>()
}
