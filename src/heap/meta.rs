//! The allocator's metadata as it lies inside the persistent region.
//!
//! ```text
//!  page 0              HeapHeader: identity, root, page-heap bins, central lists (one page)
//!  pages 1..=CACHE_PAGES   thread caches, 4 per page (MAX_CACHES in all)
//!  threads_start..     THREAD_PAGES reserved for the thread runtime's table of persistent
//!                      threads (crate::thread::table); the heap only keeps the room
//!  pagemap_start..     page map: one 32-byte PageEntry per page of the heap area
//!  heap_start..        the heap area: page runs handed out from `top` upwards
//! ```
//!
//! Everything the allocator needs lives here, so a restored region is a working heap. All
//! structures are `repr(C)`, built only from integers, raw pointers into the region and
//! [`RawLock`]s, and are valid when zeroed except for the header's identity fields. Page
//! numbers are `u32` indices into the heap area, [`NIL`] meaning "none".

use crate::heap::size_class::NCLASSES;
use crate::sync::RawLock;
use crate::sys::PAGE;

/// "No page" in page-number links.
pub const NIL: u32 = u32::MAX;
/// Identifies an initialised heap header.
pub const HEAP_MAGIC: u64 = u64::from_le_bytes(*b"CRHEAP\0\x01");
/// Version of this metadata layout (2: [`PageHeap::retained`], [`PageEntry::kept`]).
pub const HEAP_VERSION: u32 = 3;
/// Thread caches in the region; threads beyond this share the central lists.
pub const MAX_CACHES: usize = 256;
/// Caches per page.
pub const CACHES_PER_PAGE: usize = PAGE / core::mem::size_of::<Cache>();
/// Pages holding thread caches.
pub const CACHE_PAGES: usize = MAX_CACHES / CACHES_PER_PAGE;
/// Pages kept for the table of persistent threads, after the caches.
pub const THREAD_PAGES: usize = 32;
/// Exact-size bins of free page runs: runs of `1..=EXACT_BINS` pages; longer runs share the
/// last bin.
pub const EXACT_BINS: usize = 128;

/// What a page-map entry describes.
pub mod kind {
    /// Never handed out (above `top`), or the interior of a run.
    pub const NONE: u8 = 0;
    /// First page of a free run (`npages` = length).
    pub const FREE_HEAD: u8 = 1;
    /// Last page of a free run longer than one page (`npages` = distance back to the head).
    pub const FREE_TAIL: u8 = 2;
    /// First page of a span of small objects (`npages` = length).
    pub const SMALL_HEAD: u8 = 3;
    /// Other pages of a small span (`npages` = distance back to the head).
    pub const SMALL_BODY: u8 = 4;
    /// First page of a large allocation (`npages` = length).
    pub const LARGE_HEAD: u8 = 5;
    /// Last page of a large allocation longer than one page (`npages` = distance back).
    pub const LARGE_TAIL: u8 = 6;
}

/// Page-map flags.
pub mod flag {
    /// The free run's pages are known to read as zero.
    pub const ZEROED: u8 = 1;
}

/// One page-map entry.
///
/// Only the first and last page of each run are authoritative (plus every page of a small
/// span, which all carry the class so that `free` finds it from any object). Interior pages of
/// free and large runs may hold stale entries; nothing reads them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PageEntry {
    /// One of [`kind`].
    pub kind: u8,
    /// Size class for every page of a small span, else 0.
    pub class: u8,
    /// [`flag`] bits.
    pub flags: u8,
    pub(crate) _reserved: u8,
    /// Run length (heads) or distance back to the head (tails and bodies).
    pub npages: u32,
    /// Next run in a free bin or in a class's partial list.
    pub next: u32,
    /// Previous run in the same list.
    pub prev: u32,
    /// Small spans: first free object as a byte offset from the span start, plus one (0: none).
    pub free_head: u32,
    /// Small spans: objects handed out (to threads or their caches).
    pub used: u32,
    /// Small spans: index of the first object never handed out.
    pub bump: u32,
    /// Free runs (head entry): how many of the run's pages may still be resident, at most
    /// `npages`; 0 exactly when the run is flagged [`flag::ZEROED`].
    pub kept: u32,
}

const _: () = assert!(core::mem::size_of::<PageEntry>() == 32);

/// Free page runs.
#[repr(C)]
pub struct PageHeap {
    /// Guards this struct and every FREE/LARGE page-map entry.
    pub lock: RawLock,
    /// Pages of the heap area handed out so far; `top..` is untouched.
    pub top: u32,
    /// Pages in the heap area.
    pub limit: u32,
    /// Free pages in bins.
    pub free_pages: u32,
    /// Free pages that may still be resident (the sum of the free runs' [`PageEntry::kept`]):
    /// kept for reuse rather than given back to the OS, and bounded (see the page heap's
    /// module docs).
    pub retained: u32,
    /// List heads of free runs: `bins[n-1]` holds runs of `n` pages, the last bin longer ones.
    pub bins: [u32; EXACT_BINS + 1],
}

