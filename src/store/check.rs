//! Validation of the slot files, link by link: the one code path that both restore (which reads
//! the pages into the region) and verify (which reads them into a scratch buffer and keeps
//! nothing) go through.
//!
//! 1. [`survey`]: both headers are read and decoded; a header that does not decode is sorted
//!    into an interrupted checkpoint (a `WRITING` marker with a valid crc: expected after a
//!    crash), the very first checkpoint interrupted, swapped slot files, or damage;
//! 2. [`read_meta`]: the meta block against the header's crc;
//! 3. [`read_tables`]: the summary against the header's crc, then every table chunk the live
//!    extents touch against the summary;
//! 4. [`read_pages`]: every stored page of the live extents against its table entry; holes
//!    (pages recorded as reading zero) are not read.
//!
//! Each step bounds what it reads by what the previous one vouched for; nothing read from disk
//! is used before the link that covers it was checked.
#![allow(unsafe_code)] // Reads pages into raw memory (the region, or a scratch buffer).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::file::{self, Dir};
use super::format::{self, Geometry, HEADER_LEN, Header, PAGE, STATE_WRITING};
use super::table::Table;
use super::{READ_PAGES, group_ranges};
use crate::error::{Errno, Error, Result};
use crate::sys::{fs, mman};

/// Why a slot did not validate: the OS refused a read (its errno is kept), or the bytes did not
/// validate.
#[derive(Debug)]
pub(super) enum SlotError {
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

pub(super) fn read_err(what: &'static str) -> impl Fn(Errno) -> SlotError {
    move |errno| SlotError::Read { what, errno }
}

/// The error a [`SlotError`] of slot `s` stands for, naming the slot file.
pub(super) fn slot_err(dir: &Dir, s: usize, why: SlotError) -> Error {
    match why {
        SlotError::Read { what, errno } => Error::os_at(what, dir.slot_path(s), errno),
        SlotError::Invalid(reason) => Error::Corrupt { path: dir.slot_path(s), reason },
    }
}

/// What the two headers say.
#[derive(Debug, Default)]
pub(super) struct Survey {
    /// The slot files that exist, opened read-only.
    pub(super) files: [Option<OwnedFd>; 2],
    /// The headers that decoded.
    pub(super) headers: [Option<Header>; 2],
    /// The slot files that do not exist.
    pub(super) missing: [bool; 2],
    /// Why a header that exists did not decode.
    pub(super) rejected: [Option<String>; 2],
    /// The sequence number of an interrupted checkpoint (a `WRITING` marker), per slot.
    pub(super) interrupted: [Option<u64>; 2],
    /// Headers that are damaged (not merely an interrupted checkpoint), as messages: reported
    /// even when the other slot restores, and they make a restore a fall-back.
    pub(super) damaged: Vec<String>,
    /// Why each slot was rejected so far, for [`Error::NoValidCheckpoint`].
    pub(super) reasons: Vec<Error>,
    /// No header ever vouched for anything: no file, empty files, or the first checkpoint's
    /// `WRITING` marker.
    never_committed: bool,
    /// Headers that belong to the other slot file.
    swapped: usize,
}

/// Opens both slot files read-only and decodes their headers.
pub(super) fn survey(dir: &Dir) -> Result<Survey> {
    let mut sv = Survey { never_committed: true, ..Survey::default() };
    for s in 0..2 {
        let Some(fd) = dir.open_slot(s, false)? else {
            sv.missing[s] = true;
            sv.reasons.push(Error::Corrupt { path: dir.slot_path(s), reason: "missing".into() });
            continue;
        };
        let mut buf = vec![0u8; HEADER_LEN];
        let n = fs::pread_into(fd.as_fd(), &mut buf, 0).map_err(|e| Error::os_at("read", dir.slot_path(s), e))?;
        match format::decode_header(&buf[..n], s as u32) {
            Ok(h) => {
                sv.never_committed = false;
                sv.headers[s] = Some(h);
            }
            Err(why) => {
                // An empty file, or the very first checkpoint interrupted, held nothing.
                let first_try = n == 0 || (n == HEADER_LEN && is_writing_first(&buf));
                sv.never_committed &= first_try;
                sv.swapped += why.contains("swapped") as usize;
                // A checkpoint interrupted by a crash is expected; anything else is damage and
                // is reported even if the other slot restores.
                if n == HEADER_LEN && is_writing(&buf) {
                    sv.interrupted[s] = Some(u64::from_le_bytes(buf[24..32].try_into().expect("8 bytes")));
                } else {
                    sv.damaged.push(format!("{}: {why}", dir.slot_path(s).display()));
                }
                sv.reasons.push(Error::Corrupt { path: dir.slot_path(s), reason: why.clone() });
                sv.rejected[s] = Some(why);
            }
        }
        sv.files[s] = Some(fd);
    }
    Ok(sv)
}

impl Survey {
    /// The slots whose header decoded, newest first.
    pub(super) fn newest_first(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..2).filter(|&s| self.headers[s].is_some()).collect();
        order.sort_by_key(|&s| std::cmp::Reverse(self.headers[s].as_ref().map(|h| h.seq)));
        order
    }

