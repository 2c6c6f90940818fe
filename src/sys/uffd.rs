//! userfaultfd write-protection (async mode).
//!
//! The constants are newer than the installed kernel headers (and the libc crate), so they are
//! defined here from the kernel's uapi (`linux/userfaultfd.h`, Linux 6.7+). The pages it
//! reports written are read back with `PAGEMAP_SCAN` ([`super::pagemap`]).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

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

const _: () = assert!(core::mem::size_of::<UffdioApi>() == 24);
const _: () = assert!(core::mem::size_of::<UffdioRegister>() == 32);
const _: () = assert!(core::mem::size_of::<UffdioWriteprotect>() == 24);

pub(crate) fn ioctl(fd: BorrowedFd<'_>, req: libc::c_ulong, arg: *mut libc::c_void) -> Result<libc::c_long, Errno> {
    // SAFETY: each caller passes a request code with the matching argument struct.
    retry(|| cvt(unsafe { libc::syscall(libc::SYS_ioctl, fd.as_raw_fd(), req, arg) }))
}

/// Opens a userfaultfd that handles user-mode faults only, negotiating `features`. Returns the
/// descriptor, or the error that shows the kernel lacks something.
pub(crate) fn open(features: u64) -> Result<OwnedFd, Errno> {
    // SAFETY: the userfaultfd syscall takes only flags.
    let fd =
        cvt(unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK | UFFD_USER_MODE_ONLY) })?;
    let fd = super::fs::owned(fd);
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
