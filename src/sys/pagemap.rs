//! `/proc/self/pagemap`: which pages are written (with userfaultfd's async write-protection)
//! and which hold memory at all.
//!
//! `PAGEMAP_SCAN` (Linux 6.7+, `linux/fs.h`; the constants are newer than the installed headers
//! and are defined here) walks the page tables in the kernel and returns runs of pages by
//! category. Where it is missing, residency falls back to reading the classic 8-byte pagemap
//! entries (bit 63: present, bit 62: swapped).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{PAGE, cvt, retry};
use crate::error::Errno;

const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PAGE_IS_WRITTEN: u64 = 1 << 1;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// One run of pages reported by `PAGEMAP_SCAN`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct PageRegion {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Categories of the run.
    pub categories: u64,
}

#[repr(C)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

const _: () = assert!(core::mem::size_of::<PmScanArg>() == 96);
const _: () = assert!(core::mem::size_of::<PageRegion>() == 24);

/// Opens `/proc/self/pagemap`.
pub(crate) fn open_pagemap() -> Result<OwnedFd, Errno> {
    let fd = retry(|| {
        // SAFETY: a valid NUL-terminated path.
        cvt(unsafe { libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as libc::c_long)
    })?;
    Ok(super::fs::owned(fd))
}

fn scan(pagemap: BorrowedFd<'_>, arg: &mut PmScanArg) -> Result<usize, Errno> {
    super::uffd::ioctl(pagemap, PAGEMAP_SCAN, (arg as *mut PmScanArg).cast()).map(|n| n as usize)
}

/// Reports runs of pages in `start..end` written since they were last write-protected, and
/// write-protects them again, all in one call. Fills `out`; returns how many runs it filled
/// and the address where the walk stopped (`end` unless `out` filled up).
pub(crate) fn scan_written(
    pagemap: BorrowedFd<'_>,
    start: usize,
    end: usize,
    out: &mut [PageRegion],
) -> Result<(usize, usize), Errno> {
    let mut arg = PmScanArg {
        size: core::mem::size_of::<PmScanArg>() as u64,
        flags: PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
        start: start as u64,
        end: end as u64,
        walk_end: 0,
        vec: out.as_mut_ptr() as u64,
        vec_len: out.len() as u64,
        max_pages: 0,
        category_inverted: 0,
        category_mask: PAGE_IS_WRITTEN,
        category_anyof_mask: 0,
        return_mask: PAGE_IS_WRITTEN,
    };
    let n = scan(pagemap, &mut arg)?;
    Ok((n, arg.walk_end as usize))
}

/// Calls `f(first_byte, end_byte)` for every run of pages in `start..end` (page aligned) that
/// holds memory: present (other than the shared zero page) or swapped out. Every other page
/// reads as zero. No allocation.
pub(crate) fn resident_runs(
    pagemap: BorrowedFd<'_>,
    start: usize,
    end: usize,
    f: &mut dyn FnMut(usize, usize),
) -> Result<(), Errno> {
    let mut buf = [PageRegion::default(); 64];
    let mut at = start;
    while at < end {
        let mut arg = PmScanArg {
            size: core::mem::size_of::<PmScanArg>() as u64,
            flags: 0,
            start: at as u64,
            end: end as u64,
            walk_end: 0,
            vec: buf.as_mut_ptr() as u64,
            vec_len: buf.len() as u64,
            max_pages: 0,
            // Not the zero page, and present or swapped.
            category_inverted: PAGE_IS_PFNZERO,
            category_mask: PAGE_IS_PFNZERO,
            category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            return_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        };
        match scan(pagemap, &mut arg) {
            Ok(n) => {
                for r in &buf[..n] {
                    f(r.start as usize, r.end as usize);
                }
                let walked = arg.walk_end as usize;
                if walked <= at {
                    return Ok(());
                }
                at = walked;
            }
            Err(Errno(libc::ENOTTY)) | Err(Errno(libc::EINVAL)) if at == start => {
                return resident_runs_classic(pagemap, start, end, f);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`resident_runs`] from the 8-byte pagemap entries, for kernels without `PAGEMAP_SCAN`.
fn resident_runs_classic(
    pagemap: BorrowedFd<'_>,
    start: usize,
    end: usize,
    f: &mut dyn FnMut(usize, usize),
) -> Result<(), Errno> {
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    let mut entries = [0u64; 512];
    let mut run: Option<usize> = None;
    let mut page = start;
    while page < end {
        let n = ((end - page) / PAGE).min(entries.len());
        let off = (page / PAGE * 8) as i64;
        let got = retry(|| {
            // SAFETY: `entries` is writable for `n * 8` bytes; a raw syscall because `pread` may
            // be interposed by this library.
            cvt(unsafe { libc::syscall(libc::SYS_pread64, pagemap.as_raw_fd(), entries.as_mut_ptr(), n * 8, off) })
        })? as usize
            / 8;
        if got == 0 {
            return Err(Errno(libc::EIO));
        }
        for (i, e) in entries[..got].iter().enumerate() {
            let p = page + i * PAGE;
            let held = e & (PRESENT | SWAPPED) != 0;
            match (held, run) {
                (true, None) => run = Some(p),
                (false, Some(s)) => {
                    f(s, p);
                    run = None;
                }
                _ => {}
            }
        }
        page += got * PAGE;
    }
    if let Some(s) = run {
        f(s, end);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn only_touched_pages_are_resident() {
        let len = 64 * PAGE;
        let m = crate::sys::mman::map_anon(len).unwrap().as_ptr() as usize;
        // SAFETY: the mapping is ours; pages 3, 4 and 10 are written, page 20 only read.
        unsafe {
            ((m + 3 * PAGE) as *mut u8).write(1);
            ((m + 4 * PAGE + 7) as *mut u8).write(1);
            ((m + 10 * PAGE) as *mut u8).write(1);
            assert_eq!(((m + 20 * PAGE) as *const u8).read_volatile(), 0);
        }
        let pm = open_pagemap().unwrap();
        for classic in [false, true] {
            let mut runs = Vec::new();
            let mut f = |a: usize, b: usize| runs.push(((a - m) / PAGE, (b - m) / PAGE));
            if classic {
                resident_runs_classic(pm.as_fd(), m, m + len, &mut f).unwrap();
            } else {
                resident_runs(pm.as_fd(), m, m + len, &mut f).unwrap();
            }
            // The classic entries cannot tell the shared zero page (PFNs are hidden without
            // CAP_SYS_ADMIN), so a page that was only read may show there.
            if classic {
                runs.retain(|r| r.0 != 20);
            }
            assert_eq!(runs, vec![(3, 5), (10, 11)], "classic={classic}");
        }
        // SAFETY: our mapping, no longer used.
        unsafe { crate::sys::mman::unmap(m, len) };
    }
}
