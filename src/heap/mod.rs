//! The persistent heap: a thread-caching allocator whose every byte of state lives in the region.
//!
//! ```text
//!   malloc/free ──► thread cache (per class, no lock) ──batch──► central list (lock per class)
//!        │                                                            │ spans
//!        └─ > 32 KiB ─────────────────────────────────────────► page heap (one lock): runs,
//!                                                                 bins, coalescing, `top`
//! ```
//!
//! Before the heap is live, inside [`internal`] sections, and for blocks that were allocated
//! there, memory comes from [`mod@volatile`]; `free` and `realloc` dispatch by address.
//!
//! Invariants (checked by [`check_invariants`]):
//! - the heap area below `top` is tiled by runs: free runs (in the bin for their length, never
//!   adjacent to another free run), small spans (every page carries the class) and large runs;
//! - a small span's objects are either handed out (`used`), on its free list, or above its bump
//!   index, and it is on the partial list iff it has an object to give;
//! - pages at or above `top` read as zero.

#![allow(unsafe_code)] // An allocator: raw memory, page-map entries read without references.

mod cache;
mod central;
mod check;
pub(crate) mod events;
mod limit;
pub(crate) mod meta;
mod page_heap;
pub(crate) mod size_class;
pub mod volatile;

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub(crate) use cache::forget_cache;
use cache::{ST_NONE, TLS};
pub use cache::{internal, program};
pub use check::{HeapReport, check_invariants};
use meta::{FreeObj, HEAP_MAGIC, HEAP_VERSION, HeapHeader, MAX_CACHES, NIL, PageEntry, RegionLayout, kind};
use size_class::{SIZES, SMALL_MAX, class_for, class_of};

use crate::error::{Error, Result};
use crate::sys::PAGE;

/// Addresses of the live heap, published once by [`go_live`].
struct Globals {
    live: AtomicBool,
    base: AtomicUsize,
    capacity: AtomicUsize,
    pagemap: AtomicUsize,
    heap_base: AtomicUsize,
    /// Bytes in the heap area; 0 until live. Stored last (Release) and read first (Acquire).
    heap_len: AtomicUsize,
}

static G: Globals = Globals {
    live: AtomicBool::new(false),
    base: AtomicUsize::new(0),
    capacity: AtomicUsize::new(0),
    pagemap: AtomicUsize::new(0),
    heap_base: AtomicUsize::new(0),
    heap_len: AtomicUsize::new(0),
};

/// Raw access to the live heap's metadata. Copyable; all methods that touch metadata are
/// `unsafe` and state which lock they need.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub(crate) base: usize,
    pub(crate) pagemap: usize,
    pub(crate) heap_base: usize,
    heap_pages: usize,
}

/// The live heap, or `None` before [`go_live`].
#[inline]
pub(crate) fn ctx() -> Option<Ctx> {
    // Acquire: pairs with the Release in `go_live`; the other fields are then initialised.
    if !G.live.load(Ordering::Acquire) {
        return None;
    }
    Some(Ctx {
        base: G.base.load(Ordering::Relaxed),
        pagemap: G.pagemap.load(Ordering::Relaxed),
        heap_base: G.heap_base.load(Ordering::Relaxed),
        heap_pages: G.heap_len.load(Ordering::Relaxed) / PAGE,
    })
}

impl Ctx {
    fn from_layout(l: &RegionLayout) -> Ctx {
        Ctx {
            base: l.base,
            pagemap: l.page_addr(l.pagemap_start),
            heap_base: l.page_addr(l.heap_start),
            heap_pages: l.heap_pages,
        }
    }

    #[inline(always)]
    pub(crate) fn hdr(&self) -> *mut HeapHeader {
        self.base as *mut HeapHeader
    }

    /// Page-map entry of heap page `pg`.
    #[inline(always)]
    pub(crate) fn pe(&self, pg: u32) -> *mut PageEntry {
        debug_assert!((pg as usize) < self.heap_pages);
        (self.pagemap + pg as usize * core::mem::size_of::<PageEntry>()) as *mut PageEntry
    }

