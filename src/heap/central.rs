//! Central lists: spans of small objects, shared by all threads, one lock per size class.
//!
//! A span is a run of `SPAN_PAGES[c]` pages cut into objects of class `c`. Its head page-map
//! entry records the objects handed out (`used`), a list of returned objects threaded through
//! the objects themselves (`free_head`), and a bump index below which objects were handed out
//! at least once. Objects are never pre-linked, so creating a span writes no object memory.
//! Spans with an object to give sit in the class's `partial` list; a span whose `used` drops
//! to zero goes back to the page heap.
//!
//! Lock order: a class's central lock, then the page-heap lock.

use super::Ctx;
use super::meta::{FreeObj, NIL, PageEntry, kind};
use super::size_class::{SIZES, SPAN_PAGES, objects_per_span};

impl Ctx {
    /// Head page of the small span containing page `pg`.
    #[inline]
    pub(crate) unsafe fn span_head(&self, pg: u32) -> u32 {
        // SAFETY: `pg` lies in a small span, whose every page entry is authoritative.
        let e = unsafe { &*self.pe(pg) };
        if e.kind == kind::SMALL_HEAD { pg } else { pg - e.npages }
    }

    unsafe fn partial_push(&self, c: usize, s: u32) {
        // SAFETY: (whole fn) central lock of `c` held; `s` heads a span of class `c`.
        unsafe {
            let central = &mut (*self.hdr()).central[c];
            let e = self.pe(s);
            (*e).prev = NIL;
            (*e).next = central.partial;
            if central.partial != NIL {
                (*self.pe(central.partial)).prev = s;
            }
            central.partial = s;
        }
    }

    unsafe fn partial_remove(&self, c: usize, s: u32) {
        // SAFETY: (whole fn) central lock of `c` held; `s` is in the partial list of `c`.
        unsafe {
            let central = &mut (*self.hdr()).central[c];
            let e = *self.pe(s);
            if e.prev != NIL {
                (*self.pe(e.prev)).next = e.next;
            } else {
                central.partial = e.next;
            }
            if e.next != NIL {
                (*self.pe(e.next)).prev = e.prev;
            }
        }
    }

    /// Carves a new span for class `c` from the page heap and puts it on the partial list.
    unsafe fn new_span(&self, c: usize) -> Option<u32> {
        let n = SPAN_PAGES[c] as u32;
        // SAFETY: (whole fn) central lock of `c` held; the page-heap lock is taken in order.
        unsafe {
            let pages = &(*self.hdr()).pages;
            let (s, _) = pages.lock.with(|| self.alloc_run(n, 1))?;
            *self.pe(s) = PageEntry {
                kind: kind::SMALL_HEAD,
                class: c as u8,
                npages: n,
                next: NIL,
                prev: NIL,
                ..PageEntry::default()
            };
            for i in 1..n {
                *self.pe(s + i) =
                    PageEntry { kind: kind::SMALL_BODY, class: c as u8, npages: i, ..PageEntry::default() };
            }
            (*self.hdr()).central[c].spans += 1;
            self.partial_push(c, s);
            Some(s)
        }
    }

    /// Takes up to `want` objects of class `c`, linked through their first word. Returns the
    /// list and its length (0 only when the heap is full).
    pub(crate) unsafe fn central_fetch(&self, c: usize, want: u32) -> (*mut FreeObj, u32) {
        let size = SIZES[c] as usize;
        let nobj = objects_per_span(c);
        let mut list: *mut FreeObj = core::ptr::null_mut();
        let mut got = 0;
        // SAFETY: (whole fn) the central lock of `c` is held for the whole walk; spans on the
        // partial list belong to class `c`, and objects taken from a span are not referenced
        // by anyone else until returned to the caller.
        unsafe {
            let central = &(*self.hdr()).central[c];
            central.lock.lock();
            while got < want {
                let mut s = (*self.hdr()).central[c].partial;
                if s == NIL {
                    match self.new_span(c) {
                        Some(n) => s = n,
                        None => break,
                    }
                }
                let base = self.page_addr(s);
                let e = self.pe(s);
                while got < want && (*e).free_head != 0 {
                    let obj = (base + (*e).free_head as usize - 1) as *mut FreeObj;
                    let next = (*obj).next;
                    (*e).free_head = if next.is_null() { 0 } else { (next as usize - base + 1) as u32 };
                    (*obj).next = list;
                    list = obj;
                    got += 1;
                    (*e).used += 1;
                }
                while got < want && (*e).bump < nobj {
                    let obj = (base + (*e).bump as usize * size) as *mut FreeObj;
                    (*e).bump += 1;
                    (*obj).next = list;
                    list = obj;
                    got += 1;
                    (*e).used += 1;
                }
                if (*e).free_head == 0 && (*e).bump == nobj {
                    self.partial_remove(c, s);
                }
            }
            central.lock.unlock();
        }
        (list, got)
    }

    /// Returns `count` objects of class `c`, linked through their first word, to their spans.
    pub(crate) unsafe fn central_release(&self, c: usize, mut list: *mut FreeObj, count: u32) {
        let nobj = objects_per_span(c);
        // SAFETY: (whole fn) the central lock of `c` is held; every object in `list` was handed
        // out from a span of class `c` and is no longer referenced by its owner.
        unsafe {
            let central = &(*self.hdr()).central[c];
            central.lock.lock();
            for _ in 0..count {
                let obj = list;
                list = (*obj).next;
                let s = self.span_head(self.page_of(obj as usize));
                let e = self.pe(s);
                debug_assert_eq!((*e).class as usize, c);
                let base = self.page_addr(s);
                let was_full = (*e).free_head == 0 && (*e).bump == nobj;
                (*obj).next = if (*e).free_head == 0 {
                    core::ptr::null_mut()
                } else {
                    (base + (*e).free_head as usize - 1) as *mut FreeObj
                };
                (*e).free_head = (obj as usize - base + 1) as u32;
                (*e).used -= 1;
                if (*e).used == 0 {
                    if !was_full {
                        self.partial_remove(c, s);
                    }
                    (*self.hdr()).central[c].spans -= 1;
                    let n = (*e).npages;
                    let pages = &(*self.hdr()).pages;
                    pages.lock.with(|| self.free_run(s, n));
                } else if was_full {
                    self.partial_push(c, s);
                }
            }
            central.lock.unlock();
        }
    }
}
