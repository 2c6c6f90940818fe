//! The heap's invariant checker: walks every run, span, bin, list and thread cache and checks
//! them against each other (see the invariants in the module docs of [`super`]). Used by the
//! model tests and the fuzzer after every step; it allocates (in volatile memory) and takes
//! every lock, so it is for tests, not for the fast paths.
#![allow(unsafe_code)] // Reads raw heap metadata under the heap's locks.

use super::meta::{self, FreeObj, MAX_CACHES, NIL, kind};
use super::size_class::{self, NCLASSES, SIZES, objects_per_span};
use super::{Ctx, ctx, internal, lock_all, unlock_all};

/// What [`check_invariants`] counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapReport {
    /// Pages of the heap area in use (`top`).
    pub top_pages: usize,
    /// Pages in free runs.
    pub free_pages: usize,
    /// Free pages that may be resident (the sum of the free runs' `kept`).
    pub retained_pages: usize,
    /// The most pages the heap may retain at this point.
    pub retain_limit: usize,
    /// Free runs in address order: (first heap page, pages, pages that may be resident; 0
    /// when flagged ZEROED).
    pub free_runs: Vec<(usize, usize, usize)>,
    /// Pages in large allocations.
    pub large_pages: usize,
    /// Large allocations.
    pub large_runs: usize,
    /// Small spans.
    pub spans: usize,
    /// Small objects handed out (to the program or to thread caches), by class.
    pub used: Vec<usize>,
    /// Small objects sitting in thread caches, by class.
    pub cached: Vec<usize>,
}

/// Walks the whole heap and checks its invariants. Other threads must not use the heap
/// meanwhile. Returns counts for callers that compare against a model.
pub fn check_invariants() -> std::result::Result<HeapReport, String> {
    let Some(ctx) = ctx() else { return Err("the heap is not live".into()) };
    internal(|| {
        lock_all();
        // SAFETY: every heap lock is held and other threads are quiescent by contract.
        let r = unsafe { check_locked(&ctx) };
        unlock_all();
        r
    })
}