    /// Address of heap page `pg`.
    #[inline(always)]
    pub(crate) fn page_addr(&self, pg: u32) -> usize {
        self.heap_base + pg as usize * PAGE
    }

    /// Heap page containing `addr` (which must lie in the heap area).
    #[inline(always)]
    pub(crate) fn page_of(&self, addr: usize) -> u32 {
        ((addr - self.heap_base) / PAGE) as u32
    }

    fn set_large(&self, pg: u32, n: u32) {
        // SAFETY: called with the page-heap lock held on a run the caller owns.
        unsafe {
            *self.pe(pg) = PageEntry { kind: kind::LARGE_HEAD, npages: n, ..PageEntry::default() };
            if n > 1 {
                *self.pe(pg + n - 1) = PageEntry { kind: kind::LARGE_TAIL, npages: n - 1, ..PageEntry::default() };
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Life cycle.

/// Writes an empty heap into a freshly mapped (zeroed) region.
///
/// # Safety
/// The region described by `l` must be mapped read-write, zeroed, and unused.
pub(crate) unsafe fn format(l: &RegionLayout) {
    let ctx = Ctx::from_layout(l);
    // SAFETY: the caller guarantees exclusive access to the zeroed region.
    unsafe {
        let h = &mut *ctx.hdr();
        h.magic = HEAP_MAGIC;
        h.version = HEAP_VERSION;
        h.page_size = PAGE as u32;
        h.base = l.base as u64;
        h.capacity = l.capacity as u64;
        h.pagemap_start = l.pagemap_start as u32;
        h.heap_start = l.heap_start as u32;
        h.pages.top = 0;
        h.pages.limit = l.heap_pages as u32;
        h.pages.bins = [NIL; meta::EXACT_BINS + 1];
        for c in h.central.iter_mut() {
            c.partial = NIL;
        }
        for i in 0..MAX_CACHES {
            (*ctx.cache(i)).index = i as u32;
        }
    }
}

/// Checks a restored heap header against the region and makes it usable by this process:
/// every lock and every thread cache belonged to threads of the process that wrote it.
///
/// # Safety
/// The region must be mapped and no thread may use the heap yet.
pub(crate) unsafe fn adopt(l: &RegionLayout) -> std::result::Result<(), String> {
    let ctx = Ctx::from_layout(l);
    // SAFETY: the caller guarantees exclusive access; the header page is mapped.
    unsafe {
        let h = &mut *ctx.hdr();
        if h.magic != HEAP_MAGIC {
            return Err("the heap header's magic number is wrong".into());
        }
        if h.version != HEAP_VERSION {
            return Err(format!("heap layout version {} (this build reads {HEAP_VERSION})", h.version));
        }
        if h.base != l.base as u64 || h.capacity != l.capacity as u64 {
            return Err(format!(
                "heap at {:#x} ({} bytes), region at {:#x} ({} bytes)",
                h.base, h.capacity, l.base, l.capacity
            ));
        }
        if h.pagemap_start as usize != l.pagemap_start
            || h.heap_start as usize != l.heap_start
            || h.pages.limit as usize != l.heap_pages
            || h.pages.top > h.pages.limit
        {
            return Err("the heap header's layout does not match the region".into());
        }
        h.pages.lock.reset();
        for c in h.central.iter() {
            c.lock.reset();
        }
        for i in 0..MAX_CACHES {
            let c = &mut *ctx.cache(i);
            c.owner.store(0, Ordering::Relaxed);
            // A checkpoint taken from a signal handler that interrupted a cache's lock-free
            // push or pop may hold a count one off its list (see `cache`): make it exact.
            for b in c.bins.iter_mut() {
                let mut n = 0u32;
                let mut p = b.head;
                while !p.is_null() && n <= b.count.saturating_add(1) {
                    n += 1;
                    p = (*p).next;
                }
                if !p.is_null() {
                    return Err(format!("thread cache {i} holds a list longer than its count"));
                }
                b.count = n;
            }
        }
    }
    Ok(())
}

/// `fork` in a multithreaded program: the child inherits only the forking thread, so any
/// allocator lock held by another thread at that instant would stay locked forever in the
/// child. Take them all before the fork, in the global lock order of [`crate::sync`] (the
/// heap's locks, then the volatile allocator's), and release them on both sides.
extern "C" fn before_fork() {
    lock_all();
    volatile::lock();
}

extern "C" fn after_fork() {
    volatile::unlock();
    unlock_all();
}

/// Installs the fork handlers (once; later calls do nothing). Called when the heap goes live,
/// and by the C library as soon as it is loaded, since its volatile allocator is in use from
/// the start.
pub fn install_fork_handlers() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::AcqRel) {
        crate::sys::proc::at_fork(before_fork, after_fork, after_fork);
    }
}

/// Publishes the heap: from now on allocations go to the region.
pub(crate) fn go_live(l: &RegionLayout) {
    install_fork_handlers();
    let ctx = Ctx::from_layout(l);
    G.base.store(ctx.base, Ordering::Relaxed);
    G.capacity.store(l.capacity, Ordering::Relaxed);
    G.pagemap.store(ctx.pagemap, Ordering::Relaxed);
    G.heap_base.store(ctx.heap_base, Ordering::Relaxed);
    // Release: pairs with the Acquire loads of heap_len and live.
    G.heap_len.store(ctx.heap_pages * PAGE, Ordering::Release);
    G.live.store(true, Ordering::Release);
}

/// Whether the persistent heap serves allocations.
pub fn is_live() -> bool {
    G.live.load(Ordering::Acquire)
}

/// Whether `p` points into the persistent region.
#[inline]
pub fn in_region(p: *const u8) -> bool {
    (p as usize).wrapping_sub(G.base.load(Ordering::Relaxed)) < G.capacity.load(Ordering::Relaxed)
}

/// Region pages holding data (`(first page, count)` triples): header and caches, the used part
/// of the page map, and the used part of the heap area.
pub(crate) fn live_extents(l: &RegionLayout) -> [(usize, usize); 3] {
    let ctx = Ctx::from_layout(l);
    // SAFETY: the header is mapped; `top` is read racily, which callers that need an exact
    // value avoid by holding `lock_all`.
    let top = unsafe { core::ptr::addr_of!((*ctx.hdr()).pages.top).read_volatile() };
    l.live_extents(top as usize)
}

/// Calls `f(first region page, pages)` for every free run of at least `min_pages` pages: their
/// contents are nobody's, so a checkpoint need not store them. The caller holds [`lock_all`];
/// `f` must not allocate.
pub(crate) fn for_each_free_run(l: &RegionLayout, min_pages: u32, mut f: impl FnMut(usize, usize)) {
    if ctx().is_none() {
        return;
    }
    let c = Ctx::from_layout(l);
    // SAFETY: the caller holds every heap lock, the page-heap lock among them.
    unsafe { c.for_each_free_run(min_pages, |pg, n| f(l.heap_start + pg as usize, n as usize)) }
}

/// Takes every lock of the heap (central lists in class order, then the page heap), so that
/// its shared metadata is consistent and stays so until [`unlock_all`].
pub(crate) fn lock_all() {
    let Some(ctx) = ctx() else { return };
    // SAFETY: the header is mapped while live; locks are taken in the documented order.
    unsafe {
        for c in (*ctx.hdr()).central.iter() {
            c.lock.lock();
        }
        (*ctx.hdr()).pages.lock.lock();
    }
}

/// Releases what [`lock_all`] took.
pub(crate) fn unlock_all() {
    let Some(ctx) = ctx() else { return };
    // SAFETY: this thread took every lock in `lock_all`.
    unsafe {
        (*ctx.hdr()).pages.lock.unlock();
        for c in (*ctx.hdr()).central.iter().rev() {
            c.lock.unlock();
        }
    }
}

/// Runs `f` with the calling thread's allocations served from volatile memory: memory excluded
/// from checkpoints. What `f` allocates is never saved, and does not exist after a restore, so
/// a pointer to it must not be kept in persistent memory across a checkpoint (the program keeps
/// such pointers in volatile places: statics it rebuilds, or an `after_restore` hook). Freeing
/// works from anywhere: each block goes back to the allocator it came from. For caches, buffers
/// of data that can be recomputed or reread, and threads that crthreads does not manage.
///
/// ```no_run
/// #[global_allocator]
/// static A: crthreads::CrAlloc = crthreads::CrAlloc;
///
/// let scratch: Vec<u8> = crthreads::volatile(|| vec![0; 64 << 20]); // not in any checkpoint
/// # drop(scratch);
/// ```
pub fn volatile<R>(f: impl FnOnce() -> R) -> R {
    internal(f)
}

// ---------------------------------------------------------------------------------------------
// Allocation.

/// Allocates `size` bytes aligned to 16. Null when out of memory.
#[inline]
pub fn malloc(size: usize) -> *mut u8 {
    if size <= SMALL_MAX {
        let cls = class_of(size);
        let p = TLS.with(|t| {
            let c = t.cache.get();
            if c.is_null() {
                return core::ptr::null_mut();
            }
            // Not preemptible meanwhile: a thread parked mid-pop and resumed after a restore
            // would finish the pop on a cache that is no longer its own.
            crate::sys::tls::busy_add(1);
            // SAFETY: a non-null cache pointer is a cache this thread owns in the live heap;
            // class_of returns a class below NCLASSES.
            let h = unsafe {
                let b = (*c).bins.get_unchecked_mut(cls);
                let h = b.head;
                if !h.is_null() {
                    b.head = (*h).next;
                    b.count = b.count.wrapping_sub(1);
                    touch(h, cls);
                }
                h.cast::<u8>()
            };
            crate::sys::tls::busy_add(-1);
            h
        });
        if !p.is_null() {
            return p;
        }
    }
    alloc_slow(size, 16, false)
}

/// Allocates `size` bytes aligned to `align` (a power of two), zeroed if `zero`.
#[inline]
pub fn alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    if align <= 16 && !zero {
        return malloc(size);
    }
    alloc_slow(size, align, zero)
}

/// Writes to every page of a block of class `cls` (`< NCLASSES`) being handed out. A write tracker then sees the block's
/// pages as written now, before the program's own first write (which nearly always follows), so
/// that a kernel write into a fresh block (libc filling a stdio buffer it just allocated, from
/// inside libc where no interposer sees it) never meets a write-protected page.
#[inline(always)]
unsafe fn touch(h: *mut FreeObj, cls: usize) {
    // SAFETY: `h` is a block of SIZES[cls] bytes now owned by the caller; its contents are
    // unspecified, so overwriting them is allowed.
    unsafe {
        (*h).next = core::ptr::null_mut();
        let size = *SIZES.get_unchecked(cls) as usize;
        if size > PAGE {
            let mut off = PAGE - (h as usize % PAGE);
            while off < size {
                h.cast::<u8>().add(off).write(0);
                off += PAGE;
            }
        }
    }
}

#[cold]
fn alloc_slow(size: usize, align: usize, zero: bool) -> *mut u8 {
    let ctx = match ctx() {
        Some(c) if !cache::in_internal() => c,
        _ => return volatile_alloc(size, align, zero),
    };
    events::allocating();
    match class_for(size, align) {
        Some(cls) => {
            // SAFETY: the heap is live; small objects come from this thread's cache or the
            // central list of `cls`.
            let p = unsafe { small_alloc(&ctx, cls) };
            if zero && !p.is_null() {
                // SAFETY: the object has SIZES[cls] >= size bytes and is ours.
                unsafe { core::ptr::write_bytes(p, 0, size) };
            }
            p
        }
        None => large_alloc(&ctx, size, align, zero),
    }
}

fn volatile_alloc(size: usize, align: usize, zero: bool) -> *mut u8 {
    let p = volatile::alloc(size, align);
    if zero && !p.is_null() {
        // SAFETY: the block has at least `size` bytes.
        unsafe { core::ptr::write_bytes(p, 0, size) };
    }
    p
}

unsafe fn small_alloc(ctx: &Ctx, cls: usize) -> *mut u8 {
    let (c, state) = TLS.with(|t| (t.cache.get(), t.state.get()));
    // SAFETY: (whole fn) caches returned by claim/TLS are owned by this thread.
    unsafe {
        let mut c = c;
        if c.is_null() && state == ST_NONE {
            c = ctx.claim_cache();
        }
        let h: *mut FreeObj = if !c.is_null() {
            let b = &mut (*c).bins[cls];
            if !b.head.is_null() {
                let h = b.head;
                b.head = (*h).next;
                b.count = b.count.wrapping_sub(1);
                h
            } else {
                ctx.refill(c, cls).cast()
            }
        } else {
            let (obj, n) = ctx.central_fetch(cls, 1);
            if n == 0 { core::ptr::null_mut() } else { obj }
        };
        if !h.is_null() {
            touch(h, cls);
        }
        h.cast()
    }
}

fn large_alloc(ctx: &Ctx, size: usize, align: usize, zero: bool) -> *mut u8 {
    let Some(n) = size.max(1).checked_add(PAGE - 1).map(|s| s / PAGE) else {
        return core::ptr::null_mut();
    };
    if n >= ctx.heap_pages {
        return core::ptr::null_mut();
    }
    let align_pages = (align / PAGE).max(1);
    if align_pages >= ctx.heap_pages {
        return core::ptr::null_mut();
    }
    // SAFETY: the header is mapped; the run is ours once alloc_run returns it.
    let got = unsafe {
        let pages = &(*ctx.hdr()).pages;
        pages.lock.with(|| {
            let r = ctx.alloc_run(n as u32, align_pages as u32);
            if let Some((pg, _)) = r {
                ctx.set_large(pg, n as u32);
            }
            r
        })
    };
    let Some((pg, zeroed)) = got else { return core::ptr::null_mut() };
    let p = ctx.page_addr(pg) as *mut u8;
    if zero && !zeroed {
        // SAFETY: the run has n * PAGE >= size bytes and is ours.
        unsafe { core::ptr::write_bytes(p, 0, size) };
    }
    p
}

/// Frees a block from [`malloc`], [`alloc`] or [`realloc`] (or a volatile block).
///
/// # Safety
/// `p` is null or a live block returned by this allocator.
#[inline]
pub unsafe fn free(p: *mut u8) {
    // Acquire: pairs with `go_live`, so pagemap/heap_base are valid when heap_len is non-zero.
    let len = G.heap_len.load(Ordering::Acquire);
    let off = (p as usize).wrapping_sub(G.heap_base.load(Ordering::Relaxed));
    if off < len {
        let pe = G.pagemap.load(Ordering::Relaxed) + (off / PAGE) * core::mem::size_of::<PageEntry>();
        // SAFETY: `p` is in the heap area, so its page entry is mapped; the class of a page
        // holding a live small object does not change while the object lives.
        let cls = unsafe { (*(pe as *const PageEntry)).class } as usize;
        if cls != 0 {
            let done = TLS.with(|t| {
                let c = t.cache.get();
                if c.is_null() {
                    return false;
                }
                // Not preemptible meanwhile (as in `malloc`).
                crate::sys::tls::busy_add(1);
                // SAFETY: the heap is live (heap_len != 0) and `c` is this thread's cache.
                unsafe {
                    if cache::push(c, cls, p.cast()) {
                        ctx_unchecked().flush_bin(c, cls);
                    }
                }
                crate::sys::tls::busy_add(-1);
                true
            });
            if done {
                return;
            }
        }
    }
    // SAFETY: forwarded.
    unsafe { free_slow(p) }
}

/// The live heap's context, without the liveness check.
#[inline(always)]
fn ctx_unchecked() -> Ctx {
    Ctx {
        base: G.base.load(Ordering::Relaxed),
        pagemap: G.pagemap.load(Ordering::Relaxed),
        heap_base: G.heap_base.load(Ordering::Relaxed),
        heap_pages: G.heap_len.load(Ordering::Relaxed) / PAGE,
    }
}

#[cold]
unsafe fn free_slow(p: *mut u8) {
    if p.is_null() {
        return;
    }
    // `free` must not change errno (POSIX.1-2024); giving pages back may fail harmlessly.
    let saved = crate::sys::errno();
    // SAFETY: forwarded.
    unsafe { free_dispatch(p) };
    crate::sys::set_errno(saved);
}

unsafe fn free_dispatch(p: *mut u8) {
    if !in_region(p) {
        // SAFETY: blocks outside the region come from the volatile allocator.
        unsafe { volatile::free(p) };
        return;
    }
    let Some(ctx) = ctx() else { crate::sys::fatal("free(): pointer into the region before the heap is live") };
    let addr = p as usize;
    if addr < ctx.heap_base || addr >= ctx.heap_base + ctx.heap_pages * PAGE {
        crate::sys::fatal("free(): invalid pointer (into the heap's metadata)");
    }
    let pg = ctx.page_of(addr);
    // SAFETY: `pg` is a heap page; see the per-kind comments.
    unsafe {
        let e = *ctx.pe(pg);
        match e.kind {
            kind::SMALL_HEAD | kind::SMALL_BODY => {
                let cls = e.class as usize;
                let (c, state) = TLS.with(|t| (t.cache.get(), t.state.get()));
                if !c.is_null() {
                    if cache::push(c, cls, p.cast()) {
                        ctx.flush_bin(c, cls);
                    }
                } else if state == ST_NONE && !cache::in_internal() {
                    let c = ctx.claim_cache();
                    if c.is_null() {
                        release_one(&ctx, cls, p);
                    } else {
                        if cache::push(c, cls, p.cast()) {
                            ctx.flush_bin(c, cls);
                        }
                    }
                } else {
                    release_one(&ctx, cls, p);
                }
            }
            kind::LARGE_HEAD if addr % PAGE == 0 => {
                let pages = &(*ctx.hdr()).pages;
                pages.lock.with(|| ctx.free_run(pg, e.npages));
            }
            _ => crate::sys::fatal("free(): invalid pointer (not an allocated block, or freed twice)"),
        }
    }
}

unsafe fn release_one(ctx: &Ctx, cls: usize, p: *mut u8) {
    let obj = p.cast::<FreeObj>();
    // SAFETY: `p` is a freed object of class `cls`; a one-element list.
    unsafe {
        (*obj).next = core::ptr::null_mut();
        ctx.central_release(cls, obj, 1);
    }
}

/// Usable size of a live block.
///
/// # Safety
/// `p` is a live block returned by this allocator.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    if !in_region(p) {
        // SAFETY: forwarded.
        return unsafe { volatile::usable_size(p) };
    }
    let ctx = ctx_unchecked();
    // SAFETY: a live region block has an authoritative entry on its page.
    let e = unsafe { *ctx.pe(ctx.page_of(p as usize)) };
    match e.kind {
        kind::SMALL_HEAD | kind::SMALL_BODY => SIZES[e.class as usize] as usize,
        kind::LARGE_HEAD => e.npages as usize * PAGE,
        _ => 0,
    }
}

