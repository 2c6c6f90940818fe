//! [`Barrier`]: std's barrier, as one futex word that holds both the arrivals and a generation.
//!
//! | bits   | value       | meaning                                                        |
//! |--------|-------------|----------------------------------------------------------------|
//! | 0..24  | 0 ..= n − 1 | threads that have arrived in the current generation            |
//! | 24..32 | g (wrapping)| the generation: completed rounds, modulo 256                   |
//!
//! An arrival is one CAS: it adds one, or, for the n-th thread (the leader), resets the count
//! and advances the generation in the same step, so a thread that arrives after that counts in
//! the next round. The others wait until the generation differs from the one they arrived in,
//! re-reading the word after every return of `park::wait`: a spurious return, the return of a
//! thread restored from a checkpoint taken while it waited, or a return caused by another
//! arrival changing the count. A generation cannot advance twice while a thread waits (the next
//! round needs that thread), so 8 bits of generation are plenty.
//!
//! A wait at depth 0 is a safepoint. The count is not a lock and does not touch the depth: a
//! checkpoint may capture a half-filled round, and restores every thread of it as it was, the
//! waiters still waiting.

use core::fmt;

use super::loom_const_fn;
use crate::loom::park;
use crate::loom::{AtomicU32, Ordering};

const COUNT_MASK: u32 = (1 << 24) - 1;
const GEN_ONE: u32 = 1 << 24;

/// A barrier for a fixed number of threads, reusable across rounds, with std's API.
pub struct Barrier {
    state: AtomicU32,
    n: u32,
}

/// What [`Barrier::wait`] returns: whether this thread was the round's leader (a mirror of
/// std's type, which has no public constructor).
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// Whether this thread was the leader: exactly one per round (the last to arrive).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl fmt::Debug for BarrierWaitResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWaitResult").field("is_leader", &self.is_leader()).finish()
    }
}

impl Barrier {
    /// The most threads a barrier can wait for.
    pub const MAX_THREADS: usize = COUNT_MASK as usize;

    loom_const_fn! {
        /// A barrier that releases its waiters each time `n` threads have called
        /// [`wait`](Self::wait). With `n` 0 or 1, every call returns at once, as the leader.
        ///
        /// # Panics
        /// If `n` exceeds [`Barrier::MAX_THREADS`].
        pub fn new(n: usize) -> Barrier {
            assert!(n <= COUNT_MASK as usize, "Barrier::new: too many threads");
            Barrier { state: AtomicU32::new(0), n: n as u32 }
        }
    }

    /// Blocks until `n` threads (counting this one) have called `wait` in this round.
    pub fn wait(&self) -> BarrierWaitResult {
        if self.n <= 1 {
            return BarrierWaitResult(true);
        }
        let mut s = self.state.load(Ordering::Relaxed);
        let leader = loop {
            let arrived = (s & COUNT_MASK) + 1;
            let leader = arrived == self.n;
            let next = if leader { (s & !COUNT_MASK).wrapping_add(GEN_ONE) } else { s + 1 };
            // AcqRel: the Release half publishes what this thread did before the barrier; the
            // arrivals form one chain of RMWs, so the leader's Acquire half sees every earlier
            // arrival's writes, and the waiters' Acquire below sees the leader's, and through
            // it everyone's.
            match self.state.compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break leader,
                Err(now) => s = now,
            }
        };
        if leader {
            park::wake(&self.state, i32::MAX);
            return BarrierWaitResult(true);
        }
        let generation = s & !COUNT_MASK;
        loop {
            // Acquire: pairs with the leader's AcqRel CAS (or a later arrival's RMW, which
            // continues its release sequence).
            let now = self.state.load(Ordering::Acquire);
            if now & !COUNT_MASK != generation {
                return BarrierWaitResult(false);
            }
            park::wait(&self.state, now, None);
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::lock_depth;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    #[test]
    fn one_leader_per_round_and_no_thread_runs_ahead() {
        const N: usize = 8;
        const ROUNDS: usize = 200;
        let b = Arc::new(Barrier::new(N));
        let leaders = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..N)
            .map(|_| {
                let (b, leaders, arrived) = (b.clone(), leaders.clone(), arrived.clone());
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        arrived.fetch_add(1, Relaxed);
                        if b.wait().is_leader() {
                            leaders.fetch_add(1, Relaxed);
                        }
                        // Nobody can be here before all N arrived in this round, and nobody can
                        // arrive in round+2 before we arrive in round+1.
                        let a = arrived.load(Relaxed);
                        assert!(a >= (round + 1) * N && a <= (round + 2) * N, "round {round}: {a} arrivals");
                        assert_eq!(lock_depth(), 0);
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(leaders.load(Relaxed), ROUNDS);
    }

    #[test]
    fn tiny_barriers_never_block() {
        assert!(Barrier::new(0).wait().is_leader());
        let b = Barrier::new(1);
        assert!(b.wait().is_leader() && b.wait().is_leader());
        assert_eq!(format!("{:?}", b.wait()), "BarrierWaitResult { is_leader: true }");
    }
}
