//! The double-buffered checkpoint store.
//!
//! Two slot files each hold a whole image of the region's live pages ([`format`](mod@format)). A
//! checkpoint writes into the *inactive* slot only, so the newest committed checkpoint is never
//! touched while another is being written:
//!
//! 1. mark the slot's header `WRITING` (it no longer vouches for anything);
//! 2. write every page changed since *this slot* was last committed (its `pending` set: the
//!    pages dirtied in the previous epoch and in this one, plus pages that became live), each
//!    page's crc and epoch in the table, the changed table chunks, the summary and the meta;
//!    pages that read as zero, or that the [`PageSource`] says hold no data, are recorded as
//!    holes and not written;
//! 3. `sync` mode: `fdatasync`;
//! 4. write the header `COMMITTED` with the new sequence number and the summary's crc;
//! 5. `sync` mode: `fdatasync`.
//!
//! A crash before step 4 completes leaves the slot invalid and the other slot, the newest
//! committed checkpoint, intact. The commit record is a single 4 KiB write guarded by its own
//! crc, so a torn commit is detected, and restore then falls back to the other slot.
//!
//! The first checkpoint of a series (a fresh start, a restore that found the other slot
//! unusable, a retired checkpoint taken up again, a removed directory recreated) is followed by
//! a *mirror*: the same image written into the other slot under the same sequence number, so
//! that from then on both slots are complete and every checkpoint is incremental. Both slots
//! carry the series' random identity, and restore never combines slots of different series.
//!
//! After a restore from slot A, slot B lacks the pages written into A after B's checkpoint
//! (their A-table epoch is newer than B's sequence number) and the pages the two tables record
//! differently (free memory is a hole in one slot and may be data, never written by the
//! program, in the other; memory now reads as A has it). That becomes B's pending set, so the
//! first checkpoint after a restore is incremental too. The invariant every commit relies on:
//! a page not pending for a slot is stored there as memory holds it, or is a hole there, so a
//! write merged across it stores nothing its table does not vouch for.
//!
//! The directory is claimed (locked) for the whole run ([`file::Dir::claim`]); a commit checks
//! that it is still where it was and, if it was removed, recreates it and starts a new series.
#![allow(unsafe_code)] // Writes pages from raw region memory.

mod check;
pub mod file;
pub mod format;
mod restore;
mod table;
pub mod verify;

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub use restore::{Restored, newest_header, peek_region};

use crate::config::Durability;
use crate::error::{Errno, Error, Result};
use crate::failpoint;
use crate::pages::PageSet;
use crate::sys::{fs, now_ns};
use file::Dir;
use format::{Entry, Extent, Extents, GROUP_PAGES, Geometry, HEADER_LEN, Header, PAGE, STATE_COMMITTED};
use table::Table;

/// Pages (or table chunks) per write. Larger writes make ext4 cache the file in large folios,
/// and a later 4 KiB write into a large folio costs many times a small one; 64 KiB writes keep
/// both sequential bandwidth and scattered updates fast.
const MAX_WRITE_PAGES: u64 = 16;
/// Runs separated by at most this many unchanged pages are written as one.
const MAX_GAP: u64 = 3;
/// Pages per read when restoring.
const READ_PAGES: u64 = 512;

/// What the store may ask about the region's pages while it commits.
pub trait PageSource {
    /// Calls `f(first, n)` for the runs of pages within `first..first+n` that may hold data,
    /// in increasing order. Every other page reads as zero (never touched, or given back to the
    /// OS) or holds nothing a program may read (free memory), and is recorded as a hole.
    fn data_runs(&self, first: u64, n: u64, f: &mut dyn FnMut(u64, u64));
    /// Whether page `p` may have changed since the previous checkpoint. `false` lets the store
    /// take the page's checksum (or hole) from the other slot when that slot wrote it then,
    /// without reading the page.
    fn changed_since_last(&self, p: u64) -> bool;
}

/// Every page may hold data and may have changed.
pub struct AllData;

