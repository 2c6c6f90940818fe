//! [`Semaphore`]: a counting semaphore (not in std) on a futex word of permits.
//!
//! | word       | value | meaning                                                         |
//! |------------|-------|-----------------------------------------------------------------|
//! | `permits`  | n     | permits available; acquirers sleep on the value 0               |
//! | `sleepers` | k     | threads between announcing a sleep and leaving it (not a futex) |
//!
//! Taking a permit is a CAS n → n − 1 (n > 0). A thread that finds none announces itself in
//! `sleepers`, looks at `permits` once more, and sleeps while it is 0; a release adds a permit
//! and wakes one sleeper if `sleepers` is not 0. The two sides are a Dekker pair (each writes
//! one word, then reads the other), so a SeqCst fence sits between the write and the read on both
//! sides: either the releaser sees the sleeper and wakes it, or the sleeper sees the permit and
//! does not sleep. A woken thread that finds the permit already taken by a thread that never
//! slept goes back to sleep; a thread whose wait timed out tries once more before giving up, so
//! a wake-up spent on it is never lost to the others. Every return of `park::wait` (woken,
//! spurious, restored) goes round the same loop.
//!
//! # Why a permit is not a lock
//!
//! A permit held does not count towards the lock depth, for three reasons. A permit has no
//! owner: the usual use is signalling, one thread releasing what another acquired, and a
//! per-thread count would be unbalanced in both. A permit can be held for the life of the
//! program (a pool of resources), and counting it would rule out every checkpoint for as long.
//! And nothing about it needs excluding: the count is one word in memory, which a checkpoint
//! captures with whatever value it has, together with every thread that holds or waits for a
//! permit, so a restore resumes them in agreement with it. Only blocking touches the checkpoint
//! protocol: `acquire` waiting at depth 0 is a safepoint.

use core::fmt;
use core::time::Duration;

use super::{SPINS, deadline_after, fence_seqcst, loom_const_fn, passed};
use crate::loom::park::{self, Wake};
use crate::loom::{AtomicU32, Ordering, spin_hint};

/// A counting semaphore whose blocking acquire is a safepoint at depth 0 (and whose permits are
/// not locks: see the module docs).
///
/// ```
/// use crthreads::sync::Semaphore;
/// let s = Semaphore::new(1);
/// s.acquire();
/// assert!(!s.try_acquire());
/// s.release();
/// assert_eq!(s.available(), 1);
/// ```
pub struct Semaphore {
    permits: AtomicU32,
    sleepers: AtomicU32,
}

impl Semaphore {
    loom_const_fn! {
        /// A semaphore with `permits` permits available.
        #[inline]
        pub fn new(permits: u32) -> Semaphore {
            Semaphore { permits: AtomicU32::new(permits), sleepers: AtomicU32::new(0) }
        }
    }

    /// Takes a permit, blocking until one is available.
    #[inline]
    pub fn acquire(&self) {
        if !self.try_acquire() {
            self.acquire_slow(None);
        }
    }

    /// Takes a permit if one is available now.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        let mut n = self.permits.load(Ordering::Relaxed);
        while n > 0 {
            // Acquire: pairs with the Release of the `release` that made this permit, so what
            // the releaser did before it happens before what we do with the permit.
            match self.permits.compare_exchange_weak(n, n - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    /// Takes a permit, blocking for at most about `timeout` (wall clock); false if none came.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.try_acquire() || self.acquire_slow(deadline_after(timeout))
    }

    /// Takes a permit, blocking until one is available or the wall-clock time `deadline` (ns
    /// since the epoch) passed; false if none came.
    #[cfg(not(loom))]
    pub(crate) fn acquire_until(&self, deadline: Option<u64>) -> bool {
        self.try_acquire() || self.acquire_slow(deadline)
    }

    /// Adds a permit unless there are `max` already (then false).
    #[cfg(not(loom))]
    pub(crate) fn release_below(&self, max: u32) -> bool {
        let mut n = self.permits.load(Ordering::Relaxed);
        while n < max {
            // Release: as in `release`.
            match self.permits.compare_exchange_weak(n, n + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    // SeqCst fence: as in `release`.
                    fence_seqcst();
                    if self.sleepers.load(Ordering::Relaxed) != 0 {
                        park::wake(&self.permits, 1);
                    }
                    return true;
                }
                Err(now) => n = now,
            }
        }
        false
    }