    /// When no header decoded: `Ok(note)` if the directory never held a committed checkpoint (a
    /// fresh start; the note says why if something was there), else the error a restore gives.
    pub(super) fn without_checkpoint(&mut self, dir: &Dir) -> Result<Option<String>> {
        if self.never_committed {
            if self.missing.iter().all(|&m| m) {
                return Ok(None);
            }
            return Ok(Some(format!(
                "{} holds no committed checkpoint (the first checkpoint was interrupted); starting fresh",
                dir.path().display()
            )));
        }
        if self.swapped == 2 {
            return Err(Error::Corrupt {
                path: dir.path().to_path_buf(),
                reason: "the two slot files were swapped (slot-0 holds slot 1's header and slot-1 slot 0's); \
                         rename them back (slot-0 to slot-1 and slot-1 to slot-0) to recover the checkpoint"
                    .into(),
            });
        }
        Err(Error::NoValidCheckpoint { dir: dir.path().to_path_buf(), reasons: std::mem::take(&mut self.reasons) })
    }

    /// The warning for a restore from slot `s` (checkpoint `seq`) while the other slot file is
    /// missing: the newest checkpoint may have been in it.
    pub(super) fn missing_other(&self, dir: &Dir, s: usize, seq: u64) -> Option<String> {
        let other = 1 - s;
        (self.missing[other] && seq >= 2).then(|| {
            format!(
                "{} is missing (deleted?); restored checkpoint {seq} from {}, which may not be the newest",
                dir.slot_path(other).display(),
                file::slot_name(s)
            )
        })
    }

    /// The warning for slot `other`, whose header belongs to another series than the slot
    /// restored (`h`), if it does.
    pub(super) fn other_series(&self, dir: &Dir, other: usize, h: &Header) -> Option<String> {
        self.headers[other].filter(|oh| oh.series != h.series).map(|_| {
            format!(
                "{} belongs to another checkpoint series (a file from another run?); it is ignored and will be \
                 rewritten",
                dir.slot_path(other).display()
            )
        })
    }
}

/// Reads the meta block of a slot and checks it against the header.
pub(super) fn read_meta(fd: BorrowedFd<'_>, h: &Header) -> std::result::Result<Vec<u8>, SlotError> {
    let mut meta = vec![0u8; h.meta_len as usize];
    let n = fs::pread_into(fd, &mut meta, format::META_OFF).map_err(read_err("read meta"))?;
    if n != meta.len() || crc32c::crc32c(&meta) != h.meta_crc {
        return Err("meta block is truncated or its checksum does not match".into());
    }
    Ok(meta)
}

/// Reads the summary and checks it against the header, then reads the table chunks of every
/// group the live extents touch into `table` (a range of neighbours at once) and checks each
/// against the summary. Returns the summary.
pub(super) fn read_tables(
    fd: BorrowedFd<'_>,
    geo: Geometry,
    h: &Header,
    table: &mut Table,
) -> std::result::Result<Vec<u32>, SlotError> {
    let mut sum = vec![0u8; h.ngroups as usize * 4];
    let n = fs::pread_into(fd, &mut sum, format::SUMMARY_OFF).map_err(read_err("read summary"))?;
    let summary = format::decode_summary(&sum[..n], h.ngroups, h.summary_crc)?;
    table.clear();
    for (g0, g1) in group_ranges(&h.extents) {
        let off = geo.chunk_off(g0);
        let buf = table.chunks_mut(g0, g1);
        let n = fs::pread_into(fd, buf, off).map_err(read_err("read table"))?;
        for g in g0..g1 {
            let at = ((g - g0) as usize) * PAGE;
            if n < at + PAGE || crc32c::crc32c(&buf[at..at + PAGE]) != summary[g as usize] {
                return Err(format!("table chunk {g} is truncated or its checksum does not match").into());
            }
        }
    }
    Ok(summary)
}

/// Where [`read_pages`] puts the pages it checks.
#[derive(Clone, Copy, Debug)]
pub(super) enum Dest {
    /// Into the region at this base address, each page at its own place.
    Region(u64),
    /// Into scratch buffers, reused: the pages are checked and dropped.
    Scratch,
}

