//! [`OnceLock`]: std's write-once cell, built on [`Once`].
//!
//! The value is written by the closure that [`Once`] runs exactly once, and read only after the
//! `Once` is complete (an Acquire load that pairs with the Release that completed it), so
//! readers never see it half-written. Like [`Once`], it takes no lock and leaves the depth alone;
//! a wait for another thread's initialiser at depth 0 is a safepoint.
#![allow(unsafe_code)] // The value's slot is written once and read after completion.

use core::fmt;
use core::mem::MaybeUninit;
use std::panic::{RefUnwindSafe, UnwindSafe};

use super::Once;
use super::cell::DataCell;

/// A cell written at most once, with std's API.
pub struct OnceLock<T> {
    once: Once,
    value: DataCell<MaybeUninit<T>>,
}

// SAFETY: the value is shared between threads (`&T` from `get`), and moved in by whichever
// thread initialises it, as with std's OnceLock.
unsafe impl<T: Sync + Send> Sync for OnceLock<T> {}
// SAFETY: moving the cell moves the value.
unsafe impl<T: Send> Send for OnceLock<T> {}

impl<T: RefUnwindSafe + UnwindSafe> RefUnwindSafe for OnceLock<T> {}
impl<T: UnwindSafe> UnwindSafe for OnceLock<T> {}

impl<T> OnceLock<T> {
    super::loom_const_fn! {
        /// An empty cell.
        #[inline]
        pub fn new() -> OnceLock<T> {
            OnceLock { once: Once::new(), value: DataCell::new(MaybeUninit::uninit()) }
        }
    }

    /// The value, if the cell has been initialised (never blocks).
    #[inline]
    pub fn get(&self) -> Option<&T> {
        if self.once.is_completed() {
            // SAFETY: complete means written, and never written again while `&self` lives.
            Some(unsafe { self.get_unchecked() })
        } else {
            None
        }
    }

    /// The value, through a unique borrow.
    #[inline]
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if self.once.is_completed() {
            // SAFETY: complete means written; `&mut self` is unique.
            Some(unsafe { self.value.get_mut().assume_init_mut() })
        } else {
            None
        }
    }

    /// Blocks until the cell is initialised, then returns the value.
    pub fn wait(&self) -> &T {
        self.once.wait_force();
        // SAFETY: complete means written.
        unsafe { self.get_unchecked() }
    }

    /// Initialises the cell with `value`; `Err(value)` if it already held one.
    pub fn set(&self, value: T) -> Result<(), T> {
        let mut value = Some(value);
        self.get_or_init(|| value.take().expect("taken once"));
        match value {
            None => Ok(()),
            Some(value) => Err(value),
        }
    }

    /// The value, initialising it with `f` if the cell is empty. Exactly one `f` runs across
    /// all threads; the others block until it has returned. If `f` panics, the panic propagates
    /// and the cell stays empty (the next caller runs its own `f`).
    pub fn get_or_init<F: FnOnce() -> T>(&self, f: F) -> &T {
        if let Some(v) = self.get() {
            return v;
        }
        let slot = &self.value;
        self.once.call_once_force(|_| {
            let v = f();
            // SAFETY: the Once runs this closure on one thread, before anyone may read.
            unsafe { (*slot.exclusive()).write(v) };
        });
        // SAFETY: the call returned normally, so a closure completed and wrote the value.
        unsafe { self.get_unchecked() }
    }

    /// The value, consuming the cell.
    pub fn into_inner(mut self) -> Option<T> {
        self.take()
    }

    /// Takes the value out, leaving the cell empty.
    pub fn take(&mut self) -> Option<T> {
        if self.once.is_completed() {
            self.once = Once::new();
            // SAFETY: the value was written; resetting the Once marks it as moved out, so
            // neither `drop` nor a later `get` reads it again.
            Some(unsafe { self.value.get_mut().assume_init_read() })
        } else {
            None
        }
    }

    /// # Safety
    /// The cell must be initialised.
    #[inline]
    unsafe fn get_unchecked(&self) -> &T {
        // SAFETY: the caller guarantees the value was written (and, through the Once's
        // Acquire, that the write happens before this read).
        unsafe { (*self.value.shared()).assume_init_ref() }
    }
}

