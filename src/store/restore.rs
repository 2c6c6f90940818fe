//! Restore: find the newest slot that validates end to end and read it into the region.
//!
//! Every link of the trust chain is checked before what it vouches for is used: header crc →
//! summary crc → table-chunk crcs → page crcs (the checks live in `check`, which verification
//! shares). A slot that fails falls back to the other one with a warning; a slot of another
//! series (a file of another run) is never combined with this chain. Holes (pages recorded as
//! reading zero) are not read: the freshly mapped region is zero there already, so a sparse
//! heap is restored sparse.
#![allow(unsafe_code)] // Reads pages into raw region memory.

use std::os::fd::AsFd;

use super::Store;
use super::check::{self, Dest, SlotError};
use super::file::Dir;
use super::format::{self, GROUP_PAGES, HEADER_LEN, Header, PAGE};
use crate::error::{Error, Result};
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
    newest_header(dir).map(|h| (h.base, h.capacity))
}

/// The header of the newest committed checkpoint whose header decodes, if any. Reads headers
/// only (nothing behind them is checked): cheap enough to poll.
pub fn newest_header(dir: &Dir) -> Option<Header> {
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
    best
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
        let mut sv = check::survey(dir)?;
        for s in 0..2 {
            self.files[s] = sv.files[s].take();
            // Opened for reading: `prepare` opens it for writing before the next commit.
            self.writable[s] = false;
        }
        if sv.headers.iter().all(Option::is_none) {
            notes.extend(sv.without_checkpoint(dir)?);
            return Ok(None);
        }
        let order = sv.newest_first();
        let fell_back_on_header = !sv.damaged.is_empty();
        let mut warnings: Vec<String> = std::mem::take(&mut sv.damaged);
        let mut failures: Vec<Error> = Vec::new();
        for (i, &s) in order.iter().enumerate() {
            let h = sv.headers[s].expect("filtered above");
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
            let meta =
                match self.files[s].as_ref().ok_or("not open".into()).and_then(|fd| check::read_meta(fd.as_fd(), &h)) {
                    Ok(m) => m,
                    Err(why) => {
                        let e = check::slot_err(dir, s, why);
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
                    let other_ok = match sv.headers[other] {
                        Some(oh) if oh.series != h.series => {
                            warnings.extend(sv.other_series(dir, other, &h));
                            None
                        }
                        // SAFETY: loading only tables (no pages) does not touch the region.
                        Some(oh) if oh.seq <= h.seq => match unsafe { self.load_slot(other, &oh, false) } {
                            Ok(_) => Some(oh),
                            Err(why) => {
                                warnings.push(check::slot_err(dir, other, why).to_string());
                                None
                            }
                        },
                        _ => None,
                    };
                    warnings.extend(sv.missing_other(dir, s, h.seq));
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
                    let e = check::slot_err(dir, s, why);
                    warnings.push(e.to_string());
                    failures.push(e);
                }
            }
        }
        sv.reasons.extend(failures);
        Err(Error::NoValidCheckpoint { dir: dir.path().to_path_buf(), reasons: sv.reasons })
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

    /// Verifies slot `s` link by link and loads its summary and table; with `pages`, also
    /// reads its live pages into the region and checks each one. Returns pages read and holes.
    ///
    /// # Safety
    /// With `pages`, as for [`Store::restore`]: the region's pages are overwritten.
    unsafe fn load_slot(&mut self, s: usize, h: &Header, pages: bool) -> std::result::Result<(u64, u64), SlotError> {
        let fd = self.files[s].as_ref().ok_or("not open")?.as_fd();
        let summary = check::read_tables(fd, self.geo, h, &mut self.tables[s])?;
        let counts = if pages {
            // SAFETY: forwarded from the caller.
            unsafe { check::read_pages(fd, self.geo, h, &self.tables[s], Dest::Region(self.base), None) }?
        } else {
            (0, 0)
        };
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
