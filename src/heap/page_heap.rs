//! Runs of pages: allocation with alignment, splitting, coalescing, growth at `top`, and how
//! much freed memory stays resident.
//!
//! Free runs sit in size bins (`bins[n-1]` for `n <= EXACT_BINS` pages, one shared bin above),
//! as doubly linked lists threaded through the page map, so no free page is written when runs
//! are linked or unlinked. A free run has an accurate FREE_HEAD entry on its first page and a
//! FREE_TAIL entry on its last; two free runs are never adjacent (they are merged on free).
//! Pages at or above `top` have never been handed out, or were given back to the OS, and read
//! as zero.
//!
//! # Retained memory
//!
//! A freed run keeps its pages: giving them back (`MADV_DONTNEED`) and faulting fresh zero
//! pages in on the next use costs several microseconds a page, far more than the program's own
//! writes to a reused block (a program churning blocks of 5-25 MiB ran 4-6 times slower than
//! with glibc when every freed run of 1 MiB or more was given back). Each free run counts the
//! pages that may still be resident (`kept`, on its head entry, at most its length), and the
//! header counts them all (`retained`, their sum). Where in a run its kept pages lie is not
//! recorded, so:
//! - merging adds the counts (a freed block next to a run that was given back counts only its
//!   own pages);
//! - a run split by allocation gives each remaining piece `min(kept, piece length)`, and the
//!   part handed out is reported zeroed only if the run kept nothing;
//! - the count is an upper bound on the resident free pages.
//!
//! ZEROED stays exact: a run is flagged exactly when it keeps no page (all were given back or
//! never touched), and then reads as zero; a run with a kept page is not flagged, so `calloc`
//! clears what it hands out of it. (After a restore, pages read back from the checkpoint are
//! resident whatever `kept` says, so the count is no longer an upper bound for those pages;
//! ZEROED stays exact, since a checkpoint writes the pages given back as zeros.)
//!
//! ## The bound
//!
//! `retained <= max(floor, RETAIN_PER_USED * in use)` ([`Ctx::retain_limit`]): 64 MiB, or
//! twice the pages of spans and large runs, whichever is more, after every operation. The
//! floor lets a small heap keep a few large blocks cached; in a heap area smaller than 1 GiB
//! it is a sixteenth of the area (`RETAIN_MIN_SHARE`), so that a small region, which could
//! never hold much more than 64 MiB free, still gives memory back. The proportional part
//! follows the free space that fragmentation leaves between live blocks, which is the memory
//! that must stay resident for freed blocks to be reused at all. In the churn above (8 live
//! blocks, best fit), free space is typically half to once the memory in use and at times one
//! and a half times. Measured on that workload (`benches/src/bin/large.rs`): with the limit
//! at an eighth of the memory in use, a fifth of the pages handed out were faulted in afresh
//! and the churn took 1.7 times glibc's time; at once the memory in use, a tenth, and glibc's
//! time; at twice, almost none, and half to two thirds of glibc's time, with a resident size
//! a tenth to a third above glibc's (which keeps all free memory and bounds only its top
//! chunk; the difference is placement, not the bound, which is then rarely reached).
//! So free resident memory stays below twice the memory in use, or 64 MiB, where glibc's is
//! not bounded at all.
//!
//! ## What is given back when the bound is exceeded
//!
//! Every operation that can raise the count or lower the limit ([`Ctx::alloc_run`],
//! [`Ctx::free_run`], [`Ctx::shrink_run`]) ends by checking it; over the limit, pages are
//! given back until the count is [`TRIM_SLACK`] pages (1 MiB) below it, so that a program
//! hovering at the limit does not make a system call on every free. Runs are chosen in order:
//! 1. the free run ending at `top` if it keeps pages: only as much of its tail as it takes,
//!    and `top` is lowered, so the heap shrinks from its end and the rest of the run stays
//!    usable;
//! 2. else the run keeping the fewest pages that still cover the excess (looking at the first
//!    [`EXACT_SCAN`] runs of each exact bin, and at every run of the shared bin, which
//!    allocation walks anyway), given back whole and flagged ZEROED in place (its bin depends
//!    only on its length);
//! 3. else the run keeping the most, and so on.
//!
//! A run inside the heap cannot be given back in part: its two parts would be adjacent free
//! runs. Giving back as little as possible keeps the count near the limit, so as much free
//! memory as allowed stays reusable, and the smallest run that covers the excess leaves the
//! larger ones, which can serve more requests, resident. The run being freed is not singled
//! out: giving back every freed run, as this heap did before, is the worst choice for a
//! program that frees and allocates blocks of similar sizes.
//!
//! Allocation prefers retained runs: in an exact bin, the first run that keeps pages among
//! the first [`EXACT_SCAN`]; in the shared bin, the best-fitting run that keeps pages, unless
//! a ZEROED run fits better by more than a quarter of the request.
//!
//! Every function here must be called with `PageHeap::lock` held.

