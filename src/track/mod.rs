//! Dirty-page tracking: which region pages changed since the last checkpoint.
//!
//! A [`Tracker`] reports pages written since its previous report and re-arms them, so the next
//! report again holds only new writes. Backends:
//! - `full`: no tracking; every live page counts as written (the baseline).
//!
//! Besides what the backend sees, the heap reports pages it gave back to the OS
//! (`note_discarded`): their contents changed to zero without a write.
#![allow(unsafe_code)] // The discard hook publishes a pointer to a set that lives forever.

pub mod interpose;
pub mod mprotect;
pub mod uffd;

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

pub use crate::pages::PageSet;

use crate::config::TrackerKind;
use crate::error::{Error, Result};
use crate::pages::Extent;
use crate::sys::PAGE;

/// What one [`Tracker::collect`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CollectStats {
    /// Pages examined.
    pub scanned: u64,
    /// Pages found written.
    pub dirty: u64,
}

/// A dirty-page tracking backend.
pub trait Tracker: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> TrackerKind;
    /// Adds every page written since the previous call (or since start) within `extents` to
    /// each set of `into`, and re-arms tracking for them. Other threads must not write the
    /// region during the call.
    fn collect(&self, extents: &[Extent], into: &[&PageSet]) -> Result<CollectStats>;
}

/// The `full` backend: every live page counts as written.
pub struct Full;

impl Tracker for Full {
    fn kind(&self) -> TrackerKind {
        TrackerKind::Full
    }
    fn collect(&self, extents: &[Extent], into: &[&PageSet]) -> Result<CollectStats> {
        let mut st = CollectStats::default();
        for e in extents {
            for s in into {
                s.insert_range(e.first as usize, e.npages as usize);
            }
            st.scanned += e.npages;
            st.dirty += e.npages;
        }
        Ok(st)
    }
}

/// Starts the tracker `kind` on the region `base..base+len`, whose live pages are `extents`.
/// A started tracker, and, when `auto` could not use userfaultfd, why not.
pub struct Started {
    /// The tracker.
    pub tracker: Box<dyn Tracker>,
    /// Why `auto` fell back from userfaultfd to mprotect (the kernel's refusal), if it did.
    pub fallback: Option<Error>,
}

/// Starts the tracker `kind` on the region `base..base+len`, whose live pages are `extents`.
pub fn start(kind: TrackerKind, base: usize, len: usize, extents: &[Extent]) -> Result<Started> {
    if kind != TrackerKind::Full {
        crate::sys::mman::no_huge_pages(base, len);
    }
    let (tracker, fallback): (Box<dyn Tracker>, _) = match kind {
        TrackerKind::Full => (Box::new(Full), None),
        TrackerKind::Mprotect => (Box::new(mprotect::Mprotect::start(base, len)?), None),
        TrackerKind::Uffd => (Box::new(uffd::Uffd::start(base, len, extents)?), None),
        TrackerKind::Auto => match uffd::Uffd::start(base, len, extents) {
            Ok(u) => (Box::new(u), None),
            Err(why) => (Box::new(mprotect::Mprotect::start(base, len)?), Some(why)),
        },
    };
    Ok(Started { tracker, fallback })
}

/// Marks `base..base+len` as a persistent thread's stack (its first page a guard), or gives it
/// back (see `mprotect::set_stack`).
pub(crate) fn set_stack(base: usize, len: usize, on: bool) {
    mprotect::set_stack(base, len, on);
}

/// The runtime is about to rewrite `addr..addr+len` in place (a rollback): with the mprotect
/// tracker its pages are opened and recorded written, so the kernel can write into them.
pub(crate) fn prepare_rewrite(addr: usize, len: usize) {
    mprotect::prepare_kernel_write(addr, len);
}

/// Records that `addr..addr+len` was just handed out from untouched memory (it counts as
/// written: the mprotect tracker opens it in one call rather than one fault per page).
pub(crate) fn note_fresh(addr: usize, len: usize) {
    mprotect::note_fresh(addr, len);
}

static DISCARDED: AtomicPtr<PageSet> = AtomicPtr::new(core::ptr::null_mut());
static DISCARD_BASE: AtomicUsize = AtomicUsize::new(0);

/// Installs the set that collects pages the heap returns to the OS. The set must live for the
/// rest of the process (the runtime leaks it on purpose).
pub(crate) fn set_discard_sink(base: usize, set: &'static PageSet) {
    DISCARD_BASE.store(base, Ordering::Relaxed);
    // Release: the set is fully built before the heap can see it.
    DISCARDED.store(set as *const PageSet as *mut PageSet, Ordering::Release);
}

/// Records that `addr..addr+len` (region memory) was returned to the OS and now reads as zero.
pub(crate) fn note_discarded(addr: usize, len: usize) {
    // Acquire: pairs with the Release in `set_discard_sink`.
    let s = DISCARDED.load(Ordering::Acquire);
    if s.is_null() {
        return;
    }
    let first = (addr - DISCARD_BASE.load(Ordering::Relaxed)) / PAGE;
    // SAFETY: a non-null sink is a `&'static PageSet`.
    unsafe { &*s }.insert_range(first, len.div_ceil(PAGE));
}

/// Moves the discarded pages within `extents` into `into`.
pub(crate) fn drain_discarded(extents: &[Extent], into: &[&PageSet]) {
    // Acquire: as in `note_discarded`.
    let s = DISCARDED.load(Ordering::Acquire);
    if s.is_null() {
        return;
    }
    for e in extents {
        // SAFETY: a non-null sink is a `&'static PageSet`.
        unsafe { &*s }.drain_into(*e, into);
    }
}
