//! Pages and runs of pages of the region: the vocabulary the tracker, the checkpoint and the
//! store share, kept below all three so that data can flow one way (track → ckpt → store).
//!
//! - [`Extent`]: a run of region pages;
//! - [`Extents`]: a short list of extents kept inline (no allocation, so it can be built while
//!   the checkpoint holds the heap's locks);
//! - [`PageSet`]: a bitmap of region pages, in volatile memory, safe to set from a signal
//!   handler.
#![allow(unsafe_code)] // PageSet's words live in a raw mapping.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::sys::mman;

/// A run of region pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extent {
    /// First page.
    pub first: u64,
    /// Number of pages.
    pub npages: u64,
}

impl Extent {
    /// One past the last page.
    pub fn end(&self) -> u64 {
        self.first + self.npages
    }
}

/// The most extents an [`Extents`] holds (and a checkpoint header records).
pub const MAX_EXTENTS: usize = 8;

/// Up to [`MAX_EXTENTS`] extents, inline. Dereferences to a slice.
#[derive(Clone, Copy, Default)]
pub struct Extents {
    len: usize,
    items: [Extent; MAX_EXTENTS],
}

impl Extents {
    /// An empty list.
    pub const fn new() -> Extents {
        Extents { len: 0, items: [Extent { first: 0, npages: 0 }; MAX_EXTENTS] }
    }

    /// Appends `e`; returns false (and changes nothing) if the list is full.
    pub fn push(&mut self, e: Extent) -> bool {
        if self.len == MAX_EXTENTS {
            return false;
        }
        self.items[self.len] = e;
        self.len += 1;
        true
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The pages in both `self` and `other` (both sorted and disjoint), as far as they fit.
    pub fn intersect(&self, other: &[Extent]) -> Extents {
        let mut out = Extents::new();
        for x in self.iter() {
            for y in other {
                let (lo, hi) = (x.first.max(y.first), x.end().min(y.end()));
                if lo < hi {
                    out.push(Extent { first: lo, npages: hi - lo });
                }
            }
        }
        out.items[..out.len].sort_unstable_by_key(|e| e.first);
        out
    }
}

impl core::ops::Deref for Extents {
    type Target = [Extent];
    fn deref(&self) -> &[Extent] {
        &self.items[..self.len]
    }
}

impl core::ops::DerefMut for Extents {
    fn deref_mut(&mut self) -> &mut [Extent] {
        &mut self.items[..self.len]
    }
}

impl<'a> IntoIterator for &'a Extents {
    type Item = &'a Extent;
    type IntoIter = core::slice::Iter<'a, Extent>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<&[Extent]> for Extents {
    /// The first [`MAX_EXTENTS`] of `s`.
    fn from(s: &[Extent]) -> Extents {
        let mut e = Extents::new();
        for x in s.iter().take(MAX_EXTENTS) {
            e.push(*x);
        }
        e
    }
}

impl PartialEq for Extents {
    fn eq(&self, other: &Extents) -> bool {
        **self == **other
    }
}

impl Eq for Extents {}

impl core::fmt::Debug for Extents {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One bit per region page. Bits are set with atomic OR (any thread, signal handlers
/// included); reading and clearing happen while writers are quiescent or tolerate a late bit
/// (a late bit only means one more page is written at the next checkpoint).
pub struct PageSet {
    words: *const AtomicU64,
    nwords: usize,
    npages: usize,
}

// SAFETY: the words are atomics in a mapping owned by the set.
unsafe impl Send for PageSet {}
// SAFETY: as above; all access goes through atomic operations.
unsafe impl Sync for PageSet {}

impl PageSet {
    /// An empty set over `npages` pages. Memory is mapped lazily by the kernel, so an empty
    /// set over a large region costs address space only.
    pub fn new(npages: usize) -> Result<PageSet> {
        let nwords = npages.div_ceil(64).max(1);
        let p = mman::map_anon((nwords * 8).next_multiple_of(crate::sys::PAGE))
            .map_err(|e| Error::os("mmap (page set)", e))?;
        Ok(PageSet { words: p.as_ptr().cast(), nwords, npages })
    }

    #[inline]
    fn word(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.nwords);
        // SAFETY: `i < nwords`, inside the mapping, which lives as long as `self`.
        unsafe { &*self.words.add(i) }
    }

    /// Pages covered.
    pub fn npages(&self) -> usize {
        self.npages
    }

    /// Adds page `p`. Async-signal-safe.
    #[inline]
    pub fn insert(&self, p: usize) {
        if p < self.npages {
            self.word(p / 64).fetch_or(1 << (p % 64), Ordering::Relaxed);
        }
    }

    /// Whether page `p` is in the set.
    #[inline]
    pub fn contains(&self, p: usize) -> bool {
        p < self.npages && self.word(p / 64).load(Ordering::Relaxed) & (1 << (p % 64)) != 0
    }

    /// Adds pages `first..first+n`.
    pub fn insert_range(&self, first: usize, n: usize) {
        self.apply_range(first, n, |w, m| {
            w.fetch_or(m, Ordering::Relaxed);
        });
    }

    /// Removes pages `first..first+n`.
    pub fn remove_range(&self, first: usize, n: usize) {
        self.apply_range(first, n, |w, m| {
            w.fetch_and(!m, Ordering::Relaxed);
        });
    }

    fn apply_range(&self, first: usize, n: usize, f: impl Fn(&AtomicU64, u64)) {
        let end = (first + n).min(self.npages);
        let mut p = first;
        while p < end {
            let bit = p % 64;
            let take = (64 - bit).min(end - p);
            let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << bit };
            f(self.word(p / 64), mask);
            p += take;
        }
    }

