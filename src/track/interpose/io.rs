//! Reading into memory: the read family (with glibc's `_FORTIFY_SOURCE` `_chk` variants, which
//! call the system call themselves), pipes, randomness, message queues, the offsets that
//! `splice`, `sendfile` and `copy_file_range` write back, `process_vm_readv`, and stdio.
//!
//! stdio: glibc reads large `fread` requests straight into the destination, and fills a
//! stream's buffer (possibly allocated just now, or given with `setvbuf`) with an internal
//! `read`. The buffers of open streams are also kept open at every re-arm
//! (`mprotect::collect`); the stdio wrappers cover the calls in between. They have no system
//! call to fall back to: in a static executable they stop the program.

use core::ffi::{c_char, c_int, c_long, c_uint, c_void};

use super::{bytes, interpose, iov, no_fallback, out, out_n, sys};

/// glibc's message for a `_chk` function called with a buffer shorter than the request.
fn overflow() -> ! {
    crate::sys::fatal("*** buffer overflow detected ***: a read would overrun its buffer")
}

interpose! {
    /// `read(2)`.
    fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize {
        prepare { bytes(buf, n) }
        fallback { sys!(libc::SYS_read, fd, buf, n) as isize }
    }

    /// `__read_chk`: `read` with the buffer's size checked (`_FORTIFY_SOURCE`).
    fn __read_chk(fd: c_int, buf: *mut c_void, n: usize, buflen: usize) -> isize {
        prepare { bytes(buf, n.min(buflen)) }
        fallback {
            if n > buflen {
                overflow()
            }
            sys!(libc::SYS_read, fd, buf, n) as isize
        }
    }

    /// `pread(2)`.
    fn pread(fd: c_int, buf: *mut c_void, n: usize, off: i64) -> isize {
        prepare { bytes(buf, n) }
        fallback { sys!(libc::SYS_pread64, fd, buf, n, off) as isize }
    }

    /// `pread64(2)` (the same call on 64-bit Linux).
    fn pread64(fd: c_int, buf: *mut c_void, n: usize, off: i64) -> isize {
        prepare { bytes(buf, n) }
        fallback { sys!(libc::SYS_pread64, fd, buf, n, off) as isize }
    }

    /// `__pread_chk`.
    fn __pread_chk(fd: c_int, buf: *mut c_void, n: usize, off: i64, buflen: usize) -> isize {
        prepare { bytes(buf, n.min(buflen)) }
        fallback {
            if n > buflen {
                overflow()
            }
            sys!(libc::SYS_pread64, fd, buf, n, off) as isize
        }
    }

    /// `__pread64_chk`.
    fn __pread64_chk(fd: c_int, buf: *mut c_void, n: usize, off: i64, buflen: usize) -> isize {
        prepare { bytes(buf, n.min(buflen)) }
        fallback {
            if n > buflen {
                overflow()
            }
            sys!(libc::SYS_pread64, fd, buf, n, off) as isize
        }
    }

    /// `readv(2)`.
    fn readv(fd: c_int, v: *const libc::iovec, n: c_int) -> isize {
        prepare { iov(v, n.max(0) as usize) }
        fallback { sys!(libc::SYS_readv, fd, v, n) as isize }
    }

    /// `preadv(2)`.
    fn preadv(fd: c_int, v: *const libc::iovec, n: c_int, off: i64) -> isize {
        prepare { iov(v, n.max(0) as usize) }
        fallback { sys!(libc::SYS_preadv, fd, v, n, off, 0) as isize }
    }

    /// `preadv64(2)`.
    fn preadv64(fd: c_int, v: *const libc::iovec, n: c_int, off: i64) -> isize {
        prepare { iov(v, n.max(0) as usize) }
        fallback { sys!(libc::SYS_preadv, fd, v, n, off, 0) as isize }
    }

    /// `preadv2(2)`.
    fn preadv2(fd: c_int, v: *const libc::iovec, n: c_int, off: i64, flags: c_int) -> isize {
        prepare { iov(v, n.max(0) as usize) }
        fallback { sys!(libc::SYS_preadv2, fd, v, n, off, 0, flags) as isize }
    }

    /// `preadv64v2(2)`.
    fn preadv64v2(fd: c_int, v: *const libc::iovec, n: c_int, off: i64, flags: c_int) -> isize {
        prepare { iov(v, n.max(0) as usize) }
        fallback { sys!(libc::SYS_preadv2, fd, v, n, off, 0, flags) as isize }
    }

    /// `pipe(2)`: the two descriptors.
    fn pipe(fds: *mut c_int) -> c_int {
        prepare { out_n(fds, 2) }
        fallback { sys!(libc::SYS_pipe2, fds, 0) as c_int }
    }

    /// `pipe2(2)`.
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int {
        prepare { out_n(fds, 2) }
        fallback { sys!(libc::SYS_pipe2, fds, flags) as c_int }
    }

    /// `getrandom(2)`.
    fn getrandom(buf: *mut c_void, n: usize, flags: c_uint) -> isize {
        prepare { bytes(buf, n) }
        fallback { sys!(libc::SYS_getrandom, buf, n, flags) as isize }
    }

    /// `getentropy(3)`: at most 256 bytes, all of them or an error.
    fn getentropy(buf: *mut c_void, n: usize) -> c_int {
        prepare { bytes(buf, n) }
        fallback {
            if n > 256 {
                return super::fail(libc::EIO);
            }
            let mut done = 0;
            while done < n {
                let r = sys!(libc::SYS_getrandom, buf.cast::<u8>().add(done), n - done, 0);
                if r < 0 {
                    if crate::sys::errno() == libc::EINTR {
                        continue;
                    }
                    return -1;
                }
                done += r as usize;
            }
            0
        }
    }

    /// `eventfd_read(3)`: libc reads the counter with its internal `read`.
    fn eventfd_read(fd: c_int, value: *mut u64) -> c_int {
        prepare { out(value) }
        fallback { if sys!(libc::SYS_read, fd, value, 8) == 8 { 0 } else { -1 } }
    }

    /// `msgrcv(2)`: the message type and up to `size` bytes of text.
    fn msgrcv(id: c_int, msg: *mut c_void, size: usize, ty: c_long, flags: c_int) -> isize {
        prepare { bytes(msg, size.saturating_add(core::mem::size_of::<c_long>())) }
        fallback { sys!(libc::SYS_msgrcv, id, msg, size, ty, flags) as isize }
    }

    /// `msgctl(2)`: `IPC_STAT`, `IPC_INFO`, `MSG_STAT` (11), `MSG_INFO` (12) and `MSG_STAT_ANY`
    /// (13) fill the buffer (`msginfo` is smaller than `msqid_ds`).
    fn msgctl(id: c_int, cmd: c_int, buf: *mut libc::msqid_ds) -> c_int {
        prepare {
            if matches!(cmd, libc::IPC_STAT | libc::IPC_INFO | 11 | 12 | 13) {
                out(buf)
            }
        }
        fallback { sys!(libc::SYS_msgctl, id, cmd, buf) as c_int }
    }

    /// `shmctl(2)`: `IPC_STAT`, `IPC_INFO`, `SHM_STAT` (13), `SHM_INFO` (14) and `SHM_STAT_ANY`
    /// (15) fill the buffer (`shminfo` and `shm_info` are smaller than `shmid_ds`).
    fn shmctl(id: c_int, cmd: c_int, buf: *mut libc::shmid_ds) -> c_int {
        prepare {
            if matches!(cmd, libc::IPC_STAT | libc::IPC_INFO | 13 | 14 | 15) {
                out(buf)
            }
        }
        fallback { sys!(libc::SYS_shmctl, id, cmd, buf) as c_int }
    }

    /// `mq_receive(3)`: the message and its priority.
    fn mq_receive(mq: libc::mqd_t, msg: *mut c_char, len: usize, prio: *mut c_uint) -> isize {
        prepare {
            bytes(msg, len);
            out(prio)
        }
        fallback { sys!(libc::SYS_mq_timedreceive, mq, msg, len, prio, 0) as isize }
    }

    /// `mq_timedreceive(3)`.
    fn mq_timedreceive(
        mq: libc::mqd_t,
        msg: *mut c_char,
        len: usize,
        prio: *mut c_uint,
        timeout: *const libc::timespec,
    ) -> isize {
        prepare {
            bytes(msg, len);
            out(prio)
        }
        fallback { sys!(libc::SYS_mq_timedreceive, mq, msg, len, prio, timeout) as isize }
    }

    /// `mq_getattr(3)`.
    fn mq_getattr(mq: libc::mqd_t, attr: *mut libc::mq_attr) -> c_int {
        prepare { out(attr) }
        fallback { sys!(libc::SYS_mq_getsetattr, mq, 0, attr) as c_int }
    }

    /// `mq_setattr(3)`: the old attributes.
    fn mq_setattr(mq: libc::mqd_t, new: *const libc::mq_attr, old: *mut libc::mq_attr) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_mq_getsetattr, mq, new, old) as c_int }
    }

    /// `sendfile(2)`: the input offset is written back.
    fn sendfile(out_fd: c_int, in_fd: c_int, off: *mut i64, n: usize) -> isize {
        prepare { out(off) }
        fallback { sys!(libc::SYS_sendfile, out_fd, in_fd, off, n) as isize }
    }

    /// `sendfile64(2)`.
    fn sendfile64(out_fd: c_int, in_fd: c_int, off: *mut i64, n: usize) -> isize {
        prepare { out(off) }
        fallback { sys!(libc::SYS_sendfile, out_fd, in_fd, off, n) as isize }
    }

    /// `splice(2)`: both offsets are written back.
    fn splice(fd_in: c_int, off_in: *mut i64, fd_out: c_int, off_out: *mut i64, n: usize, flags: c_uint) -> isize {
        prepare {
            out(off_in);
            out(off_out)
        }
        fallback { sys!(libc::SYS_splice, fd_in, off_in, fd_out, off_out, n, flags) as isize }
    }

    /// `copy_file_range(2)`: both offsets are written back.
    fn copy_file_range(
        fd_in: c_int,
        off_in: *mut i64,
        fd_out: c_int,
        off_out: *mut i64,
        n: usize,
        flags: c_uint,
    ) -> isize {
        prepare {
            out(off_in);
            out(off_out)
        }
        fallback { sys!(libc::SYS_copy_file_range, fd_in, off_in, fd_out, off_out, n, flags) as isize }
    }

    /// `vmsplice(2)`: from a pipe's read end it fills the iovecs (from the write end it only
    /// reads them; they are opened all the same).
    fn vmsplice(fd: c_int, v: *const libc::iovec, n: usize, flags: c_uint) -> isize {
        prepare { iov(v, n) }
        fallback { sys!(libc::SYS_vmsplice, fd, v, n, flags) as isize }
    }

    /// `process_vm_readv(2)`: the local iovecs receive the data.
    fn process_vm_readv(
        pid: libc::pid_t,
        local: *const libc::iovec,
        nlocal: libc::c_ulong,
        remote: *const libc::iovec,
        nremote: libc::c_ulong,
        flags: libc::c_ulong,
    ) -> isize {
        prepare { iov(local, nlocal as usize) }
        fallback { sys!(libc::SYS_process_vm_readv, pid, local, nlocal, remote, nremote, flags) as isize }
    }
}

