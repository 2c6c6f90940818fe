//! userfaultfd write-protection (async mode) and `PAGEMAP_SCAN`.
//!
//! The constants are newer than the installed kernel headers (and the libc crate), so they are
//! defined here from the kernel's uapi (`linux/userfaultfd.h`, `linux/fs.h`, Linux 6.7+).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{cvt, retry};
use crate::error::Errno;

const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFD_API: u64 = 0xAA;
const UFFDIO_API: libc::c_ulong = 0xC018_AA3F;
const UFFDIO_REGISTER: libc::c_ulong = 0xC020_AA00;
const UFFDIO_WRITEPROTECT: libc::c_ulong = 0xC018_AA06;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1 << 0;
/// Write-protect unpopulated pages too.
pub(crate) const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
/// Resolve write-protect faults in the kernel, recording the page as written.
pub(crate) const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;

const PAGEMAP_SCAN: libc::c_ulong = 0xC060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PAGE_IS_WRITTEN: u64 = 1 << 1;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
struct Range {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: Range,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioWriteprotect {
    range: Range,
    mode: u64,
}

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

const _: () = assert!(core::mem::size_of::<UffdioApi>() == 24);
const _: () = assert!(core::mem::size_of::<UffdioRegister>() == 32);
const _: () = assert!(core::mem::size_of::<UffdioWriteprotect>() == 24);
const _: () = assert!(core::mem::size_of::<PmScanArg>() == 96);
const _: () = assert!(core::mem::size_of::<PageRegion>() == 24);

fn ioctl(fd: BorrowedFd<'_>, req: libc::c_ulong, arg: *mut libc::c_void) -> Result<libc::c_long, Errno> {
    // SAFETY: each caller passes a request code with the matching argument struct.
    retry(|| cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) } as libc::c_long))
}

/// Opens a userfaultfd that handles user-mode faults only, negotiating `features`. Returns the
/// descriptor, or the error that shows the kernel lacks something.
pub(crate) fn open(features: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: the userfaultfd syscall takes only flags.
    let fd =
        cvt(unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY) })?;
    // SAFETY: `fd` was just returned and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut api = UffdioApi { api: UFFD_API, features, ioctls: 0 };
    ioctl(std::os::fd::AsFd::as_fd(&fd), UFFDIO_API, (&mut api as *mut UffdioApi).cast())?;
    if api.features & features != features {
        return Err(Errno(libc::EINVAL));
    }
    Ok(fd)
}

/// Registers `addr..addr+len` for write-protect tracking.
pub(crate) fn register_wp(fd: BorrowedFd<'_>, addr: usize, len: usize) -> Result<(), Errno> {
    let mut r = UffdioRegister {
        range: Range { start: addr as u64, len: len as u64 },
        mode: UFFDIO_REGISTER_MODE_WP,
        ioctls: 0,
    };
    ioctl(fd, UFFDIO_REGISTER, (&mut r as *mut UffdioRegister).cast()).map(drop)
}

/// Write-protects (`on`) or unprotects `addr..addr+len`.
pub(crate) fn write_protect(fd: BorrowedFd<'_>, addr: usize, len: usize, on: bool) -> Result<(), Errno> {
    let mut w = UffdioWriteprotect {
        range: Range { start: addr as u64, len: len as u64 },
        mode: if on { UFFDIO_WRITEPROTECT_MODE_WP } else { 0 },
    };
    ioctl(fd, UFFDIO_WRITEPROTECT, (&mut w as *mut UffdioWriteprotect).cast()).map(drop)
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
    let n = ioctl(pagemap, PAGEMAP_SCAN, (&mut arg as *mut PmScanArg).cast())?;
    Ok((n as usize, arg.walk_end as usize))
}

/// Opens `/proc/self/pagemap`.
pub(crate) fn open_pagemap() -> Result<OwnedFd, Errno> {
    // SAFETY: a valid NUL-terminated path.
    let fd =
        cvt(unsafe { libc::open(c"/proc/self/pagemap".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as libc::c_long)?;
    // SAFETY: `fd` was just returned and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
