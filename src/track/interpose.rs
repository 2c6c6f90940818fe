//! Interposed read-family calls: open the destination for the kernel's write first.
//!
//! With the mprotect tracker, a system call that writes into a write-protected page fails with
//! EFAULT (no signal is raised), so every call that reads into user memory is wrapped: the
//! destination's region pages are recorded dirty and made writable, then the real function
//! runs. Without the mprotect tracker the wrappers only forward. The real functions are found
//! with `dlsym(RTLD_NEXT, …)` once and cached. Exported from the C library and linked into Rust
//! programs (whose `std::fs::File::read` calls `read`).
#![allow(unsafe_code)] // FFI exports.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

use super::mprotect::prepare_kernel_write;

fn real(slot: &AtomicPtr<c_void>, name: &core::ffi::CStr) -> *mut c_void {
    let p = slot.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    let p = crate::sys::proc::next_symbol(name);
    if p.is_null() {
        crate::sys::fatal("cannot find the next definition of an interposed libc function");
    }
    slot.store(p, Ordering::Relaxed);
    p
}

macro_rules! next {
    ($name:literal, $ty:ty) => {{
        static SLOT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
        // SAFETY: the symbol found is libc's function of this exact C signature.
        unsafe { core::mem::transmute::<*mut c_void, $ty>(real(&SLOT, $name)) }
    }};
}

/// # Safety
/// `iov` points at `n` iovecs.
unsafe fn prepare_iov(iov: *const libc::iovec, n: c_int) {
    for i in 0..n.max(0) as usize {
        // SAFETY: the caller passes the iovec array it gives the kernel.
        let v = unsafe { &*iov.add(i) };
        prepare_kernel_write(v.iov_base as usize, v.iov_len);
    }
}

/// `read(2)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize {
    prepare_kernel_write(buf as usize, n);
    let f = next!(c"read", unsafe extern "C" fn(c_int, *mut c_void, usize) -> isize);
    // SAFETY: forwarded with the caller's arguments.
    unsafe { f(fd, buf, n) }
}

/// `pread(2)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pread(fd: c_int, buf: *mut c_void, n: usize, off: i64) -> isize {
    prepare_kernel_write(buf as usize, n);
    let f = next!(c"pread", unsafe extern "C" fn(c_int, *mut c_void, usize, i64) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, buf, n, off) }
}

/// `pread64(2)` (the same call on 64-bit Linux).
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pread64(fd: c_int, buf: *mut c_void, n: usize, off: i64) -> isize {
    prepare_kernel_write(buf as usize, n);
    let f = next!(c"pread64", unsafe extern "C" fn(c_int, *mut c_void, usize, i64) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, buf, n, off) }
}

/// `readv(2)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize {
    // SAFETY: forwarded from the caller.
    unsafe { prepare_iov(iov, n) };
    let f = next!(c"readv", unsafe extern "C" fn(c_int, *const libc::iovec, c_int) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, iov, n) }
}

/// `preadv(2)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn preadv(fd: c_int, iov: *const libc::iovec, n: c_int, off: i64) -> isize {
    // SAFETY: forwarded from the caller.
    unsafe { prepare_iov(iov, n) };
    let f = next!(c"preadv", unsafe extern "C" fn(c_int, *const libc::iovec, c_int, i64) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, iov, n, off) }
}

/// `preadv64(2)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn preadv64(fd: c_int, iov: *const libc::iovec, n: c_int, off: i64) -> isize {
    // SAFETY: forwarded from the caller.
    unsafe { prepare_iov(iov, n) };
    let f = next!(c"preadv64", unsafe extern "C" fn(c_int, *const libc::iovec, c_int, i64) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, iov, n, off) }
}

/// `recv(2)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize {
    prepare_kernel_write(buf as usize, n);
    let f = next!(c"recv", unsafe extern "C" fn(c_int, *mut c_void, usize, c_int) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, buf, n, flags) }
}

