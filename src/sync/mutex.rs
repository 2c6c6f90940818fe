//! [`Mutex`]: std's `Mutex` (signatures, guards, poisoning) over [`RawMutex`], counting towards
//! the lock depth.
//!
//! The guard is `!Send`: the depth belongs to the thread that took the lock, and the release
//! that brings it to 0 is that thread's safepoint, so the guard must be dropped where it was
//! made. It is `Sync` when `T` is, as std's.
#![allow(unsafe_code)] // Guards hand out references into the cell under the lock.

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::RawMutex;
use super::cell::DataCell;
use super::poison::{self, LockResult, TryLockError, TryLockResult};

/// A mutual exclusion lock protecting a `T`, with std's API and poisoning, that counts towards
/// the calling thread's lock depth while held.
///
/// Releasing the last lock a thread holds is a safepoint: a due checkpoint is taken inside the
/// guard's drop, after the lock is free. Waiting for the lock at depth 0 is a safepoint too.
///
/// ```
/// use crthreads::sync::{Mutex, lock_depth};
/// let m = Mutex::new(0);
/// {
///     let mut g = m.lock().unwrap();
///     *g += 1;
///     assert_eq!(lock_depth(), 1);
/// }
/// assert_eq!(lock_depth(), 0);
/// assert_eq!(m.into_inner().unwrap(), 1);
/// ```
pub struct Mutex<T: ?Sized> {
    pub(super) raw: RawMutex,
    pub(super) poison: poison::Flag,
    data: DataCell<T>,
}

// SAFETY: the lock hands the data to one thread at a time; it only needs to be movable there.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: `&Mutex<T>` only gives access to `T` under the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T: ?Sized> UnwindSafe for Mutex<T> {}
impl<T: ?Sized> RefUnwindSafe for Mutex<T> {}

