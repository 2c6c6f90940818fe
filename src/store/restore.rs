//! Restore: find the newest slot that validates end to end and read it into the region.
//!
//! Every link of the trust chain is checked before what it vouches for is used: header crc →
//! summary crc → table-chunk crcs → page crcs. A slot that fails falls back to the other one
//! with a warning; a slot of another series (a file of another run) is never combined with this
//! chain. Holes (pages recorded as reading zero) are not read: the freshly mapped region is
//! zero there already, so a sparse heap is restored sparse.
#![allow(unsafe_code)] // Reads pages into raw region memory.

use std::os::fd::{AsFd, BorrowedFd};

use super::file::{self, Dir};
use super::format::{self, GROUP_PAGES, Geometry, HEADER_LEN, Header, PAGE, STATE_WRITING};
use super::table::Table;
use super::{READ_PAGES, Store, group_ranges};
use crate::error::{Errno, Error, Result};
use crate::sys::{fs, mman};

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
    /// Pages left as zero (holes).
    pub holes: u64,
    /// Problems met on the way: a slot that did not validate, named with the reason.
    pub warnings: Vec<String>,
    /// Whether a slot that may have held a newer checkpoint was rejected, so this restore
    /// fell back to the older one.
    pub fell_back: bool,
}

/// The region (base, capacity) of the newest slot whose header decodes, if any: a run that
/// does not set them explicitly takes the checkpoint's. Reads headers only.
pub fn peek_region(dir: &Dir) -> Option<(u64, u64)> {
    let mut best: Option<Header> = None;
    for s in 0..2 {
        let Ok(Some(fd)) = dir.open_slot(s, false) else { continue };
        let mut buf = [0u8; HEADER_LEN];
        let Ok(n) = fs::pread_into(fd.as_fd(), &mut buf, 0) else { continue };
        if let Ok(h) = format::decode_header(&buf[..n], s as u32) {
            if best.as_ref().is_none_or(|b| h.seq > b.seq) {
                best = Some(h);
            }
        }
    }
    best.map(|h| (h.base, h.capacity))
}

/// Why a slot could not be restored: the OS refused a read (its errno is kept), or the bytes
/// did not validate.
#[derive(Debug)]
enum SlotError {
    Read { what: &'static str, errno: Errno },
    Invalid(String),
}

impl From<String> for SlotError {
    fn from(s: String) -> SlotError {
        SlotError::Invalid(s)
    }
}

impl From<&str> for SlotError {
    fn from(s: &str) -> SlotError {
        SlotError::Invalid(s.into())
    }
}

fn read_err(what: &'static str) -> impl Fn(Errno) -> SlotError {
    move |errno| SlotError::Read { what, errno }
}

impl Store {
    /// Finds the newest valid checkpoint in the claimed directory and reads it into the region
    /// at `self.base`.
    ///
    /// `accept` inspects the meta block (binary identity) before any page is read; its error
    /// ends the restore. `Ok(None)`: there is no checkpoint (a fresh start); `notes` then may
    /// say why (an interrupted first checkpoint).
    ///
    /// # Safety
    /// The region must be mapped, zeroed, and referenced by nobody: it is overwritten.
    pub unsafe fn restore(
        &mut self,
        accept: &mut dyn FnMut(&[u8]) -> Result<()>,
        notes: &mut Vec<String>,
    ) -> Result<Option<Restored>> {
        let dir = self.dir.take().ok_or(Error::NotInitialised)?;
        // SAFETY: forwarded.
        let r = unsafe { self.restore_from(&dir, accept, notes, false) };
        self.dir = Some(dir);
        r
    }

    /// As [`Store::restore`], into a region that is in use and tracked (a rollback): the
    /// region keeps its mapping (a write tracker stays registered on it), and a slot that
    /// fails after pages were read is cleared with `MADV_DONTNEED` before the other is tried.
    ///
    /// # Safety
    /// As for [`Store::restore`]: the region's pages below the current live end must be
    /// writable and zero, and nobody may reference the region meanwhile.
    pub unsafe fn restore_in_place(
        &mut self,
        accept: &mut dyn FnMut(&[u8]) -> Result<()>,
        notes: &mut Vec<String>,
    ) -> Result<Option<Restored>> {
        let dir = self.dir.take().ok_or(Error::NotInitialised)?;
        // SAFETY: forwarded.
        let r = unsafe { self.restore_from(&dir, accept, notes, true) };
        self.dir = Some(dir);
        r
    }

