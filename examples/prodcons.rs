//! 32 producers and 32 consumers around a bounded queue (a checkpoint-aware mutex and two
//! condition variables) on persistent threads that survives kill -9: the queue, the items in
//! flight and all 64 threads live in the persistent heap.
//!
//! ```text
//! cargo run --release --example prodcons -- --producers 32 --consumers 32 --items 200
//! ```
//!
//! Output contract (stdout): `iter <i>` as the consumers start each group of 32 items, then
//! `result <checksum>` as the last line, covering every item consumed (combined in an order
//! that does not matter) and the per-producer counts. Kill the program at any moment and run
//! the same command again: every thread resumes where the last checkpoint stopped it, no item
//! is lost or consumed twice, and the result is the uninterrupted run's.
//!
//! Every push and pop releases the queue's mutex, a checkpoint under the default policy
//! (`every-release`). The algorithm is in `common/prodcons.rs`, shared with the std benchmark.

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

#[macro_use]
mod common;
#[path = "common/cr.rs"]
mod cr;
#[path = "common/prodcons.rs"]
mod prodcons;

fn main() -> std::process::ExitCode {
    cr::main::<prodcons::ProdCons>()
}
