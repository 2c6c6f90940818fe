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
                self.covered[o] = Default::default();
                self.summaries[o].clear();
                self.tables[o].clear();
            }
        }
    }
}

const _: () = assert!(GROUP_PAGES * 8 == PAGE);
