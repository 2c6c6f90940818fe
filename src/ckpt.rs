//! Taking a checkpoint: stop, scan, copy, sync, commit.
//!
//! 1. **stop**: take every heap lock, so the allocator's shared metadata is consistent (the
//!    calling program guarantees that its own threads are not writing the heap);
//! 2. **scan**: find which pages of the live extents can hold data at all (pages that became
//!    live since the last checkpoint and were never touched read as zero: their residency is
//!    read from the page tables before the tracker arms them; the heap's free runs hold nothing
//!    anybody may read), ask the tracker for the pages
//!    written since the last checkpoint, add the pages the heap gave back to the OS, and add
//!    both to each slot's pending set;
//! 3. **copy/sync/commit**: the store writes the inactive slot's pending pages and commits,
//!    recording pages that hold no data as holes;
//! 4. release the locks and return statistics (the runtime reports them).
//!
//! Between stop and release nothing may allocate from the persistent heap (the runtime runs in
//! an `internal` section, so its own allocations are volatile) and nothing may start a thread:
//! a new thread's allocations are not internal and would wait forever for the heap locks this
//! thread holds. (Restore can use threads; the heap is not live yet then.)
//!
//! A failed checkpoint leaves the previous one intact; the caller gets the error, and the next
//! checkpoint retries the same pages.

use std::os::fd::{AsFd, OwnedFd};

use crate::config::TrackerKind;
use crate::error::Result;
use crate::heap::{self, meta::RegionLayout};
use crate::pages::PageSet;
use crate::pages::{Extent, Extents};
use crate::store::{PageSource, Store};
use crate::sys::{PAGE, now_ns, pagemap};
use crate::track::{self, Tracker};

/// Statistics of one checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sequence number of the committed checkpoint.
    pub seq: u64,
    /// Slot written (0 or 1).
    pub slot: usize,
    /// Live pages examined by the tracker.
    pub pages_scanned: u64,
    /// Pages found written since the previous checkpoint.
    pub dirty_pages: u64,
    /// Pages brought up to date in the store (this slot's pending set, plus the mirror if
    /// any), written or recorded as holes.
    pub pages_written: u64,
    /// Of those, pages recorded as holes (never touched, all zero, or free) and not written.
    pub holes: u64,
    /// Bytes written to the store: pages, unchanged pages rewritten to merge two runs into one
    /// write, tables, summary, meta and commit record.
    pub bytes_written: u64,
    /// Runs of adjacent pages written (one `pwrite` each).
    pub runs: u64,
    /// Whether the image was also mirrored into the other slot.
    pub mirrored: bool,
    /// Whether the checkpoint directory had been removed and was recreated first (the image is
    /// then complete, under a new series).
    pub recreated_dir: bool,
    /// Whether mirroring into the other slot failed (its pages stay pending, and the next
    /// checkpoint writes them; the reason was reported on stderr).
    pub mirror_failed: bool,
    /// The call that returned these statistics was resumed by a restore (or a rollback) from
    /// this very checkpoint, `seq`: the other figures are not known and read zero.
    pub restored: bool,
    /// Persistent threads parked for this checkpoint (0 outside threads mode).
    pub threads_parked: u64,
    /// Time spent gathering the threads, µs.
    pub gather_us: u64,
    /// Attempts abandoned so far because threads could not be gathered in time.
    pub abandoned: u64,
    /// Releases (or requests) this checkpoint covered at once: its group-commit size.
    pub group: u64,
    /// Whole checkpoint, µs.
    pub duration_us: u64,
    /// Taking the heap's locks, µs.
    pub stop_us: u64,
    /// Collecting dirty pages, µs.
    pub scan_us: u64,
    /// Writing pages and checksums, µs.
    pub copy_us: u64,
    /// `fdatasync`, µs.
    pub sync_us: u64,
    /// Writing tables, summary, meta and the commit record, µs.
    pub commit_us: u64,
}

impl Stats {
    /// One JSON object on one line.
    pub fn to_json(&self, tracker: TrackerKind) -> String {
        format!(
            "{{\"seq\":{},\"slot\":{},\"tracker\":\"{}\",\"pages_scanned\":{},\"dirty_pages\":{},\
             \"pages_written\":{},\"holes\":{},\"bytes_written\":{},\"runs\":{},\"mirrored\":{},\
             \"duration_us\":{},\"phases_us\":{{\"stop\":{},\"scan\":{},\"copy\":{},\"sync\":{},\"commit\":{}}},\
             \"threads_parked\":{},\"gather_us\":{},\"abandoned\":{},\"group\":{}}}",
            self.seq,
            self.slot,
            tracker.name(),
            self.pages_scanned,
            self.dirty_pages,
            self.pages_written,
            self.holes,
            self.bytes_written,
            self.runs,
            self.mirrored,
            self.duration_us,
            self.stop_us,
            self.scan_us,
            self.copy_us,
            self.sync_us,
            self.commit_us,
            self.threads_parked,
            self.gather_us,
            self.abandoned,
            self.group
        )
    }
}