/// The central list of one size class.
#[repr(C, align(64))]
pub struct Central {
    /// Guards this struct and the SMALL entries of this class's spans.
    pub lock: RawLock,
    /// Spans of this class with at least one object not handed out.
    pub partial: u32,
    /// Spans of this class.
    pub spans: u32,
}

/// A thread cache: per-class lists of free objects owned by one thread at a time.
#[repr(C, align(1024))]
pub struct Cache {
    /// 0: free, 1: owned by a live thread. Reset to 0 by restore.
    pub owner: crate::loom::AtomicU32,
    /// Index of this cache.
    pub index: u32,
    /// Per-class bins.
    pub bins: [Bin; NCLASSES],
}

/// One class's list in a thread cache.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Bin {
    /// First free object; each free object's first word points at the next.
    pub head: *mut FreeObj,
    /// Objects in the list.
    pub count: u32,
    pub(crate) _pad: u32,
}

/// The link word at the start of a free small object.
#[repr(C)]
pub struct FreeObj {
    /// The next free object, or null.
    pub next: *mut FreeObj,
}

/// The header of the region (page 0).
#[repr(C)]
pub struct HeapHeader {
    /// [`HEAP_MAGIC`].
    pub magic: u64,
    /// [`HEAP_VERSION`].
    pub version: u32,
    /// Page size when the heap was created.
    pub page_size: u32,
    /// Region base address.
    pub base: u64,
    /// Region length in bytes.
    pub capacity: u64,
    /// First page (region page index) of the page map.
    pub pagemap_start: u32,
    /// First page (region page index) of the heap area.
    pub heap_start: u32,
    /// The persistent root: address of the object, or 0.
    pub root: u64,
    /// Size of the root object.
    pub root_size: u64,
    /// Alignment of the root object.
    pub root_align: u64,
    /// Hash of the root object's type name.
    pub root_type: u64,
    /// Allocations made in this heap since it was created (statistics).
    pub allocations: u64,
    /// Free page runs.
    pub pages: PageHeap,
    /// Central lists, by class.
    pub central: [Central; NCLASSES],
    /// The C thread runtime's persistent state (`crate::posix::key`'s registry), or 0.
    pub posix: u64,
}

const _: () = assert!(core::mem::size_of::<HeapHeader>() <= PAGE);
const _: () = assert!(core::mem::size_of::<Cache>() == 1024);
const _: () = assert!(MAX_CACHES % CACHES_PER_PAGE == 0);

/// Where things are in a region of a given capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionLayout {
    /// Region base address.
    pub base: usize,
    /// Region length in bytes.
    pub capacity: usize,
    /// First page of the thread table (region page index).
    pub threads_start: usize,
    /// First page of the page map (region page index).
    pub pagemap_start: usize,
    /// First page of the heap area (region page index).
    pub heap_start: usize,
    /// Pages in the heap area.
    pub heap_pages: usize,
}

impl RegionLayout {
    /// Computes the layout of a region of `capacity` bytes at `base`.
    pub fn new(base: usize, capacity: usize) -> RegionLayout {
        let total = capacity / PAGE;
        let threads_start = 1 + CACHE_PAGES;
        let pagemap_start = threads_start + THREAD_PAGES;
        // One entry for every page of the region bounds the entries needed by the heap area.
        let pagemap_pages = (total * core::mem::size_of::<PageEntry>()).div_ceil(PAGE);
        // Start the heap area on a 64 KiB boundary.
        let heap_start = (pagemap_start + pagemap_pages).next_multiple_of(16);
        let heap_pages = total.saturating_sub(heap_start).min(NIL as usize - 1);
        RegionLayout { base, capacity, threads_start, pagemap_start, heap_start, heap_pages }
    }

    /// Address of region page `p`.
    #[inline]
    pub fn page_addr(&self, p: usize) -> usize {
        self.base + p * PAGE
    }

    /// Region pages that hold data when the heap area has `top` pages in use: the header and
    /// caches, the used part of the page map, and the used part of the heap area.
    pub fn live_extents(&self, top: usize) -> [(usize, usize); 3] {
        let pm_pages = (top * core::mem::size_of::<PageEntry>()).div_ceil(PAGE);
        [(0, self.pagemap_start), (self.pagemap_start, pm_pages), (self.heap_start, top)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fits_and_pagemap_covers_heap() {
        for cap in [32usize << 20, 1 << 30, 64 << 30] {
            let l = RegionLayout::new(0x2000_0000_0000, cap);
            assert!(l.heap_start * PAGE + l.heap_pages * PAGE <= cap);
            let pm_bytes = (l.heap_start - l.pagemap_start) * PAGE;
            assert!(pm_bytes >= l.heap_pages * 32);
            assert!(l.heap_pages > (cap / PAGE) * 9 / 10, "{l:?}");
        }
    }
}
