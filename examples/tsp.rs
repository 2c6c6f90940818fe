//! Branch and bound for the travelling salesman problem on persistent threads that survives
//! kill -9: the instance, the task counter, the best tour and every worker's search stack live
//! in the persistent heap.
//!
//! ```text
//! cargo run --release --example tsp -- --cities 20 --seed 1 --threads 4
//! ```
//!
//! Output contract (stdout): `iter <i>` as a worker takes task `i` (the tasks split the search
//! tree by the second and third city of the tour), then `result <checksum>` as the last line,
//! covering the length and the cities of the shortest tour (the first in city order among
//! equally short ones). Kill the program at any moment and run the same command again: every
//! worker resumes where the last checkpoint stopped it, and the result is the uninterrupted
//! run's, although the order in which the tasks finish differs from run to run.
//!
//! Every release of the mutex that guards the task counter and the best tour is a checkpoint
//! under the default policy (`every-release`): taking a task is durable before its search
//! starts. The algorithm is in `common/tsp.rs`, shared with the std benchmark.

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

#[macro_use]
mod common;
#[path = "common/cr.rs"]
mod cr;
#[path = "common/tsp.rs"]
mod tsp;

fn main() -> std::process::ExitCode {
    cr::main::<tsp::Tsp>()
}
