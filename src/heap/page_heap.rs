//! Runs of pages: allocation with alignment, splitting, coalescing, growth at `top`.
//!
//! Free runs sit in size bins (`bins[n-1]` for `n <= EXACT_BINS` pages, one shared bin above),
//! as doubly linked lists threaded through the page map, so no free page is written when runs
//! are linked or unlinked. A free run has an accurate FREE_HEAD entry on its first page and a
//! FREE_TAIL entry on its last; two free runs are never adjacent (they are merged on free).
//! Pages at or above `top` have never been handed out and read as zero.
//!
//! Every function here must be called with `PageHeap::lock` held.

use super::Ctx;
use super::meta::{EXACT_BINS, NIL, PageEntry, flag, kind};

/// Free runs of at least this many pages are returned to the OS when freed.
pub(crate) const DISCARD_MIN_PAGES: u32 = 256;

#[inline]
fn bin_of(n: u32) -> usize {
    if (n as usize) <= EXACT_BINS { n as usize - 1 } else { EXACT_BINS }
}

impl Ctx {
    /// Writes the head (and tail) entries of a free run and links it into its bin.
    unsafe fn push_free(&self, pg: u32, n: u32, zeroed: bool) {
        // SAFETY: (whole fn) the caller holds the page-heap lock and `pg..pg+n` is a run below
        // `top` that nobody else references, so its entries are ours to write.
        unsafe {
            let hdr = self.hdr();
            let b = bin_of(n);
            let old = (*hdr).pages.bins[b];
            let h = self.pe(pg);
            *h = PageEntry {
                kind: kind::FREE_HEAD,
                flags: if zeroed { flag::ZEROED } else { 0 },
                npages: n,
                next: old,
                prev: NIL,
                ..PageEntry::default()
            };
            if n > 1 {
                *self.pe(pg + n - 1) = PageEntry { kind: kind::FREE_TAIL, npages: n - 1, ..PageEntry::default() };
            }
            if old != NIL {
                (*self.pe(old)).prev = pg;
            }
            (*hdr).pages.bins[b] = pg;
            (*hdr).pages.free_pages += n;
        }
    }

    /// Removes the free run headed at `pg` from its bin. Returns `(length, zeroed)`.
    unsafe fn unlink_free(&self, pg: u32) -> (u32, bool) {
        // SAFETY: (whole fn) lock held; `pg` heads a free run, so its links are valid pages.
        unsafe {
            let hdr = self.hdr();
            let e = *self.pe(pg);
            debug_assert_eq!(e.kind, kind::FREE_HEAD);
            if e.prev != NIL {
                (*self.pe(e.prev)).next = e.next;
            } else {
                (*hdr).pages.bins[bin_of(e.npages)] = e.next;
            }
            if e.next != NIL {
                (*self.pe(e.next)).prev = e.prev;
            }
            (*hdr).pages.free_pages -= e.npages;
            // Retire the entries so that no stale FREE kind survives inside a used run.
            (*self.pe(pg)).kind = kind::NONE;
            if e.npages > 1 {
                (*self.pe(pg + e.npages - 1)).kind = kind::NONE;
            }
            (e.npages, e.flags & flag::ZEROED != 0)
        }
    }

    /// The head of the free run whose last page is `pg`, if that page ends a free run.
    unsafe fn free_run_ending_at(&self, pg: u32) -> Option<u32> {
        // SAFETY: lock held; `pg` is below `top`.
        let e = unsafe { *self.pe(pg) };
        match e.kind {
            kind::FREE_TAIL => Some(pg - e.npages),
            kind::FREE_HEAD if e.npages == 1 => Some(pg),
            _ => None,
        }
    }

    /// Takes a run of `n` pages whose first page's address is a multiple of `align_pages`
    /// pages. Returns the first page and whether the run reads as zero.
    pub(crate) unsafe fn alloc_run(&self, n: u32, align_pages: u32) -> Option<(u32, bool)> {
        debug_assert!(n > 0 && align_pages.is_power_of_two());
        let want = n.checked_add(align_pages - 1)?;
        // SAFETY: (whole fn) lock held; every page number used below is either a run head
        // from a bin or below `top`.
        unsafe {
            let (start, len, zeroed) = match self.find_free(want) {
                Some(pg) => {
                    let (len, z) = self.unlink_free(pg);
                    (pg, len, z)
                }
                None => self.grow(want)?,
            };
            // Align inside the run, then give back the slack on both sides.
            let a = self.align_up(start, align_pages);
            if a > start {
                self.free_piece(start, a - start, zeroed);
            }
            let end = start + len;
            if a + n < end {
                self.free_piece(a + n, end - a - n, zeroed);
            }
            (*self.hdr()).allocations += 1;
            Some((a, zeroed))
        }
    }

    /// The first page at or after `pg` whose address is aligned to `align_pages` pages.
    fn align_up(&self, pg: u32, align_pages: u32) -> u32 {
        if align_pages == 1 {
            return pg;
        }
        let bytes = align_pages as usize * crate::sys::PAGE;
        let addr = self.page_addr(pg);
        let aligned = addr.next_multiple_of(bytes);
        pg + ((aligned - addr) / crate::sys::PAGE) as u32
    }

    /// A free run of at least `want` pages: exact bins first, then best fit in the shared bin.
    unsafe fn find_free(&self, want: u32) -> Option<u32> {
        // SAFETY: (whole fn) lock held; bin lists only hold heads of free runs.
        unsafe {
            let hdr = self.hdr();
            for b in bin_of(want)..EXACT_BINS {
                let pg = (*hdr).pages.bins[b];
                if pg != NIL {
                    return Some(pg);
                }
            }
            let mut best = NIL;
            let mut best_len = u32::MAX;
            let mut pg = (*hdr).pages.bins[EXACT_BINS];
            while pg != NIL {
                let e = &*self.pe(pg);
                if e.npages >= want && (e.npages < best_len || (e.npages == best_len && pg < best)) {
                    best = pg;
                    best_len = e.npages;
                }
                pg = e.next;
            }
            (best != NIL).then_some(best)
        }
    }