    unsafe fn restore_from(
        &mut self,
        dir: &Dir,
        accept: &mut dyn FnMut(&[u8]) -> Result<()>,
        notes: &mut Vec<String>,
        in_place: bool,
    ) -> Result<Option<Restored>> {
        let mut reasons = Vec::new();
        let mut headers: [Option<Header>; 2] = [None, None];
        let mut missing = [false; 2];
        let mut never_committed = true;
        let mut damaged: Vec<String> = Vec::new();
        let mut swapped = 0;
        for (s, header) in headers.iter_mut().enumerate() {
            let Some(fd) = dir.open_slot(s, false)? else {
                missing[s] = true;
                reasons.push(Error::Corrupt { path: dir.slot_path(s), reason: "missing".into() });
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
                    swapped += why.contains("swapped") as usize;
                    // A checkpoint interrupted by a crash is expected; anything else is damage
                    // and is reported even if the other slot restores.
                    if !(n == HEADER_LEN && is_writing(&buf)) {
                        damaged.push(format!("{}: {why}", dir.slot_path(s).display()));
                    }
                    reasons.push(Error::Corrupt { path: dir.slot_path(s), reason: why });
                }
            }
            self.files[s] = Some(fd);
            // Opened for reading: `prepare` opens it for writing before the next commit.
            self.writable[s] = false;
        }
        if headers.iter().all(Option::is_none) {
            if never_committed {
                if !missing.iter().all(|&m| m) {
                    notes.push(format!(
                        "{} holds no committed checkpoint (the first checkpoint was interrupted); starting fresh",
                        dir.path().display()
                    ));
                }
                return Ok(None);
            }
            if swapped == 2 {
                return Err(Error::Corrupt {
                    path: dir.path().to_path_buf(),
                    reason: "the two slot files were swapped (slot-0 holds slot 1's header and slot-1 slot 0's); \
                             rename them back (slot-0 to slot-1 and slot-1 to slot-0) to recover the checkpoint"
                        .into(),
                });
            }
            return Err(Error::NoValidCheckpoint { dir: dir.path().to_path_buf(), reasons });
        }
        let mut order: Vec<usize> = (0..2).filter(|&s| headers[s].is_some()).collect();
        order.sort_by_key(|&s| std::cmp::Reverse(headers[s].as_ref().map(|h| h.seq)));
        let fell_back_on_header = !damaged.is_empty();
        let mut warnings: Vec<String> = damaged;
        let mut failures: Vec<Error> = Vec::new();
        for (i, &s) in order.iter().enumerate() {
            let h = headers[s].expect("filtered above");
            if h.base != self.base || h.capacity != self.capacity {
                return Err(Error::Mismatch {
                    dir: dir.path().to_path_buf(),
                    what: format!(
                        "it holds a region at {:#x} of {} bytes, this run asks for {:#x} of {} bytes \
                         (leave CRTHREADS_BASE and CRTHREADS_CAPACITY unset, or set them as when it was written)",
                        h.base, h.capacity, self.base, self.capacity
                    ),
                });
            }
            let meta = match self.read_meta(s, &h) {
                Ok(m) => m,
                Err(why) => {
                    let e = slot_err(dir, s, why);
                    warnings.push(e.to_string());
                    failures.push(e);
                    continue;
                }
            };
            accept(&meta)?;
            if i > 0 {
                // Pages of a failed newer attempt may be in the region: start from zero.
                // SAFETY: the caller guarantees nobody references the region.
                unsafe { self.clear_region(in_place)? };
            }
            // SAFETY: forwarded from the caller.
            match unsafe { self.load_slot(s, &h, true) } {
                Ok((pages, holes)) => {
                    let other = 1 - s;
                    let other_ok = match headers[other] {
                        Some(oh) if oh.series != h.series => {
                            warnings.push(format!(
                                "{} belongs to another checkpoint series (a file from another run?); it is \
                                 ignored and will be rewritten",
                                dir.slot_path(other).display()
                            ));
                            None
                        }
                        // SAFETY: loading only tables (no pages) does not touch the region.
                        Some(oh) if oh.seq <= h.seq => match unsafe { self.load_slot(other, &oh, false) } {
                            Ok(_) => Some(oh),
                            Err(why) => {
                                warnings.push(slot_err(dir, other, why).to_string());
                                None
                            }
                        },
                        _ => None,
                    };
                    if missing[other] && h.seq >= 2 {
                        warnings.push(format!(
                            "{} is missing (deleted?); restored checkpoint {} from {}, which may not be the newest",
                            dir.slot_path(other).display(),
                            h.seq,
                            file::slot_name(s)
                        ));
                    }
                    self.adopt_restored(s, &h, other_ok.as_ref());
                    let fell_back = i > 0 || fell_back_on_header;
                    return Ok(Some(Restored {
                        seq: h.seq,
                        slot: s,
                        header: h,
                        meta,
                        pages,
                        holes,
                        warnings,
                        fell_back,
                    }));
                }
                Err(why) => {
                    let e = slot_err(dir, s, why);
                    warnings.push(e.to_string());
                    failures.push(e);
                }
            }
        }
        reasons.extend(failures);
        Err(Error::NoValidCheckpoint { dir: dir.path().to_path_buf(), reasons })
    }

