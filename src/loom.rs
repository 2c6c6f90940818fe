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

/// Hint to the CPU (or to loom's scheduler) that this thread is spinning.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