    /// Calls `f(first, len)` for each maximal run of pages in the set within `e`.
    pub fn for_each_run(&self, e: Extent, mut f: impl FnMut(usize, usize)) {
        let end = (e.end() as usize).min(self.npages);
        let mut p = e.first as usize;
        let mut run: Option<usize> = None;
        while p < end {
            let w = self.word(p / 64).load(Ordering::Relaxed) >> (p % 64);
            let span = (64 - p % 64).min(end - p);
            if w == 0 {
                if let Some(s) = run.take() {
                    f(s, p - s);
                }
                p += span;
                continue;
            }
            if w == u64::MAX >> (p % 64) && span == 64 - p % 64 {
                run.get_or_insert(p);
                p += span;
                continue;
            }
            for i in 0..span {
                if w >> i & 1 != 0 {
                    run.get_or_insert(p + i);
                } else if let Some(s) = run.take() {
                    f(s, p + i - s);
                }
            }
            p += span;
        }
        if let Some(s) = run {
            f(s, end - s);
        }
    }

    /// Number of pages in the set within `e`.
    pub fn count(&self, e: Extent) -> usize {
        let mut n = 0;
        self.for_each_run(e, |_, len| n += len);
        n
    }

    /// Moves every page of `self` within `e` into each set of `into`, clearing it here.
    pub fn drain_into(&self, e: Extent, into: &[&PageSet]) {
        let end = (e.end() as usize).min(self.npages);
        let mut p = e.first as usize;
        while p < end {
            let bit = p % 64;
            let take = (64 - bit).min(end - p);
            let mask = if take == 64 { u64::MAX } else { ((1u64 << take) - 1) << bit };
            let w = self.word(p / 64);
            if w.load(Ordering::Relaxed) & mask != 0 {
                let got = w.fetch_and(!mask, Ordering::Relaxed) & mask;
                for s in into {
                    s.word(p / 64).fetch_or(got, Ordering::Relaxed);
                }
            }
            p += take;
        }
    }

    /// Removes every page.
    pub fn clear(&self) {
        for i in 0..self.nwords {
            if self.word(i).load(Ordering::Relaxed) != 0 {
                self.word(i).store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for PageSet {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by the set and no longer referenced.
        unsafe { mman::unmap(self.words as usize, (self.nwords * 8).next_multiple_of(crate::sys::PAGE)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(s: &PageSet, e: Extent) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        s.for_each_run(e, |a, n| v.push((a, n)));
        v
    }

    #[test]
    fn runs_are_maximal_and_clipped_to_the_extent() {
        let s = PageSet::new(1000).unwrap();
        s.insert_range(3, 5);
        s.insert(8);
        s.insert_range(60, 140);
        s.insert(999);
        let all = Extent { first: 0, npages: 1000 };
        assert_eq!(runs(&s, all), vec![(3, 6), (60, 140), (999, 1)]);
        assert_eq!(runs(&s, Extent { first: 100, npages: 10 }), vec![(100, 10)]);
        assert_eq!(s.count(all), 147);
        s.remove_range(61, 138);
        assert_eq!(runs(&s, all), vec![(3, 6), (60, 1), (199, 1), (999, 1)]);
    }

    #[test]
    fn drain_moves_bits_into_every_target() {
        let a = PageSet::new(300).unwrap();
        let b = PageSet::new(300).unwrap();
        let c = PageSet::new(300).unwrap();
        a.insert_range(10, 100);
        a.drain_into(Extent { first: 50, npages: 200 }, &[&b, &c]);
        assert_eq!(runs(&a, Extent { first: 0, npages: 300 }), vec![(10, 40)]);
        assert_eq!(runs(&b, Extent { first: 0, npages: 300 }), vec![(50, 60)]);
        assert_eq!(runs(&c, Extent { first: 0, npages: 300 }), vec![(50, 60)]);
    }
}
