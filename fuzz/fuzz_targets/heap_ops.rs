//! Allocator operation sequences against a shadow model. The runtime is initialised once per
//! process (fresh directory, no re-execution); the checks live in `../harness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(
    init: harness::init_heap(),
    |data: &[u8]| harness::heap_ops(data)
);
