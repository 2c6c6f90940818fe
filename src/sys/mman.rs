//! Memory mappings: reserve at a fixed address, protect, discard, populate.

use core::ptr::NonNull;

use super::{PAGE, cvt};
use crate::error::Errno;

/// `MADV_POPULATE_WRITE` (Linux 5.14); older libc crates lack it.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Page protections used by crthreads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Prot {
    /// No access at all (a guard page).
    None,
    /// Read only: writes fault.
    Read,
    /// Read and write.
    ReadWrite,
}

impl Prot {
    fn bits(self) -> libc::c_int {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::Read => libc::PROT_READ,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        }
    }
}

/// Maps `len` bytes of private anonymous memory at exactly `addr`, without reserving swap, and
/// without replacing anything: if any page of the range is mapped, fails with `EEXIST`.
///
/// Safe because `MAP_FIXED_NOREPLACE` never touches an existing mapping.
pub(crate) fn map_fixed_noreplace(addr: usize, len: usize) -> Result<(), Errno> {
    debug_assert!(addr % PAGE == 0 && len % PAGE == 0);
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED_NOREPLACE;
    // SAFETY: MAP_FIXED_NOREPLACE refuses to replace existing mappings, so no memory in use can
    // be affected; the result is checked below.
    let p = unsafe { libc::mmap(addr as *mut _, len, Prot::ReadWrite.bits(), flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    if p as usize != addr {
        // Kernels before 4.17 ignore MAP_FIXED_NOREPLACE and treat the address as a hint.
        // SAFETY: `p..p+len` is the mapping just created, which nothing else references.
        unsafe { libc::munmap(p, len) };
        return Err(Errno::EXIST);
    }
    Ok(())
}

/// Maps `len` bytes of private anonymous read-write memory wherever the kernel likes.
pub(crate) fn map_anon(len: usize) -> Result<NonNull<u8>, Errno> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a fresh mapping at a kernel-chosen address cannot alias anything.
    let p = unsafe { libc::mmap(core::ptr::null_mut(), len, Prot::ReadWrite.bits(), flags, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    NonNull::new(p.cast()).ok_or(Errno(libc::ENOMEM))
}

/// Unmaps `addr..addr+len`.
///
/// # Safety
/// Nothing may use the range afterwards; the caller owns the mapping.
pub(crate) unsafe fn unmap(addr: usize, len: usize) {
    // SAFETY: the caller owns the range and guarantees no further use.
    unsafe { libc::munmap(addr as *mut _, len) };
}

/// Replaces `addr..addr+len` with fresh zero pages (the range must already be mapped by the
/// caller): used to empty the region before a restore is retried.
///
/// # Safety
/// The caller owns the range and nothing may hold references into it.
pub(crate) unsafe fn remap_zero(addr: usize, len: usize) -> Result<(), Errno> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED;
    // SAFETY: MAP_FIXED replaces the caller's own mapping, which it guarantees is unused.
    let p = unsafe { libc::mmap(addr as *mut _, len, Prot::ReadWrite.bits(), flags, -1, 0) };
    if p == libc::MAP_FAILED { Err(Errno::last()) } else { Ok(()) }
}

/// Changes the protection of `addr..addr+len`. Async-signal-safe.
///
/// # Safety
/// The range must belong to a mapping owned by the caller, and no code may rely on the old
/// protection for correctness (a write to a page made read-only faults).
#[inline]
pub(crate) unsafe fn protect(addr: usize, len: usize, prot: Prot) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller's obligations.
    cvt(unsafe { libc::mprotect(addr as *mut _, len, prot.bits()) } as libc::c_long).map(drop)
}

/// Returns the pages of `addr..addr+len` to the OS; they read as zero afterwards.
///
/// # Safety
/// The range must belong to a private anonymous mapping owned by the caller whose contents
/// may be discarded.
pub(crate) unsafe fn discard(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: forwarded from the caller's obligations.
    cvt(unsafe { libc::madvise(addr as *mut _, len, libc::MADV_DONTNEED) } as libc::c_long).map(drop)
}

/// Which pages of `addr..addr+len` are resident (`mincore`): one byte per page into `out`,
/// bit 0 set when resident. Fails with `ENOMEM` if part of the range is not mapped.
#[cfg(test)]
pub(crate) fn residency(addr: usize, len: usize, out: &mut [u8]) -> Result<(), Errno> {
    assert!(addr % PAGE == 0 && out.len() >= len.div_ceil(PAGE));
    // SAFETY: mincore writes one byte per page of the range into `out`, which is long enough;
    // it does not touch the range itself.
    cvt(unsafe { libc::mincore(addr as *mut _, len, out.as_mut_ptr()) } as libc::c_long).map(drop)
}

/// Asks the kernel not to back `addr..addr+len` with transparent huge pages (tracking is per
/// 4 KiB page; a huge page would make one write dirty 2 MiB).
pub(crate) fn no_huge_pages(addr: usize, len: usize) {
    // SAFETY: an advisory call; it does not change contents or protections.
    unsafe { libc::madvise(addr as *mut _, len, libc::MADV_NOHUGEPAGE) };
}

/// Pre-faults `addr..addr+len` writable in one call, much faster than touching each page.
/// Falls back silently where the kernel lacks `MADV_POPULATE_WRITE`.
pub(crate) fn populate_write(addr: usize, len: usize) {
    // SAFETY: populating does not change contents or protections; an unmapped or protected
    // range only makes the call fail, which is harmless.
    unsafe { libc::madvise(addr as *mut _, len, MADV_POPULATE_WRITE) };
}