    /// Extends the used part of the heap area to make a run of `want` pages, absorbing a
    /// free run that ends at `top`. Returns `(start, len, zeroed)`.
    unsafe fn grow(&self, want: u32) -> Option<(u32, u32, bool)> {
        // SAFETY: (whole fn) lock held.
        unsafe {
            let hdr = self.hdr();
            let top = (*hdr).pages.top;
            let (start, zeroed) = match top.checked_sub(1).and_then(|last| self.free_run_ending_at(last)) {
                Some(h) => {
                    let (_, z) = self.unlink_free(h);
                    (h, z)
                }
                None => (top, true),
            };
            let end = start.checked_add(want)?;
            if end > (*hdr).pages.limit {
                if start != top {
                    self.push_free(start, top - start, zeroed);
                }
                return None;
            }
            if end > top {
                crate::track::note_fresh(self.page_addr(top), (end - top) as usize * crate::sys::PAGE);
            }
            (*hdr).pages.top = end.max(top);
            Some((start, want, zeroed))
        }
    }

    /// Returns a run to the free bins, merging it with free neighbours. Large runs are given
    /// back to the OS first, and a free run that ends at `top` lowers `top`.
    pub(crate) unsafe fn free_run(&self, pg: u32, n: u32) {
        let mut zeroed = false;
        if n >= DISCARD_MIN_PAGES {
            // SAFETY: the run is free and unreferenced: its contents may be dropped.
            zeroed = unsafe { self.discard(pg, n) };
        }
        // SAFETY: lock held; `pg..pg+n` is a run being freed by its owner.
        unsafe { self.free_piece(pg, n, zeroed) }
    }

    /// Frees `pg..pg+n` without discarding: merge, then bin (or lower `top`).
    unsafe fn free_piece(&self, mut pg: u32, mut n: u32, mut zeroed: bool) {
        // SAFETY: (whole fn) lock held; neighbours are looked up only at run boundaries below
        // `top`, whose entries are authoritative.
        unsafe {
            let hdr = self.hdr();
            if pg > 0 {
                if let Some(h) = self.free_run_ending_at(pg - 1) {
                    let (len, z) = self.unlink_free(h);
                    pg = h;
                    n += len;
                    zeroed &= z;
                }
            }
            let right = pg + n;
            if right < (*hdr).pages.top && (*self.pe(right)).kind == kind::FREE_HEAD {
                let (len, z) = self.unlink_free(right);
                n += len;
                zeroed &= z;
            }
            if pg + n == (*hdr).pages.top && n >= DISCARD_MIN_PAGES {
                // Give the tail of the heap back: pages above `top` must read as zero.
                if zeroed || self.discard(pg, n) {
                    (*hdr).pages.top = pg;
                    return;
                }
            }
            self.push_free(pg, n, zeroed);
        }
    }

    /// Returns `pg..pg+n` to the OS. Returns whether the pages now read as zero.
    unsafe fn discard(&self, pg: u32, n: u32) -> bool {
        let addr = self.page_addr(pg);
        let len = n as usize * crate::sys::PAGE;
        // SAFETY: the pages belong to a free run inside the region, which only the allocator
        // references, under the page-heap lock.
        let ok = unsafe { crate::sys::mman::discard(addr, len) }.is_ok();
        if ok {
            crate::track::note_discarded(addr, len);
        }
        ok
    }

    /// Extends the run `pg..pg+n` in place to `new_n` pages, if the pages after it are free
    /// (or untouched). Returns whether the added pages read as zero, or `None`.
    pub(crate) unsafe fn grow_run(&self, pg: u32, n: u32, new_n: u32) -> Option<bool> {
        // SAFETY: (whole fn) lock held; `pg..pg+n` is a run owned by the caller.
        unsafe {
            let hdr = self.hdr();
            let extra = new_n - n;
            let right = pg + n;
            let top = (*hdr).pages.top;
            if right == top {
                if right.checked_add(extra)? > (*hdr).pages.limit {
                    return None;
                }
                crate::track::note_fresh(self.page_addr(right), extra as usize * crate::sys::PAGE);
                (*hdr).pages.top = right + extra;
                return Some(true);
            }
            if (*self.pe(right)).kind != kind::FREE_HEAD {
                return None;
            }
            let len = (*self.pe(right)).npages;
            if len < extra {
                // The free run might end at `top`, and `top` can grow.
                if right + len == top && top.checked_add(extra - len)? <= (*hdr).pages.limit {
                    let (_, z) = self.unlink_free(right);
                    crate::track::note_fresh(self.page_addr(top), (right + extra - top) as usize * crate::sys::PAGE);
                    (*hdr).pages.top = right + extra;
                    return Some(z);
                }
                return None;
            }
            let (len, z) = self.unlink_free(right);
            if len > extra {
                self.push_free(right + extra, len - extra, z);
            }
            Some(z)
        }
    }

    /// Shrinks the run `pg..pg+n` to `new_n` pages, freeing the tail.
    pub(crate) unsafe fn shrink_run(&self, pg: u32, n: u32, new_n: u32) {
        debug_assert!(new_n > 0 && new_n < n);
        // SAFETY: lock held; the tail belongs to the caller's run.
        unsafe { self.free_run(pg + new_n, n - new_n) }
    }
}