    #[cold]
    fn acquire_slow(&self, deadline: Option<u64>) -> bool {
        loop {
            if self.spin() {
                return true;
            }
            self.sleepers.fetch_add(1, Ordering::Relaxed);
            // SeqCst fence: orders our announcement before our look at `permits`, against the
            // fence in `release` between its new permit and its look at `sleepers`.
            fence_seqcst();
            let got = self.try_acquire();
            let r = if got { Wake::Woken } else { park::wait(&self.permits, 0, deadline) };
            self.sleepers.fetch_sub(1, Ordering::Relaxed);
            // A timed-out waiter may have been sent the wake-up meant for a permit: take it if
            // it is there, so that it is not stranded while others sleep.
            if got || self.try_acquire() {
                return true;
            }
            if r == Wake::TimedOut || passed(deadline) {
                return false;
            }
        }
    }

    /// Spins briefly for a permit.
    fn spin(&self) -> bool {
        for _ in 0..SPINS {
            if self.try_acquire() {
                return true;
            }
            spin_hint();
        }
        false
    }

    /// Adds a permit, waking a thread that waits for one.
    ///
    /// # Panics
    /// If that would make more than `u32::MAX` permits.
    #[inline]
    pub fn release(&self) {
        let mut n = self.permits.load(Ordering::Relaxed);
        loop {
            let next = n.checked_add(1).expect("Semaphore::release: too many permits");
            // Release: pairs with the Acquire of the `try_acquire` that takes this permit.
            match self.permits.compare_exchange_weak(n, next, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => n = now,
            }
        }
        // SeqCst fence: pairs with the one in `acquire_slow` (see there).
        fence_seqcst();
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            park::wake(&self.permits, 1);
        }
    }

    /// Permits available now (a snapshot).
    #[inline]
    pub fn available(&self) -> u32 {
        self.permits.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available", &self.available()).finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::lock_depth;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32 as StdAtomicU32, Ordering::Relaxed};

    #[test]
    fn permits_bound_the_threads_inside() {
        const PERMITS: u32 = 3;
        let s = Arc::new(Semaphore::new(PERMITS));
        let inside = Arc::new(StdAtomicU32::new(0));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let (s, inside) = (s.clone(), inside.clone());
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        s.acquire();
                        assert_eq!(lock_depth(), 0, "a permit is not a lock");
                        let n = inside.fetch_add(1, Relaxed) + 1;
                        assert!(n <= PERMITS, "{n} threads hold {PERMITS} permits");
                        inside.fetch_sub(1, Relaxed);
                        s.release();
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(s.available(), PERMITS);
    }

    #[test]
    fn a_release_on_another_thread_wakes_the_acquirer() {
        let s = Arc::new(Semaphore::new(0));
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            s2.acquire();
            s2.acquire();
        });
        s.release();
        s.release();
        t.join().unwrap();
        assert_eq!(s.available(), 0);
    }

    #[test]
    fn timeouts_and_try_acquire() {
        let s = Semaphore::new(0);
        assert!(!s.try_acquire());
        assert!(!s.acquire_timeout(Duration::from_millis(20)), "nobody releases");
        assert!(!s.acquire_timeout(Duration::ZERO));
        s.release();
        assert!(s.acquire_timeout(Duration::ZERO), "an available permit is taken without waiting");
        let s = Arc::new(Semaphore::new(0));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.acquire_timeout(Duration::from_secs(60)));
        s.release();
        assert!(t.join().unwrap(), "released within the minute");
        assert_eq!(format!("{:?}", *s), "Semaphore { available: 0, .. }");
    }

    #[test]
    #[should_panic(expected = "too many permits")]
    fn release_refuses_to_overflow() {
        Semaphore::new(u32::MAX).release();
    }
}