    unsafe fn clear_region(&self, in_place: bool) -> Result<()> {
        if in_place {
            // SAFETY: forwarded from `restore_in_place`'s caller; the mapping stays.
            return unsafe { mman::discard(self.base as usize, self.capacity as usize) }
                .map_err(|e| Error::os("madvise (clear region)", e));
        }
        // SAFETY: forwarded from `restore`'s caller.
        unsafe { mman::remap_zero(self.base as usize, self.capacity as usize) }
            .map_err(|e| Error::os("mmap (clear region)", e))
    }

    fn read_meta(&self, s: usize, h: &Header) -> std::result::Result<Vec<u8>, SlotError> {
        let fd = self.files[s].as_ref().ok_or("not open")?;
        let mut meta = vec![0u8; h.meta_len as usize];
        let n = fs::pread_into(fd.as_fd(), &mut meta, format::META_OFF).map_err(read_err("read meta"))?;
        if n != meta.len() || crc32c::crc32c(&meta) != h.meta_crc {
            return Err("meta block is truncated or its checksum does not match".into());
        }
        Ok(meta)
    }

    /// Verifies slot `s` link by link and loads its summary and table; with `pages`, also
    /// reads its live pages into the region and checks each one. Returns pages read and holes.
    unsafe fn load_slot(&mut self, s: usize, h: &Header, pages: bool) -> std::result::Result<(u64, u64), SlotError> {
        let fd = self.files[s]
            .as_ref()
            .ok_or("not open")?
            .try_clone()
            .map_err(|e| SlotError::Read { what: "dup", errno: Errno(e.raw_os_error().unwrap_or(libc::EIO)) })?;
        let mut sum = vec![0u8; h.ngroups as usize * 4];
        let n = fs::pread_into(fd.as_fd(), &mut sum, format::SUMMARY_OFF).map_err(read_err("read summary"))?;
        let summary = format::decode_summary(&sum[..n], h.ngroups, h.summary_crc)?;
        let table = &mut self.tables[s];
        table.clear();
        // The table chunks of the groups the extents touch, read a range of neighbours at once.
        for (g0, g1) in group_ranges(&h.extents) {
            let off = self.geo.chunk_off(g0);
            let buf = table.chunks_mut(g0, g1);
            let n = fs::pread_into(fd.as_fd(), buf, off).map_err(read_err("read table"))?;
            for g in g0..g1 {
                let at = ((g - g0) as usize) * PAGE;
                if n < at + PAGE || crc32c::crc32c(&buf[at..at + PAGE]) != summary[g as usize] {
                    return Err(format!("table chunk {g} is truncated or its checksum does not match").into());
                }
            }
        }
        let mut counts = (0, 0);
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
            let total: u64 = pieces.iter().map(|(p, e)| e - p).sum();
            // Reading is dominated by faulting in fresh memory, copying and checksumming, all
            // of which scale with cores: split the pieces between a few threads.
            let next = std::sync::atomic::AtomicUsize::new(0);
            let holes = std::sync::atomic::AtomicU64::new(0);
            let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
            let table = &self.tables[s];
            let (base, geo) = (self.base, self.geo);
            let work = || -> std::result::Result<(), SlotError> {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(p, end)) = pieces.get(i) else { return Ok(()) };
                    // SAFETY: pieces are disjoint runs of live pages inside the region, which
                    // the caller lets us overwrite; the table is only read meanwhile.
                    let h = unsafe { read_piece(fd.as_fd(), base, geo, table, p, end) }?;
                    holes.fetch_add(h, std::sync::atomic::Ordering::Relaxed);
                }
            };
            // The first failure, if any; the other readers stop at their next piece.
            let failure: std::sync::Mutex<Option<SlotError>> = std::sync::Mutex::new(None);
            let run = || {
                if let Err(e) = work() {
                    next.store(usize::MAX / 2, std::sync::atomic::Ordering::Relaxed);
                    let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                    f.get_or_insert(e);
                }
            };
            if !crate::sys::thread::parallel(workers - 1, &run) {
                return Err("a checkpoint reader failed".into());
            }
            if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
            let holes = holes.into_inner();
            counts = (total - holes, holes);
        }
        self.summaries[s].clear();
        self.summaries[s].extend_from_slice(&summary);
        Ok(counts)
    }

    /// Sets the bookkeeping after slot `s` was restored; `other` is the other slot's header if
    /// it holds a valid older (or equal) checkpoint of the same series whose table is loaded.
    fn adopt_restored(&mut self, s: usize, h: &Header, other: Option<&Header>) {
        let o = 1 - s;
        self.active = Some(s);
        self.seq = h.seq;
        self.series = h.series;
        self.valid[s] = Some(h.seq);
        self.covered[s] = h.extents;
        self.pending[s].clear();
        self.pending[o].clear();
        match other {
            Some(oh) => {
                self.valid[o] = Some(oh.seq);
                // Memory outside the restored extents is zero, whatever the older slot holds.
                self.covered[o] = oh.extents.intersect(&h.extents);
                // Pending for the older slot: what it lacks. Pages written into `s` after its
                // checkpoint, and every page the two slots record differently: a page the heap
                // held free (a hole in one slot) may be stored as data in the other, written
                // when it was allocated but not yet written. Memory now holds `s`'s version (a
                // hole reads as zero), so the older slot must not keep the other one: a later
                // write of its neighbours would rewrite the page under the stale checksum.
                let (mine, older) = (&self.tables[s], &self.tables[o]);
                for e in &h.extents {
                    for p in e.first..e.end() {
                        let (a, b) = (mine.get(p), older.get(p));
                        if a.newer_than(oh.seq) || a.hole != b.hole || (!a.hole && a.crc != b.crc) {
                            self.pending[o].insert(p as usize);
                        }
                    }
                }
            }
            None => {
                self.valid[o] = None;
                self.covered[o] = Default::default();
                self.summaries[o].clear();
                self.tables[o].clear();
            }
        }
    }
}

