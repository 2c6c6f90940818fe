//! Synchronisation: the checkpoint-aware primitives a program uses, the runtime's own lock, and
//! the one lock order of the runtime.
//!
//! # Checkpoint-aware primitives
//!
//! [`Mutex`], [`RwLock`], [`Condvar`], [`Barrier`], [`Once`], [`OnceLock`] and [`Semaphore`]
//! have std's signatures and semantics (poisoning included; [`Semaphore`] is not in std), and
//! tell the thread runtime two things through the `park` seam:
//!
//! - **Lock depth.** Every lock a thread holds (a mutex, a read or a write lock of a rwlock)
//!   counts once towards its depth ([`lock_depth`]). The count goes up right after the lock word
//!   is taken and down right after it is released; a release that brings it to 0 is a
//!   *safepoint* where a due checkpoint is taken, inside the unlock call, with the lock word
//!   already free and the protected data consistent. A [`Condvar`] wait releases its mutex
//!   (depth down) and takes it back (depth up), so it returns with the depth it was called with.
//! - **Blocking.** Every wait is a `park::wait` on a futex word. At depth 0 that is a safepoint:
//!   the thread may be parked there for a checkpoint, and after a restore in a new process the
//!   wait returns as a spurious wake-up. So every wait sits in a loop that re-reads the shared
//!   word, and no primitive keeps a conclusion about shared state in a local variable across a
//!   wait.
//!
//! A checkpoint is taken only when every thread is at depth 0, so in a checkpoint image no lock
//! word is held: a restored lock is free. (A thread stopped asynchronously between taking a word
//! and counting it, if the runtime stops threads there, is the one exception; it is restored at
//! that instruction, before its critical section began, and goes on to count the lock.) Permits of a [`Semaphore`], a [`Once`] being run and a
//! [`Barrier`] being filled are not locks and may be captured in any state: every thread is
//! restored with them, at the safepoint where it stopped.
//!
//! # State words
//!
//! Each primitive is one `AtomicU32` futex word ([`Semaphore`] adds a count of sleepers); each
//! module's docs give its word's values as a table:
//!
//! | primitive | word | module |
//! |-----------|------|--------|
//! | [`RawMutex`] (under [`Mutex`]) | unlocked / locked / contended | `raw_mutex` |
//! | [`RawRwLock`] (under [`RwLock`]) | reader count or write-locked, two waiting bits | `raw_rwlock` |
//! | [`Condvar`] | a notification counter | `condvar` |
//! | [`Barrier`] | arrivals and a generation | `barrier` |
//! | [`Once`] (under [`OnceLock`]) | incomplete / poisoned / running / complete, a queued bit | `once` |
//! | [`Semaphore`] | available permits | `semaphore` |
//!
//! Zeroed memory is a free lock, an unlocked rwlock, a condvar, an incomplete once and a
//! semaphore without permits, so the raw words can live in freshly mapped pages.
//!
//! Deadlines are wall-clock times (`CLOCK_REALTIME`, ns since the epoch): a deadline set before
//! a crash keeps its meaning in the process that resumes the waiter. A wall-clock step moves
//! them too; timeouts are "at least about this long", never exact.
//!
//! # Lock order
//!
//! A thread that holds a lock of rank *n* may take only locks of higher rank. Every path follows
//! it: a checkpoint, the `fork` handlers (`heap::before_fork`), the allocator's slow paths.
//!
//! | rank | lock | taken by |
//! |------|------|----------|
//! | 0 | the program's crthreads locks ([`Mutex`], [`RwLock`]), in the program's own order | the program; never by the runtime |
//! | 1 | the runtime's state (`runtime::State`, a `Mutex`) | `checkpoint`, `retire`, settings |
//! | 2 | the checkpoint coordinator | checkpoint requests |
//! | 3 | the mprotect tracker's signal-disposition flag | `sigaction` interposers, `fork` |
//! | 4 | the central lists, in size-class order | allocator slow paths, `heap::lock_all` |
//! | 5 | the page heap | large allocations, new spans, `heap::lock_all` |
//! | 6 | the userfaultfd tracker's state | the tracker's `collect` |
//! | 7 | the volatile allocator | the runtime's own allocations, `fork` |
//! | 8 | glibc's stdio list lock | the mprotect tracker's `collect`, glibc's `fork` |
//!
//! A program holding its crthreads locks may allocate (ranks 4 to 7); a checkpoint is taken only
//! at depth 0, after the last of them was released, so the runtime never waits for rank 0 while
//! holding a runtime lock.
//!
//! Between taking the heap's locks and releasing them (ranks 4 and 5), a checkpoint allocates
//! nothing at all: not even from the volatile allocator, whose lock ranks after them, so that
//! no path can ever wait for rank 7 while a `fork` holding it waits for ranks 4 and 5. Debug
//! builds abort on such an allocation (`sys::tls::set_no_alloc`).
//!
//! [`RawLock`] guards the allocator's shared structures. It is not a crthreads lock in the sense
//! of the consistency model: it is never held across a safepoint and does not count towards a
//! thread's lock depth. Its state word may live inside the persistent region; restore resets it,
//! since no thread of the new process can hold it.