impl PageSource for AllData {
    fn data_runs(&self, first: u64, n: u64, f: &mut dyn FnMut(u64, u64)) {
        f(first, n)
    }
    fn changed_since_last(&self, _p: u64) -> bool {
        true
    }
}

/// Merges sorted runs `(first, len)` whose gaps are at most `gap`, then cuts the result into
/// pieces of at most `max` pages.
fn merge_runs(runs: impl Iterator<Item = (u64, u64)>, gap: u64, max: u64) -> Vec<(u64, u64)> {
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (p, n) in runs {
        match merged.last_mut() {
            Some((q, m)) if p <= *q + *m + gap => *m = (*m).max(p + n - *q),
            _ => merged.push((p, n)),
        }
    }
    let mut out = Vec::with_capacity(merged.len());
    for (mut p, n) in merged {
        let end = p + n;
        while p < end {
            let k = max.min(end - p);
            out.push((p, k));
            p += k;
        }
    }
    out
}

/// The ranges of groups `[g0, g1)` whose pages `extents` touch.
fn group_ranges(extents: &[Extent]) -> Vec<(u64, u64)> {
    let gp = GROUP_PAGES as u64;
    let groups = extents.iter().filter(|e| e.npages > 0).map(|e| (e.first / gp, e.end().div_ceil(gp) - e.first / gp));
    merge_runs(groups, 0, READ_PAGES).into_iter().map(|(g, n)| (g, g + n)).collect()
}

/// The summary entries as their on-disk bytes, without copying (x86-64 is little-endian).
fn summary_bytes(summary: &[u32]) -> &[u8] {
    const _: () = assert!(cfg!(target_endian = "little"));
    // SAFETY: any u32 is 4 valid bytes, and u8 has no alignment requirement, so the middle part
    // of the split is the whole slice.
    let (head, bytes, tail) = unsafe { summary.align_to::<u8>() };
    debug_assert!(head.is_empty() && tail.is_empty());
    bytes
}

/// A random series identity (never 0, which means "none yet").
fn new_series() -> u128 {
    let mut b = [0u8; 16];
    if crate::sys::proc::random_bytes(&mut b).is_err() {
        // No entropy source: time and pid still tell runs apart.
        b[..8].copy_from_slice(&crate::sys::realtime_ns().to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    u128::from_le_bytes(b).max(1)
}

/// A commit that failed: what it was doing, in which slot, and the OS's reason (turned into an
/// [`Error`] by [`Store::error`], outside the allocation-free window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitError {
    /// The operation, e.g. `"write"`.
    pub op: &'static str,
    /// The slot being written.
    pub slot: usize,
    /// The error number.
    pub errno: Errno,
}

/// Statistics of one commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Sequence number committed.
    pub seq: u64,
    /// Slot written.
    pub slot: usize,
    /// Region pages brought up to date in the slot (mirror included): written or recorded as
    /// holes.
    pub pages_written: u64,
    /// Of those, pages recorded as holes (zero or free) rather than written.
    pub holes: u64,
    /// Bytes written to slot files: pages, tables, summary, meta, headers.
    pub bytes_written: u64,
    /// Runs of adjacent pages (each one `pwrite`).
    pub runs: u64,
    /// Time writing pages and checksums, in ns.
    pub copy_ns: u64,
    /// Time in `fdatasync`, in ns.
    pub sync_ns: u64,
    /// Time writing tables, summary, meta and the commit record, in ns.
    pub commit_ns: u64,
    /// Whether this commit also mirrored the image into the other slot.
    pub mirrored: bool,
    /// Why the mirror into the other slot failed, if it did (its pages stay pending).
    pub mirror_error: Option<CommitError>,
}

