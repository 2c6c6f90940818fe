//! [`RwLock`]: std's reader-writer lock (signatures, guards, poisoning) over [`RawRwLock`]; a
//! read lock and a write lock each count once towards the lock depth.
//!
//! As in std, only a write guard dropped during a panic poisons the lock (a reader cannot have
//! left the data half-changed), and both `read` and `write` report the poison. The guards are
//! `!Send`, for the reason [`super::MutexGuard`] is.
#![allow(unsafe_code)] // Guards hand out references into the cell under the lock.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::RawRwLock;
use super::cell::DataCell;
use super::poison::{self, LockResult, TryLockError, TryLockResult};

/// A reader-writer lock protecting a `T`, with std's API and poisoning. Each read or write lock
/// held counts towards the calling thread's lock depth; the release of the last lock a thread
/// holds is a safepoint, as is a wait at depth 0.
///
/// Writers are preferred: once a writer waits, new readers wait too, so a thread that takes a
/// second read lock while another thread waits to write deadlocks (std allows the same).
pub struct RwLock<T: ?Sized> {
    raw: RawRwLock,
    poison: poison::Flag,
    data: DataCell<T>,
}

// SAFETY: the lock hands the data to one writer or to readers that share it; `T: Send` lets
// the writer be any thread.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: readers on several threads share `&T` (needs `T: Sync`); a writer on any thread gets
// `&mut T` (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

impl<T: ?Sized> UnwindSafe for RwLock<T> {}
impl<T: ?Sized> RefUnwindSafe for RwLock<T> {}

/// A shared lock of an [`RwLock`], held until this guard is dropped (not `Send`, like the
/// write guard).
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let l = crthreads::sync::RwLock::new(0);
/// send(l.read().unwrap());
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockReadGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    /// `!Send`: the lock must be released by the thread whose depth it counts in.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

/// The exclusive lock of an [`RwLock`], held until this guard is dropped.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let l = crthreads::sync::RwLock::new(0);
/// send(l.write().unwrap());
/// ```
#[must_use = "if unused the RwLock will immediately unlock"]
#[clippy::has_significant_drop]
pub struct RwLockWriteGuard<'a, T: ?Sized + 'a> {
    lock: &'a RwLock<T>,
    poison: poison::Guard,
    /// `!Send`: as for the read guard.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared reference to the guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<T> RwLock<T> {
    super::loom_const_fn! {
        /// A new, unlocked lock holding `t`.
        #[inline]
        pub fn new(t: T) -> RwLock<T> {
            RwLock { raw: RawRwLock::new(), poison: poison::Flag::new(), data: DataCell::new(t) }
        }
    }

