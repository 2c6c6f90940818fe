//! What the heap tells whoever tracks its pages: pages handed out from never-touched memory
//! (they count as written), and pages given back to the OS (they read as zero now, a change no
//! write tracker sees). The runtime wires these to the tracker at start-up
//! ([`set_page_events`]); until then, and in a process that runs plain, nobody listens.
//!
//! The listeners run under the page-heap lock and must not allocate or take runtime locks.

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
