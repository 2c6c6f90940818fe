//! The `mprotect` tracker: pages are read-only after each checkpoint; the first write to one
//! raises SIGSEGV, whose handler records the page and makes it writable.
//!
//! The handler is async-signal-safe: it sets a bit (atomic OR) and calls `mprotect`, nothing
//! else. A fault outside the region, or not an access fault, goes to the handler that was
//! installed before ours, or, if that was the default, is re-raised with the default action, so
//! a genuine segfault still kills the process with SIGSEGV. If `mprotect` fails because the
//! process hit its limit of mappings (`vm.max_map_count`: every unprotected page can split the
//! region's mapping), the handler opens the page's whole 2 MiB group instead, trading
//! precision for fewer mappings.
//!
//! The kernel writing into a read-only page (`read(2)` into a heap buffer) fails with EFAULT
//! instead of faulting, so [`prepare_kernel_write`] opens pages before such calls: the
//! interposed read family calls it, and at each re-arm the buffers of open stdio `FILE`s are
//! kept open ("pinned" and counted dirty at every checkpoint), since libc fills them with
//! internal `read` calls that no interposer sees.
#![allow(unsafe_code)] // Signal handler and page protections.

use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use super::{CollectStats, PageSet, Tracker};
use crate::config::TrackerKind;
use crate::error::{Error, Result};
use crate::store::format::{Extent, GROUP_PAGES};
use crate::sys::mman::{Prot, protect};
use crate::sys::signal::{self, OldAction};
use crate::sys::{PAGE, stdio};

struct Global {
    base: AtomicUsize,
    len: AtomicUsize,
    dirty: AtomicPtr<PageSet>,
    prev: core::cell::UnsafeCell<Option<OldAction>>,
}

// SAFETY: `prev` is written once during `start`, before `len` is published (Release), and only
// read by the handler after it sees a non-zero `len` (Acquire).
unsafe impl Sync for Global {}

static G: Global = Global {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    dirty: AtomicPtr::new(core::ptr::null_mut()),
    prev: core::cell::UnsafeCell::new(None),
};

/// The mprotect tracker (one per process).
pub struct Mprotect {
    dirty: &'static PageSet,
    base: usize,
}

impl Mprotect {
    /// Write-protects the whole region and installs the SIGSEGV handler.
    pub fn start(base: usize, len: usize) -> Result<Mprotect> {
        if G.len.load(Ordering::Acquire) != 0 {
            return Err(Error::AlreadyInitialised);
        }
        let dirty: &'static PageSet = Box::leak(Box::new(PageSet::new(len / PAGE)?));
        G.base.store(base, Ordering::Relaxed);
        G.dirty.store(dirty as *const PageSet as *mut PageSet, Ordering::Relaxed);
        let old = signal::install(libc::SIGSEGV, on_segv).map_err(|e| Error::os("sigaction(SIGSEGV)", e))?;
        // SAFETY: written before `len` is published; the handler does not read `prev` while
        // `len` is 0 (it chains through the fallback below instead).
        unsafe { *G.prev.get() = Some(old) };
        // Release: publishes base, dirty and prev to the handler.
        G.len.store(len, Ordering::Release);
        // SAFETY: the region is ours; from now on writes fault into our handler.
        unsafe { protect(base, len, Prot::Read) }.map_err(|e| Error::os("mprotect (region)", e))?;
        Ok(Mprotect { dirty, base })
    }
}

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut core::ffi::c_void) {
    // Acquire: pairs with the Release in `start`.
    let len = G.len.load(Ordering::Acquire);
    let base = G.base.load(Ordering::Relaxed);
    // SAFETY: we are a SIGSEGV handler; `info` is the kernel's siginfo.
    let (addr, code) = unsafe { (signal::fault_addr(info), signal::code(info)) };
    if len != 0 && addr.wrapping_sub(base) < len && code == signal::SEGV_ACCERR {
        // SAFETY: `dirty` was published with `len` and lives forever.
        let dirty = unsafe { &*G.dirty.load(Ordering::Relaxed) };
        let p = (addr - base) / PAGE;
        dirty.insert(p);
        // SAFETY: the page is in our region; making it writable is what the faulting write
        // needs, and the page is now recorded as dirty.
        if unsafe { protect(base + p * PAGE, PAGE, Prot::ReadWrite) }.is_ok() {
            return;
        }
        let g = p / GROUP_PAGES * GROUP_PAGES;
        let n = GROUP_PAGES.min(len / PAGE - g);
        dirty.insert_range(g, n);
        // SAFETY: as above, for the page's whole group (all recorded dirty).
        if unsafe { protect(base + g * PAGE, n * PAGE, Prot::ReadWrite) }.is_ok() {
            return;
        }
        crate::sys::fatal("mprotect tracker: cannot make a written page writable (vm.max_map_count reached?)");
    }
    // SAFETY: `prev` is set before `len` is published; a fault before that has no tracker
    // involvement and `prev` is None, so we reset to the default action.
    match unsafe { &*G.prev.get() } {
        // SAFETY: we are the handler for `sig` and pass its arguments on.
        Some(old) => unsafe { signal::chain(old, sig, info, ctx) },
        None => {
            // SAFETY: an all-zero sigaction is SIG_DFL; resetting is async-signal-safe.
            let dfl: libc::sigaction = unsafe { core::mem::zeroed() };
            // SAFETY: valid pointer; see above.
            unsafe { libc::sigaction(sig, &dfl, core::ptr::null_mut()) };
        }
    }
}