    /// The data, consuming the lock; an error (still carrying it) if the lock is poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        let data = self.data.into_inner();
        if poisoned { Err(poison::PoisonError::new(data)) } else { Ok(data) }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Takes a shared lock, blocking while a writer holds or waits for it.
    #[inline]
    pub fn read(&self) -> LockResult<RwLockReadGuard<'_, T>> {
        self.raw.read();
        // SAFETY: a read lock was just taken by this thread.
        unsafe { RwLockReadGuard::new(self) }
    }

    /// Takes a shared lock if that needs no waiting.
    #[inline]
    pub fn try_read(&self) -> TryLockResult<RwLockReadGuard<'_, T>> {
        if self.raw.try_read() {
            // SAFETY: a read lock was just taken by this thread.
            Ok(unsafe { RwLockReadGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Takes the exclusive lock, blocking while anyone holds it.
    #[inline]
    pub fn write(&self) -> LockResult<RwLockWriteGuard<'_, T>> {
        self.raw.write();
        // SAFETY: the write lock was just taken by this thread.
        unsafe { RwLockWriteGuard::new(self) }
    }

    /// Takes the exclusive lock if it is free.
    #[inline]
    pub fn try_write(&self) -> TryLockResult<RwLockWriteGuard<'_, T>> {
        if self.raw.try_write() {
            // SAFETY: the write lock was just taken by this thread.
            Ok(unsafe { RwLockWriteGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether a writer panicked while holding the lock.
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poison.
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The data, through a unique borrow; an error (with the reference) if poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.get();
        let data = self.data.get_mut();
        if poisoned { Err(poison::PoisonError::new(data)) } else { Ok(data) }
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> RwLock<T> {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(t: T) -> Self {
        RwLock::new(t)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => {
                d.field("data", &&*guard);
            }
            Err(TryLockError::Poisoned(err)) => {
                d.field("data", &&**err.get_ref());
            }
            Err(TryLockError::WouldBlock) => {
                d.field("data", &format_args!("<locked>"));
            }
        }
        d.field("poisoned", &self.poison.get());
        d.finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    /// # Safety
    /// The calling thread must have just taken a read lock on `lock.raw`.
    unsafe fn new(lock: &'a RwLock<T>) -> LockResult<RwLockReadGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |_| RwLockReadGuard { lock, _not_send: PhantomData })
    }
}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    /// # Safety
    /// The calling thread must have just taken the write lock on `lock.raw`.
    unsafe fn new(lock: &'a RwLock<T>) -> LockResult<RwLockWriteGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |poison| RwLockWriteGuard { lock, poison, _not_send: PhantomData })
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: no writer touches the data.
        unsafe { &*self.lock.data.shared() }
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held: nobody else touches the data.
        unsafe { &*self.lock.data.exclusive() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.exclusive() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds a read lock, on this thread (it is not `Send`).
        unsafe { self.lock.raw.read_unlock() };
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        // SAFETY: the guard holds the write lock, on this thread (it is not `Send`).
        unsafe { self.lock.raw.write_unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::lock_depth;
    use std::sync::Arc;

    #[test]
    fn writers_exclude_and_readers_see_whole_updates() {
        // Writers keep the two halves equal; a reader that ever sees them differ saw a write in
        // progress.
        let l = Arc::new(RwLock::new((0u64, 0u64)));
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..5_000 {
                        if i % 2 == 0 {
                            let mut g = l.write().unwrap();
                            g.0 += 1;
                            g.1 += 1;
                        } else {
                            let g = l.read().unwrap();
                            assert_eq!(g.0, g.1, "a reader saw half a write");
                            assert_eq!(lock_depth(), 1);
                        }
                    }
                    assert_eq!(lock_depth(), 0);
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(*l.read().unwrap(), (15_000, 15_000));
    }

    #[test]
    fn try_semantics() {
        let l = Arc::new(RwLock::new(1));
        let r1 = l.read().unwrap();
        let r2 = l.try_read().expect("readers share");
        assert_eq!(lock_depth(), 2);
        let l2 = l.clone();
        assert!(std::thread::spawn(move || matches!(l2.try_write(), Err(TryLockError::WouldBlock))).join().unwrap());
        drop((r1, r2));
        let w = l.try_write().expect("free");
        let l2 = l.clone();
        assert!(
            std::thread::spawn(move || matches!(l2.try_read(), Err(TryLockError::WouldBlock))
                && matches!(l2.try_write(), Err(TryLockError::WouldBlock)))
            .join()
            .unwrap()
        );
        assert_eq!(lock_depth(), 1);
        drop(w);
        assert_eq!(lock_depth(), 0);
    }

    #[test]
    fn only_a_writer_panic_poisons() {
        let l = Arc::new(RwLock::new(0));
        let l2 = l.clone();
        let _ = std::thread::spawn(move || {
            let _g = l2.read().unwrap();
            panic!("reader");
        })
        .join();
        assert!(!l.is_poisoned(), "a panicking reader does not poison");
        let l2 = l.clone();
        let _ = std::thread::spawn(move || {
            let mut g = l2.write().unwrap();
            *g = 5;
            panic!("writer");
        })
        .join();
        assert!(l.is_poisoned());
        assert_eq!(*l.read().unwrap_err().into_inner(), 5);
        assert!(matches!(l.try_write(), Err(TryLockError::Poisoned(_))));
        assert_eq!(lock_depth(), 0);
        l.clear_poison();
        *l.write().unwrap() += 1;
        let mut l = Arc::try_unwrap(l).unwrap();
        assert_eq!(*l.get_mut().unwrap(), 6);
        assert_eq!(format!("{l:?}"), "RwLock { data: 6, poisoned: false, .. }");
        assert_eq!(l.into_inner().unwrap(), 6);
    }
}
