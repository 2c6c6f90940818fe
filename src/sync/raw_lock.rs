//! A one-word futex mutex (the design of std's futex mutex).
//!
//! | state       | value | meaning                                  |
//! |-------------|-------|------------------------------------------|
//! | `UNLOCKED`  | 0     | free                                     |
//! | `LOCKED`    | 1     | held, nobody sleeps on it                |
//! | `CONTENDED` | 2     | held, and a thread may sleep in futex   |
//!
//! Zeroed memory is an unlocked lock, so a `RawLock` can be placed in freshly mapped pages.
#![allow(unsafe_code)] // `unlock` and `reset` have preconditions the type system cannot check.

use crate::loom::{AtomicU32, Ordering, futex, spin_hint};

/// Counts the runtime locks the calling thread holds (see [`crate::sys::tls::held`]), so that a
/// call made from a signal handler that interrupted the thread inside the runtime is refused
/// instead of deadlocking.
#[inline(always)]
fn held(_d: i16) {
    #[cfg(not(loom))]
    crate::sys::tls::held_add(_d);
}

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A small mutex without data or poisoning; the caller pairs `lock` with `unlock`.
#[repr(transparent)]
pub struct RawLock {
    state: AtomicU32,
}

// The region lays out RawLocks in zeroed memory: they must be exactly one u32.
#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<RawLock>() == 4);

impl RawLock {
    /// An unlocked lock.
    #[cfg(not(loom))]
    pub const fn new() -> RawLock {
        RawLock { state: AtomicU32::new(UNLOCKED) }
    }

    /// An unlocked lock.
    #[cfg(loom)]
    pub fn new() -> RawLock {
        RawLock { state: AtomicU32::new(UNLOCKED) }
    }

    /// Acquires the lock, blocking in the kernel if it stays contended.
    #[inline]
    pub fn lock(&self) {
        // Counted before the lock is taken (and uncounted after it is released), so that a
        // signal handler never finds the lock held by its thread but not counted.
        held(1);
        // Acquire: pairs with the Release in `unlock`, so the previous holder's writes are visible.
        if self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
    }

    /// Acquires the lock if it is free.
    #[inline]
    pub fn try_lock(&self) -> bool {
        held(1);
        // Acquire: as in `lock`.
        let ok = self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed).is_ok();
        if !ok {
            held(-1);
        }
        ok
    }

    #[cold]
    fn lock_contended(&self) {
        // Spin briefly: critical sections in the allocator are a few dozen instructions.
        let mut state = self.spin();
        if state == UNLOCKED {
            // Acquire: as in `lock`.
            match self.state.compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }
        loop {
            // Mark the lock contended before sleeping, so that `unlock` knows to wake us. If it
            // was unlocked we now own it (in state CONTENDED, which only costs a spare wake).
            // Acquire: as in `lock`.
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            futex::wait(&self.state, CONTENDED);
            state = self.spin();
        }
    }

    fn spin(&self) -> u32 {
        let mut n = 100;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s != LOCKED || n == 0 {
                return s;
            }
            spin_hint();
            n -= 1;
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread must hold the lock.
    #[inline]
    pub unsafe fn unlock(&self) {
        // Release: publishes the critical section's writes to the next `lock` (its Acquire).
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            futex::wake(&self.state, 1);
        }
        held(-1);
    }

    /// Forces the lock to the unlocked state.
    ///
    /// # Safety
    /// No thread may hold or be acquiring the lock: used by restore on locks whose holder was a
    /// thread of the process that wrote the checkpoint.
    pub unsafe fn reset(&self) {
        self.state.store(UNLOCKED, Ordering::Relaxed);
    }

    /// Whether the lock is currently held by some thread (a racy snapshot, for assertions).
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }

    /// Runs `f` with the lock held.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        self.lock();
        struct Unlock<'a>(&'a RawLock);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                // SAFETY: the guard exists only while this thread holds the lock.
                unsafe { self.0.unlock() }
            }
        }
        let _u = Unlock(self);
        f()
    }
}

#[cfg(not(loom))]
impl Default for RawLock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_between_threads() {
        struct Shared(RawLock, core::cell::UnsafeCell<u64>);
        // SAFETY: the counter is only touched under the lock.
        unsafe impl Sync for Shared {}
        let s = Arc::new(Shared(RawLock::new(), core::cell::UnsafeCell::new(0)));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        // SAFETY: exclusive under the lock.
                        s.0.with(|| unsafe { *s.1.get() += 1 });
                    }
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        // SAFETY: all threads joined.
        assert_eq!(unsafe { *s.1.get() }, 400_000);
        assert!(!s.0.is_locked());
    }
}
