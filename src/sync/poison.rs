//! Poisoning, exactly as std does it.
//!
//! The result and error types are std's own ([`LockResult`], [`TryLockResult`], [`PoisonError`],
//! [`TryLockError`]): their constructors are public, so a program can switch between
//! `std::sync::Mutex` and `crthreads::sync::Mutex` without touching its error handling.
//!
//! A lock remembers whether its guard was taken while the thread was already panicking; if the
//! thread is panicking when the guard is dropped and was not when it was taken, the critical
//! section was cut short and the lock is poisoned. The flag is a plain relaxed boolean: it is
//! only set and read by threads that hold the lock (or own it exclusively), so the lock's own
//! Acquire/Release orders it, as in std.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

/// Whether a lock has been poisoned.
pub(crate) struct Flag {
    failed: AtomicBool,
}

impl Flag {
    /// A healthy flag.
    #[inline]
    pub(crate) const fn new() -> Flag {
        Flag { failed: AtomicBool::new(false) }
    }

    /// Notes whether the thread that just took the lock is panicking; an error carrying the
    /// note if the lock is poisoned.
    #[inline]
    pub(crate) fn guard(&self) -> LockResult<Guard> {
        let ret = Guard { panicking: std::thread::panicking() };
        if self.get() { Err(PoisonError::new(ret)) } else { Ok(ret) }
    }

    /// Poisons the lock if the thread started panicking while it held it.
    #[inline]
    pub(crate) fn done(&self, guard: &Guard) {
        if !guard.panicking && std::thread::panicking() {
            self.failed.store(true, Relaxed);
        }
    }

    /// Whether the lock is poisoned.
    #[inline]
    pub(crate) fn get(&self) -> bool {
        self.failed.load(Relaxed)
    }

    /// Clears the poison.
    #[inline]
    pub(crate) fn clear(&self) {
        self.failed.store(false, Relaxed);
    }
}

/// Whether the thread was panicking when it took the lock.
pub(crate) struct Guard {
    panicking: bool,
}

/// Applies `f` to the value of `result`, keeping it an error if it was one.
pub(crate) fn map_result<T, U, F>(result: LockResult<T>, f: F) -> LockResult<U>
where
    F: FnOnce(T) -> U,
{
    match result {
        Ok(t) => Ok(f(t)),
        Err(e) => Err(PoisonError::new(f(e.into_inner()))),
    }
}