/// A checkpoint store for one region.
pub struct Store {
    dir_path: PathBuf,
    /// The claimed directory; `None` after the checkpoint was retired (claimed again by the
    /// next commit).
    dir: Option<Dir>,
    /// Open slot files; restore opens them read-only, the first write reopens them.
    files: [Option<OwnedFd>; 2],
    writable: [bool; 2],
    geo: Geometry,
    base: u64,
    capacity: u64,
    durability: Durability,
    tables: [Table; 2],
    summaries: [Vec<u32>; 2],
    pending: [PageSet; 2],
    /// Pages the slot holds as memory has them (unless pending): those of its last commit that
    /// have stayed live since. A page that leaves the live set can change without a tracked
    /// write (the heap gives it back to the OS), so it stops being covered, and when it is
    /// live again it is rewritten.
    covered: [Extents; 2],
    /// Sequence number of the committed checkpoint each slot holds, if valid.
    valid: [Option<u64>; 2],
    active: Option<usize>,
    seq: u64,
    /// The series both slots belong to (0: none yet; drawn by the first commit).
    series: u128,
    /// Buffers the commit reuses, so that it allocates nothing: the header being encoded, and
    /// the table groups it changed.
    header_buf: Box<[u8; HEADER_LEN]>,
    dirty_groups: Vec<u64>,
}

