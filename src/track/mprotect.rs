//! The `mprotect` tracker: pages are read-only after each checkpoint; the first write to one
//! raises SIGSEGV, whose handler records the page and makes it writable.
//!
//! The handler is async-signal-safe: it sets a bit (atomic OR) and calls `mprotect`, nothing
//! else, and leaves errno as it found it. A fault outside the region, or not an access fault,
//! goes to the program's own SIGSEGV disposition, whether it was installed before the tracker
//! started or after (`sys::signal`: while the tracker runs, the program's `sigaction(SIGSEGV)`
//! is recorded there and ours stays installed); under the default disposition the fault is
//! re-raised with the default action, so a genuine segfault still kills the process with
//! SIGSEGV. If `mprotect` fails because the process hit its limit of mappings
//! (`vm.max_map_count`: every unprotected page can split the region's mapping), the handler
//! opens the page's whole 2 MiB group instead, trading precision for fewer mappings.
//!
//! The kernel writing into a read-only page (`read(2)` into a heap buffer) fails with EFAULT
//! instead of faulting, so [`prepare_kernel_write`] opens pages before such calls: every
//! interposed libc function that has the kernel write into caller memory calls it
//! (`track::interpose`), and at each re-arm the buffers of open stdio `FILE`s are kept open
//! ("pinned" and counted dirty at every checkpoint), since libc fills them with internal `read`
//! calls that no interposer sees.
//!
//! Invariant: a page recorded dirty is writable (the handler and `prepare_kernel_write` record
//! and open together; `collect` re-protects and clears together), so `prepare_kernel_write`
//! skips pages already recorded.
//!
//! Persistent threads' stacks are left alone (`set_stack`): their pages stay writable (the
//! checkpoint writes their live parts whole, see `thread`), and their guard pages stay
//! inaccessible; a fault on a guard page is not a tracking fault and goes on to the program's
//! disposition (by default: death by SIGSEGV). When a stack is given back, its pages count as
//! written (they are writable and may be reused at once).
#![allow(unsafe_code)] // Signal handler and page protections.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use super::{CollectStats, PageSet, Tracker};
use crate::config::TrackerKind;
use crate::error::{Error, Result};
use crate::pages::Extent;

/// Pages opened together (2 MiB) when the process runs out of mappings for single pages.
const GROUP_PAGES: usize = (2 << 20) / PAGE;
use crate::sys::mman::{Prot, protect};
use crate::sys::signal;
use crate::sys::{PAGE, stdio};

struct Global {
    base: AtomicUsize,
    /// The region's length, for the handler; published before the region is protected.
    len: AtomicUsize,
    dirty: AtomicPtr<PageSet>,
    /// Set once the region is protected: [`prepare_kernel_write`] works from then on (a page
    /// recorded dirty must be writable, so none may be recorded before the protection).
    armed: AtomicBool,
    /// Pages of persistent threads' stacks (kept writable), and their guard pages (kept
    /// inaccessible).
    stacks: AtomicPtr<PageSet>,
    guards: AtomicPtr<PageSet>,
}

static G: Global = Global {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    dirty: AtomicPtr::new(core::ptr::null_mut()),
    armed: AtomicBool::new(false),
    stacks: AtomicPtr::new(core::ptr::null_mut()),
    guards: AtomicPtr::new(core::ptr::null_mut()),
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
        let stacks: &'static PageSet = Box::leak(Box::new(PageSet::new(len / PAGE)?));
        let guards: &'static PageSet = Box::leak(Box::new(PageSet::new(len / PAGE)?));
        G.base.store(base, Ordering::Relaxed);
        G.dirty.store(dirty as *const PageSet as *mut PageSet, Ordering::Relaxed);
        G.stacks.store(stacks as *const PageSet as *mut PageSet, Ordering::Relaxed);
        G.guards.store(guards as *const PageSet as *mut PageSet, Ordering::Relaxed);
        // Until `len` is published the handler sees no tracking fault and passes every fault
        // on; nothing is protected yet.
        signal::take_over_segv(on_segv).map_err(|e| Error::os("sigaction(SIGSEGV)", e))?;
        // Release: publishes base and dirty to the handler.
        G.len.store(len, Ordering::Release);
        // SAFETY: the region is ours; from now on writes fault into our handler.
        unsafe { protect(base, len, Prot::Read) }.map_err(|e| Error::os("mprotect (region)", e))?;
        // Release: publishes base, len and dirty to `prepare_kernel_write`.
        G.armed.store(true, Ordering::Release);
        Ok(Mprotect { dirty, base })
    }
}

