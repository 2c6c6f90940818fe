//! Read-only verification of a checkpoint directory, for tools (`crthreads verify`, `crthreads
//! status`): every check a restore makes, through the same functions (`check`), on both slots,
//! without a region to read into and without claiming the directory, so it runs beside the
//! program that writes the checkpoint.
//!
//! The report says what a restore would do: which slot it would use, whether that is a fall-back
//! from a newer checkpoint that is damaged, and the warnings and error it would give. Where a
//! restore stops early (it never reads the older slot's pages once the newer one restored),
//! verification goes on and checks both slots whole.
//!
//! A slot rewritten while it is verified (the program checkpoints meanwhile) reads as
//! interrupted or invalid: the report describes the files as they were read.
#![allow(unsafe_code)] // Calls the shared page reader, which can also write into a region.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use super::check::{self, Dest, SlotError};
use super::file::Dir;
use super::format::{GROUP_PAGES, Geometry, Header};
use super::table::Table;
use crate::error::{Errno, Error, Result};
use crate::sys::fs;

/// What to check.
#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// Read and check every stored page (otherwise: header, meta, summary and tables only).
    pub pages: bool,
    /// Also return region pages `first..first + n` of each slot that validates (each page
    /// checked against its table entry; holes and pages outside the live extents read as zero).
    pub extract: Option<(u64, u64)>,
    /// Called while pages are checked, from the reading threads, with the slot, the pages
    /// checked so far and the pages to check in all.
    pub progress: Option<&'a (dyn Fn(usize, u64, u64) + Sync)>,
}

/// The verdict on one slot file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// The slot file does not exist.
    Missing,
    /// A checkpoint was being written into it and never committed (the program was killed while
    /// writing it, or is writing it now). It holds nothing usable, and that is no damage.
    Interrupted {
        /// The sequence number that checkpoint would have had.
        seq: u64,
    },
    /// It does not validate.
    Invalid {
        /// Why, as a restore would say it.
        reason: String,
    },
    /// It holds a committed checkpoint that validates.
    Valid,
}

/// A slot file's size and age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Length in bytes (slot files are sparse: most of it may be holes).
    pub len: u64,
    /// Bytes allocated on disk.
    pub disk_bytes: u64,
    /// Last modification, ns since the epoch.
    pub mtime_ns: i64,
}

/// What verification found in one slot file.
#[derive(Clone, Debug)]
pub struct SlotReport {
    /// 0 or 1.
    pub slot: usize,
    /// The slot file.
    pub path: PathBuf,
    /// The file, if it exists.
    pub file: Option<FileInfo>,
    /// The header, if it decoded.
    pub header: Option<Header>,
    /// The verdict.
    pub state: SlotState,
    /// The meta block (binary identity), if it validated.
    pub meta: Option<Vec<u8>>,
    /// Pages of the region the checkpoint holds (its live extents), stored or holes.
    pub live_pages: u64,
    /// Of those, holes (pages that read as zero and are not stored), once the table validated.
    pub holes: Option<u64>,
    /// Whether every stored page was read and checked.
    pub pages_checked: bool,
    /// The pages [`Options::extract`] asked for, if the slot validated.
    pub extract: Option<Vec<u8>>,
    /// It belongs to another checkpoint series than the slot a restore would use (a file of
    /// another run): a restore ignores it and the next checkpoint rewrites it.
    pub other_series: bool,
}

/// What verification found in a checkpoint directory.
#[derive(Debug)]
pub struct Report {
    /// The directory.
    pub dir: PathBuf,
    /// Both slots.
    pub slots: [SlotReport; 2],
    /// The slot a restore would use: the newest that validates.
    pub chosen: Option<usize>,
    /// Whether that is a fall-back: a newer checkpoint, or a slot whose header is damaged
    /// (and may have held one), did not validate. As [`super::Restored::fell_back`].
    pub fell_back: bool,
    /// The warnings a restore would give (damaged slots, a missing slot, another series).
    pub warnings: Vec<String>,
    /// Why nothing can be restored, when a restore would fail; `None` if it would restore, or
    /// start fresh because no checkpoint was ever committed here.
    pub error: Option<Error>,
    /// Why a restore would start fresh, when something is there but was never committed.
    pub note: Option<String>,
}

impl Report {
    /// The header of the checkpoint a restore would use.
    pub fn chosen_header(&self) -> Option<&Header> {
        self.chosen.and_then(|s| self.slots[s].header.as_ref())
    }
}

