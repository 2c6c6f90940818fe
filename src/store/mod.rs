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
//! 3. `sync` mode: `fdatasync`;
//! 4. write the header `COMMITTED` with the new sequence number and the summary's crc;
//! 5. `sync` mode: `fdatasync`.
//!
//! A crash before step 4 completes leaves the slot invalid and the other slot, the newest
//! committed checkpoint, intact. The commit record is a single 4 KiB write guarded by its own
//! crc, so a torn commit is detected, and restore then falls back to the other slot.
//!
//! The first checkpoint (and the first after a restore that found the other slot unusable) is
//! followed by a *mirror*: the same image written into the other slot under the same sequence
//! number, so that from then on both slots are complete and every checkpoint is incremental.
//!
//! After a restore from slot A, slot B lacks exactly the pages written into A after B's
//! checkpoint: the pages whose A-table epoch is newer than B's sequence number. That becomes
//! B's pending set, so the first checkpoint after a restore is incremental too.
#![allow(unsafe_code)] // Reads pages into, and writes them from, raw region memory.

pub mod file;
pub mod format;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::config::Durability;
use crate::error::{Errno, Error, Result};
use crate::failpoint;
use crate::sys::{fs, mman, now_ns};
use crate::track::PageSet;
use file::Dir;
use format::{Entry, Extent, GROUP_PAGES, Geometry, HEADER_LEN, Header, PAGE, STATE_COMMITTED, STATE_WRITING};

/// Pages (or table chunks) per write. Larger writes make ext4 cache the file in large folios,
/// and a later 4 KiB write into a large folio costs many times a small one; 64 KiB writes keep
/// both sequential bandwidth and scattered updates fast.
const MAX_WRITE_PAGES: u64 = 16;
/// Runs separated by at most this many unchanged pages are written as one.
const MAX_GAP: u64 = 3;
/// Pages per read when restoring.
const READ_PAGES: u64 = 512;

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

/// Reads pages `p..end` of a slot into the region and checks each against its table entry.
///
/// # Safety
/// `p..end` must lie in the region at `base` and nobody may use those pages meanwhile.
unsafe fn read_piece(
    fd: std::os::fd::BorrowedFd<'_>,
    base: u64,
    geo: Geometry,
    table: &Table,
    p: u64,
    end: u64,
) -> std::result::Result<(), String> {
    let dst = (base + p * PAGE as u64) as *mut u8;
    let len = ((end - p) as usize) * PAGE;
    // Faulting the pages in up front is far cheaper than one fault per page inside the read.
    mman::populate_write(dst as usize, len);
    // SAFETY: forwarded from the caller.
    let got = unsafe { fs::pread_full(fd, dst, len, geo.page_off(p)) }.map_err(|e| format!("read pages: {e}"))?;
    if got != len {
        return Err(format!("truncated: page {} is missing", p + (got / PAGE) as u64));
    }
    for q in p..end {
        // SAFETY: page `q` was just read into the region.
        let page = unsafe { core::slice::from_raw_parts((base + q * PAGE as u64) as *const u8, PAGE) };
        if format::page_crc(page) != table.get(q).crc {
            return Err(format!("page {q} checksum mismatch"));
        }
    }
    Ok(())
}

/// The pages in both `a` and `b` (sorted, disjoint extent lists).
fn intersect(a: &[Extent], b: &[Extent]) -> Vec<Extent> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let (lo, hi) = (x.first.max(y.first), x.end().min(y.end()));
            if lo < hi {
                out.push(Extent { first: lo, npages: hi - lo });
            }
        }
    }
    out.sort_by_key(|e| e.first);
    out
}

/// The ranges of groups `[g0, g1)` whose pages `extents` touch.
fn group_ranges(extents: &[Extent]) -> Vec<(u64, u64)> {
    let gp = GROUP_PAGES as u64;
    let groups = extents.iter().filter(|e| e.npages > 0).map(|e| (e.first / gp, e.end().div_ceil(gp) - e.first / gp));
    merge_runs(groups, 0, READ_PAGES).into_iter().map(|(g, n)| (g, g + n)).collect()
}

