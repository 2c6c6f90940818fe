//! The userfaultfd tracker: write-protection in async mode, read back with `PAGEMAP_SCAN`.
//!
//! The region is registered with a userfaultfd in `WP_ASYNC` mode (Linux 6.7+): a write to a
//! write-protected page is resolved inside the kernel, which clears the protection and marks
//! the page written, with no signal and no thread to wake. `WP_UNPOPULATED` extends this to
//! pages never touched (and to pages given back with `MADV_DONTNEED`). At a checkpoint one
//! `PAGEMAP_SCAN` ioctl per extent returns the written runs and write-protects them again
//! atomically. Kernel writes (`read(2)` into the heap) take the same path, so no interposition
//! is needed.
//!
//! Write-protecting unpopulated pages installs a marker in every page-table entry, so only the
//! live extents are protected, not the whole (mostly empty) region: pages that become live
//! between two checkpoints are reported dirty at the next one (they are new to the image
//! anyway) and protected from then on.
#![allow(unsafe_code)] // Nothing here is unsafe beyond the sys wrappers; kept for uniformity.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;

use super::{CollectStats, PageSet, Tracker};
use crate::config::TrackerKind;
use crate::error::{Errno, Error, Result};
use crate::pages::{Extent, Extents};
use crate::sys::PAGE;
use crate::sys::pagemap::{self, PageRegion};
use crate::sys::uffd::{self, UFFD_FEATURE_WP_ASYNC, UFFD_FEATURE_WP_UNPOPULATED};

/// The userfaultfd tracker.
pub struct Uffd {
    _uffd: OwnedFd,
    pagemap: OwnedFd,
    base: usize,
    state: Mutex<State>,
}

struct State {
    buf: Vec<PageRegion>,
    /// Extents write-protected so far.
    armed: Extents,
}

impl Uffd {
    /// Registers the whole region and write-protects its live `extents`. Fails (with the
    /// reason) where the kernel lacks async write-protection or `PAGEMAP_SCAN`.
    pub fn start(base: usize, len: usize, extents: &[Extent]) -> Result<Uffd> {
        let unsupported = |step: &str, e: Errno| Error::Unsupported {
            what: "the userfaultfd tracker".into(),
            why: format!(
                "{step} failed ({e}); it needs Linux 6.7+ with userfaultfd write-protection \
                 (async mode) and PAGEMAP_SCAN; use CRTHREADS_TRACKER=mprotect"
            ),
        };
        let fd = uffd::open(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED)
            .map_err(|e| unsupported("userfaultfd", e))?;
        uffd::register_wp(fd.as_fd(), base, len).map_err(|e| unsupported("UFFDIO_REGISTER", e))?;
        for e in extents {
            uffd::write_protect(fd.as_fd(), base + e.first as usize * PAGE, e.npages as usize * PAGE, true)
                .map_err(|e| unsupported("UFFDIO_WRITEPROTECT", e))?;
        }
        let pagemap = pagemap::open_pagemap().map_err(|e| unsupported("open /proc/self/pagemap", e))?;
        let mut probe = [PageRegion::default(); 1];
        pagemap::scan_written(pagemap.as_fd(), base, base + PAGE, &mut probe)
            .map_err(|e| unsupported("PAGEMAP_SCAN", e))?;
        Ok(Uffd {
            _uffd: fd,
            pagemap,
            base,
            state: Mutex::new(State { buf: vec![PageRegion::default(); 4096], armed: Extents::from(extents) }),
        })
    }
}

impl Tracker for Uffd {
    fn kind(&self) -> TrackerKind {
        TrackerKind::Uffd
    }

    fn collect(&self, extents: &[Extent], into: &[&PageSet]) -> Result<CollectStats> {
        let mut st = CollectStats::default();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { buf, armed } = &mut *state;
        for e in extents {
            st.scanned += e.npages;
            // Armed parts: ask the kernel what was written (and re-protect it).
            for a in armed.iter() {
                let (lo, hi) = (e.first.max(a.first), e.end().min(a.end()));
                if lo < hi {
                    st.dirty += self.scan(lo, hi, buf, into)?;
                }
            }
            // Parts live for the first time: all of it is new to the image; protect it now.
            let mut p = e.first;
            for a in armed.iter() {
                if a.end() <= p || a.first >= e.end() {
                    continue;
                }
                if a.first > p {
                    st.dirty += self.arm_new(p, a.first, into)?;
                }
                p = p.max(a.end());
            }
            if p < e.end() {
                st.dirty += self.arm_new(p, e.end(), into)?;
            }
        }
        merge_into(armed, extents);
        Ok(st)
    }
}

impl Uffd {
    fn scan(&self, lo: u64, hi: u64, buf: &mut [PageRegion], into: &[&PageSet]) -> Result<u64> {
        let end = self.base + hi as usize * PAGE;
        let mut at = self.base + lo as usize * PAGE;
        let mut dirty = 0;
        while at < end {
            let (n, walk_end) = pagemap::scan_written(self.pagemap.as_fd(), at, end, buf)
                .map_err(|err| Error::os("PAGEMAP_SCAN", err))?;
            for r in &buf[..n] {
                let first = (r.start as usize - self.base) / PAGE;
                let count = (r.end - r.start) as usize / PAGE;
                for s in into {
                    s.insert_range(first, count);
                }
                dirty += count as u64;
            }
            if walk_end <= at {
                break;
            }
            at = walk_end;
        }
        Ok(dirty)
    }

    fn arm_new(&self, lo: u64, hi: u64, into: &[&PageSet]) -> Result<u64> {
        let n = (hi - lo) as usize;
        for s in into {
            s.insert_range(lo as usize, n);
        }
        uffd::write_protect(self._uffd.as_fd(), self.base + lo as usize * PAGE, n * PAGE, true)
            .map_err(|err| Error::os("UFFDIO_WRITEPROTECT", err))?;
        Ok(n as u64)
    }
}

/// Adds `new` to the sorted, disjoint extents `armed`, merging overlaps and neighbours, without
/// allocating (it runs in the checkpoint's stop window). If the union has more runs than an
/// [`Extents`] holds, the last ones are joined across their gaps: arming pages that are not live
/// only reports them once more when they become live.
fn merge_into(armed: &mut Extents, new: &[Extent]) {
    let mut all = [Extent::default(); 2 * crate::pages::MAX_EXTENTS];
    let mut n = 0;
    for e in armed.iter().chain(new).filter(|e| e.npages > 0) {
        all[n] = *e;
        n += 1;
    }
    all[..n].sort_unstable_by_key(|e| e.first);
    let mut out = Extents::new();
    for e in &all[..n] {
        let full = out.len() == crate::pages::MAX_EXTENTS;
        match out.last_mut() {
            Some(l) if e.first <= l.end() || full => l.npages = l.npages.max(e.end() - l.first),
            _ => {
                out.push(*e);
            }
        }
    }
    *armed = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_extents_sorted_and_disjoint() {
        let x = |first, npages| Extent { first, npages };
        let mut a = Extents::from(&[x(0, 10), x(100, 5)][..]);
        merge_into(&mut a, &[x(5, 10), x(105, 3), x(200, 0), x(50, 1)]);
        assert_eq!(&*a, &[x(0, 15), x(50, 1), x(100, 8)]);
        // More runs than fit: the last ones are joined, nothing is lost.
        let many: Vec<Extent> = (0..12).map(|i| x(i * 10, 1)).collect();
        let mut b = Extents::new();
        merge_into(&mut b, &many);
        assert_eq!(b.len(), crate::pages::MAX_EXTENTS);
        assert_eq!(b.last().unwrap().end(), 111);
    }
}
