//! [`Condvar`]: std's condition variable (std's futex design) over a crthreads [`Mutex`].
//!
//! | word     | value | meaning                                                     |
//! |----------|-------|-------------------------------------------------------------|
//! | `futex`  | n     | notifications so far (wrapping); waiters sleep on the value |
//!
//! `wait` reads the counter while it still holds the mutex, releases the mutex (the depth goes
//! down by one: if that makes it 0, the release is a safepoint and the wait a second one), sleeps
//! while the counter is unchanged, and takes the mutex back (depth up), so it returns with the
//! depth it was called with. A notification after the counter was read changes it, so the sleep
//! does not begin or ends; every other return is a spurious wake-up, which std's contract
//! already allows and every caller's loop (or [`Condvar::wait_while`]) absorbs, including the
//! one a restore produces.
//!
//! All orderings are Relaxed, as in std: the mutex orders a waiter's read of the counter
//! (under the lock) before any notification by a thread that changed the condition under the
//! same lock afterwards, and `park::wait` compares the counter atomically with going to sleep.
#![allow(unsafe_code)] // A wait releases and re-takes the guard's raw lock.

use core::fmt;
use core::time::Duration;

use super::poison::{LockResult, PoisonError};
use super::{MutexGuard, deadline_after, loom_const_fn, passed};
use crate::loom::park::{self, Wake};
use crate::loom::{AtomicU32, Ordering};

/// A condition variable, with std's API, for crthreads' [`Mutex`](super::Mutex).
///
/// A wait at depth 0 (the mutex was the only lock the thread held) is a safepoint.
pub struct Condvar {
    futex: AtomicU32,
}

/// Whether a timed wait returned because its time ran out (std's type of the same name has no
/// public constructor, so this mirrors it).
#[derive(Debug, PartialEq, Eq, Copy, Clone)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// Whether the wait timed out (a notification may still have raced with the timeout).
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Condvar {
    loom_const_fn! {
        /// A new condition variable.
        #[inline]
        pub fn new() -> Condvar {
            Condvar { futex: AtomicU32::new(0) }
        }
    }

    /// Releases the guard's mutex, blocks until notified (or spuriously), and takes the mutex
    /// back. An error (carrying the guard) if the mutex is poisoned when re-taken.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> LockResult<MutexGuard<'a, T>> {
        self.wait_until(&guard, None);
        if guard.lock.poison.get() { Err(PoisonError::new(guard)) } else { Ok(guard) }
    }

    /// Waits while `condition` holds for the data (checked under the lock, first before any
    /// wait), and returns the guard once it does not.
    pub fn wait_while<'a, T, F>(&self, mut guard: MutexGuard<'a, T>, mut condition: F) -> LockResult<MutexGuard<'a, T>>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut *guard) {
            guard = self.wait(guard)?;
        }
        Ok(guard)
    }

    /// [`wait`](Self::wait), for at most about `dur` (measured on the wall clock).
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        dur: Duration,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)> {
        let woken = self.wait_until(&guard, deadline_after(dur));
        let result = WaitTimeoutResult(!woken);
        if guard.lock.poison.get() { Err(PoisonError::new((guard, result))) } else { Ok((guard, result)) }
    }

    /// [`wait_while`](Self::wait_while), giving up after about `dur` (one deadline for the whole
    /// call). The result says whether it timed out with the condition still holding.
    pub fn wait_timeout_while<'a, T, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        dur: Duration,
        mut condition: F,
    ) -> LockResult<(MutexGuard<'a, T>, WaitTimeoutResult)>
    where
        F: FnMut(&mut T) -> bool,
    {
        let deadline = deadline_after(dur);
        loop {
            if !condition(&mut *guard) {
                return Ok((guard, WaitTimeoutResult(false)));
            }
            if passed(deadline) {
                return Ok((guard, WaitTimeoutResult(true)));
            }
            let woken = self.wait_until(&guard, deadline);
            if guard.lock.poison.get() {
                return Err(PoisonError::new((guard, WaitTimeoutResult(!woken))));
            }
        }
    }

    /// Wakes one thread waiting on this condition variable, if there is one.
    #[inline]
    pub fn notify_one(&self) {
        self.futex.fetch_add(1, Ordering::Relaxed);
        park::wake(&self.futex, 1);
    }

    /// Wakes every thread waiting on this condition variable.
    #[inline]
    pub fn notify_all(&self) {
        self.futex.fetch_add(1, Ordering::Relaxed);
        park::wake(&self.futex, i32::MAX);
    }

    /// One wait: false if it ended because `deadline` passed. The guard's mutex is released
    /// and re-taken through the raw lock, so the depth goes down and back up.
    fn wait_until<T>(&self, guard: &MutexGuard<'_, T>, deadline: Option<u64>) -> bool {
        let raw = &guard.lock.raw;
        // Read the counter before releasing the mutex: a notification that comes after the
        // release changes it.
        let seen = self.futex.load(Ordering::Relaxed);
        // SAFETY: the guard proves this thread holds the mutex; it is taken back below before
        // the guard can be used or dropped again.
        unsafe { raw.unlock() };
        let r = park::wait(&self.futex, seen, deadline);
        raw.lock();
        r == Wake::Woken
    }
}