/// Opens the destination of an `fread` and the stream's buffer.
///
/// # Safety
/// `fp` is null or an open stream.
unsafe fn prepare_stream(ptr: *mut c_void, len: usize, fp: *mut libc::FILE) {
    bytes(ptr, len);
    if !fp.is_null() {
        // SAFETY: `fp` is the caller's open stream.
        if let Some((s, e)) = unsafe { crate::sys::stdio::buffer(fp.cast()) } {
            super::prepare_kernel_write(s, e - s);
        }
    }
}

/// `BUFSIZ`: the size of a buffer given with `setbuf`.
const BUFSIZ: usize = 8192;

interpose! {
    /// `fread(3)`.
    fn fread(ptr: *mut c_void, size: usize, n: usize, fp: *mut libc::FILE) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n), fp) }
        fallback { no_fallback!(fread) }
    }

    /// `fread_unlocked(3)`.
    fn fread_unlocked(ptr: *mut c_void, size: usize, n: usize, fp: *mut libc::FILE) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n), fp) }
        fallback { no_fallback!(fread_unlocked) }
    }

    /// `__fread_chk` (`_FORTIFY_SOURCE`).
    fn __fread_chk(ptr: *mut c_void, ptrlen: usize, size: usize, n: usize, fp: *mut libc::FILE) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n).min(ptrlen), fp) }
        fallback { no_fallback!(__fread_chk) }
    }

    /// `__fread_unlocked_chk` (`_FORTIFY_SOURCE`).
    fn __fread_unlocked_chk(ptr: *mut c_void, ptrlen: usize, size: usize, n: usize, fp: *mut libc::FILE) -> usize {
        prepare { prepare_stream(ptr, size.saturating_mul(n).min(ptrlen), fp) }
        fallback { no_fallback!(__fread_unlocked_chk) }
    }

    /// `setvbuf(3)`: a buffer the program gives a stream is filled by libc's internal `read`.
    fn setvbuf(fp: *mut libc::FILE, buf: *mut c_char, mode: c_int, size: usize) -> c_int {
        prepare { bytes(buf, size) }
        fallback { no_fallback!(setvbuf) }
    }

    /// `setbuffer(3)`.
    fn setbuffer(fp: *mut libc::FILE, buf: *mut c_char, size: usize) {
        prepare { bytes(buf, size) }
        fallback { no_fallback!(setbuffer) }
    }

    /// `setbuf(3)`: a buffer of `BUFSIZ` bytes.
    fn setbuf(fp: *mut libc::FILE, buf: *mut c_char) {
        prepare { bytes(buf, BUFSIZ) }
        fallback { no_fallback!(setbuf) }
    }
}
