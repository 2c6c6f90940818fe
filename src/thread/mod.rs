//! Persistent threads.
#![allow(unsafe_code)] // Context switches and raw thread records.

pub(crate) mod park;

use core::sync::atomic::AtomicU32;

use park::Wake;

/// The calling thread released its last lock.
#[inline]
fn released_last() {}

/// A wait at depth 0.
fn wait_at_safepoint(word: &AtomicU32, expected: u32, deadline: Option<u64>) -> Wake {
    if crate::sys::futex::wait_until(word, expected, deadline) { Wake::Woken } else { Wake::TimedOut }
}