/// `recvfrom(2)`: the buffer and the source address may both be in the heap.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: usize,
    flags: c_int,
    addr: *mut libc::sockaddr,
    addrlen: *mut libc::socklen_t,
) -> isize {
    prepare_kernel_write(buf as usize, n);
    if !addr.is_null() && !addrlen.is_null() {
        // SAFETY: a non-null addrlen points at the caller's length.
        prepare_kernel_write(addr as usize, unsafe { *addrlen } as usize);
        prepare_kernel_write(addrlen as usize, core::mem::size_of::<libc::socklen_t>());
    }
    let f = next!(
        c"recvfrom",
        unsafe extern "C" fn(c_int, *mut c_void, usize, c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> isize
    );
    // SAFETY: forwarded.
    unsafe { f(fd, buf, n, flags, addr, addrlen) }
}

/// `recvmsg(2)`: the data buffers, the name and the control buffer, and the header itself.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
    if !msg.is_null() {
        // SAFETY: the caller passes a valid msghdr, as the kernel requires.
        let m = unsafe { &*msg };
        prepare_kernel_write(msg as usize, core::mem::size_of::<libc::msghdr>());
        // SAFETY: forwarded from the caller.
        unsafe { prepare_iov(m.msg_iov, m.msg_iovlen as c_int) };
        prepare_kernel_write(m.msg_name as usize, m.msg_namelen as usize);
        prepare_kernel_write(m.msg_control as usize, m.msg_controllen);
    }
    let f = next!(c"recvmsg", unsafe extern "C" fn(c_int, *mut libc::msghdr, c_int) -> isize);
    // SAFETY: forwarded.
    unsafe { f(fd, msg, flags) }
}

/// `fread(3)`: glibc reads large requests straight into the destination, and fills the
/// stream's buffer (possibly allocated just now) with an internal `read`.
///
/// # Safety
/// The C contract of `fread`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fread(ptr: *mut c_void, size: usize, n: usize, fp: *mut c_void) -> usize {
    // SAFETY: forwarded from the caller's contract (valid stream).
    unsafe { prepare_stream(ptr, size, n, fp) };
    let f = next!(c"fread", unsafe extern "C" fn(*mut c_void, usize, usize, *mut c_void) -> usize);
    // SAFETY: forwarded.
    unsafe { f(ptr, size, n, fp) }
}

/// `fread_unlocked(3)`.
///
/// # Safety
/// The C contract of the function it wraps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fread_unlocked(ptr: *mut c_void, size: usize, n: usize, fp: *mut c_void) -> usize {
    // SAFETY: forwarded from the caller's contract (valid stream).
    unsafe { prepare_stream(ptr, size, n, fp) };
    let f = next!(c"fread_unlocked", unsafe extern "C" fn(*mut c_void, usize, usize, *mut c_void) -> usize);
    // SAFETY: forwarded.
    unsafe { f(ptr, size, n, fp) }
}

/// `setvbuf(3)`: a buffer the program gives a stream is filled by libc's internal `read`.
///
/// # Safety
/// The C contract of `setvbuf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setvbuf(fp: *mut c_void, buf: *mut libc::c_char, mode: c_int, size: usize) -> c_int {
    if !buf.is_null() {
        prepare_kernel_write(buf as usize, size);
    }
    let f = next!(c"setvbuf", unsafe extern "C" fn(*mut c_void, *mut libc::c_char, c_int, usize) -> c_int);
    // SAFETY: forwarded.
    unsafe { f(fp, buf, mode, size) }
}

/// `setbuffer(3)`.
///
/// # Safety
/// The C contract of `setbuffer`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setbuffer(fp: *mut c_void, buf: *mut libc::c_char, size: usize) {
    if !buf.is_null() {
        prepare_kernel_write(buf as usize, size);
    }
    let f = next!(c"setbuffer", unsafe extern "C" fn(*mut c_void, *mut libc::c_char, usize));
    // SAFETY: forwarded.
    unsafe { f(fp, buf, size) }
}

/// `setbuf(3)`: a buffer of `BUFSIZ` bytes.
///
/// # Safety
/// The C contract of `setbuf`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setbuf(fp: *mut c_void, buf: *mut libc::c_char) {
    if !buf.is_null() {
        prepare_kernel_write(buf as usize, 8192);
    }
    let f = next!(c"setbuf", unsafe extern "C" fn(*mut c_void, *mut libc::c_char));
    // SAFETY: forwarded.
    unsafe { f(fp, buf) }
}

/// # Safety
/// `fp` is null or an open stream.
unsafe fn prepare_stream(ptr: *mut c_void, size: usize, n: usize, fp: *mut c_void) {
    prepare_kernel_write(ptr as usize, size.saturating_mul(n));
    if !fp.is_null() {
        // SAFETY: `fp` is the caller's open stream.
        if let Some((s, e)) = unsafe { crate::sys::stdio::buffer(fp) } {
            prepare_kernel_write(s, e - s);
        }
    }
}