/// Free runs at least this long are recorded as holes (shorter ones cost more in split writes
/// than they save).
const FREE_RUN_MIN_PAGES: u32 = 4;

/// The region's live pages, as store extents (empty ones left out). No allocation.
pub(crate) fn live_extents(layout: &RegionLayout) -> Extents {
    let mut out = Extents::new();
    for (first, npages) in heap::live_extents(layout) {
        if npages > 0 {
            out.push(Extent { first: first as u64, npages: npages as u64 });
        }
    }
    out
}

/// Working state kept from one checkpoint to the next.
pub(crate) struct Scratch {
    /// `/proc/self/pagemap`, to tell untouched pages from written ones (None: unavailable).
    pagemap: Option<OwnedFd>,
    /// Pages of this attempt that hold no data (untouched, newly live).
    absent: PageSet,
    /// Pages that may have changed since the last committed checkpoint.
    recent: PageSet,
    /// The live extents of the last committed checkpoint (or of the restored one).
    last: Extents,
}

impl Scratch {
    /// Scratch state for a region of `pages` pages whose live extents are now `live` (restored
    /// or freshly formatted).
    pub(crate) fn new(pages: usize, live: Extents, fresh: bool) -> Result<Scratch> {
        Ok(Scratch {
            pagemap: pagemap::open_pagemap().ok(),
            absent: PageSet::new(pages)?,
            recent: PageSet::new(pages)?,
            // A fresh region's live pages are new to every slot.
            last: if fresh { Extents::new() } else { live },
        })
    }
}

impl Scratch {
    /// Forgets the last checkpoint's extents: the next checkpoint starts a new image (after the
    /// old one was retired), so every live page is new to it.
    pub(crate) fn forget(&mut self) {
        self.last.clear();
    }
}

/// The stack of a parked persistent thread: pages `lo..sp` hold nothing (below the stack
/// pointer), `sp..hi` are live. Region addresses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StackRange {
    /// Lowest address of the stack allocation (its guard page included).
    pub lo: usize,
    /// The parked thread's stack pointer.
    pub sp: usize,
    /// One past the highest address.
    pub hi: usize,
}

/// What the checkpoint works on.
pub(crate) struct Parts<'a> {
    /// The region's layout.
    pub layout: &'a RegionLayout,
    /// The store.
    pub store: &'a mut Store,
    /// The dirty-page tracker.
    pub tracker: &'a dyn Tracker,
    /// The meta block (binary identity) recorded with every checkpoint.
    pub meta: &'a [u8],
    /// Working state.
    pub scratch: &'a mut Scratch,
    /// The stacks of the parked persistent threads (none outside threads mode). Stacks are not
    /// write-tracked: their live parts are written at every checkpoint, their dead parts are
    /// holes.
    pub stacks: &'a [StackRange],
}

/// The store's view of which pages hold data.
struct Pages<'a> {
    absent: &'a PageSet,
    recent: &'a PageSet,
}

impl PageSource for Pages<'_> {
    fn data_runs(&self, first: u64, n: u64, f: &mut dyn FnMut(u64, u64)) {
        let mut at = first;
        self.absent.for_each_run(Extent { first, npages: n }, |a, len| {
            let a = a as u64;
            if a > at {
                f(at, a - at);
            }
            at = a + len as u64;
        });
        if at < first + n {
            f(at, first + n - at);
        }
    }
    fn changed_since_last(&self, p: u64) -> bool {
        self.recent.contains(p as usize)
    }
}

/// Records as absent the pages of `range` (region pages) that hold no memory.
fn mark_untouched(scratch: &Scratch, base: usize, range: Extent) {
    let Some(pm) = scratch.pagemap.as_ref() else { return };
    let (start, end) = (base + range.first as usize * PAGE, base + range.end() as usize * PAGE);
    let mut at = start;
    let absent = &scratch.absent;
    let mut f = |a: usize, b: usize| {
        if a > at {
            absent.insert_range((at - base) / PAGE, (a - at) / PAGE);
        }
        at = at.max(b);
    };
    if pagemap::resident_runs(pm.as_fd(), start, end, &mut f).is_err() {
        // Unknown: treat every page as holding data.
        absent.remove_range(range.first as usize, range.npages as usize);
        return;
    }
    if at < end {
        absent.insert_range((at - base) / PAGE, (end - at) / PAGE);
    }
}

/// Calls `f` for each run of `now` outside `before` (both sorted, disjoint).
fn newly_live(now: &[Extent], before: &[Extent], mut f: impl FnMut(Extent)) {
    for e in now {
        let mut p = e.first;
        for b in before {
            if b.end() <= p || b.first >= e.end() {
                continue;
            }
            if b.first > p {
                f(Extent { first: p, npages: b.first - p });
            }
            p = p.max(b.end());
        }
        if p < e.end() {
            f(Extent { first: p, npages: e.end() - p });
        }
    }
}