/// Opens the pages of `addr..addr+len` that lie in the region for a write by the kernel,
/// recording them as dirty. No-op when the mprotect tracker is not running. No allocation.
pub fn prepare_kernel_write(addr: usize, len: usize) {
    // Acquire: pairs with the Release in `start`.
    let rlen = G.len.load(Ordering::Acquire);
    if rlen == 0 || len == 0 {
        return;
    }
    let base = G.base.load(Ordering::Relaxed);
    let (start, end) = (addr.max(base), addr.saturating_add(len).min(base + rlen));
    if start >= end {
        return;
    }
    // SAFETY: published with `len`, lives forever.
    let dirty = unsafe { &*G.dirty.load(Ordering::Relaxed) };
    let (first, last) = ((start - base) / PAGE, (end - 1 - base) / PAGE);
    let mut run: Option<usize> = None;
    for p in first..=last + 1 {
        let needs = p <= last && !dirty.contains(p);
        match (needs, run) {
            (true, None) => run = Some(p),
            (false, Some(s)) => {
                dirty.insert_range(s, p - s);
                // SAFETY: region pages, now recorded dirty; writable is what the caller needs.
                if unsafe { protect(base + s * PAGE, (p - s) * PAGE, Prot::ReadWrite) }.is_err() {
                    crate::sys::fatal("mprotect tracker: cannot open a buffer for a read");
                }
                run = None;
            }
            _ => {}
        }
    }
}

/// Records freshly handed-out pages (from the untouched top of the heap) as dirty and makes them
/// writable in one call, instead of one fault per page.
pub(crate) fn note_fresh(addr: usize, len: usize) {
    prepare_kernel_write(addr, len);
}

impl Tracker for Mprotect {
    fn kind(&self) -> TrackerKind {
        TrackerKind::Mprotect
    }

    fn collect(&self, extents: &[Extent], into: &[&PageSet]) -> Result<CollectStats> {
        let mut st = CollectStats::default();
        for e in extents {
            st.scanned += e.npages;
            let mut runs = 0usize;
            self.dirty.for_each_run(*e, |_, _| runs += 1);
            if runs == 0 {
                continue;
            }
            if runs > 64 {
                // One call over the whole extent is cheaper than many small ones.
                // SAFETY: live pages of our region; writers are quiescent during collect.
                unsafe { protect(self.base + e.first as usize * PAGE, e.npages as usize * PAGE, Prot::Read) }
                    .map_err(|err| Error::os("mprotect (re-arm)", err))?;
            } else {
                let mut res = Ok(());
                self.dirty.for_each_run(*e, |p, n| {
                    // SAFETY: as above.
                    if let Err(err) = unsafe { protect(self.base + p * PAGE, n * PAGE, Prot::Read) } {
                        res = Err(Error::os("mprotect (re-arm)", err));
                    }
                });
                res?;
            }
            st.dirty += self.dirty.count(*e) as u64;
            self.dirty.drain_into(*e, into);
        }
        // Keep stdio buffers open: libc reads into them behind every interposer's back.
        stdio::for_each_buffer(|start, end| prepare_kernel_write(start, end - start));
        Ok(st)
    }
}