impl Store {
    /// A store in the claimed directory `dir` for the region `base..base+capacity`.
    /// If the store cannot be set up, the claim is given up as [`Dir::release_unused`] does.
    pub fn new(dir: Dir, base: usize, capacity: usize, durability: Durability) -> Result<Store> {
        let pages = capacity / PAGE;
        let max_groups = Geometry::new(capacity as u64).max_groups() as usize;
        let sets = (|| Ok(([Table::new(pages)?, Table::new(pages)?], [PageSet::new(pages)?, PageSet::new(pages)?])))();
        let (tables, pending) = match sets {
            Ok(s) => s,
            Err(e) => {
                dir.release_unused();
                return Err(e);
            }
        };
        Ok(Store {
            dir_path: dir.path().to_path_buf(),
            dir: Some(dir),
            files: [None, None],
            writable: [false, false],
            geo: Geometry::new(capacity as u64),
            base: base as u64,
            capacity: capacity as u64,
            durability,
            tables,
            summaries: [Vec::with_capacity(max_groups), Vec::with_capacity(max_groups)],
            pending,
            covered: [Extents::new(), Extents::new()],
            valid: [None, None],
            active: None,
            seq: 0,
            series: 0,
            header_buf: Box::new([0; HEADER_LEN]),
            dirty_groups: Vec::with_capacity(max_groups),
        })
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// Sequence number of the newest committed checkpoint (0: none).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Whether a committed checkpoint exists (restored or written by this run).
    pub fn has_checkpoint(&self) -> bool {
        self.valid.iter().any(Option::is_some)
    }

    /// Changes the durability of later commits.
    pub fn set_durability(&mut self, d: Durability) {
        self.durability = d;
    }

    /// Pages each slot still lacks (pending writes).
    pub fn pending(&self) -> [&PageSet; 2] {
        [&self.pending[0], &self.pending[1]]
    }

    /// Forgets every slot: the next commit writes a full image (and its mirror) under a new
    /// series.
    fn reset(&mut self) {
        self.files = [None, None];
        self.writable = [false, false];
        for t in &mut self.tables {
            t.clear();
        }
        for sm in &mut self.summaries {
            sm.clear();
        }
        self.covered = [Extents::new(), Extents::new()];
        self.valid = [None, None];
        self.active = None;
        self.series = 0;
    }

    /// Makes sure the directory is claimed and still in place; recreates it if it was removed
    /// while the program ran. Returns whether it had to be recreated.
    fn ensure_dir(&mut self) -> Result<bool> {
        let durable = self.durability == Durability::Sync;
        match &self.dir {
            Some(d) if d.is_intact() => Ok(false),
            Some(_) => {
                crate::sys::warn_limited(
                    "dir-removed",
                    &format!(
                        "the checkpoint directory {} was removed or replaced while the program ran; \
                         recreating it and writing a full checkpoint",
                        self.dir_path.display()
                    ),
                );
                self.dir = None;
                self.reset();
                self.dir = Some(Dir::claim(&self.dir_path, durable)?);
                Ok(true)
            }
            None => {
                self.dir = Some(Dir::claim(&self.dir_path, durable)?);
                Ok(false)
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Checkpoint.

    /// Readies the next commit, before the world is stopped (this allocates; [`Store::commit`]
    /// does not): claims the directory again after a retirement, recreates it if it was removed
    /// (a new series, a full image), draws the series of a new chain, and opens both slot files
    /// for writing. Returns whether the directory had to be recreated.
    pub fn prepare(&mut self) -> Result<bool> {
        let recreated = self.ensure_dir()?;
        if self.series == 0 {
            self.series = new_series();
        }
        let dir = self.dir.as_ref().expect("claimed above");
        for s in 0..2 {
            if !self.writable[s] {
                let (fd, created) = dir.create_slot(s)?;
                if created && self.durability == Durability::Sync {
                    dir.sync()?;
                }
                self.files[s] = Some(fd);
                self.writable[s] = true;
            }
        }
        Ok(recreated)
    }

    /// Commits a checkpoint of the live pages `extents` of the region, writing into the
    /// inactive slot every page in its pending set. The caller has called [`Store::prepare`],
    /// has added the pages written since the previous checkpoint to both pending sets, and keeps
    /// the region unchanged during the call. `data` tells which pages can hold data at all.
    ///
    /// Allocates nothing (it runs while the checkpoint holds the heap's locks); a failure is a
    /// [`CommitError`], which [`Store::error`] turns into an [`Error`] afterwards.
    pub fn commit(
        &mut self,
        extents: &[Extent],
        meta: &[u8],
        data: &dyn PageSource,
    ) -> std::result::Result<CommitStats, CommitError> {
        if extents.len() > format::MAX_EXTENTS || meta.len() > format::META_MAX {
            return Err(CommitError {
                op: "checkpoint (too many extents or meta too large)",
                slot: 0,
                errno: Errno(libc::E2BIG),
            });
        }
        if !(self.writable[0] && self.writable[1]) {
            return Err(CommitError { op: "checkpoint (store not prepared)", slot: 0, errno: Errno(libc::EINVAL) });
        }
        let seq = self.seq + 1;
        let target = self.active.map_or(0, |a| 1 - a);
        for c in self.covered.iter_mut() {
            *c = c.intersect(extents);
        }
        let mut st = CommitStats { seq, slot: target, ..Default::default() };
        self.write_slot(target, seq, extents, meta, data, &mut st)?;
        self.active = Some(target);
        self.seq = seq;
        let other = 1 - target;
        if self.valid[other].is_none() {
            failpoint::hit("mirror", seq);
            // A failed mirror leaves the pages pending; the next checkpoint writes them.
            match self.write_slot(other, seq, extents, meta, data, &mut st) {
                Ok(()) => st.mirrored = true,
                Err(e) => st.mirror_error = Some(e),
            }
        }
        Ok(st)
    }

    /// The error a [`CommitError`] stands for, naming the slot file.
    pub fn error(&self, e: CommitError) -> Error {
        match &self.dir {
            Some(d) => Error::os_at(e.op, d.slot_path(e.slot), e.errno),
            None => Error::os_at(e.op, self.dir_path.join(file::slot_name(e.slot)), e.errno),
        }
    }

    fn write_slot(
        &mut self,
        s: usize,
        seq: u64,
        extents: &[Extent],
        meta: &[u8],
        data: &dyn PageSource,
        st: &mut CommitStats,
    ) -> std::result::Result<(), CommitError> {
        let os = |op: &'static str| move |errno: Errno| CommitError { op, slot: s, errno };
        let raw = self.files[s].as_ref().expect("opened by prepare").as_raw_fd();
        // SAFETY: `files[s]` stays open for the whole call: nothing below replaces or closes it.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        let t0 = now_ns();

        // 1. The slot stops vouching for its old contents.
        self.valid[s] = None;
        let writing = Header::writing(s as u32, seq, self.series, self.base, self.capacity);
        format::encode_header_into(&writing, &mut self.header_buf);
        fs::pwrite_from(fd, &self.header_buf[..], 0).map_err(os("write"))?;
        st.bytes_written += HEADER_LEN as u64;
        // Groups beyond the live extents hold nothing restore will read: give their space
        // back (after a failed checkpoint on a full disk, this is what makes room again).
        let ngroups = format::groups_for(extents);
        let needed = self.geo.page_off(ngroups * GROUP_PAGES as u64);
        if fs::fstat(fd).map_err(os("stat"))?.size > needed {
            fs::ftruncate(fd, needed).map_err(os("truncate"))?;
            // Pages past the cut are no longer held by this slot.
            let limit = ngroups * GROUP_PAGES as u64;
            let mut kept = Extents::new();
            for c in self.covered[s].iter() {
                let n = c.npages.min(limit.saturating_sub(c.first));
                if n > 0 {
                    kept.push(Extent { first: c.first, npages: n });
                }
            }
            self.covered[s] = kept;
        }
        failpoint::hit("before-payload", seq);

        // 2. Pages that became live since this slot's last commit are pending too.
        self.mark_newly_live(s, extents);
        let pages_pending: u64 = extents.iter().map(|e| self.pending[s].count(*e) as u64).sum();
        let (tables, pending) = (&mut self.tables, &self.pending[s]);
        let (mine, twin) = match s {
            0 => {
                let (a, b) = tables.split_at_mut(1);
                (&mut a[0], &b[0])
            }
            _ => {
                let (a, b) = tables.split_at_mut(1);
                (&mut b[0], &a[0])
            }
        };
        self.dirty_groups.clear();
        let mut w = SlotWriter {
            fd,
            slot: s,
            base: self.base,
            geo: self.geo,
            seq,
            table: mine,
            twin,
            run: None,
            err: None,
            dirty_groups: &mut self.dirty_groups,
            holes: 0,
            bytes: 0,
            runs: 0,
            done: 0,
            half: pages_pending.div_ceil(2),
        };
        for e in extents {
            pending.for_each_run(*e, |first, len| {
                let (first, end) = (first as u64, (first + len) as u64);
                let mut at = first;
                data.data_runs(first, end - first, &mut |a, n| {
                    let (a, b) = (a.max(at), (a + n).min(end));
                    for q in at..a {
                        w.hole(q);
                    }
                    for q in a..b {
                        w.page(q, data);
                    }
                    at = at.max(b);
                });
                for q in at..end {
                    w.hole(q);
                }
            });
        }
        w.flush();
        if pages_pending == 0 {
            failpoint::hit("mid-payload", seq);
        }
        if let Some(e) = w.err.take() {
            return Err(e);
        }
        let (holes, bytes, runs) = (w.holes, w.bytes, w.runs);
        st.pages_written += pages_pending;
        st.holes += holes;
        st.bytes_written += bytes;
        st.runs += runs;
        let t1 = now_ns();
        st.copy_ns += t1 - t0;

        // Table chunks (neighbours merged into one write, at most MAX_WRITE_PAGES), summary,
        // meta.
        self.dirty_groups.dedup();
        let summary = &mut self.summaries[s];
        summary.resize(ngroups as usize, 0);
        for &g in self.dirty_groups.iter() {
            if (g as usize) < summary.len() {
                summary[g as usize] = crc32c::crc32c(self.tables[s].chunk(g));
            }
        }
        let mut run: Option<(u64, u64)> = None;
        for &g in self.dirty_groups.iter().chain(core::iter::once(&u64::MAX)) {
            match run {
                Some((a, b)) if g != u64::MAX && g <= b + MAX_GAP && g + 1 - a <= MAX_WRITE_PAGES => {
                    run = Some((a, g + 1))
                }
                _ => {
                    if let Some((a, b)) = run {
                        fs::pwrite_from(fd, self.tables[s].chunks(a, b), self.geo.chunk_off(a)).map_err(os("write"))?;
                        st.bytes_written += (b - a) * PAGE as u64;
                    }
                    run = if g == u64::MAX { None } else { Some((g, g + 1)) };
                }
            }
        }
        fs::pwrite_from(fd, summary_bytes(summary), format::SUMMARY_OFF).map_err(os("write"))?;
        fs::pwrite_from(fd, meta, format::META_OFF).map_err(os("write"))?;
        st.bytes_written += summary.len() as u64 * 4 + meta.len() as u64;
        let t2 = now_ns();
        if self.durability == Durability::Sync {
            fs::fdatasync(fd).map_err(os("fdatasync"))?;
        }
        let t3 = now_ns();
        failpoint::hit("before-commit", seq);

        // 4. The commit record.
        let header = Header {
            slot: s as u32,
            state: STATE_COMMITTED,
            seq,
            series: self.series,
            base: self.base,
            capacity: self.capacity,
            ngroups: ngroups as u32,
            extents: Extents::from(extents),
            summary_crc: format::summary_crc(summary),
            meta_len: meta.len() as u32,
            meta_crc: crc32c::crc32c(meta),
            durability: (self.durability == Durability::Sync) as u32,
            time_ns: crate::sys::realtime_ns(),
            pages_written: pages_pending,
        };
        format::encode_header_into(&header, &mut self.header_buf);
        fs::pwrite_from(fd, &self.header_buf[..], 0).map_err(os("write"))?;
        st.bytes_written += HEADER_LEN as u64;
        let t4 = now_ns();
        if self.durability == Durability::Sync {
            fs::fdatasync(fd).map_err(os("fdatasync"))?;
        }
        let t5 = now_ns();
        failpoint::hit("after-commit", seq);
        st.commit_ns += (t2 - t1) + (t4 - t3);
        st.sync_ns += (t3 - t2) + (t5 - t4);

        for e in extents {
            self.pending[s].remove_range(e.first as usize, e.npages as usize);
        }
        self.covered[s] = Extents::from(extents);
        self.valid[s] = Some(seq);
        Ok(())
    }

    /// Adds to slot `s`'s pending set the pages of `extents` it does not hold yet.
    fn mark_newly_live(&mut self, s: usize, extents: &[Extent]) {
        for e in extents {
            let mut p = e.first;
            for c in &self.covered[s] {
                // Subtract covered runs that overlap `e` (extents are few and sorted).
                if c.end() <= p || c.first >= e.end() {
                    continue;
                }
                if c.first > p {
                    self.pending[s].insert_range(p as usize, (c.first - p) as usize);
                }
                p = p.max(c.end());
            }
            if p < e.end() {
                self.pending[s].insert_range(p as usize, (e.end() - p) as usize);
            }
        }
    }

    /// Removes the checkpoint files (the program finished) and gives up the directory (removed
    /// too if crthreads created it). A later commit claims the directory again and starts a new
    /// series with a full image.
    pub fn retire(&mut self) -> Result<()> {
        self.reset();
        self.seq = 0;
        let dir = match self.dir.take() {
            Some(d) => d,
            None => match Dir::open_existing(&self.dir_path)? {
                Some(d) => d,
                None => return Ok(()),
            },
        };
        dir.remove()
    }

    /// Leaves the directory as it was found, for a run that restored nothing and wrote no
    /// checkpoint: removes the lock file (and the directory if crthreads created it and it is
    /// empty). Does nothing if the directory holds slot files.
    pub fn release_unused(&mut self) {
        if let Some(d) = self.dir.take() {
            d.release_unused();
        }
    }
}

/// Writes one slot's pending pages in increasing page order: computes each page's crc, records
/// zero pages as holes, and gathers the pages to write into runs (merged across gaps of at most
/// [`MAX_GAP`], cut at [`MAX_WRITE_PAGES`]), one `pwrite` each. Allocation-free but for the
/// list of table groups it touched.
struct SlotWriter<'a> {
    fd: BorrowedFd<'a>,
    slot: usize,
    base: u64,
    geo: Geometry,
    seq: u64,
    table: &'a mut Table,
    twin: &'a Table,
    /// The write being gathered: pages `start..end`.
    run: Option<(u64, u64)>,
    /// The first error; later pages are skipped.
    err: Option<CommitError>,
    dirty_groups: &'a mut Vec<u64>,
    holes: u64,
    bytes: u64,
    runs: u64,
    /// Pending pages handled so far, and half of them (for the mid-payload failpoint).
    done: u64,
    half: u64,
}

/// crc32c of a page of zeros.
fn zero_page_crc() -> u32 {
    static ZERO: [u8; PAGE] = [0; PAGE];
    static CRC: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CRC.get_or_init(|| format::page_crc(&ZERO))
}

/// Whether a page is all zero bytes.
fn is_zero(page: &[u8]) -> bool {
    page.chunks_exact(64).all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0)
}

impl SlotWriter<'_> {
    fn set(&mut self, q: u64, e: Entry) {
        self.table.set(q, e);
        let g = q / GROUP_PAGES as u64;
        if self.dirty_groups.last() != Some(&g) {
            self.dirty_groups.push(g);
        }
        self.done += 1;
        if self.done == self.half {
            failpoint::hit("mid-payload", self.seq);
        }
    }

    /// Page `q` holds no data: record a hole.
    fn hole(&mut self, q: u64) {
        if self.err.is_none() {
            self.holes += 1;
            self.set(q, Entry::hole(self.seq));
        }
    }

    /// Page `q` may hold data: record its crc (or a hole if it is all zero) and write it.
    fn page(&mut self, q: u64, src: &dyn PageSource) {
        if self.err.is_some() {
            return;
        }
        // The other slot holds the page as memory has it if it wrote it in this checkpoint (the
        // mirror), or in the previous one and the page has not changed since: reuse its crc,
        // and do not even read a page it recorded as a hole.
        let twin = self.twin.get(q);
        let (crc, zero) = if twin.written_by(self.seq) || (twin.written_by(self.seq - 1) && !src.changed_since_last(q))
        {
            (twin.crc, twin.hole)
        } else {
            // SAFETY: `q` is a live page of the mapped region, which the caller keeps unchanged
            // during the commit.
            let bytes = unsafe { core::slice::from_raw_parts((self.base + q * PAGE as u64) as *const u8, PAGE) };
            let crc = format::page_crc(bytes);
            (crc, crc == zero_page_crc() && is_zero(bytes))
        };
        if zero {
            self.hole(q);
            return;
        }
        self.set(q, Entry::page(crc, self.seq));
        match self.run {
            Some((a, b)) if q <= b + MAX_GAP && q + 1 - a <= MAX_WRITE_PAGES => self.run = Some((a, q + 1)),
            _ => {
                self.flush();
                self.run = Some((q, q + 1));
            }
        }
    }

    /// Writes the gathered run.
    fn flush(&mut self) {
        let Some((a, b)) = self.run.take() else { return };
        if self.err.is_some() {
            return;
        }
        let src = (self.base + a * PAGE as u64) as *const u8;
        let len = (b - a) as usize * PAGE;
        // SAFETY: the run lies inside live extents of the mapped region, which the caller keeps
        // unchanged during the commit.
        match unsafe { fs::pwrite_all(self.fd, src, len, self.geo.page_off(a)) } {
            Ok(()) => {
                self.bytes += len as u64;
                self.runs += 1;
            }
            Err(errno) => self.err = Some(CommitError { op: "write", slot: self.slot, errno }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_across_small_gaps_and_split_at_the_write_size() {
        let r = merge_runs([(0, 2), (4, 1), (9, 1), (20, 40)].into_iter(), 3, 16);
        assert_eq!(r, vec![(0, 5), (9, 1), (20, 16), (36, 16), (52, 8)]);
        assert_eq!(merge_runs([(5, 1), (6, 1)].into_iter(), 0, 16), vec![(5, 2)]);
        assert_eq!(merge_runs([(0, 10), (2, 1), (3, 9)].into_iter(), 0, 16), vec![(0, 12)]);
    }

    #[test]
    fn group_ranges_cover_the_extents_once() {
        let x = |first, npages| Extent { first, npages };
        assert_eq!(group_ranges(&[x(0, 65), x(100, 30), x(2000, 600)]), vec![(0, 1), (3, 6)]);
        assert_eq!(group_ranges(&[x(0, 0)]), vec![]);
    }

    #[test]
    fn series_are_random_and_never_zero() {
        let (a, b) = (new_series(), new_series());
        assert!(a != 0 && b != 0 && a != b);
    }
}