/// The in-memory copy of one slot's page table: one packed [`Entry`] per region page.
struct Table {
    ptr: *mut u64,
    len: usize,
}

// SAFETY: the table is plain memory owned by its Store; it is written only through `&mut`.
unsafe impl Send for Table {}
// SAFETY: shared access only reads (restore's reader threads check pages against it).
unsafe impl Sync for Table {}

impl Table {
    fn new(pages: usize) -> Result<Table> {
        let bytes = (pages.next_multiple_of(GROUP_PAGES) * 8).max(PAGE);
        let p = mman::map_anon(bytes).map_err(|e| Error::os("mmap (page table)", e))?;
        Ok(Table { ptr: p.as_ptr().cast(), len: bytes / 8 })
    }
    fn get(&self, p: u64) -> Entry {
        debug_assert!((p as usize) < self.len);
        // SAFETY: `p < len`, inside the mapping.
        Entry::unpack(unsafe { self.ptr.add(p as usize).read() })
    }
    fn set(&mut self, p: u64, e: Entry) {
        debug_assert!((p as usize) < self.len);
        // SAFETY: `p < len`, inside the mapping, which `&mut self` owns.
        unsafe { self.ptr.add(p as usize).write(e.pack()) }
    }
    /// The 4 KiB table chunk of group `g`, as stored on disk (little-endian, as in memory).
    fn chunk(&self, g: u64) -> &[u8] {
        let start = g as usize * GROUP_PAGES;
        debug_assert!(start + GROUP_PAGES <= self.len);
        // SAFETY: the chunk lies inside the mapping; x86-64 is little-endian, so the in-memory
        // u64s are the on-disk bytes.
        unsafe { core::slice::from_raw_parts(self.ptr.add(start).cast::<u8>(), PAGE) }
    }
    /// The chunks of groups `g0..g1`, contiguous.
    fn chunks(&self, g0: u64, g1: u64) -> &[u8] {
        let start = g0 as usize * GROUP_PAGES;
        assert!(g1 as usize * GROUP_PAGES <= self.len);
        // SAFETY: the chunks lie inside the mapping (checked above); see `chunk`.
        unsafe { core::slice::from_raw_parts(self.ptr.add(start).cast::<u8>(), (g1 - g0) as usize * PAGE) }
    }
    fn chunks_mut(&mut self, g0: u64, g1: u64) -> &mut [u8] {
        let start = g0 as usize * GROUP_PAGES;
        assert!(g1 as usize * GROUP_PAGES <= self.len);
        // SAFETY: as in `chunks`, with `&mut self` for exclusivity.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start).cast::<u8>(), (g1 - g0) as usize * PAGE) }
    }
    /// Empties the table by giving its pages back (they read as zero again), rather than
    /// writing zeros over what may be a large, mostly untouched mapping.
    fn clear(&mut self) {
        // SAFETY: the whole mapping is ours and `&mut self` means nobody reads it now.
        if unsafe { mman::discard(self.ptr as usize, self.len * 8) }.is_err() {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(self.ptr, 0, self.len) }
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by the table.
        unsafe { mman::unmap(self.ptr as usize, self.len * 8) };
    }
}

const _: () = assert!(cfg!(target_endian = "little"));

/// Statistics of one commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Sequence number committed.
    pub seq: u64,
    /// Slot written.
    pub slot: usize,
    /// Region pages written (mirror included).
    pub pages_written: u64,
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
}

/// What a restore found and did.
#[derive(Debug)]
pub struct Restored {
    /// The restored checkpoint's sequence number.
    pub seq: u64,
    /// The slot it came from.
    pub slot: usize,
    /// Its header.
    pub header: Header,
    /// Its meta block.
    pub meta: Vec<u8>,
    /// Pages read into the region.
    pub pages: u64,
    /// Problems met on the way: a slot that did not validate, named with the reason.
    pub warnings: Vec<String>,
    /// Whether a slot that may have held a newer checkpoint was rejected, so this restore
    /// fell back to the older one.
    pub fell_back: bool,
}

