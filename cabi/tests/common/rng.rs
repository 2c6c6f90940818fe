//! The random kill moments of the C drivers: xorshift64*, seeded from `CRTHREADS_TEST_SEED`
//! (to replay a run) or the clock, and the seed printed so that any run can be replayed.
#![allow(dead_code)] // not every driver kills at random moments

use std::time::SystemTime;

/// xorshift64*: the random kill moments. Seeded from `CRTHREADS_TEST_SEED` or the clock.
pub struct Rng(u64);

impl Rng {
    /// A generator for the runs named `what` (the name goes into the printed seed line).
    pub fn new(what: &str) -> Rng {
        let seed = match std::env::var("CRTHREADS_TEST_SEED") {
            Ok(v) => v.parse().expect("CRTHREADS_TEST_SEED is a number"),
            Err(_) => {
                let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
                t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
            }
        };
        eprintln!("{what}: kill moments from CRTHREADS_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % n
    }
}
