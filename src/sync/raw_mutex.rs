//! The raw mutex under [`super::Mutex`]: one futex word (std's futex mutex design), with the lock
//! depth kept through `park`.
//!
//! | state       | value | meaning                                         |
//! |-------------|-------|-------------------------------------------------|
//! | `UNLOCKED`  | 0     | free                                            |
//! | `LOCKED`    | 1     | held, nobody sleeps on it                       |
//! | `CONTENDED` | 2     | held, and a thread may sleep in `park::wait`    |
//!
//! `lock` is one CAS 0 → 1 and `unlock` one swap to 0, plus the depth update; only an unlock
//! that finds `CONTENDED` wakes a sleeper (one: whoever is woken takes the lock as `CONTENDED`,
//! so the next unlock wakes the next). A thread that has slept never takes the lock as `LOCKED`,
//! which is what keeps the other sleepers from being forgotten.
//!
//! Safepoints: a `park::wait` at depth 0 (a thread that holds no lock waiting for this one), and
//! an `unlock` that brings the depth to 0 (`park::released`, called after the word is free). At a
//! checkpoint no thread holds a lock, so a restored word is `UNLOCKED`; the sleepers of the old
//! process come back from their wait as a spurious wake-up and loop.
#![allow(unsafe_code)] // `unlock` has a precondition the type system cannot check.

use super::{SPINS, loom_const_fn};
use crate::loom::{AtomicU32, Ordering, park, spin_hint};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutex without data or poisoning that counts towards the lock depth: `lock` and `unlock`
/// must be paired by the same thread (the depth is per thread).
///
/// The shape is `lock_api::RawMutex`'s. Zeroed memory is an unlocked `RawMutex`.
#[repr(transparent)]
#[derive(Debug)]
pub struct RawMutex {
    state: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<RawMutex>() == 4);

impl RawMutex {
    loom_const_fn! {
        /// An unlocked mutex.
        #[inline]
        pub fn new() -> RawMutex {
            RawMutex { state: AtomicU32::new(UNLOCKED) }
        }
    }

    /// Acquires the mutex, blocking until it is free; the calling thread's depth grows by one.
    #[inline]
    pub fn lock(&self) {
        // Acquire: pairs with the Release swap in `unlock`, so the previous holder's critical
        // section happens before ours.
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        park::acquired();
    }

    /// Acquires the mutex if it is free (the depth grows by one if it was); never blocks.
    #[inline]
    pub fn try_lock(&self) -> bool {
        // Acquire: as in `lock`.
        let ok = self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if ok {
            park::acquired();
        }
        ok
    }

    #[cold]
    fn lock_contended(&self) {
        let mut state = self.spin();
        if state == UNLOCKED {
            // Acquire: as in `lock`.
            match self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
        loop {
            // Mark the mutex contended before sleeping, so that `unlock` wakes us. If it was free
            // we now hold it, as CONTENDED: others may still sleep, and our unlock must wake them.
            // Acquire: as in `lock`.
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            // Sleeps only while the word is still CONTENDED; any return (woken, spurious, a
            // restore) goes round the loop and looks at the word again.
            park::wait(&self.state, CONTENDED, None);
            state = self.spin();
        }
    }

    /// Acquires the mutex, blocking until it is free or the wall-clock time `deadline` (ns since
    /// the epoch) passed; true (and the depth one greater) if it was taken.
    #[cfg(not(loom))]
    pub(crate) fn lock_until(&self, deadline: Option<u64>) -> bool {
        if self.try_lock() {
            return true;
        }
        loop {
            let state = self.spin();
            // As in `lock_contended`: a word taken while marking it contended is ours.
            // Acquire: as in `lock`.
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                park::acquired();
                return true;
            }
            if super::passed(deadline) {
                return false;
            }
            park::wait(&self.state, CONTENDED, deadline);
        }
    }

    /// Spins while the mutex is held by a thread that nobody waits for, briefly.
    fn spin(&self) -> u32 {
        let mut n = SPINS;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s != LOCKED || n == 0 {
                return s;
            }
            spin_hint();
            n -= 1;
        }
    }

    /// Releases the mutex; the calling thread's depth shrinks by one, and if that makes it 0, a
    /// due checkpoint is taken inside this call (the word is already free then).
    ///
    /// # Safety
    /// The calling thread must hold the mutex (through [`lock`](Self::lock) or a successful
    /// [`try_lock`](Self::try_lock) on this thread).
    #[inline]
    pub unsafe fn unlock(&self) {
        // Release: publishes the critical section to the next `lock` (its Acquire).
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.wake();
        }
        park::released();
    }

    #[cold]
    fn wake(&self) {
        park::wake(&self.state, 1);
    }

    /// Whether some thread holds the mutex (a racy snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }
}

#[cfg(not(loom))]
impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::RawMutex;
    use crate::sync::lock_depth;

    #[test]
    fn lock_and_unlock_keep_the_depth() {
        let m = RawMutex::new();
        assert_eq!(lock_depth(), 0);
        m.lock();
        assert!(m.is_locked());
        assert_eq!(lock_depth(), 1);
        assert!(!m.try_lock(), "a held mutex is not taken again");
        assert_eq!(lock_depth(), 1, "a failed try_lock leaves the depth alone");
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
        assert!(!m.is_locked());
        assert_eq!(lock_depth(), 0);
        assert!(m.try_lock());
        assert_eq!(lock_depth(), 1);
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
        assert_eq!(lock_depth(), 0);
    }

    #[test]
    fn contended_lock_wakes_every_sleeper_in_turn() {
        // The main thread holds the lock while four threads pile up behind it (they spin, then
        // sleep as CONTENDED); each unlock must hand the lock on, or the joins hang.
        let m = std::sync::Arc::new(RawMutex::new());
        let count = std::sync::Arc::new(core::sync::atomic::AtomicU32::new(0));
        m.lock();
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (m, count) = (m.clone(), count.clone());
                std::thread::spawn(move || {
                    m.lock();
                    count.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    assert_eq!(lock_depth(), 1);
                    // SAFETY: held by this thread.
                    unsafe { m.unlock() };
                    assert_eq!(lock_depth(), 0);
                })
            })
            .collect();
        // SAFETY: held by this thread.
        unsafe { m.unlock() };
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(count.load(core::sync::atomic::Ordering::Relaxed), 4);
        assert!(!m.is_locked());
    }
}