/// A checkpoint store for one region.
pub struct Store {
    dir_path: PathBuf,
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
    covered: [Vec<Extent>; 2],
    /// Sequence number of the committed checkpoint each slot holds, if valid.
    valid: [Option<u64>; 2],
    active: Option<usize>,
    seq: u64,
}

impl Store {
    /// A store in `dir` for the region `base..base+capacity`. Touches no file yet.
    pub fn new(dir: &Path, base: usize, capacity: usize, durability: Durability) -> Result<Store> {
        let pages = capacity / PAGE;
        let all = PageSet::new(pages)?;
        let other = PageSet::new(pages)?;
        Ok(Store {
            dir_path: dir.to_path_buf(),
            dir: None,
            files: [None, None],
            writable: [false, false],
            geo: Geometry::new(capacity as u64),
            base: base as u64,
            capacity: capacity as u64,
            durability,
            tables: [Table::new(pages)?, Table::new(pages)?],
            summaries: [Vec::new(), Vec::new()],
            pending: [all, other],
            covered: [Vec::new(), Vec::new()],
            valid: [None, None],
            active: None,
            seq: 0,
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

    /// Changes the durability of later commits.
    pub fn set_durability(&mut self, d: Durability) {
        self.durability = d;
    }

    /// Pages each slot still lacks (pending writes).
    pub fn pending(&self) -> [&PageSet; 2] {
        [&self.pending[0], &self.pending[1]]
    }

    // -----------------------------------------------------------------------------------------
    // Restore.

    /// Finds the newest valid checkpoint and reads it into the region at `self.base`.
    ///
    /// `accept` inspects the meta block (binary identity) before any page is read; its error
    /// ends the restore. `Ok(None)`: there is no checkpoint (a fresh start).
    ///
    /// # Safety
    /// The region must be mapped, zeroed, and referenced by nobody: it is overwritten.
    pub unsafe fn restore(&mut self, accept: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<Option<Restored>> {
        let Some(dir) = Dir::open_existing(&self.dir_path)? else { return Ok(None) };
        let mut reasons = Vec::new();
        let mut headers: [Option<Header>; 2] = [None, None];
        let mut never_committed = true;
        let mut damaged: Vec<String> = Vec::new();
        for (s, header) in headers.iter_mut().enumerate() {
            let Some(fd) = dir.open_slot(s, false)? else {
                reasons.push(format!("{}: missing", file::slot_name(s)));
                continue;
            };
            let mut buf = vec![0u8; HEADER_LEN];
            let n = fs::pread_into(fd.as_fd(), &mut buf, 0).map_err(|e| Error::os_at("read", dir.slot_path(s), e))?;
            match format::decode_header(&buf[..n], s as u32) {
                Ok(h) => {
                    never_committed = false;
                    *header = Some(h);
                }
                Err(why) => {
                    // An empty file, or the very first checkpoint interrupted, held nothing.
                    let first_try = n == 0 || (n == HEADER_LEN && is_writing_first(&buf));
                    never_committed &= first_try;
                    // A checkpoint interrupted by a crash is expected; anything else is damage
                    // and is reported even if the other slot restores.
                    if !(n == HEADER_LEN && is_writing(&buf)) {
                        damaged.push(format!("{}: {why}", dir.slot_path(s).display()));
                    }
                    reasons.push(format!("{}: {why}", file::slot_name(s)));
                }
            }
            self.files[s] = Some(fd);
        }
        if headers.iter().all(Option::is_none) {
            if never_committed {
                // No checkpoint was ever committed here: start fresh, keep the directory.
                self.dir = Some(dir);
                return Ok(None);
            }
            return Err(Error::NoValidCheckpoint { dir: self.dir_path.clone(), reasons });
        }
        let mut order: Vec<usize> = (0..2).filter(|&s| headers[s].is_some()).collect();
        order.sort_by_key(|&s| std::cmp::Reverse(headers[s].as_ref().map(|h| h.seq)));
        let fell_back_on_header = !damaged.is_empty();
        let mut warnings: Vec<String> = damaged;
        for (i, &s) in order.iter().enumerate() {
            let h = headers[s].clone().expect("filtered above");
            if h.base != self.base || h.capacity != self.capacity {
                return Err(Error::Mismatch {
                    dir: self.dir_path.clone(),
                    what: format!(
                        "it holds a region at {:#x} of {} bytes, this run asks for {:#x} of {} bytes \
                         (set CRTHREADS_BASE and CRTHREADS_CAPACITY as when it was written)",
                        h.base, h.capacity, self.base, self.capacity
                    ),
                });
            }
            let meta = self.read_meta(s, &h).map_err(|why| slot_err(&dir, s, why));
            let meta = match meta {
                Ok(m) => m,
                Err(e) => {
                    warnings.push(e.to_string());
                    continue;
                }
            };
            accept(&meta)?;
            if i > 0 {
                // Pages of a failed newer attempt may be in the region: start from zero.
                // SAFETY: the caller guarantees nobody references the region.
                unsafe { self.clear_region()? };
            }
            // SAFETY: forwarded from the caller.
            match unsafe { self.load_slot(s, &h, true) } {
                Ok(pages) => {
                    let other = 1 - s;
                    let other_ok = match headers[other].clone() {
                        // SAFETY: loading only tables (no pages) does not touch the region.
                        Some(oh) if oh.seq <= h.seq => match unsafe { self.load_slot(other, &oh, false) } {
                            Ok(_) => Some(oh),
                            Err(why) => {
                                warnings.push(slot_err(&dir, other, why).to_string());
                                None
                            }
                        },
                        _ => None,
                    };
                    self.adopt_restored(s, &h, other_ok.as_ref());
                    self.dir = Some(dir);
                    let fell_back = i > 0 || fell_back_on_header;
                    return Ok(Some(Restored { seq: h.seq, slot: s, header: h, meta, pages, warnings, fell_back }));
                }
                Err(why) => warnings.push(slot_err(&dir, s, why).to_string()),
            }
        }
        reasons.extend(warnings);
        Err(Error::NoValidCheckpoint { dir: self.dir_path.clone(), reasons })
    }

    unsafe fn clear_region(&self) -> Result<()> {
        // SAFETY: forwarded from `restore`'s caller.
        unsafe { mman::remap_zero(self.base as usize, self.capacity as usize) }
            .map_err(|e| Error::os("mmap (clear region)", e))
    }

    fn read_meta(&self, s: usize, h: &Header) -> std::result::Result<Vec<u8>, String> {
        let fd = self.files[s].as_ref().ok_or("not open")?;
        let mut meta = vec![0u8; h.meta_len as usize];
        let n = fs::pread_into(fd.as_fd(), &mut meta, format::META_OFF).map_err(|e| format!("read meta: {e}"))?;
        if n != meta.len() || crc32c::crc32c(&meta) != h.meta_crc {
            return Err("meta block is truncated or its checksum does not match".into());
        }
        Ok(meta)
    }

    /// Verifies slot `s` link by link and loads its summary and table; with `pages`, also
    /// reads its live pages into the region and checks each one. Returns pages read.
    unsafe fn load_slot(&mut self, s: usize, h: &Header, pages: bool) -> std::result::Result<u64, String> {
        let fd = self.files[s].as_ref().ok_or("not open")?.try_clone().map_err(|e| e.to_string())?;
        let mut sum = vec![0u8; h.ngroups as usize * 4];
        let n = fs::pread_into(fd.as_fd(), &mut sum, format::SUMMARY_OFF).map_err(|e| format!("read summary: {e}"))?;
        let summary = format::decode_summary(&sum[..n], h.ngroups, h.summary_crc)?;
        let table = &mut self.tables[s];
        table.clear();
        // The table chunks of the groups the extents touch, read a range of neighbours at once.
        for (g0, g1) in group_ranges(&h.extents) {
            let off = self.geo.chunk_off(g0);
            let buf = table.chunks_mut(g0, g1);
            let n = fs::pread_into(fd.as_fd(), buf, off).map_err(|e| format!("read table: {e}"))?;
            for g in g0..g1 {
                let at = ((g - g0) as usize) * PAGE;
                if n < at + PAGE || crc32c::crc32c(&buf[at..at + PAGE]) != summary[g as usize] {
                    return Err(format!("table chunk {g} is truncated or its checksum does not match"));
                }
            }
        }
        let mut count = 0u64;
        if pages {
            let mut pieces = Vec::new();
            for e in &h.extents {
                let mut p = e.first;
                while p < e.end() {
                    let end = (p + READ_PAGES).min(e.end());
                    pieces.push((p, end));
                    p = end;
                }
            }
            count = pieces.iter().map(|(p, e)| e - p).sum();
            // Reading is dominated by faulting in fresh memory, copying and checksumming, all
            // of which scale with cores: split the pieces between a few threads.
            let next = std::sync::atomic::AtomicUsize::new(0);
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
            let table = &self.tables[s];
            let (base, geo) = (self.base, self.geo);
            let work = || -> std::result::Result<(), String> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(p, end)) = pieces.get(i) else { return Ok(()) };
                    // SAFETY: pieces are disjoint runs of live pages inside the region, which
                    // the caller lets us overwrite; the table is only read meanwhile.
                    unsafe { read_piece(fd.as_fd(), base, geo, table, p, end) }?;
                }
            };
            let results: Vec<std::result::Result<(), String>> = std::thread::scope(|sc| {
                let helpers: Vec<_> = (1..workers).map(|_| sc.spawn(work)).collect();
                let mut r = vec![work()];
                r.extend(helpers.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("reader thread failed".into()))));
                r
            });
            results.into_iter().collect::<std::result::Result<Vec<()>, String>>()?;
        }
        self.summaries[s] = summary;
        Ok(count)
    }

    /// Sets the bookkeeping after slot `s` was restored; `other` is the other slot's header if
    /// it holds a valid older (or equal) checkpoint whose table is loaded.
    fn adopt_restored(&mut self, s: usize, h: &Header, other: Option<&Header>) {
        let o = 1 - s;
        self.active = Some(s);
        self.seq = h.seq;
        self.valid[s] = Some(h.seq);
        self.covered[s] = h.extents.clone();
        self.pending[s].clear();
        self.pending[o].clear();
        match other {
            Some(oh) => {
                self.valid[o] = Some(oh.seq);
                // Memory outside the restored extents is zero, whatever the older slot holds.
                self.covered[o] = intersect(&oh.extents, &h.extents);
                for e in &h.extents {
                    for p in e.first..e.end() {
                        if self.tables[s].get(p).newer_than(oh.seq) {
                            self.pending[o].insert(p as usize);
                        }
                    }
                }
            }
            None => {
                self.valid[o] = None;
                self.covered[o] = Vec::new();
                self.summaries[o].clear();
                self.tables[o].clear();
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Checkpoint.

    /// Commits a checkpoint of the live pages `extents` of the region, writing into the
    /// inactive slot every page in its pending set. The caller has added the pages written
    /// since the previous checkpoint to both pending sets, and keeps the region unchanged
    /// during the call.
    pub fn commit(&mut self, extents: &[Extent], meta: &[u8]) -> Result<CommitStats> {
        if extents.len() > format::MAX_EXTENTS || meta.len() > format::META_MAX {
            return Err(Error::Unsupported {
                what: "this checkpoint".into(),
                why: "too many extents or meta too large".into(),
            });
        }
        if self.dir.is_none() {
            self.dir = Some(Dir::open_or_create(&self.dir_path, self.durability == Durability::Sync)?);
        }
        let seq = self.seq + 1;
        let target = self.active.map_or(0, |a| 1 - a);
        for c in self.covered.iter_mut() {
            *c = intersect(c, extents);
        }
        let mut st = CommitStats { seq, slot: target, ..Default::default() };
        self.write_slot(target, seq, extents, meta, &mut st)?;
        self.active = Some(target);
        self.seq = seq;
        let other = 1 - target;
        if self.valid[other].is_none() {
            failpoint::hit("mirror", seq);
            // A failed mirror leaves the pages pending; the next checkpoint writes them.
            if self.write_slot(other, seq, extents, meta, &mut st).is_ok() {
                st.mirrored = true;
            }
        }
        Ok(st)
    }

    fn write_slot(&mut self, s: usize, seq: u64, extents: &[Extent], meta: &[u8], st: &mut CommitStats) -> Result<()> {
        let dir = self.dir.as_ref().expect("opened by commit");
        let path = dir.slot_path(s);
        let os = |op: &'static str| {
            let path = path.clone();
            move |e: Errno| Error::os_at(op, path, e)
        };
        if !self.writable[s] {
            let (fd, created) = dir.create_slot(s)?;
            if created && self.durability == Durability::Sync {
                dir.sync()?;
            }
            self.files[s] = Some(fd);
            self.writable[s] = true;
        }
        let fd = self.files[s]
            .as_ref()
            .expect("opened above")
            .try_clone()
            .map_err(|e| Error::os_at("dup", &path, Errno(e.raw_os_error().unwrap_or(0))))?;
        let fd = fd.as_fd();
        let t0 = now_ns();

        // 1. The slot stops vouching for its old contents.
        self.valid[s] = None;
        let writing = Header::writing(s as u32, seq, self.base, self.capacity);
        fs::pwrite_from(fd, &format::encode_header(&writing)[..], 0).map_err(os("write"))?;
        st.bytes_written += HEADER_LEN as u64;
        // Groups beyond the live extents hold nothing restore will read: give their space
        // back (after a failed checkpoint on a full disk, this is what makes room again).
        let ngroups = format::groups_for(extents);
        let needed = self.geo.page_off(ngroups * GROUP_PAGES as u64);
        if fs::fstat(fd).map_err(os("stat"))?.size > needed {
            fs::ftruncate(fd, needed).map_err(os("truncate"))?;
            // Pages past the cut are no longer held by this slot.
            let limit = ngroups * GROUP_PAGES as u64;
            for c in self.covered[s].iter_mut() {
                c.npages = c.npages.min(limit.saturating_sub(c.first));
            }
        }
        failpoint::hit("before-payload", seq);

        // 2. Pages that became live since this slot's last commit are pending too.
        self.mark_newly_live(s, extents);
        let runs = self.plan_writes(s, extents);
        let pages_pending: u64 = extents.iter().map(|e| self.pending[s].count(*e) as u64).sum();
        let mut dirty_groups: Vec<u64> = Vec::new();
        let half = runs.len() / 2;
        for (i, &(p, n)) in runs.iter().enumerate() {
            if i == half {
                failpoint::hit("mid-payload", seq);
            }
            let src = (self.base + p * PAGE as u64) as *const u8;
            // SAFETY: the run lies inside live extents of the mapped region, which the caller
            // keeps unchanged during the commit.
            unsafe { fs::pwrite_all(fd, src, n as usize * PAGE, self.geo.page_off(p)) }.map_err(os("write"))?;
            for q in p..p + n {
                if !self.pending[s].contains(q as usize) {
                    continue; // a gap page written to merge two runs: unchanged, same entry
                }
                // The mirror writes pages the other slot took a moment ago: reuse their crc.
                let twin = self.tables[1 - s].get(q);
                let crc = if twin.epoch == seq as u32 && twin.crc != 0 {
                    twin.crc
                } else {
                    // SAFETY: as above; the page is mapped and readable.
                    format::page_crc(unsafe {
                        core::slice::from_raw_parts((self.base + q * PAGE as u64) as *const u8, PAGE)
                    })
                };
                self.tables[s].set(q, Entry { crc, epoch: seq as u32 });
                let g = q / GROUP_PAGES as u64;
                if dirty_groups.last() != Some(&g) {
                    dirty_groups.push(g);
                }
            }
            st.bytes_written += n * PAGE as u64;
            st.runs += 1;
        }
        st.pages_written += pages_pending;
        if half == runs.len() {
            failpoint::hit("mid-payload", seq);
        }
        let t1 = now_ns();
        st.copy_ns += t1 - t0;

        // Table chunks (neighbours merged into one write), summary, meta.
        dirty_groups.dedup();
        let summary = &mut self.summaries[s];
        summary.resize(ngroups as usize, 0);
        for &g in &dirty_groups {
            if (g as usize) < summary.len() {
                summary[g as usize] = crc32c::crc32c(self.tables[s].chunk(g));
            }
        }
        for (g, n) in merge_runs(dirty_groups.iter().map(|&g| (g, 1)), MAX_GAP, MAX_WRITE_PAGES) {
            fs::pwrite_from(fd, self.tables[s].chunks(g, g + n), self.geo.chunk_off(g)).map_err(os("write"))?;
            st.bytes_written += n * PAGE as u64;
        }
        fs::pwrite_from(fd, &format::encode_summary(summary), format::SUMMARY_OFF).map_err(os("write"))?;
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
            base: self.base,
            capacity: self.capacity,
            ngroups: ngroups as u32,
            extents: extents.to_vec(),
            summary_crc: format::summary_crc(summary),
            meta_len: meta.len() as u32,
            meta_crc: crc32c::crc32c(meta),
            durability: (self.durability == Durability::Sync) as u32,
            time_ns: crate::sys::realtime_ns(),
            pages_written: pages_pending,
        };
        fs::pwrite_from(fd, &format::encode_header(&header)[..], 0).map_err(os("write"))?;
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
        self.covered[s] = extents.to_vec();
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

    /// The writes that bring slot `s` up to date: its pending runs, merged across small gaps
    /// (a clean page in a gap holds the same bytes in memory and in the slot, so rewriting it is
    /// harmless and cheaper than another call) and cut into writes of at most
    /// [`MAX_WRITE_PAGES`].
    fn plan_writes(&self, s: usize, extents: &[Extent]) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for e in extents {
            let mut runs = Vec::new();
            self.pending[s].for_each_run(*e, |first, len| runs.push((first as u64, len as u64)));
            out.extend(merge_runs(runs.into_iter(), MAX_GAP, MAX_WRITE_PAGES));
        }
        out
    }

    /// Removes the checkpoint files and directory (the program finished).
    pub fn retire(&mut self) -> Result<()> {
        self.files = [None, None];
        self.writable = [false, false];
        let dir = match self.dir.take() {
            Some(d) => d,
            None => match Dir::open_existing(&self.dir_path)? {
                Some(d) => d,
                None => return Ok(()),
            },
        };
        dir.remove()
    }
}