/// Verifies the checkpoint directory at `path` (see the module docs). Fails if the directory
/// does not exist or cannot be read, or its files are not private (as a restore would).
pub fn verify(path: &Path, opts: &Options<'_>) -> Result<Report> {
    let dir = Dir::open_existing(path)?.ok_or_else(|| Error::os_at("open", path, Errno::NOENT))?;
    let mut sv = check::survey(&dir)?;
    let mut slots = [0, 1].map(|s| SlotReport {
        slot: s,
        path: dir.slot_path(s),
        file: sv.files[s].as_ref().and_then(|fd| fs::fstat(fd.as_fd()).ok()).map(|st| FileInfo {
            len: st.size,
            disk_bytes: st.disk_bytes,
            mtime_ns: st.mtime_ns,
        }),
        header: sv.headers[s],
        state: match (&sv.headers[s], sv.interrupted[s], &sv.rejected[s]) {
            (Some(_), _, _) => SlotState::Valid,
            (None, Some(seq), _) => SlotState::Interrupted { seq },
            (None, None, Some(why)) => SlotState::Invalid { reason: why.clone() },
            (None, None, None) => SlotState::Missing,
        },
        meta: None,
        live_pages: sv.headers[s].map_or(0, |h| h.extents.iter().map(|e| e.npages).sum()),
        holes: None,
        pages_checked: false,
        extract: None,
        other_series: false,
    });
    let order = sv.newest_first();
    let mut failures = Vec::new();
    // As in a restore, a damaged header (not an interrupted checkpoint) may have been newer.
    let damaged_header = !sv.damaged.is_empty();
    let mut warnings = std::mem::take(&mut sv.damaged);
    for &s in &order {
        let h = sv.headers[s].expect("ordered slots have headers");
        let fd = sv.files[s].as_ref().expect("a slot with a header is open").as_fd();
        let progress = opts.progress.map(|f| move |done: u64, total: u64| f(s, done, total));
        let progress = progress.as_ref().map(|f| f as &(dyn Fn(u64, u64) + Sync));
        match check_slot(fd, &h, opts, progress, &mut slots[s]) {
            Ok(()) => {}
            Err(why) => {
                let e = check::slot_err(&dir, s, why);
                warnings.push(e.to_string());
                slots[s].state = SlotState::Invalid {
                    reason: match &e {
                        Error::Corrupt { reason, .. } => reason.clone(),
                        other => other.to_string(),
                    },
                };
                failures.push(e);
            }
        }
    }
    let chosen = order.iter().copied().find(|&s| slots[s].state == SlotState::Valid);
    let (mut error, mut note) = (None, None);
    match chosen {
        Some(s) => {
            let h = sv.headers[s].expect("chosen slots have headers");
            if let Some(w) = sv.other_series(&dir, 1 - s, &h) {
                slots[1 - s].other_series = true;
                warnings.push(w);
            }
            warnings.extend(sv.missing_other(&dir, s, h.seq));
        }
        None if order.is_empty() => match sv.without_checkpoint(&dir) {
            Ok(n) => note = n,
            Err(e) => error = Some(e),
        },
        None => {
            sv.reasons.extend(failures);
            error = Some(Error::NoValidCheckpoint { dir: path.to_path_buf(), reasons: sv.reasons });
        }
    }
    let fell_back = chosen.is_some_and(|s| order.first() != Some(&s) || damaged_header);
    Ok(Report { dir: path.to_path_buf(), slots, chosen, fell_back, warnings, error, note })
}

/// Checks one slot whose header decoded, link by link, filling in `r`.
fn check_slot(
    fd: BorrowedFd<'_>,
    h: &Header,
    opts: &Options<'_>,
    progress: Option<check::Progress<'_>>,
    r: &mut SlotReport,
) -> std::result::Result<(), SlotError> {
    let geo = Geometry::new(h.capacity);
    let meta = check::read_meta(fd, h)?;
    // Only the groups the extents touch are read: a table that covers them is enough.
    let mut table = Table::new(h.ngroups as usize * GROUP_PAGES)
        .map_err(|e| SlotError::Read { what: "mmap (page table)", errno: e.errno().unwrap_or(Errno(libc::ENOMEM)) })?;
    check::read_tables(fd, geo, h, &mut table)?;
    r.meta = Some(meta);
    r.holes = Some(h.extents.iter().flat_map(|e| e.first..e.end()).filter(|&p| table.get(p).hole).count() as u64);
    if opts.pages {
        // SAFETY: scratch buffers are the reader's own; nothing else is written.
        unsafe { check::read_pages(fd, geo, h, &table, Dest::Scratch, progress) }?;
        r.pages_checked = true;
    }
    if let Some((first, n)) = opts.extract {
        r.extract = Some(check::read_range(fd, geo, h, &table, first, n)?);
    }
    Ok(())
}
