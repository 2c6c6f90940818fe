//! The one door to the OS: every call into `libc` goes through this module.
//!
//! Wrappers take references, pointers with documented obligations, or plain numbers, and return
//! `Result<_, Errno>`. They never allocate, so the allocator, the fault handlers and the
//! checkpoint's stop-the-world paths can use them. `EINTR` is retried where the call is restartable.
#![allow(unsafe_code)] // This module is the FFI boundary; each block states its invariant.

pub mod elf;
pub mod fs;
pub(crate) mod futex;
pub(crate) mod mman;
pub mod proc;
pub(crate) mod signal;
pub(crate) mod stdio;
pub(crate) mod tls;
pub(crate) mod uffd;

use crate::error::Errno;

/// Page size assumed throughout (x86-64 Linux); `init` checks it against `sysconf`.
pub const PAGE: usize = 4096;

/// Converts a `-1`-on-error return value into a `Result`.
#[inline]
pub(crate) fn cvt(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r == -1 { Err(Errno::last()) } else { Ok(r) }
}

/// Runs `f` until it does not fail with `EINTR`.
#[inline]
pub(crate) fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// The calling thread's `errno`.
#[inline]
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = e };
}

/// Writes raw bytes to standard error: no allocation, no locks, usable anywhere (even in a
/// signal handler or inside the allocator).
pub fn write_stderr(parts: &[&[u8]]) {
    for p in parts {
        let mut p = *p;
        while !p.is_empty() {
            // SAFETY: `p` is a valid readable slice for its length; fd 2 may be closed, which
            // write reports as an error that we ignore.
            let n = unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
            if n <= 0 {
                if n < 0 && Errno::last() == Errno::INTR {
                    continue;
                }
                return;
            }
            p = &p[n as usize..];
        }
    }
}

/// Formats `v` as hexadecimal into `buf` without allocating; returns the digits.
pub fn hex(v: usize, buf: &mut [u8; 18]) -> &[u8] {
    buf[0] = b'0';
    buf[1] = b'x';
    let mut n = 2;
    let mut started = false;
    for i in (0..16).rev() {
        let d = (v >> (i * 4)) & 0xf;
        if d != 0 || started || i == 0 {
            started = true;
            buf[n] = b"0123456789abcdef"[d];
            n += 1;
        }
    }
    &buf[..n]
}

/// Reports an internal invariant violation on a path that must not allocate or unwind, then
/// aborts the process.
#[cold]
pub fn fatal(msg: &str) -> ! {
    write_stderr(&[b"crthreads: fatal: ", msg.as_bytes(), b"\n"]);
    // SAFETY: abort is always safe to call; it does not return.
    unsafe { libc::abort() }
}

/// Monotonic clock in nanoseconds (vDSO; no allocation).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_formats_without_allocating() {
        let mut b = [0u8; 18];
        assert_eq!(super::hex(0, &mut b), b"0x0");
        assert_eq!(super::hex(0x2000_0000_0000, &mut b), b"0x200000000000");
        assert_eq!(super::hex(usize::MAX, &mut b), b"0xffffffffffffffff");
    }
}