/// The lock of a [`Mutex`], held until this guard is dropped; dereferences to the data.
///
/// Not `Send`: it must be dropped on the thread whose lock depth counts it.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// let m = crthreads::sync::Mutex::new(0);
/// send(m.lock().unwrap());
/// ```
#[must_use = "if unused the Mutex will immediately unlock"]
#[clippy::has_significant_drop]
pub struct MutexGuard<'a, T: ?Sized + 'a> {
    pub(super) lock: &'a Mutex<T>,
    pub(super) poison: poison::Guard,
    /// `!Send`: the lock must be released by the thread whose depth it counts in.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, which is fine to share when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    super::loom_const_fn! {
        /// A new, unlocked mutex holding `t`.
        #[inline]
        pub fn new(t: T) -> Mutex<T> {
            Mutex { raw: RawMutex::new(), poison: poison::Flag::new(), data: DataCell::new(t) }
        }
    }

    /// The data, consuming the mutex; an error (still carrying the data) if it is poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.poison.get();
        let data = self.data.into_inner();
        if poisoned { Err(poison::PoisonError::new(data)) } else { Ok(data) }
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the mutex, blocking until it is free; the depth grows by one until the guard is
    /// dropped. An error (carrying the guard) if the mutex is poisoned.
    ///
    /// Locking a mutex the calling thread already holds deadlocks.
    #[inline]
    pub fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        self.raw.lock();
        // SAFETY: the lock was just taken by this thread.
        unsafe { MutexGuard::new(self) }
    }

    /// Acquires the mutex if it is free; `WouldBlock` if not, `Poisoned` (with the guard) if it
    /// was taken but is poisoned.
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<MutexGuard<'_, T>> {
        if self.raw.try_lock() {
            // SAFETY: the lock was just taken by this thread.
            Ok(unsafe { MutexGuard::new(self) }?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Whether a thread panicked while holding the lock.
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.poison.get()
    }

    /// Clears the poison.
    #[inline]
    pub fn clear_poison(&self) {
        self.poison.clear();
    }

    /// The data, through a unique borrow (no locking needed); an error (with the reference) if
    /// the mutex is poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.poison.get();
        let data = self.data.get_mut();
        if poisoned { Err(poison::PoisonError::new(data)) } else { Ok(data) }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(t: T) -> Self {
        Mutex::new(t)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
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

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// # Safety
    /// The calling thread must have just taken `lock.raw`.
    unsafe fn new(lock: &'a Mutex<T>) -> LockResult<MutexGuard<'a, T>> {
        poison::map_result(lock.poison.guard(), |poison| MutexGuard { lock, poison, _not_send: PhantomData })
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no other thread touches the data.
        unsafe { &*self.lock.data.exclusive() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { &mut *self.lock.data.exclusive() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.poison.done(&self.poison);
        // SAFETY: the guard holds the lock, on this thread (it is not `Send`).
        unsafe { self.lock.raw.unlock() };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
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
    fn counter_under_contention() {
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        *m.lock().unwrap() += 1;
                    }
                    assert_eq!(lock_depth(), 0);
                })
            })
            .collect();
        hs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(*m.lock().unwrap(), 160_000);
    }

    #[test]
    fn try_lock_would_block_while_held() {
        let m = Arc::new(Mutex::new(1));
        let g = m.lock().unwrap();
        let m2 = m.clone();
        let r = std::thread::spawn(move || matches!(m2.try_lock(), Err(TryLockError::WouldBlock)) && lock_depth() == 0);
        assert!(r.join().unwrap(), "try_lock on a held mutex must be WouldBlock and leave the depth at 0");
        drop(g);
        let g = m.try_lock().expect("a free mutex is taken");
        assert_eq!(lock_depth(), 1);
        drop(g);
        assert_eq!(lock_depth(), 0);
    }

    #[test]
    fn a_panic_under_the_lock_poisons_it() {
        let m = Arc::new(Mutex::new(vec![1]));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            g.push(2);
            panic!("in the critical section");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        let g = m.lock().expect_err("a poisoned mutex reports it").into_inner();
        assert_eq!(*g, [1, 2], "the data is still reachable through the error");
        assert_eq!(lock_depth(), 1);
        drop(g);
        assert_eq!(lock_depth(), 0);
        assert!(matches!(m.try_lock(), Err(TryLockError::Poisoned(_))));
        m.clear_poison();
        assert!(!m.is_poisoned());
        assert!(m.lock().is_ok());
        let m = Arc::try_unwrap(m).unwrap();
        assert_eq!(m.into_inner().unwrap(), [1, 2]);
    }

    #[test]
    fn a_guard_taken_while_panicking_does_not_poison() {
        // std's rule: only a panic that starts inside the critical section poisons.
        struct LockOnDrop(Arc<Mutex<u32>>);
        impl Drop for LockOnDrop {
            fn drop(&mut self) {
                *self.0.lock().unwrap() += 1;
            }
        }
        let m = Arc::new(Mutex::new(0));
        let m2 = m.clone();
        let r = std::thread::spawn(move || {
            let _d = LockOnDrop(m2);
            panic!("unwinding through a lock");
        })
        .join();
        assert!(r.is_err());
        assert!(!m.is_poisoned());
        assert_eq!(*m.lock().unwrap(), 1);
    }

    #[test]
    fn get_mut_and_into_inner_report_poison() {
        let mut m = Mutex::new(5);
        *m.get_mut().unwrap() = 6;
        let m = Arc::new(m);
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        let mut m = Arc::try_unwrap(m).unwrap();
        assert_eq!(*m.get_mut().unwrap_err().into_inner(), 6);
        assert_eq!(m.into_inner().unwrap_err().into_inner(), 6);
    }

    #[test]
    fn nested_locks_count_each() {
        let a = Mutex::new(());
        let b = Mutex::new(());
        let ga = a.lock().unwrap();
        let gb = b.lock().unwrap();
        assert_eq!(lock_depth(), 2);
        drop(ga);
        assert_eq!(lock_depth(), 1);
        drop(gb);
        assert_eq!(lock_depth(), 0);
    }

    #[test]
    fn unsized_data_and_debug() {
        let m: Arc<Mutex<[u8]>> = Arc::new(Mutex::new([1, 2, 3]));
        m.lock().unwrap()[1] = 9;
        assert_eq!(&*m.lock().unwrap(), &[1, 9, 3]);
        let m = Mutex::new(7);
        assert_eq!(format!("{m:?}"), "Mutex { data: 7, poisoned: false, .. }");
        let g = m.lock().unwrap();
        assert_eq!(format!("{g} {g:?}"), "7 7");
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(format!("{m:?}"), "Mutex { data: <locked>, poisoned: false, .. }"));
        });
        drop(g);
        assert_eq!(lock_depth(), 0);
    }
}
