//! Lock depth and blocking, for the checkpoint-aware primitives of [`crate::sync`] (through the
//! facade `crate::loom::park`).
//!
//! The depth (crthreads locks the thread holds) lives in the thread's block of thread-local
//! memory; only the thread itself touches it. A release that brings it to zero is a safepoint,
//! and so is a wait at depth zero: there the coordinator may park the thread for a checkpoint.

use core::sync::atomic::AtomicU32;

pub(crate) use crate::loom::park::Wake;
use crate::sys::{futex, tls};

/// The calling thread holds one more lock.
#[inline]
pub(crate) fn acquired() {
    let d = tls::depth();
    match d.checked_add(1) {
        Some(n) => tls::set_depth(n),
        None => crate::sys::fatal("crthreads: lock depth overflow"),
    }
}

/// The calling thread holds one lock fewer; at zero a due checkpoint is taken.
#[inline]
pub(crate) fn released() {
    let d = tls::depth();
    match d.checked_sub(1) {
        Some(n) => {
            tls::set_depth(n);
            if n == 0 {
                super::released_last();
            }
        }
        None => crate::sys::fatal("crthreads: lock depth underflow (a lock released twice?)"),
    }
}

/// The calling thread's lock depth.
#[inline]
pub(crate) fn depth() -> u32 {
    tls::depth()
}

/// Blocks while `*word == expected`, until woken, spuriously, or until the wall-clock time
/// `deadline` (ns since the epoch). At depth 0 this is a safepoint.
pub(crate) fn wait(word: &AtomicU32, expected: u32, deadline: Option<u64>) -> Wake {
    if depth() == 0 {
        return super::wait_at_safepoint(word, expected, deadline);
    }
    if futex::wait_until(word, expected, deadline) { Wake::Woken } else { Wake::TimedOut }
}

/// Wakes up to `n` threads waiting on `word` (`i32::MAX`: all).
#[inline]
pub(crate) fn wake(word: &AtomicU32, n: i32) {
    futex::wake(word, n);
}