/// Reports pages checked so far out of a total (called from the reading threads).
pub(super) type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// Reads every stored page of `h`'s live extents and checks it against its entry in `table`
/// (loaded by [`read_tables`]), on a few threads: reading is dominated by faulting memory in,
/// copying and checksumming, all of which scale with cores. Returns pages read and holes.
///
/// The threads come from the C library (`sys::thread::parallel`) and allocate nothing: scratch
/// buffers are allocated before they start.
///
/// # Safety
/// With [`Dest::Region`], the region must be mapped over `h`'s extents, its pages writable and
/// referenced by nobody (they are overwritten). [`Dest::Scratch`] has no requirement.
pub(super) unsafe fn read_pages(
    fd: BorrowedFd<'_>,
    geo: Geometry,
    h: &Header,
    table: &Table,
    dest: Dest,
    progress: Option<Progress<'_>>,
) -> std::result::Result<(u64, u64), SlotError> {
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
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let scratch: Vec<Mutex<Vec<u8>>> = match dest {
        Dest::Region(_) => Vec::new(),
        Dest::Scratch => (0..workers).map(|_| Mutex::new(vec![0u8; READ_PAGES as usize * PAGE])).collect(),
    };
    let next = AtomicUsize::new(0);
    let worker_ids = AtomicUsize::new(0);
    let holes = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let work = || -> std::result::Result<(), SlotError> {
        let id = worker_ids.fetch_add(1, Ordering::Relaxed);
        let mut buf = scratch.get(id).map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(p, end)) = pieces.get(i) else { return Ok(()) };
            let dst = match (&mut buf, dest) {
                (_, Dest::Region(base)) => (base + p * PAGE as u64) as *mut u8,
                (Some(b), Dest::Scratch) => b.as_mut_ptr(),
                (None, Dest::Scratch) => return Err("more readers than scratch buffers".into()),
            };
            // SAFETY: pieces are disjoint runs of live pages: in the region, which the caller
            // lets us overwrite, or in this reader's own scratch buffer of READ_PAGES pages.
            let h = unsafe { read_piece(fd, geo, table, p, end, dst, matches!(dest, Dest::Region(_))) }?;
            holes.fetch_add(h, Ordering::Relaxed);
            let d = done.fetch_add(end - p, Ordering::Relaxed) + (end - p);
            if let Some(f) = progress {
                f(d, total);
            }
        }
    };
    // The first failure, if any; the other readers stop at their next piece.
    let failure: Mutex<Option<SlotError>> = Mutex::new(None);
    let run = || {
        if let Err(e) = work() {
            next.store(usize::MAX / 2, Ordering::Relaxed);
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
    Ok((total - holes, holes))
}

/// Region pages `first..first + n` as slot `h` holds them (zero where it holds holes or nothing),
/// each stored page checked against its entry in `table` (loaded by [`read_tables`]).
pub(super) fn read_range(
    fd: BorrowedFd<'_>,
    geo: Geometry,
    h: &Header,
    table: &Table,
    first: u64,
    n: u64,
) -> std::result::Result<Vec<u8>, SlotError> {
    let mut out = vec![0u8; usize::try_from(n).map_err(|_| "range too large")? * PAGE];
    let end = first.saturating_add(n);
    for e in &h.extents {
        let (a, b) = (e.first.max(first), e.end().min(end));
        if a < b {
            let dst = out[((a - first) as usize) * PAGE..].as_mut_ptr();
            // SAFETY: `out` holds pages `first..end`, so pages `a..b` fit from `dst` on.
            unsafe { read_piece(fd, geo, table, a, b, dst, false) }?;
        }
    }
    Ok(out)
}

/// Reads the stored pages of `p..end` of a slot to `dst` (page `x` at `dst + (x - p) * PAGE`)
/// and checks each against its table entry; holes are left as they are. With `populate`, the
/// destination is faulted in first (fresh region memory). Returns the number of holes.
///
/// # Safety
/// `dst` must be writable for `(end - p) * PAGE` bytes, and nobody may use that memory meanwhile.
unsafe fn read_piece(
    fd: BorrowedFd<'_>,
    geo: Geometry,
    table: &Table,
    p: u64,
    end: u64,
    dst: *mut u8,
    populate: bool,
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
        // SAFETY: `q` lies in `p..end`, so the offset stays inside the caller's range.
        let at = unsafe { dst.add(((q - p) as usize) * PAGE) };
        let len = ((r - q) as usize) * PAGE;
        if populate {
            // Faulting the pages in up front is far cheaper than one fault per page in the read.
            mman::populate_write(at as usize, len);
        }
        // SAFETY: forwarded from the caller: `at..at+len` lies in the writable range.
        let got = unsafe { fs::pread_full(fd, at, len, geo.page_off(q)) }.map_err(read_err("read pages"))?;
        if got != len {
            return Err(format!("truncated: page {} is missing", q + (got / PAGE) as u64).into());
        }
        for x in q..r {
            // SAFETY: page `x` was just read to this place.
            let page = unsafe { core::slice::from_raw_parts(at.add(((x - q) as usize) * PAGE), PAGE) };
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