/// Reads the stored pages of `p..end` of a slot into the region and checks each against its
/// table entry; holes are left as they are (zero). Returns the number of holes.
///
/// # Safety
/// `p..end` must lie in the region at `base` and nobody may use those pages meanwhile.
unsafe fn read_piece(
    fd: BorrowedFd<'_>,
    base: u64,
    geo: Geometry,
    table: &Table,
    p: u64,
    end: u64,
) -> std::result::Result<u64, SlotError> {
    let mut holes = 0;
    let mut q = p;
    while q < end {
        if table.get(q).hole {
            holes += 1;
            q += 1;
            continue;
        }
        let mut r = q + 1;
        while r < end && !table.get(r).hole {
            r += 1;
        }
        let dst = (base + q * PAGE as u64) as *mut u8;
        let len = ((r - q) as usize) * PAGE;
        // Faulting the pages in up front is far cheaper than one fault per page inside the read.
        mman::populate_write(dst as usize, len);
        // SAFETY: forwarded from the caller.
        let got = unsafe { fs::pread_full(fd, dst, len, geo.page_off(q)) }.map_err(read_err("read pages"))?;
        if got != len {
            return Err(format!("truncated: page {} is missing", q + (got / PAGE) as u64).into());
        }
        for x in q..r {
            // SAFETY: page `x` was just read into the region.
            let page = unsafe { core::slice::from_raw_parts((base + x * PAGE as u64) as *const u8, PAGE) };
            if format::page_crc(page) != table.get(x).crc {
                return Err(format!("page {x} checksum mismatch").into());
            }
        }
        q = r;
    }
    Ok(holes)
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

fn slot_err(dir: &Dir, s: usize, why: SlotError) -> Error {
    match why {
        SlotError::Read { what, errno } => Error::os_at(what, dir.slot_path(s), errno),
        SlotError::Invalid(reason) => Error::Corrupt { path: dir.slot_path(s), reason },
    }
}

const _: () = assert!(GROUP_PAGES * 8 == PAGE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::pages::{Extent, PageSet};
    use crate::store::PageSource;
    use crate::sys::mman;

    /// Which pages hold no data (free memory) and which changed since the last checkpoint.
    struct Source {
        absent: PageSet,
        recent: PageSet,
    }

    impl PageSource for Source {
        fn data_runs(&self, first: u64, n: u64, f: &mut dyn FnMut(u64, u64)) {
            for p in first..first + n {
                if !self.absent.contains(p as usize) {
                    f(p, 1);
                }
            }
        }
        fn changed_since_last(&self, p: u64) -> bool {
            self.recent.contains(p as usize)
        }
    }

    const PAGES: usize = 16;
    const CAPACITY: usize = 2 << 20;

    fn page(base: usize, p: usize) -> &'static mut [u8] {
        // SAFETY: the test's region is mapped for CAPACITY bytes and lives for the whole test;
        // nothing else touches it while a page is borrowed.
        unsafe { core::slice::from_raw_parts_mut((base + p * PAGE) as *mut u8, PAGE) }
    }

    /// One checkpoint: `dirty` pages were written since the last one (the program fills them
    /// with `fill`), `free` pages are free memory now.
    fn checkpoint(store: &mut Store, base: usize, dirty: &[usize], fill: u8, free: &[usize]) -> u64 {
        let src =
            Source { absent: PageSet::new(CAPACITY / PAGE).unwrap(), recent: PageSet::new(CAPACITY / PAGE).unwrap() };
        for &p in dirty {
            page(base, p).fill(fill);
            for set in store.pending().into_iter().chain([&src.recent]) {
                set.insert(p);
            }
        }
        for &p in free {
            src.absent.insert(p);
        }
        store.prepare().unwrap();
        let extents = [Extent { first: 0, npages: PAGES as u64 }];
        store.commit(&extents, b"meta", &src).map_err(|e| store.error(e)).unwrap().seq
    }

    fn restore(store: &mut Store, base: usize) -> (u64, Vec<String>) {
        for p in 0..PAGES {
            page(base, p).fill(0);
        }
        let mut notes = Vec::new();
        // SAFETY: the region is mapped, zeroed just above, and nothing references it.
        let r = unsafe { store.restore(&mut |_| Ok(()), &mut notes) }.unwrap().expect("a checkpoint");
        (r.seq, notes)
    }

    /// A page that is a hole in the restored slot (free memory then) but data in the older
    /// slot (allocated, never written by the program, stored as it was) reads as zero after
    /// the restore; the older slot must take it as pending, or a later write merged across it
    /// stores zeros under the older slot's checksum and that checkpoint fails to restore.
    #[test]
    fn restore_makes_pages_the_slots_record_differently_pending() {
        let dir = std::env::temp_dir().join(format!("crt-store-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // The store wants a 2 MiB aligned region: map twice that and use the aligned half.
        let map = mman::map_anon(2 * CAPACITY).unwrap().as_ptr() as usize;
        let region = map.next_multiple_of(CAPACITY);
        let open = || Store::new(Dir::claim(&dir, false).unwrap(), region, CAPACITY, Durability::Process).unwrap();

        let mut store = open();
        // 1: every page holds data (mirrored: both slots complete).
        assert_eq!(checkpoint(&mut store, region, &(0..PAGES).collect::<Vec<_>>(), 0x11, &[]), 1);
        // 2: page 3 was written: stored (0x33) in this slot.
        assert_eq!(checkpoint(&mut store, region, &[3], 0x33, &[]), 2);
        // 3: page 3 was freed (its bytes stay): a hole in the other slot.
        assert_eq!(checkpoint(&mut store, region, &[], 0, &[3]), 3);
        // 4 and 5: page 3 is allocated again but never written; other pages change.
        assert_eq!(checkpoint(&mut store, region, &[9], 0x99, &[]), 4);
        assert_eq!(checkpoint(&mut store, region, &[10], 0xaa, &[]), 5);
        drop(store);

        // A new run restores 5, from the slot holding the hole: page 3 reads as zero.
        let mut store = open();
        assert_eq!(restore(&mut store, region), (5, vec![]));
        assert!(page(region, 3).iter().all(|&b| b == 0));
        // 6: its neighbours change; their writes are merged across page 3.
        assert_eq!(checkpoint(&mut store, region, &[2, 4], 0x24, &[]), 6);
        drop(store);

        // Checkpoint 6 restores intact, page 3 as memory held it.
        let mut store = open();
        let (seq, notes) = restore(&mut store, region);
        assert_eq!((seq, notes), (6, vec![]), "checkpoint 6 must restore without falling back");
        assert!(page(region, 3).iter().all(|&b| b == 0));
        assert!(page(region, 2).iter().all(|&b| b == 0x24) && page(region, 10).iter().all(|&b| b == 0xaa));
        drop(store);
        // SAFETY: mapped above; no page borrow outlives this point.
        unsafe { mman::unmap(map, 2 * CAPACITY) };
        let _ = std::fs::remove_dir_all(&dir);
    }
}