use super::Ctx;
use super::meta::{EXACT_BINS, NIL, PageEntry, flag, kind};
use crate::sys::PAGE;

/// Free pages that may always stay resident (64 MiB), in a heap area of at least
/// [`RETAIN_MIN_SHARE`] times as many pages.
pub(crate) const RETAIN_MIN_PAGES: u32 = ((64 << 20) / PAGE) as u32;
/// In a smaller heap area the floor is this fraction (1/n) of it.
pub(crate) const RETAIN_MIN_SHARE: u32 = 16;
/// Above [`RETAIN_MIN_PAGES`], resident free pages may be this many times the pages in use.
pub(crate) const RETAIN_PER_USED: u32 = 2;
/// When the limit is exceeded, retained pages are given back down to this many (1 MiB) below
/// it, so that a program hovering at the limit does not make a system call on every free.
pub(crate) const TRIM_SLACK: u32 = 256;
/// Runs of an exact bin looked at for a retained one before taking the bin's first run.
const EXACT_SCAN: usize = 8;

#[inline]
fn bin_of(n: u32) -> usize {
    if (n as usize) <= EXACT_BINS { n as usize - 1 } else { EXACT_BINS }
}

impl Ctx {
    /// Writes the head (and tail) entries of a free run of which `kept` pages may be resident,
    /// and links it into its bin.
    unsafe fn push_free(&self, pg: u32, n: u32, kept: u32) {
        debug_assert!(kept <= n);
        // SAFETY: (whole fn) the caller holds the page-heap lock and `pg..pg+n` is a run below
        // `top` that nobody else references, so its entries are ours to write.
        unsafe {
            let hdr = self.hdr();
            let b = bin_of(n);
            let old = (*hdr).pages.bins[b];
            let h = self.pe(pg);
            *h = PageEntry {
                kind: kind::FREE_HEAD,
                flags: if kept == 0 { flag::ZEROED } else { 0 },
                npages: n,
                next: old,
                prev: NIL,
                kept,
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
            (*hdr).pages.retained += kept;
        }
    }

    /// Removes the free run headed at `pg` from its bin. Returns `(length, kept)`.
    unsafe fn unlink_free(&self, pg: u32) -> (u32, u32) {
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
            (*hdr).pages.retained -= e.kept;
            // Retire the entries so that no stale FREE kind survives inside a used run.
            (*self.pe(pg)).kind = kind::NONE;
            if e.npages > 1 {
                (*self.pe(pg + e.npages - 1)).kind = kind::NONE;
            }
            (e.npages, e.kept)
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
            let (start, len, kept) = match self.find_free(want) {
                Some(pg) => {
                    let (len, kept) = self.unlink_free(pg);
                    (pg, len, kept)
                }
                None => self.grow(want)?,
            };
            // Align inside the run, then give back the slack on both sides. Where in the run
            // its resident pages are is not known: each piece may hold all of them.
            let a = self.align_up(start, align_pages);
            if a > start {
                self.free_piece(start, a - start, kept.min(a - start));
            }
            let end = start + len;
            if a + n < end {
                self.free_piece(a + n, end - a - n, kept.min(end - a - n));
            }
            (*self.hdr()).allocations += 1;
            // Pieces of slack may count more than the run did.
            self.trim_retained();
            Some((a, kept == 0))
        }
    }

    /// The first page at or after `pg` whose address is aligned to `align_pages` pages.
    fn align_up(&self, pg: u32, align_pages: u32) -> u32 {
        if align_pages == 1 {
            return pg;
        }
        let bytes = align_pages as usize * PAGE;
        let addr = self.page_addr(pg);
        let aligned = addr.next_multiple_of(bytes);
        pg + ((aligned - addr) / PAGE) as u32
    }

