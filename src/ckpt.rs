//! Taking a checkpoint: stop, scan, copy, sync, commit.
//!
//! 1. **stop**: take every heap lock, so the allocator's shared metadata is consistent (the
//!    calling program guarantees that its own threads are not writing the heap);
//! 2. **scan**: ask the tracker for the pages written since the last checkpoint, add the pages
//!    the heap gave back to the OS, and add both to each slot's pending set;
//! 3. **copy/sync/commit**: the store writes the inactive slot's pending pages and commits;
//! 4. release the locks, then report statistics (formatting and file I/O happen only after
//!    the heap is running again).
//!
//! Between stop and release nothing may allocate from the persistent heap (the runtime runs in
//! an `internal` section, so its own allocations are volatile) and nothing may start a thread:
//! a new thread's allocations are not internal and would wait forever for the heap locks this
//! thread holds. (Restore can use threads; the heap is not live yet then.)
//!
//! A failed checkpoint leaves the previous one intact; the program gets the error and a
//! warning on stderr, and the next checkpoint retries the same pages.

use std::io::Write;

use crate::config::TrackerKind;
use crate::error::Result;
use crate::heap;
use crate::runtime::Runtime;
use crate::store::format::Extent;
use crate::sys::now_ns;
use crate::track;

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
    /// Pages written to the store (this slot's pending set, plus the mirror if any).
    pub pages_written: u64,
    /// Bytes written to the store: pages, unchanged pages rewritten to merge two runs into one
    /// write, tables, summary, meta and commit record.
    pub bytes_written: u64,
    /// Runs of adjacent pages written (one `pwrite` each).
    pub runs: u64,
    /// Whether the image was also mirrored into the other slot.
    pub mirrored: bool,
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
             \"pages_written\":{},\"bytes_written\":{},\"runs\":{},\"mirrored\":{},\"duration_us\":{},\
             \"phases_us\":{{\"stop\":{},\"scan\":{},\"copy\":{},\"sync\":{},\"commit\":{}}}}}",
            self.seq,
            self.slot,
            tracker_name(tracker),
            self.pages_scanned,
            self.dirty_pages,
            self.pages_written,
            self.bytes_written,
            self.runs,
            self.mirrored,
            self.duration_us,
            self.stop_us,
            self.scan_us,
            self.copy_us,
            self.sync_us,
            self.commit_us
        )
    }
}

/// The configuration name of a tracker.
pub fn tracker_name(t: TrackerKind) -> &'static str {
    match t {
        TrackerKind::Auto => "auto",
        TrackerKind::Uffd => "uffd",
        TrackerKind::Mprotect => "mprotect",
        TrackerKind::Full => "full",
    }
}

/// The region's live pages, as store extents (empty ones left out).
pub(crate) fn live_extents(layout: &crate::heap::meta::RegionLayout) -> Vec<Extent> {
    heap::live_extents(layout)
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|&(first, npages)| Extent { first: first as u64, npages: npages as u64 })
        .collect()
}

/// Takes a checkpoint of `rt`'s region.
pub(crate) fn take(rt: &Runtime) -> Result<Stats> {
    let mut state = rt.state.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = now_ns();
    heap::lock_all();
    let t1 = now_ns();
    let extents = live_extents(rt.region.layout());
    let result = (|| {
        let pending = state.store.pending();
        let collected = rt.tracker.collect(&extents, &pending)?;
        track::drain_discarded(&extents, &pending);
        let t2 = now_ns();
        let c = state.store.commit(&extents, &rt.meta)?;
        Ok((collected, c, t2))
    })();
    heap::unlock_all();
    let t3 = now_ns();
    let (collected, c, t2) = match result {
        Ok(r) => r,
        Err(e) => {
            let prev = state.store.seq();
            drop(state);
            crate::sys::write_stderr(&[format!(
                "crthreads: warning: checkpoint {} failed: {e}; {}; the program continues and the \
                 next checkpoint retries\n",
                prev + 1,
                if prev > 0 { format!("checkpoint {prev} stays intact") } else { "no checkpoint exists yet".into() }
            )
            .as_bytes()]);
            return Err(e);
        }
    };
    let stats = Stats {
        seq: c.seq,
        slot: c.slot,
        pages_scanned: collected.scanned,
        dirty_pages: collected.dirty,
        pages_written: c.pages_written,
        bytes_written: c.bytes_written,
        runs: c.runs,
        mirrored: c.mirrored,
        duration_us: (t3 - t0) / 1000,
        stop_us: (t1 - t0) / 1000,
        scan_us: (t2 - t1) / 1000,
        copy_us: c.copy_ns / 1000,
        sync_us: c.sync_ns / 1000,
        commit_us: c.commit_ns / 1000,
    };
    if let Some(f) = state.stats_file.as_mut() {
        let line = stats.to_json(rt.tracker.kind()) + "\n";
        if let Err(e) = f.write_all(line.as_bytes()) {
            crate::sys::write_stderr(&[format!("crthreads: warning: cannot write statistics: {e}\n").as_bytes()]);
            state.stats_file = None;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_json_has_the_documented_fields() {
        let s = Stats { seq: 3, pages_written: 10, bytes_written: 40960, duration_us: 77, ..Default::default() };
        let j = s.to_json(TrackerKind::Full);
        for k in [
            "\"seq\":3",
            "\"pages_written\":10",
            "\"bytes_written\":40960",
            "\"duration_us\":77",
            "\"phases_us\":{\"stop\":0",
        ] {
            assert!(j.contains(k), "{j} lacks {k}");
        }
        assert!(!j.contains('\n'));
    }
}