/// Whether the tracker runs: one relaxed load, the whole cost of an interposed call otherwise.
#[inline(always)]
pub fn active() -> bool {
    G.armed.load(Ordering::Relaxed)
}

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut core::ffi::c_void) {
    // A handler must leave errno as it found it (a failed mprotect below sets it).
    let errno = crate::sys::errno();
    // Acquire: pairs with the Release in `start`.
    let len = G.len.load(Ordering::Acquire);
    let base = G.base.load(Ordering::Relaxed);
    // SAFETY: we are a SIGSEGV handler; `info` is the kernel's siginfo.
    let (addr, code) = unsafe { (signal::fault_addr(info), signal::code(info)) };
    // A guard page below a persistent thread's stack: not a tracking fault.
    // SAFETY: `guards` was published with `len` and lives forever.
    let guard = len != 0
        && addr.wrapping_sub(base) < len
        && unsafe { &*G.guards.load(Ordering::Relaxed) }.contains((addr - base) / PAGE);
    if len != 0 && addr.wrapping_sub(base) < len && code == signal::SEGV_ACCERR && !guard {
        // SAFETY: `dirty` was published with `len` and lives forever.
        let dirty = unsafe { &*G.dirty.load(Ordering::Relaxed) };
        let p = (addr - base) / PAGE;
        dirty.insert(p);
        // SAFETY: the page is in our region; making it writable is what the faulting write
        // needs, and the page is now recorded as dirty.
        if unsafe { protect(base + p * PAGE, PAGE, Prot::ReadWrite) }.is_err() {
            let g = p / GROUP_PAGES * GROUP_PAGES;
            let n = GROUP_PAGES.min(len / PAGE - g);
            dirty.insert_range(g, n);
            // SAFETY: as above, for the page's whole group (all recorded dirty).
            if unsafe { protect(base + g * PAGE, n * PAGE, Prot::ReadWrite) }.is_err() {
                crate::sys::fatal("mprotect tracker: cannot make a written page writable (vm.max_map_count reached?)");
            }
        }
        crate::sys::set_errno(errno);
        return;
    }
    crate::sys::set_errno(errno);
    // Not a tracking fault: the program's own disposition, whenever it was installed.
    // SAFETY: we are the SIGSEGV handler installed by `take_over_segv`, passing its arguments.
    unsafe { signal::chain_segv(sig, info, ctx) };
}

/// Opens the pages of `addr..addr+len` that lie in the region for a write by the kernel,
/// recording them as dirty. No-op when the mprotect tracker is not running. No allocation.
#[inline]
pub fn prepare_kernel_write(addr: usize, len: usize) {
    if active() && len != 0 {
        open_for_kernel(addr, len);
    }
}

#[cold]
#[inline(never)]
fn open_for_kernel(addr: usize, len: usize) {
    // Acquire: pairs with the Release store of `armed` in `start`.
    if !G.armed.load(Ordering::Acquire) {
        return;
    }
    let rlen = G.len.load(Ordering::Relaxed);
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
                    open_groups(base, rlen, dirty, s, p);
                }
                run = None;
            }
            _ => {}
        }
    }
}

/// Opens the whole 2 MiB groups holding pages `first..end` (all recorded dirty), after opening
/// just those pages failed (the mapping limit). Leaves errno as it was.
#[cold]
fn open_groups(base: usize, rlen: usize, dirty: &PageSet, first: usize, end: usize) {
    let errno = crate::sys::errno();
    let g = first / GROUP_PAGES * GROUP_PAGES;
    let n = end.next_multiple_of(GROUP_PAGES).min(rlen / PAGE) - g;
    dirty.insert_range(g, n);
    // SAFETY: region pages, all recorded dirty.
    if unsafe { protect(base + g * PAGE, n * PAGE, Prot::ReadWrite) }.is_err() {
        crate::sys::fatal("mprotect tracker: cannot open a buffer for the kernel (vm.max_map_count reached?)");
    }
    crate::sys::set_errno(errno);
}

/// Records freshly handed-out pages (from the untouched top of the heap) as dirty and makes them
/// writable in one call, instead of one fault per page.
pub(crate) fn note_fresh(addr: usize, len: usize) {
    prepare_kernel_write(addr, len);
}

impl Mprotect {
    /// Makes region pages `from..to` read-only (nothing if the range is empty).
    fn read_only(&self, from: usize, to: usize) -> Result<()> {
        if to <= from {
            return Ok(());
        }
        // SAFETY: live pages of our region that are no thread's stack; the program's threads
        // are parked (one in `thread::blocking` writes only where its call writes).
        unsafe { protect(self.base + from * PAGE, (to - from) * PAGE, Prot::Read) }
            .map_err(|err| Error::os("mprotect (re-arm)", err))
    }
}