/// Resizes a block to `size` bytes aligned to `align`, in place when possible. On failure
/// returns null and leaves the block untouched.
///
/// # Safety
/// `p` is null or a live block of this allocator whose alignment was `align`.
pub unsafe fn realloc(p: *mut u8, size: usize, align: usize) -> *mut u8 {
    if p.is_null() {
        return alloc(size, align, false);
    }
    // SAFETY: (whole fn) `p` is live; in-place paths only change metadata under its lock.
    unsafe {
        let old = usable_size(p);
        if in_region(p) {
            let ctx = ctx_unchecked();
            let pg = ctx.page_of(p as usize);
            let e = *ctx.pe(pg);
            if e.kind == kind::LARGE_HEAD && (size > SMALL_MAX || align > PAGE) {
                let new_n = size.div_ceil(PAGE).max(1);
                if new_n <= e.npages as usize {
                    if new_n < e.npages as usize {
                        let pages = &(*ctx.hdr()).pages;
                        pages.lock.with(|| {
                            ctx.shrink_run(pg, e.npages, new_n as u32);
                            ctx.set_large(pg, new_n as u32);
                        });
                    }
                    return p;
                }
                if new_n < ctx.heap_pages {
                    let pages = &(*ctx.hdr()).pages;
                    let grown = pages.lock.with(|| {
                        let r = ctx.grow_run(pg, e.npages, new_n as u32);
                        if r.is_some() {
                            ctx.set_large(pg, new_n as u32);
                        }
                        r
                    });
                    if grown.is_some() {
                        return p;
                    }
                }
            } else if (e.kind == kind::SMALL_HEAD || e.kind == kind::SMALL_BODY)
                && class_for(size, align) == Some(e.class as usize)
            {
                return p;
            }
        } else if size <= old && size * 2 >= old && align <= 16 {
            return p;
        }
        let q = alloc(size, align, false);
        if !q.is_null() {
            core::ptr::copy_nonoverlapping(p, q, old.min(size));
            free(p);
        }
        q
    }
}