    /// A free run of at least `want` pages: exact bins first, then best fit in the shared bin,
    /// preferring retained runs (see the module docs).
    unsafe fn find_free(&self, want: u32) -> Option<u32> {
        // SAFETY: (whole fn) lock held; bin lists only hold heads of free runs.
        unsafe {
            let hdr = self.hdr();
            for b in bin_of(want)..EXACT_BINS {
                let first = (*hdr).pages.bins[b];
                if first == NIL {
                    continue;
                }
                let mut pg = first;
                for _ in 0..EXACT_SCAN {
                    let e = &*self.pe(pg);
                    if e.kept > 0 {
                        return Some(pg);
                    }
                    if e.next == NIL {
                        break;
                    }
                    pg = e.next;
                }
                return Some(first);
            }
            // Best fit overall, and best fit among retained runs; ties go to the lower page.
            let (mut best, mut best_len) = (NIL, u32::MAX);
            let (mut kept, mut kept_len) = (NIL, u32::MAX);
            let mut pg = (*hdr).pages.bins[EXACT_BINS];
            while pg != NIL {
                let e = &*self.pe(pg);
                let n = e.npages;
                if n >= want {
                    if n < best_len || (n == best_len && pg < best) {
                        (best, best_len) = (pg, n);
                    }
                    if e.kept > 0 && (n < kept_len || (n == kept_len && pg < kept)) {
                        (kept, kept_len) = (pg, n);
                    }
                }
                pg = e.next;
            }
            if kept != NIL && kept_len - best_len <= want / 4 {
                return Some(kept);
            }
            (best != NIL).then_some(best)
        }
    }

    /// Extends the used part of the heap area to make a run of `want` pages, absorbing a
    /// free run that ends at `top`. Returns `(start, len, kept)`.
    unsafe fn grow(&self, want: u32) -> Option<(u32, u32, u32)> {
        // SAFETY: (whole fn) lock held.
        unsafe {
            let hdr = self.hdr();
            let top = (*hdr).pages.top;
            let (start, kept) = match top.checked_sub(1).and_then(|last| self.free_run_ending_at(last)) {
                Some(h) => {
                    let (_, kept) = self.unlink_free(h);
                    (h, kept)
                }
                None => (top, 0),
            };
            let end = start.checked_add(want)?;
            if end > top && !self.raise_top(end) {
                if start != top {
                    self.push_free(start, top - start, kept);
                }
                return None;
            }
            Some((start, want, kept))
        }
    }

    /// Moves `top` up to `new_top`, handing out never-touched pages: only within the heap area
    /// and the process's address-space and data limits ([`super::limit`]). Returns whether it
    /// did.
    unsafe fn raise_top(&self, new_top: u32) -> bool {
        // SAFETY: (whole fn) lock held.
        unsafe {
            let hdr = self.hdr();
            let top = (*hdr).pages.top;
            debug_assert!(new_top > top);
            if new_top > (*hdr).pages.limit {
                super::limit::report_full();
                return false;
            }
            if !super::limit::may_grow(self, top, new_top) {
                return false;
            }
            super::events::fresh(self.page_addr(top), (new_top - top) as usize * PAGE);
            (*hdr).pages.top = new_top;
            true
        }
    }

    /// Returns a run to the free bins, merging it with free neighbours. Its pages stay
    /// resident unless that would retain more than [`Ctx::retain_limit`] pages.
    pub(crate) unsafe fn free_run(&self, pg: u32, n: u32) {
        // SAFETY: lock held; `pg..pg+n` is a run being freed by its owner.
        unsafe {
            self.free_piece(pg, n, n);
            self.trim_retained();
        }
    }

    /// Frees `pg..pg+n`, of which `kept` pages may be resident: merge with free neighbours,
    /// then bin, or lower `top` if the merged run reads as zero and ends at `top`.
    unsafe fn free_piece(&self, mut pg: u32, mut n: u32, mut kept: u32) {
        // SAFETY: (whole fn) lock held; neighbours are looked up only at run boundaries below
        // `top`, whose entries are authoritative.
        unsafe {
            let hdr = self.hdr();
            if pg > 0 {
                if let Some(h) = self.free_run_ending_at(pg - 1) {
                    let (len, k) = self.unlink_free(h);
                    pg = h;
                    n += len;
                    kept += k;
                }
            }
            let right = pg + n;
            if right < (*hdr).pages.top && (*self.pe(right)).kind == kind::FREE_HEAD {
                let (len, k) = self.unlink_free(right);
                n += len;
                kept += k;
            }
            if kept == 0 && pg + n == (*hdr).pages.top {
                // Pages above `top` must read as zero, and these do.
                (*hdr).pages.top = pg;
                return;
            }
            self.push_free(pg, n, kept);
        }
    }

