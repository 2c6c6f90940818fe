//! What the heap tells whoever tracks its pages: pages handed out from never-touched memory
//! (they count as written), and pages given back to the OS (they read as zero now, a change no
//! write tracker sees). The runtime wires these to the tracker at start-up
//! ([`set_page_events`]); until then, and in a process that runs plain, nobody listens.
//!
//! The listeners run under the page-heap lock and must not allocate or take runtime locks.
//!
//! Separately, the thread runtime checks who allocates ([`set_allocation_check`]): every
//! allocation that misses the thread's cache calls it, outside any lock.

#![allow(unsafe_code)] // A function pointer kept as a raw pointer, for a lock-free load.
use core::sync::atomic::{AtomicPtr, Ordering};

/// The listeners.
pub struct PageEvents {
    /// `addr..addr+len` was handed out from untouched memory.
    pub fresh: fn(usize, usize),
    /// `addr..addr+len` was returned to the OS and reads as zero.
    pub discarded: fn(usize, usize),
}

static EVENTS: AtomicPtr<PageEvents> = AtomicPtr::new(core::ptr::null_mut());

/// Installs the listeners (for the rest of the process).
pub fn set_page_events(e: &'static PageEvents) {
    // Release: the listeners are fully built before the heap can see them.
    EVENTS.store(e as *const PageEvents as *mut PageEvents, Ordering::Release);
}

static CHECK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Installs `f`, called on allocations from the persistent heap that miss the calling thread's
/// cache (and on every large one). It may allocate (the heap holds no lock then), and must not
/// panic.
pub fn set_allocation_check(f: fn()) {
    CHECK.store(f as *mut (), Ordering::Release);
}

#[inline]
pub(super) fn allocating() {
    let p = CHECK.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: only `set_allocation_check` stores here, and only `fn()` pointers.
        let f = unsafe { core::mem::transmute::<*mut (), fn()>(p) };
        f();
    }
}

fn listeners() -> Option<&'static PageEvents> {
    // Acquire: pairs with the Release in `set_page_events`.
    let p = EVENTS.load(Ordering::Acquire);
    // SAFETY: a non-null pointer was published from a `&'static PageEvents`.
    (!p.is_null()).then(|| unsafe { &*p })
}

pub(super) fn fresh(addr: usize, len: usize) {
    if let Some(e) = listeners() {
        (e.fresh)(addr, len);
    }
}

pub(super) fn discarded(addr: usize, len: usize) {
    if let Some(e) = listeners() {
        (e.discarded)(addr, len);
    }
}
