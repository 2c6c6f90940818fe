//! Helpers for the loom models of crthreads' concurrency code.
//!
//! The models exercise the crate's real types (compiled against loom's atomics and futex model
//! under `--cfg loom`). Without `--cfg loom` the same tests run natively on std threads, many
//! times, which at least smoke-tests them.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p crthreads-loom-tests --release`

/// Runs `f` under loom's exhaustive scheduler, or natively a number of times.
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    #[cfg(loom)]
    loom::model(f);
    #[cfg(not(loom))]
    for _ in 0..200 {
        f();
    }
}

#[cfg(loom)]
pub use loom::{
    cell::UnsafeCell,
    sync::Arc,
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

#[cfg(not(loom))]
pub use std::{
    sync::Arc,
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

/// `UnsafeCell` with loom's access-checking API, natively a plain cell.
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// A new cell.
    pub fn new(v: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(v))
    }
    /// Mutable access through a raw pointer.
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
    /// Shared access through a raw pointer.
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
}