/// Takes a checkpoint. On failure the previous checkpoint stays valid.
///
/// Everything that allocates (claiming or recreating the directory, opening slot files) happens
/// before the heap's locks are taken; between taking and releasing them nothing allocates (a
/// `fork` in another thread takes the same locks, and the volatile allocator's after them:
/// see the lock order in [`crate::sync`]). Debug builds abort on an allocation there.
pub(crate) fn take(p: Parts<'_>) -> Result<Stats> {
    let Parts { layout, store, tracker, meta, scratch, stacks } = p;
    let recreated = store.prepare()?;
    let t0 = now_ns();
    heap::lock_all();
    crate::sys::tls::set_no_alloc(true);
    let t1 = now_ns();
    let extents = live_extents(layout);
    let result = (|| {
        // Residency first: arming new pages (userfaultfd) marks them in the page tables.
        newly_live(&extents, &scratch.last, |r| mark_untouched(scratch, layout.base, r));
        // Free memory is nobody's: not stored, restored as zero (a free run's "zeroed" flag
        // is only ever a promise that it reads as zero, which then holds too).
        heap::for_each_free_run(layout, FREE_RUN_MIN_PAGES, |first, n| scratch.absent.insert_range(first, n));
        let pending = store.pending();
        let into = [pending[0], pending[1], &scratch.recent];
        let collected = tracker.collect(&extents, &into).map_err(Failure::Track)?;
        track::drain_discarded(&extents, &into);
        for st in stacks {
            let base = layout.base;
            let (lo, sp, hi) = ((st.lo - base) / PAGE, (st.sp - base) / PAGE, (st.hi - base).div_ceil(PAGE));
            scratch.absent.insert_range(lo, sp - lo);
            for set in &into {
                set.insert_range(sp, hi - sp);
            }
        }
        let t2 = now_ns();
        let c = store
            .commit(&extents, meta, &Pages { absent: &scratch.absent, recent: &scratch.recent })
            .map_err(Failure::Commit)?;
        Ok((collected, c, t2))
    })();
    for e in &extents {
        scratch.absent.remove_range(e.first as usize, e.npages as usize);
    }
    if result.is_ok() {
        for e in &extents {
            scratch.recent.remove_range(e.first as usize, e.npages as usize);
        }
        scratch.last = extents;
    }
    crate::sys::tls::set_no_alloc(false);
    heap::unlock_all();
    let t3 = now_ns();
    let (collected, c, t2) = match result {
        Ok(r) => r,
        Err(Failure::Track(e)) => return Err(e),
        Err(Failure::Commit(e)) => return Err(store.error(e)),
    };
    if let Some(e) = c.mirror_error {
        crate::sys::warn_limited(
            "mirror-failed",
            &format!(
                "mirroring checkpoint {} into the other slot failed: {}; the next checkpoint writes it",
                c.seq,
                store.error(e)
            ),
        );
    }
    Ok(Stats {
        seq: c.seq,
        slot: c.slot,
        pages_scanned: collected.scanned,
        dirty_pages: collected.dirty,
        pages_written: c.pages_written,
        holes: c.holes,
        bytes_written: c.bytes_written,
        runs: c.runs,
        mirrored: c.mirrored,
        recreated_dir: recreated,
        mirror_failed: c.mirror_error.is_some(),
        restored: false,
        threads_parked: 0,
        gather_us: 0,
        abandoned: 0,
        group: 0,
        duration_us: (t3 - t0) / 1000,
        stop_us: (t1 - t0) / 1000,
        scan_us: (t2 - t1) / 1000,
        copy_us: c.copy_ns / 1000,
        sync_us: c.sync_ns / 1000,
        commit_us: c.commit_ns / 1000,
    })
}

/// What failed inside the stop window (turned into an [`crate::Error`] after it).
enum Failure {
    Track(crate::error::Error),
    Commit(crate::store::CommitError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_json_has_the_documented_fields() {
        let s =
            Stats { seq: 3, pages_written: 10, holes: 4, bytes_written: 40960, duration_us: 77, ..Default::default() };
        let j = s.to_json(TrackerKind::Full);
        for k in [
            "\"seq\":3",
            "\"pages_written\":10",
            "\"holes\":4",
            "\"bytes_written\":40960",
            "\"duration_us\":77",
            "\"phases_us\":{\"stop\":0",
        ] {
            assert!(j.contains(k), "{j} lacks {k}");
        }
        assert!(!j.contains('\n'));
    }

    #[test]
    fn newly_live_is_the_difference() {
        let x = |first, npages| Extent { first, npages };
        let mut out = Vec::new();
        newly_live(&[x(0, 10), x(100, 50)], &[x(0, 10), x(100, 20)], |e| out.push(e));
        assert_eq!(out, vec![x(120, 30)]);
        out.clear();
        newly_live(&[x(0, 10)], &[], |e| out.push(e));
        assert_eq!(out, vec![x(0, 10)]);
    }
}