impl<T> Default for OnceLock<T> {
    fn default() -> OnceLock<T> {
        OnceLock::new()
    }
}

impl<T> From<T> for OnceLock<T> {
    fn from(value: T) -> Self {
        let cell = Self::new();
        match cell.set(value) {
            Ok(()) => cell,
            Err(_) => unreachable!("a new cell is empty"),
        }
    }
}

impl<T: Clone> Clone for OnceLock<T> {
    fn clone(&self) -> OnceLock<T> {
        let cell = Self::new();
        if let Some(value) = self.get() {
            match cell.set(value.clone()) {
                Ok(()) => (),
                Err(_) => unreachable!("a new cell is empty"),
            }
        }
        cell
    }
}

impl<T: PartialEq> PartialEq for OnceLock<T> {
    fn eq(&self, other: &OnceLock<T>) -> bool {
        self.get() == other.get()
    }
}

impl<T: Eq> Eq for OnceLock<T> {}

impl<T: fmt::Debug> fmt::Debug for OnceLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("OnceLock");
        match self.get() {
            Some(v) => d.field(v),
            None => d.field(&format_args!("<uninit>")),
        };
        d.finish()
    }
}

impl<T> Drop for OnceLock<T> {
    fn drop(&mut self) {
        if self.once.is_completed() {
            // SAFETY: complete means written, and nothing reads it after drop.
            unsafe { self.value.get_mut().assume_init_drop() };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    #[test]
    fn one_initialiser_wins_and_everyone_gets_its_value() {
        let cell = Arc::new(OnceLock::new());
        let runs = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (cell, runs) = (cell.clone(), runs.clone());
                std::thread::spawn(move || {
                    *cell.get_or_init(|| {
                        runs.fetch_add(1, Relaxed);
                        format!("from {i}")
                    }) == *cell.get().unwrap()
                })
            })
            .collect();
        assert!(hs.into_iter().all(|h| h.join().unwrap()));
        assert_eq!(runs.load(Relaxed), 1);
        assert_eq!(cell.wait(), cell.get().unwrap());
    }

    #[test]
    fn set_take_into_inner_and_drop() {
        let mut cell = OnceLock::new();
        assert_eq!(cell.get(), None);
        assert_eq!(cell.set(Arc::new(1)), Ok(()));
        let second = Arc::new(2);
        assert_eq!(cell.set(second.clone()), Err(second));
        *cell.get_mut().unwrap() = Arc::new(3);
        let v = cell.take().unwrap();
        assert_eq!(*v, 3);
        assert_eq!(cell.get(), None);
        assert_eq!(cell.take(), None);
        cell.set(v.clone()).unwrap();
        assert_eq!(Arc::strong_count(&v), 2);
        drop(cell);
        assert_eq!(Arc::strong_count(&v), 1, "dropping the cell drops the value");
        let cell = OnceLock::from(v.clone());
        assert_eq!(cell.clone(), cell);
        assert_eq!(format!("{:?}", OnceLock::<u8>::new()), "OnceLock(<uninit>)");
        assert_eq!(format!("{cell:?}"), "OnceLock(3)");
        assert_eq!(cell.into_inner().map(|a| *a), Some(3));
    }

    #[test]
    fn a_panicking_initialiser_leaves_the_cell_empty() {
        let cell = Arc::new(OnceLock::<u32>::new());
        let c2 = cell.clone();
        assert!(std::thread::spawn(move || *c2.get_or_init(|| panic!("no"))).join().is_err());
        assert_eq!(cell.get(), None);
        assert_eq!(*cell.get_or_init(|| 4), 4);
    }
}