/// The global allocator for Rust programs: `#[global_allocator] static A: CrAlloc = CrAlloc;`
///
/// Memory allocated after [`crate::init`] lives in the persistent heap.
pub struct CrAlloc;

// SAFETY: the allocator returns blocks of at least the requested size and alignment that
// stay valid until freed, and never unwinds.
unsafe impl GlobalAlloc for CrAlloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        alloc(l.size(), l.align(), false)
    }
    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: GlobalAlloc's contract: `p` was allocated by this allocator.
        unsafe { free(p) }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        alloc(l.size(), l.align(), true)
    }
    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `p` is live with layout `l`.
        unsafe { realloc(p, new_size, l.align()) }
    }
}

// ---------------------------------------------------------------------------------------------
// The persistent root.

/// Address, size and alignment of the root object and its type hash, or `None`.
pub(crate) fn root() -> Option<(usize, usize, usize, u64)> {
    let ctx = ctx()?;
    // SAFETY: the header is mapped while live; the root fields are guarded by the page lock.
    unsafe {
        let h = ctx.hdr();
        (*h).pages.lock.with(|| {
            ((*h).root != 0)
                .then(|| ((*h).root as usize, (*h).root_size as usize, (*h).root_align as usize, (*h).root_type))
        })
    }
}

/// Records `addr` as the persistent root.
pub(crate) fn set_root(addr: usize, size: usize, align: usize, ty: u64) {
    let Some(ctx) = ctx() else { return };
    // SAFETY: as in `root`.
    unsafe {
        let h = ctx.hdr();
        (*h).pages.lock.with(|| {
            (*h).root = addr as u64;
            (*h).root_size = size as u64;
            (*h).root_align = align as u64;
            (*h).root_type = ty;
        });
    }
}