impl Default for Condvar {
    fn default() -> Condvar {
        Condvar::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::{Mutex, lock_depth};
    use std::sync::Arc;

    #[test]
    fn wait_while_sees_the_notified_condition_and_keeps_the_depth() {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let p2 = pair.clone();
        let t = std::thread::spawn(move || {
            for i in 1..=100 {
                *p2.0.lock().unwrap() = i;
                p2.1.notify_one();
            }
        });
        let other = Mutex::new(());
        let _outer = other.lock().unwrap();
        let g = pair.1.wait_while(pair.0.lock().unwrap(), |v| *v < 100).unwrap();
        assert_eq!(*g, 100);
        assert_eq!(lock_depth(), 2, "the wait returns with the depth it had");
        drop(g);
        t.join().unwrap();
    }

    #[test]
    fn timeouts_time_out_and_notifications_do_not() {
        let m = Mutex::new(false);
        let c = Condvar::new();
        let (g, r) = c.wait_timeout(m.lock().unwrap(), Duration::from_millis(20)).unwrap();
        assert!(r.timed_out());
        assert_eq!(lock_depth(), 1);
        drop(g);
        let (g, r) = c.wait_timeout_while(m.lock().unwrap(), Duration::from_millis(20), |b| !*b).unwrap();
        assert!(r.timed_out() && !*g);
        drop(g);
        assert_eq!(lock_depth(), 0);

        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let t = std::thread::spawn(move || {
            *p2.0.lock().unwrap() = true;
            p2.1.notify_all();
        });
        let (g, r) = pair.1.wait_timeout_while(pair.0.lock().unwrap(), Duration::from_secs(60), |b| !*b).unwrap();
        assert!(!r.timed_out() && *g, "set within the minute");
        drop(g);
        t.join().unwrap();
    }

    #[test]
    fn notify_all_wakes_every_waiter() {
        let pair = Arc::new((Mutex::new((0u32, false)), Condvar::new()));
        let hs: Vec<_> = (0..6)
            .map(|_| {
                let p = pair.clone();
                std::thread::spawn(move || {
                    let mut g = p.0.lock().unwrap();
                    g.0 += 1;
                    p.1.notify_all();
                    let g = p.1.wait_while(g, |s| !s.1).unwrap();
                    drop(g);
                    assert_eq!(lock_depth(), 0);
                })
            })
            .collect();
        let (mut g, r) =
            pair.1.wait_timeout_while(pair.0.lock().unwrap(), Duration::from_secs(60), |s| s.0 < 6).unwrap();
        assert!(!r.timed_out(), "all six arrive within the minute");
        // Everyone waits (or is about to, under the lock we hold): one notification for all.
        g.1 = true;
        drop(g);
        pair.1.notify_all();
        hs.into_iter().for_each(|h| h.join().unwrap());
    }

    #[test]
    fn a_poisoned_mutex_comes_back_as_an_error() {
        let pair = Arc::new((Mutex::new(()), Condvar::new()));
        let p2 = pair.clone();
        let _ = std::thread::spawn(move || {
            let _g = p2.0.lock();
            panic!("poison");
        })
        .join();
        let g = pair.0.lock().unwrap_err().into_inner();
        let err = pair.1.wait_timeout(g, Duration::from_millis(1)).unwrap_err();
        let (g, r) = err.into_inner();
        assert!(r.timed_out());
        drop(g);
        assert_eq!(lock_depth(), 0);
    }
}
