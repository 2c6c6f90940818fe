//! The std instantiation of the examples: `std::thread` and `std::sync`, with whatever global
//! allocator the binary has (the benchmark keeps the system's, glibc's malloc). Nothing is
//! persistent; this is the baseline the crthreads examples are measured against.

use std::process::ExitCode;

use crate::common::{Example, Progress};

/// The std runtime.
pub struct Std;

runtime_over_std_api!(Std, std::thread, std::sync);

/// Runs `E` on std threads with the command line `args`, printing its output as the crthreads
/// example does.
pub fn run<E: Example>(args: Vec<String>) -> ExitCode {
    let ex = match crate::common::parse_cli::<E>(args) {
        Ok(ex) => ex,
        Err(code) => return code,
    };
    let progress = Progress::of(&ex);
    crate::common::print_result(ex.run::<Std>(&progress));
    ExitCode::SUCCESS
}