/// The C thread runtime's persistent block (see `HeapHeader::posix`): made by `make` (a block
/// of the persistent heap, or null) the first time it is asked for. Null if there is no heap.
pub(crate) fn posix_block(make: impl FnOnce() -> *mut u8) -> *mut u8 {
    let Some(ctx) = ctx() else { return core::ptr::null_mut() };
    let h = ctx.hdr();
    // SAFETY: as in `root`.
    let cur = unsafe { (*h).pages.lock.with(|| (*h).posix) };
    if cur != 0 {
        return cur as usize as *mut u8;
    }
    // Made outside the lock (allocating takes it); the first one recorded wins.
    let p = make();
    if p.is_null() {
        return p;
    }
    // SAFETY: as in `root`.
    let won = unsafe {
        (*h).pages.lock.with(|| {
            if (*h).posix == 0 {
                (*h).posix = p as usize as u64;
            }
            (*h).posix
        })
    };
    if won != p as usize as u64 {
        // SAFETY: `p` came from `make`, a block of this heap nobody else saw.
        unsafe { free(p) };
    }
    won as usize as *mut u8
}

/// Maps [`Error::OutOfMemory`] for callers that want a `Result`.
pub(crate) fn oom<T>(p: *mut T) -> Result<core::ptr::NonNull<T>> {
    core::ptr::NonNull::new(p).ok_or(Error::OutOfMemory)
}
