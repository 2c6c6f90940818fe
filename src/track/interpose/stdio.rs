//! stdio: glibc reads large `fread` requests straight into the destination, and fills a
//! stream's buffer (possibly allocated just now, or given with `setvbuf`) with an internal
//! `read`. The buffers of open streams are also kept open at every re-arm
//! (`mprotect::collect`); these wrappers cover the calls in between. No system call to fall
//! back to: in a static executable they stop the program.

use core::ffi::{c_char, c_int, c_void};

use super::{bytes, interpose, no_fallback};

/// Opens the destination of an `fread` and the stream's buffer.
///
/// # Safety
/// `fp` is null or an open stream.
unsafe fn prepare_stream(ptr: *mut c_void, len: usize, fp: *mut c_void) {
    bytes(ptr, len);
    if !fp.is_null() {
        // SAFETY: `fp` is the caller's open stream.
        if let Some((s, e)) = unsafe { crate::sys::stdio::buffer(fp) } {
            super::prepare_kernel_write(s, e - s);
        }
    }
}

/// `BUFSIZ`: the size of a buffer given with `setbuf`.
const BUFSIZ: usize = 8192;

interpose! {
    /// `fread(3)`.
    fn fread(ptr: *mut c_void, size: usize, n: usize, fp: *mut c_void) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n), fp) }
        fallback { no_fallback!(fread) }
    }

    /// `fread_unlocked(3)`.
    fn fread_unlocked(ptr: *mut c_void, size: usize, n: usize, fp: *mut c_void) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n), fp) }
        fallback { no_fallback!(fread_unlocked) }
    }

    /// `__fread_chk` (`_FORTIFY_SOURCE`).
    fn __fread_chk(ptr: *mut c_void, ptrlen: usize, size: usize, n: usize, fp: *mut c_void) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n).min(ptrlen), fp) }
        fallback { no_fallback!(__fread_chk) }
    }

    /// `__fread_unlocked_chk` (`_FORTIFY_SOURCE`).
    fn __fread_unlocked_chk(ptr: *mut c_void, ptrlen: usize, size: usize, n: usize, fp: *mut c_void) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n).min(ptrlen), fp) }
        fallback { no_fallback!(__fread_unlocked_chk) }
    }

    /// `setvbuf(3)`: a buffer the program gives a stream is filled by libc's internal `read`.
    fn setvbuf(fp: *mut c_void, buf: *mut c_char, mode: c_int, size: usize) -> c_int {
        prepare { bytes(buf, size) }
        fallback { no_fallback!(setvbuf) }
    }

    /// `setbuffer(3)`.
    fn setbuffer(fp: *mut c_void, buf: *mut c_char, size: usize) {
        prepare { bytes(buf, size) }
        fallback { no_fallback!(setbuffer) }
    }

    /// `setbuf(3)`: a buffer of `BUFSIZ` bytes.
    fn setbuf(fp: *mut c_void, buf: *mut c_char) {
        prepare { bytes(buf, BUFSIZ) }
        fallback { no_fallback!(setbuf) }
    }
}
