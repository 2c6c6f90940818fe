//! The one door to the OS: every call into `libc` goes through this module.
//!
//! crthreads exports many libc functions itself (the malloc family, and the wrappers of
//! [`crate::track::interpose`] for calls the kernel writes memory through); the runtime never
//! goes through them: where such a function would be called, this module makes the system call
//! directly.
//!
//! Wrappers take references, pointers with documented obligations, or plain numbers, and return
//! `Result<_, Errno>`. They never allocate, so the allocator, the fault handlers and the
//! checkpoint's stop-the-world paths can use them. `EINTR` is retried where the call is restartable.
#![allow(unsafe_code)] // This module is the FFI boundary; each block states its invariant.

pub mod elf;
pub mod files;
pub mod fs;
pub(crate) mod futex;
pub(crate) mod mman;
pub(crate) mod pagemap;
pub mod proc;
pub(crate) mod pstate;
pub mod real;
pub(crate) mod signal;
pub(crate) mod stdio;
pub(crate) mod thread;
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

/// Whether standard error was open when crthreads started. A program started with it closed
/// (a daemon) may later open one of its own files as descriptor 2; crthreads' messages must not
/// land in it.
static STDERR_OK: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Notes whether descriptor 2 is open now (called once at start-up).
pub(crate) fn check_stderr() {
    // SAFETY: F_GETFD on a possibly closed descriptor only reports EBADF.
    let open = unsafe { libc::syscall(libc::SYS_fcntl, 2, libc::F_GETFD) } != -1;
    STDERR_OK.store(open, core::sync::atomic::Ordering::Relaxed);
}

/// Writes raw bytes to standard error: no allocation, no locks, usable anywhere (even in a
/// signal handler or inside the allocator). Writes nothing if standard error was closed when
/// crthreads started.
pub fn write_stderr(parts: &[&[u8]]) {
    if !STDERR_OK.load(core::sync::atomic::Ordering::Relaxed) {
        return;
    }
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

/// Writes `crthreads: warning: <msg>` on standard error.
pub fn warn(msg: &str) {
    write_stderr(&[b"crthreads: warning: ", msg.as_bytes(), b"\n"]);
}

/// [`warn`], rate-limited per `key`: a warning that repeats (a checkpoint failing on a full disk
/// at every attempt) is printed the 1st, 2nd, 4th, 8th… time, with the count, so the program's
/// own output is not drowned.
pub fn warn_limited(key: &'static str, msg: &str) {
    use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
    const SLOTS: usize = 16;
    static KEYS: [AtomicPtr<u8>; SLOTS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; SLOTS];
    static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
    let k = key.as_ptr() as *mut u8;
    let slot = (0..SLOTS).find(|&i| {
        let cur = KEYS[i].load(Ordering::Relaxed);
        cur == k
            || (cur.is_null()
                && match KEYS[i].compare_exchange(cur, k, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => true,
                    Err(now) => now == k,
                })
    });
    let Some(i) = slot else { return warn(msg) };
    let n = COUNTS[i].fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        if n == 1 {
            warn(msg);
        } else {
            let mut digits = [0u8; 20];
            write_stderr(&[b"crthreads: warning: ", msg.as_bytes(), b" (", dec(n, &mut digits), b" times so far)\n"]);
        }
    }
}

/// Formats `v` in decimal into `buf` without allocating; returns the digits.
pub fn dec(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
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
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock time in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_REALTIME, &mut ts) };
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
        let mut d = [0u8; 20];
        assert_eq!(super::dec(0, &mut d), b"0");
        assert_eq!(super::dec(u64::MAX, &mut d), b"18446744073709551615");
    }
}