/// [`check_invariants`] on `ctx`'s heap.
///
/// # Safety
/// The caller holds every lock of that heap, or no other thread can reach it.
pub(super) unsafe fn check_locked(ctx: &Ctx) -> std::result::Result<HeapReport, String> {
    use std::collections::HashSet;
    let mut rep = HeapReport { used: vec![0; NCLASSES], cached: vec![0; NCLASSES], ..Default::default() };
    // SAFETY: (whole fn) all locks are held; every page visited is below `top`.
    unsafe {
        let h = &*ctx.hdr();
        let top = h.pages.top;
        rep.top_pages = top as usize;
        if top > h.pages.limit {
            return Err(format!("top {top} beyond limit {}", h.pages.limit));
        }
        let mut binned = HashSet::new();
        for (b, &head) in h.pages.bins.iter().enumerate() {
            let mut pg = head;
            let mut prev = NIL;
            while pg != NIL {
                if pg >= top || !binned.insert(pg) {
                    return Err(format!("bin {b}: bad or repeated run {pg}"));
                }
                let e = *ctx.pe(pg);
                let want_bin =
                    if (e.npages as usize) <= meta::EXACT_BINS { e.npages as usize - 1 } else { meta::EXACT_BINS };
                if e.kind != kind::FREE_HEAD || want_bin != b || e.prev != prev {
                    return Err(format!("bin {b}: run {pg} is {e:?}"));
                }
                prev = pg;
                pg = e.next;
            }
        }
        let mut partial: Vec<HashSet<u32>> = vec![HashSet::new(); NCLASSES];
        for (c, set) in partial.iter_mut().enumerate().skip(1) {
            let mut pg = h.central[c].partial;
            while pg != NIL {
                if !set.insert(pg) {
                    return Err(format!("class {c}: partial list loops at {pg}"));
                }
                pg = (*ctx.pe(pg)).next;
            }
        }
        let mut pg = 0u32;
        let mut prev_free = false;
        let mut free_pages = 0usize;
        let mut retained = 0usize;
        let mut spans_by_class = [0u32; NCLASSES];
        while pg < top {
            let e = *ctx.pe(pg);
            let n = e.npages;
            if n == 0 || pg.checked_add(n).is_none_or(|end| end > top) {
                return Err(format!("page {pg}: run of {n} pages crosses top {top}: {e:?}"));
            }
            let last = pg + n - 1;
            match e.kind {
                kind::FREE_HEAD => {
                    if prev_free {
                        return Err(format!("page {pg}: two adjacent free runs"));
                    }
                    if !binned.remove(&pg) {
                        return Err(format!("page {pg}: free run missing from its bin"));
                    }
                    if n > 1 {
                        let t = *ctx.pe(last);
                        if t.kind != kind::FREE_TAIL || t.npages != n - 1 {
                            return Err(format!("page {pg}: free run tail is {t:?}"));
                        }
                    }
                    free_pages += n as usize;
                    let zeroed = e.flags & meta::flag::ZEROED != 0;
                    if e.kept > n || zeroed != (e.kept == 0) {
                        return Err(format!("page {pg}: free run keeps {} pages: {e:?}", e.kept));
                    }
                    retained += e.kept as usize;
                    rep.free_runs.push((pg as usize, n as usize, e.kept as usize));
                    prev_free = true;
                }
                kind::LARGE_HEAD => {
                    if n > 1 {
                        let t = *ctx.pe(last);
                        if t.kind != kind::LARGE_TAIL || t.npages != n - 1 {
                            return Err(format!("page {pg}: large run tail is {t:?}"));
                        }
                    }
                    rep.large_pages += n as usize;
                    rep.large_runs += 1;
                    prev_free = false;
                }
                kind::SMALL_HEAD => {
                    let c = e.class as usize;
                    if c == 0 || c >= NCLASSES || n != size_class::SPAN_PAGES[c] as u32 {
                        return Err(format!("page {pg}: bad span {e:?}"));
                    }
                    for i in 1..n {
                        let b = *ctx.pe(pg + i);
                        if b.kind != kind::SMALL_BODY || b.class as usize != c || b.npages != i {
                            return Err(format!("page {}: bad span body {b:?}", pg + i));
                        }
                    }
                    let nobj = objects_per_span(c);
                    let base = ctx.page_addr(pg);
                    let mut free_list = 0u32;
                    let mut off = e.free_head;
                    while off != 0 {
                        let o = off as usize - 1;
                        if o % SIZES[c] as usize != 0 || o / SIZES[c] as usize >= e.bump as usize {
                            return Err(format!("span {pg}: free object at bad offset {o}"));
                        }
                        free_list += 1;
                        if free_list > nobj {
                            return Err(format!("span {pg}: free list loops"));
                        }
                        let next = (*((base + o) as *const FreeObj)).next;
                        off = if next.is_null() { 0 } else { (next as usize - base + 1) as u32 };
                    }
                    if e.bump > nobj || e.used + free_list + (nobj - e.bump) != nobj {
                        return Err(format!(
                            "span {pg}: used {} + free {free_list} + never {} != {nobj}",
                            e.used,
                            nobj - e.bump
                        ));
                    }
                    if e.used == 0 {
                        return Err(format!("span {pg}: empty span not returned"));
                    }
                    let has_free = free_list > 0 || e.bump < nobj;
                    if has_free != partial[c].remove(&pg) {
                        return Err(format!("span {pg}: partial-list membership wrong (has free: {has_free})"));
                    }
                    rep.used[c] += e.used as usize;
                    rep.spans += 1;
                    spans_by_class[c] += 1;
                    prev_free = false;
                }
                _ => return Err(format!("page {pg}: expected a run head, found {e:?}")),
            }
            pg += n;
        }
        if !binned.is_empty() {
            return Err(format!("bins hold runs that are not in the heap: {binned:?}"));
        }
        if free_pages != h.pages.free_pages as usize {
            return Err(format!("free pages {free_pages} != counter {}", h.pages.free_pages));
        }
        rep.free_pages = free_pages;
        if retained != h.pages.retained as usize {
            return Err(format!("retained pages {retained} != counter {}", h.pages.retained));
        }
        rep.retained_pages = retained;
        rep.retain_limit = ctx.retain_limit() as usize;
        if retained > rep.retain_limit {
            return Err(format!("{retained} free pages retained, more than the limit {}", rep.retain_limit));
        }
        for c in 1..NCLASSES {
            if !partial[c].is_empty() {
                return Err(format!("class {c}: partial list holds non-spans {:?}", partial[c]));
            }
            if spans_by_class[c] != h.central[c].spans {
                return Err(format!("class {c}: {} spans, counter {}", spans_by_class[c], h.central[c].spans));
            }
        }
        for i in 0..MAX_CACHES {
            let cache = &*ctx.cache(i);
            for c in 1..NCLASSES {
                let mut n = 0u32;
                let mut o = cache.bins[c].head;
                while !o.is_null() {
                    let a = o as usize;
                    if a < ctx.heap_base || a >= ctx.page_addr(top) {
                        return Err(format!("cache {i} class {c}: object {a:#x} outside the heap"));
                    }
                    let pe = *ctx.pe(ctx.page_of(a));
                    if pe.class as usize != c {
                        return Err(format!("cache {i} class {c}: object {a:#x} of class {}", pe.class));
                    }
                    n += 1;
                    o = (*o).next;
                }
                if n != cache.bins[c].count {
                    return Err(format!("cache {i} class {c}: {n} objects, count {}", cache.bins[c].count));
                }
                rep.cached[c] += n as usize;
            }
        }
    }
    Ok(rep)
}