    /// The most free pages the heap keeps resident: `max(min(RETAIN_MIN_PAGES, heap area /
    /// RETAIN_MIN_SHARE), RETAIN_PER_USED * in use)`, where "in use" counts the pages of spans
    /// and large runs.
    ///
    /// # Safety
    /// The caller holds the page-heap lock.
    pub(crate) unsafe fn retain_limit(&self) -> u32 {
        // SAFETY: lock held.
        let p = unsafe { &(*self.hdr()).pages };
        let floor = RETAIN_MIN_PAGES.min(p.limit / RETAIN_MIN_SHARE);
        floor.max((p.top - p.free_pages).saturating_mul(RETAIN_PER_USED))
    }

    /// Gives back retained pages, as few as it can (see the module docs for the order), once
    /// more than [`Ctx::retain_limit`] are retained: down to [`TRIM_SLACK`] pages below it.
    unsafe fn trim_retained(&self) {
        // SAFETY: (whole fn) lock held.
        unsafe {
            let hdr = self.hdr();
            let limit = self.retain_limit();
            if (*hdr).pages.retained <= limit {
                return;
            }
            let target = limit.saturating_sub(TRIM_SLACK);
            loop {
                let excess = (*hdr).pages.retained.saturating_sub(target);
                if excess == 0 {
                    return;
                }
                let Some(pg) = self.retained_victim(excess) else {
                    crate::sys::fatal("heap: the retained-page count has no free run behind it");
                };
                if !self.discard_free(pg, excess) {
                    // The OS refused (it does not for our own anonymous mapping); keep the
                    // pages rather than loop.
                    return;
                }
            }
        }
    }