/// Whether a header buffer is the `WRITING` marker of checkpoint 1 (the very first attempt).
fn is_writing_first(b: &[u8]) -> bool {
    is_writing(b) && b[24..32] == 1u64.to_le_bytes()
}

/// Whether a header buffer is a `WRITING` marker (with a valid crc): a checkpoint was
/// interrupted.
fn is_writing(b: &[u8]) -> bool {
    b.len() == HEADER_LEN
        && b[..8] == format::MAGIC
        && b[20..24] == STATE_WRITING.to_le_bytes()
        && crc32c::crc32c(&b[..HEADER_LEN - 4]).to_le_bytes() == b[HEADER_LEN - 4..]
}

fn slot_err(dir: &Dir, s: usize, why: String) -> Error {
    Error::Corrupt { path: dir.slot_path(s), reason: why }
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
    fn intersection_keeps_only_common_pages() {
        let x = |first, npages| Extent { first, npages };
        assert_eq!(intersect(&[x(0, 10), x(20, 10)], &[x(5, 20)]), vec![x(5, 5), x(20, 5)]);
        assert_eq!(intersect(&[x(0, 10)], &[x(10, 5)]), vec![]);
    }

    #[test]
    fn group_ranges_cover_the_extents_once() {
        let x = |first, npages| Extent { first, npages };
        assert_eq!(group_ranges(&[x(0, 65), x(100, 30), x(2000, 600)]), vec![(0, 1), (3, 6)]);
        assert_eq!(group_ranges(&[x(0, 0)]), vec![]);
    }
}