mod barrier;
mod condvar;
mod mutex;
mod once;
mod once_lock;
mod poison;
pub(crate) mod raw_lock;
mod raw_mutex;
mod raw_rwlock;
mod rwlock;
mod semaphore;

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
pub use once::{Once, OnceState};
pub use once_lock::OnceLock;
pub use poison::{LockResult, PoisonError, TryLockError, TryLockResult};
pub use raw_lock::RawLock;
pub use raw_mutex::RawMutex;
pub use raw_rwlock::RawRwLock;
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard};
pub use semaphore::Semaphore;

/// How many crthreads locks ([`Mutex`], [`RwLock`] read or write locks, held through their
/// guards or the raw layer) the calling thread holds. A checkpoint can be taken only while every
/// thread's depth is 0.
#[inline]
pub fn lock_depth() -> u32 {
    crate::loom::park::depth()
}

/// Declares a `const fn` in normal builds and a plain `fn` under loom, whose atomics cannot be
/// built in a const context.
macro_rules! loom_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $(<$($gen:ident),*>)? ($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $name $(<$($gen),*>)? ($($arg: $ty),*) -> $ret $body

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $name $(<$($gen),*>)? ($($arg: $ty),*) -> $ret $body
    };
}
pub(crate) use loom_const_fn;

/// A sequentially consistent fence (loom's under `--cfg loom`, which models it, unlike SeqCst
/// accesses, which it treats as AcqRel).
#[inline]
pub(crate) fn fence_seqcst() {
    #[cfg(not(loom))]
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    #[cfg(loom)]
    loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
}

/// Spins before sleeping in the contended paths (one under loom: a model explores every
/// interleaving of each spin, and one round already covers the "spun and saw a change" case).
pub(crate) const SPINS: u32 = if cfg!(loom) { 1 } else { 100 };

/// The wall-clock deadline `d` from now (ns since the epoch), or `None` (wait forever) if it
/// lies beyond what a `u64` of nanoseconds can hold (the year 2554).
pub(crate) fn deadline_after(d: core::time::Duration) -> Option<u64> {
    u64::try_from(d.as_nanos()).ok().and_then(|n| now().checked_add(n))
}

/// Whether the wall-clock time `deadline` has passed.
pub(crate) fn passed(deadline: Option<u64>) -> bool {
    deadline.is_some_and(|d| now() >= d)
}

/// Wall-clock nanoseconds since the epoch. The loom models have no time: it stays at 0 and
/// their waits never time out.
fn now() -> u64 {
    #[cfg(not(loom))]
    {
        crate::sys::realtime_ns()
    }
    #[cfg(loom)]
    {
        0
    }
}

/// The data cell of [`Mutex`], [`RwLock`] and [`OnceLock`]: `core`'s `UnsafeCell`, or under loom
/// loom's, which checks every access against the happens-before order, so the models catch a
/// lock that lets two threads into the data at once.
#[allow(unsafe_code)] // Hands out raw pointers to the data; the lock types decide when that is sound.
pub(crate) mod cell {
    /// An `UnsafeCell` whose accesses loom can check.
    #[repr(transparent)]
    pub(crate) struct DataCell<T: ?Sized> {
        #[cfg(not(loom))]
        inner: core::cell::UnsafeCell<T>,
        #[cfg(loom)]
        inner: loom::cell::UnsafeCell<T>,
    }

    impl<T> DataCell<T> {
        super::loom_const_fn! {
            /// A cell holding `value`.
            pub(crate) fn new(value: T) -> DataCell<T> {
                #[cfg(not(loom))]
                {
                    DataCell { inner: core::cell::UnsafeCell::new(value) }
                }
                #[cfg(loom)]
                {
                    DataCell { inner: loom::cell::UnsafeCell::new(value) }
                }
            }
        }

        /// The value, consuming the cell.
        pub(crate) fn into_inner(self) -> T {
            self.inner.into_inner()
        }
    }

    impl<T: ?Sized> DataCell<T> {
        /// A pointer for shared access (under loom: a read access, checked now).
        #[inline]
        pub(crate) fn shared(&self) -> *const T {
            #[cfg(not(loom))]
            {
                self.inner.get()
            }
            #[cfg(loom)]
            {
                self.inner.with(|p| p)
            }
        }

        /// A pointer for exclusive access (under loom: a write access, checked now).
        #[inline]
        pub(crate) fn exclusive(&self) -> *mut T {
            #[cfg(not(loom))]
            {
                self.inner.get()
            }
            #[cfg(loom)]
            {
                self.inner.with_mut(|p| p)
            }
        }

        /// Exclusive access through a unique borrow.
        #[inline]
        pub(crate) fn get_mut(&mut self) -> &mut T {
            #[cfg(not(loom))]
            {
                self.inner.get_mut()
            }
            #[cfg(loom)]
            {
                // SAFETY: `&mut self` excludes every other access for the borrow's lifetime.
                self.inner.with_mut(|p| unsafe { &mut *p })
            }
        }
    }
}