impl Tracker for Mprotect {
    fn kind(&self) -> TrackerKind {
        TrackerKind::Mprotect
    }

    fn collect(&self, extents: &[Extent], into: &[&PageSet]) -> Result<CollectStats> {
        let mut st = CollectStats::default();
        // SAFETY: both sets were published at start and live forever.
        let (stacks, guards) = unsafe { (&*G.stacks.load(Ordering::Relaxed), &*G.guards.load(Ordering::Relaxed)) };
        // Re-protects pages `p..p + n`, except stack pages, which are never read-only, not even
        // for a moment: a thread counted as parked may be in `thread::blocking`, in a system
        // call that writes into its own stack while the checkpoint runs (the write would fail
        // with EFAULT).
        let rearm = |p: usize, n: usize| -> Result<()> {
            let mut res = Ok(());
            let mut at = p;
            stacks.for_each_run(Extent { first: p as u64, npages: n as u64 }, |s, k| {
                if res.is_ok() {
                    res = self.read_only(at, s);
                }
                at = s + k;
            });
            res?;
            self.read_only(at, p + n)
        };
        for e in extents {
            st.scanned += e.npages;
            let mut runs = 0usize;
            self.dirty.for_each_run(*e, |_, _| runs += 1);
            if runs == 0 {
                continue;
            }
            if runs > 64 {
                // One call over the whole extent (between stacks) is cheaper than many small ones.
                rearm(e.first as usize, e.npages as usize)?;
            } else {
                let mut res = Ok(());
                self.dirty.for_each_run(*e, |p, n| {
                    if res.is_ok() {
                        res = rearm(p, n);
                    }
                });
                res?;
            }
            st.dirty += self.dirty.count(*e) as u64;
            self.dirty.drain_into(*e, into);
            // Stacks stay writable and guards inaccessible (see the module docs).
            let mut res = Ok(());
            stacks.for_each_run(*e, |p, n| {
                // SAFETY: stack pages of our region, which their threads (all parked) expect writable.
                if let Err(err) = unsafe { protect(self.base + p * PAGE, n * PAGE, Prot::ReadWrite) } {
                    res = Err(Error::os("mprotect (stacks)", err));
                }
            });
            guards.for_each_run(*e, |p, n| {
                // SAFETY: guard pages of our region: nothing may touch them.
                if let Err(err) = unsafe { protect(self.base + p * PAGE, n * PAGE, Prot::None) } {
                    res = Err(Error::os("mprotect (guards)", err));
                }
            });
            res?;
        }
        // Keep stdio buffers open: libc reads into them behind every interposer's back.
        stdio::for_each_buffer(|start, end| prepare_kernel_write(start, end - start));
        Ok(st)
    }
}

/// Marks `base..base+len` as a persistent thread's stack (`on`), its first page a guard, or gives
/// it back to the heap (`!on`). Sets the guard's protection; with this tracker running, also
/// keeps the stack out of tracking (and, when given back, counts its pages as written).
pub(crate) fn set_stack(base: usize, len: usize, on: bool) {
    // SAFETY: the guard page belongs to the stack allocation the caller owns; nothing uses it.
    let r = unsafe { protect(base, PAGE, if on { Prot::None } else { Prot::ReadWrite }) };
    if r.is_err() {
        crate::sys::fatal("cannot change the protection of a thread stack's guard page");
    }
    if !G.armed.load(Ordering::Acquire) {
        return;
    }
    let rbase = G.base.load(Ordering::Relaxed);
    let rlen = G.len.load(Ordering::Relaxed);
    if base.wrapping_sub(rbase) >= rlen {
        return;
    }
    // SAFETY: published at start, live forever.
    let (stacks, guards, dirty) = unsafe {
        (&*G.stacks.load(Ordering::Relaxed), &*G.guards.load(Ordering::Relaxed), &*G.dirty.load(Ordering::Relaxed))
    };
    let (first, n) = ((base - rbase) / PAGE, len / PAGE);
    if on {
        guards.insert(first);
        stacks.insert_range(first + 1, n - 1);
        // SAFETY: the stack's pages belong to the caller's allocation.
        if unsafe { protect(base + PAGE, len - PAGE, Prot::ReadWrite) }.is_err() {
            crate::sys::fatal("cannot make a thread stack writable");
        }
    } else {
        guards.remove_range(first, 1);
        stacks.remove_range(first + 1, n - 1);
        // Writable now, and reusable at once: written, as far as the next checkpoint knows.
        dirty.insert_range(first, n);
    }
}