    /// The free run to give back (some of) when `excess` pages too many are retained: the one
    /// ending at `top` if it keeps pages; else the one keeping the fewest pages that still
    /// cover `excess` (in exact bins, among the first [`EXACT_SCAN`] runs of each); else the
    /// one keeping the most.
    unsafe fn retained_victim(&self, excess: u32) -> Option<u32> {
        // SAFETY: (whole fn) lock held; bin lists only hold heads of free runs.
        unsafe {
            let hdr = self.hdr();
            let top = (*hdr).pages.top;
            if let Some(h) = top.checked_sub(1).and_then(|last| self.free_run_ending_at(last)) {
                if (*self.pe(h)).kept > 0 {
                    return Some(h);
                }
            }
            // A run keeps at most its length: only bins from that of `excess` up can cover it.
            let (mut fit, mut fit_kept) = (NIL, u32::MAX);
            'bins: for b in bin_of(excess)..EXACT_BINS {
                let mut pg = (*hdr).pages.bins[b];
                for _ in 0..EXACT_SCAN {
                    if pg == NIL {
                        break;
                    }
                    let e = &*self.pe(pg);
                    if e.kept >= excess {
                        (fit, fit_kept) = (pg, e.kept);
                        break 'bins;
                    }
                    pg = e.next;
                }
            }
            let (mut most, mut most_kept) = (NIL, 0);
            let mut pg = (*hdr).pages.bins[EXACT_BINS];
            while pg != NIL {
                let e = &*self.pe(pg);
                if e.kept >= excess && e.kept < fit_kept {
                    (fit, fit_kept) = (pg, e.kept);
                }
                if e.kept > most_kept {
                    (most, most_kept) = (pg, e.kept);
                }
                pg = e.next;
            }
            if fit != NIL {
                return Some(fit);
            }
            // Nothing covers the excess alone. Exact bins are walked whole only here, and only
            // if one of their runs could keep more than the shared bin's best.
            for b in (most_kept as usize..EXACT_BINS).rev() {
                let mut pg = (*hdr).pages.bins[b];
                while pg != NIL {
                    let e = &*self.pe(pg);
                    if e.kept > most_kept {
                        (most, most_kept) = (pg, e.kept);
                    }
                    pg = e.next;
                }
            }
            (most != NIL).then_some(most)
        }
    }

    /// Gives pages of the free run headed at `pg` back to the OS, to retain `excess` fewer. A
    /// run ending at `top` gives its tail, as little as that takes, and lowers `top`; any
    /// other run gives all its pages and becomes ZEROED in place. Returns whether the OS took
    /// them.
    unsafe fn discard_free(&self, pg: u32, excess: u32) -> bool {
        // SAFETY: (whole fn) lock held; `pg` heads a free run, which nobody references.
        unsafe {
            let hdr = self.hdr();
            let e = *self.pe(pg);
            let (n, kept) = (e.npages, e.kept);
            debug_assert!(e.kind == kind::FREE_HEAD && kept > 0);
            if pg + n == (*hdr).pages.top {
                // The `kept` pages may be anywhere in the run: what is left of it may still
                // hold all of them, up to its length. Giving back `n - kept + excess` pages
                // leaves at most `kept - excess`.
                let k = n.min((n - kept).saturating_add(excess));
                if !self.discard(pg + n - k, k) {
                    return false;
                }
                self.unlink_free(pg);
                if k < n {
                    self.push_free(pg, n - k, kept.min(n - k));
                }
                (*hdr).pages.top = pg + n - k;
                return true;
            }
            if !self.discard(pg, n) {
                return false;
            }
            let h = self.pe(pg);
            (*h).flags |= flag::ZEROED;
            (*h).kept = 0;
            (*hdr).pages.retained -= kept;
            true
        }
    }

    /// Returns `pg..pg+n` to the OS. Returns whether the pages now read as zero.
    unsafe fn discard(&self, pg: u32, n: u32) -> bool {
        let addr = self.page_addr(pg);
        let len = n as usize * PAGE;
        // SAFETY: the pages belong to a free run inside the region, which only the allocator
        // references, under the page-heap lock.
        let ok = unsafe { crate::sys::mman::discard(addr, len) }.is_ok();
        if ok {
            super::events::discarded(addr, len);
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
                return self.raise_top(right.checked_add(extra)?).then_some(true);
            }
            if (*self.pe(right)).kind != kind::FREE_HEAD {
                return None;
            }
            let len = (*self.pe(right)).npages;
            if len < extra {
                // The free run might end at `top`, and `top` can grow.
                if right + len == top && self.raise_top(right.checked_add(extra)?) {
                    let (_, kept) = self.unlink_free(right);
                    return Some(kept == 0);
                }
                return None;
            }
            let (len, kept) = self.unlink_free(right);
            if len > extra {
                self.push_free(right + extra, len - extra, kept.min(len - extra));
            }
            Some(kept == 0)
        }
    }

    /// Shrinks the run `pg..pg+n` to `new_n` pages, freeing the tail.
    pub(crate) unsafe fn shrink_run(&self, pg: u32, n: u32, new_n: u32) {
        debug_assert!(new_n > 0 && new_n < n);
        // SAFETY: lock held; the tail belongs to the caller's run.
        unsafe { self.free_run(pg + new_n, n - new_n) }
    }

    /// Calls `f(first page, pages)` for every free run of at least `min_pages` pages, walking
    /// only the bins that can hold such runs. Allocates nothing. `f` runs under the page-heap
    /// lock, so it must not allocate from this heap either.
    ///
    /// A checkpoint may use this to leave free pages out of its image. A run flagged ZEROED
    /// promises to read as zero, though: after a restore from an image that skipped it, its
    /// pages hold whatever the image held before, so restore must give such runs' pages back
    /// (or count them as kept, which clears the flag).
    ///
    /// # Safety
    /// The caller holds the page-heap lock (for the whole walk).
    pub(crate) unsafe fn for_each_free_run(&self, min_pages: u32, mut f: impl FnMut(u32, u32)) {
        let min = min_pages.max(1);
        // SAFETY: (whole fn) lock held; bin lists only hold heads of free runs.
        unsafe {
            let hdr = self.hdr();
            for b in bin_of(min)..=EXACT_BINS {
                let mut pg = (*hdr).pages.bins[b];
                while pg != NIL {
                    let e = &*self.pe(pg);
                    if e.npages >= min {
                        f(pg, e.npages);
                    }
                    pg = e.next;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
