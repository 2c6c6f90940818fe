//! The concurrency facade: atomics and futex wait/wake, real or modelled.
//!
//! Shared-memory code in crthreads (the runtime's internal lock, the thread-cache claim
//! protocol) imports its atomics and futex calls from here. A normal build re-exports
//! `core::sync::atomic` and the real futex syscalls; under `--cfg loom` the same code is compiled
//! against loom's atomics and a futex model, so the tests in `loom-tests/` check the code that
//! ships, not a copy of it.
//!
//! The futex model: one loom mutex and condition variable stand for the kernel's futex hash
//! bucket. `wait` re-checks the word while holding the mutex and sleeps atomically; `wake` takes
//! the mutex and wakes every sleeper. Waking all is a legal futex behaviour (spurious wake-ups),
//! and the mutex makes check-then-sleep atomic with respect to wake, exactly as the kernel does,
//! so a lost wake-up shows up as a loom deadlock.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, Ordering};

/// Futex wait/wake on an [`AtomicU32`] of this facade.
pub(crate) mod futex {
    #[cfg(not(loom))]
    pub(crate) use crate::sys::futex::{wait, wake};

    #[cfg(loom)]
    mod model {
        use super::super::{AtomicU32, Ordering};
        use loom::sync::{Condvar, Mutex};

        loom::lazy_static! {
            static ref BUCKET: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
        }

        /// Sleeps while `*word == expected` (spurious returns allowed).
        pub(crate) fn wait(word: &AtomicU32, expected: u32) {
            let guard = BUCKET.0.lock().unwrap();
            if word.load(Ordering::SeqCst) == expected {
                drop(BUCKET.1.wait(guard).unwrap());
            }
        }

        /// Wakes sleepers on `word` (the model wakes all of them).
        pub(crate) fn wake(_word: &AtomicU32, _n: i32) {
            let _guard = BUCKET.0.lock().unwrap();
            BUCKET.1.notify_all();
        }
    }
    #[cfg(loom)]
    pub(crate) use model::{wait, wake};
}

/// What the checkpoint-aware primitives of [`crate::sync`] tell the thread runtime, and how they
/// block: the seam between a lock and the checkpoint coordinator.
///
/// - [`park::acquired`] / [`park::released`]: the calling thread's lock depth grows or shrinks
///   by one; a release to depth 0 is where a due checkpoint is taken (a safepoint).
/// - [`park::wait`]: blocks while a futex word holds a value; at depth 0 it is a safepoint (the
///   thread is parked where a checkpoint can take it, and a restore resumes it here, returning
///   as a spurious wake-up).
/// - [`park::wake`]: wakes waiters on a word.
///
/// A normal build forwards to [`crate::thread::park`]; under loom the depth is a thread-local
/// of the model and waiting is the futex model, so the models check the primitives' own logic
/// and their depth accounting.
pub(crate) mod park {
    /// How a [`wait`] ended.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Wake {
        /// Woken, or spuriously (the caller re-checks its condition).
        Woken,
        /// The deadline passed.
        TimedOut,
    }

    #[cfg(not(loom))]
    pub(crate) use crate::thread::park::{acquired, depth, released, wait, wake};

    #[cfg(loom)]
    mod model {
        use super::super::{AtomicU32, futex};
        use super::Wake;

        loom::thread_local! {
            static DEPTH: core::cell::Cell<u32> = core::cell::Cell::new(0);
        }

        /// The calling thread holds one more lock.
        pub(crate) fn acquired() {
            DEPTH.with(|d| d.set(d.get().checked_add(1).expect("lock depth overflow")));
        }

        /// The calling thread holds one lock fewer.
        pub(crate) fn released() {
            DEPTH.with(|d| d.set(d.get().checked_sub(1).expect("lock depth underflow: a lock released twice")));
        }

        /// The calling thread's lock depth.
        pub(crate) fn depth() -> u32 {
            DEPTH.with(|d| d.get())
        }

        /// Blocks while `*word == expected` (the model never times out).
        pub(crate) fn wait(word: &AtomicU32, expected: u32, _deadline: Option<u64>) -> Wake {
            futex::wait(word, expected);
            Wake::Woken
        }

        /// Wakes up to `n` waiters on `word` (the model wakes all).
        pub(crate) fn wake(word: &AtomicU32, n: i32) {
            futex::wake(word, n);
        }
    }
    #[cfg(loom)]
    pub(crate) use model::{acquired, depth, released, wait, wake};
}

/// Hint to the CPU (or to loom's scheduler) that this thread is spinning.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
