//! Arbitrary bytes decoded as a checkpoint slot image (header, summary, meta identity, whole
//! image, with and without resealed checksums). The checks live in `../harness.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| harness::store_decode(data));
