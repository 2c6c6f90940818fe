//! The file system's answers: the stat family (with the 64-bit names, which are the same
//! functions on x86-64, and the `__xstat` names binaries built before glibc 2.33 call),
//! `statx`, `statfs`/`statvfs`, `getcwd`, `readlink`, extended attributes, file handles, and
//! directory reading.
//!
//! A directory stream (`DIR`) is allocated with `malloc`, so by our heap: glibc refills its
//! buffer with an internal `getdents64` that no symbol lookup sees, whenever the buffer has no
//! entry left. The `readdir` wrappers open the stream's block (its size from the heap) before
//! such a refill: glibc 2.36's `struct __dirstream` on x86-64 is `int fd; int lock; size_t
//! allocation, size, offset; off_t filepos; int errcode; char data[]` (data at byte 48), and a
//! refill comes when `offset >= size`. If the fields do not look like that layout (another
//! libc), the block is opened at every call.

use core::ffi::{c_char, c_int, c_uint, c_void};

use super::{bytes, interpose, no_fallback, out, sys};

/// `AT_FDCWD` as the kernel reads it.
const CWD: c_int = libc::AT_FDCWD;

/// Opens the buffer of a directory stream that lives in the persistent heap, when its next read
/// refills it (see the module docs).
///
/// # Safety
/// `dir` is null or an open directory stream.
unsafe fn prepare_dir(dir: *mut libc::DIR) {
    let p = dir.cast::<u8>();
    if p.is_null() || !crate::heap::in_region(p) {
        return;
    }
    // SAFETY: an open DIR is a live block of our heap (libc allocated it with malloc).
    let total = unsafe { crate::heap::usable_size(p) };
    // SAFETY: the block is at least as long as the stream's header, which libc wrote.
    let field = |off: usize| unsafe { p.add(off).cast::<usize>().read() };
    const ALLOCATION: usize = 8;
    const SIZE: usize = 16;
    const OFFSET: usize = 24;
    const DATA: usize = 48;
    if total >= DATA {
        let (alloc, size, offset) = (field(ALLOCATION), field(SIZE), field(OFFSET));
        let layout_ok = alloc <= total - DATA && size <= alloc;
        if layout_ok && offset < size {
            return; // entries left: no refill this call
        }
    }
    bytes(p, total);
}

interpose! {
    /// `stat(2)`.
    fn stat(path: *const c_char, st: *mut libc::stat) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, 0) as c_int }
    }

    /// `stat64(2)`.
    fn stat64(path: *const c_char, st: *mut libc::stat64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, 0) as c_int }
    }

    /// `lstat(2)`.
    fn lstat(path: *const c_char, st: *mut libc::stat) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, libc::AT_SYMLINK_NOFOLLOW) as c_int }
    }

    /// `lstat64(2)`.
    fn lstat64(path: *const c_char, st: *mut libc::stat64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, libc::AT_SYMLINK_NOFOLLOW) as c_int }
    }

    /// `fstat(2)`.
    fn fstat(fd: c_int, st: *mut libc::stat) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_fstat, fd, st) as c_int }
    }

    /// `fstat64(2)`.
    fn fstat64(fd: c_int, st: *mut libc::stat64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_fstat, fd, st) as c_int }
    }

    /// `fstatat(2)`.
    fn fstatat(dirfd: c_int, path: *const c_char, st: *mut libc::stat, flags: c_int) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, dirfd, path, st, flags) as c_int }
    }

    /// `fstatat64(2)`.
    fn fstatat64(dirfd: c_int, path: *const c_char, st: *mut libc::stat64, flags: c_int) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, dirfd, path, st, flags) as c_int }
    }

    /// `__xstat` (what `stat` compiled to before glibc 2.33).
    fn __xstat(ver: c_int, path: *const c_char, st: *mut libc::stat) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, 0) as c_int }
    }

    /// `__xstat64`.
    fn __xstat64(ver: c_int, path: *const c_char, st: *mut libc::stat64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, 0) as c_int }
    }

    /// `__lxstat`.
    fn __lxstat(ver: c_int, path: *const c_char, st: *mut libc::stat) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, libc::AT_SYMLINK_NOFOLLOW) as c_int }
    }

    /// `__lxstat64`.
    fn __lxstat64(ver: c_int, path: *const c_char, st: *mut libc::stat64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, CWD, path, st, libc::AT_SYMLINK_NOFOLLOW) as c_int }
    }

    /// `__fxstat`.
    fn __fxstat(ver: c_int, fd: c_int, st: *mut libc::stat) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_fstat, fd, st) as c_int }
    }

    /// `__fxstat64`.
    fn __fxstat64(ver: c_int, fd: c_int, st: *mut libc::stat64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_fstat, fd, st) as c_int }
    }

    /// `__fxstatat`.
    fn __fxstatat(ver: c_int, dirfd: c_int, path: *const c_char, st: *mut libc::stat, flags: c_int) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, dirfd, path, st, flags) as c_int }
    }

    /// `__fxstatat64`.
    fn __fxstatat64(ver: c_int, dirfd: c_int, path: *const c_char, st: *mut libc::stat64, flags: c_int) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_newfstatat, dirfd, path, st, flags) as c_int }
    }

    /// `statx(2)`.
    fn statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, st: *mut libc::statx) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_statx, dirfd, path, flags, mask, st) as c_int }
    }

    /// `statfs(2)`.
    fn statfs(path: *const c_char, st: *mut libc::statfs) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_statfs, path, st) as c_int }
    }

    /// `statfs64(2)`.
    fn statfs64(path: *const c_char, st: *mut libc::statfs64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_statfs, path, st) as c_int }
    }

    /// `fstatfs(2)`.
    fn fstatfs(fd: c_int, st: *mut libc::statfs) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_fstatfs, fd, st) as c_int }
    }

    /// `fstatfs64(2)`.
    fn fstatfs64(fd: c_int, st: *mut libc::statfs64) -> c_int {
        prepare { out(st) }
        fallback { sys!(libc::SYS_fstatfs, fd, st) as c_int }
    }

    /// `statvfs(3)` (libc converts a `statfs`).
    fn statvfs(path: *const c_char, st: *mut libc::statvfs) -> c_int {
        prepare { out(st) }
        fallback { no_fallback!(statvfs) }
    }

    /// `statvfs64(3)`.
    fn statvfs64(path: *const c_char, st: *mut libc::statvfs64) -> c_int {
        prepare { out(st) }
        fallback { no_fallback!(statvfs64) }
    }

    /// `fstatvfs(3)`.
    fn fstatvfs(fd: c_int, st: *mut libc::statvfs) -> c_int {
        prepare { out(st) }
        fallback { no_fallback!(fstatvfs) }
    }

    /// `fstatvfs64(3)`.
    fn fstatvfs64(fd: c_int, st: *mut libc::statvfs64) -> c_int {
        prepare { out(st) }
        fallback { no_fallback!(fstatvfs64) }
    }

    /// `getcwd(3)`: with a null buffer libc allocates one (a fresh block, already writable).
    fn getcwd(buf: *mut c_char, size: usize) -> *mut c_char {
        prepare { bytes(buf, size) }
        fallback {
            if buf.is_null() {
                no_fallback!(getcwd)
            }
            if sys!(libc::SYS_getcwd, buf, size) < 0 { core::ptr::null_mut() } else { buf }
        }
    }

    /// `__getcwd_chk` (`_FORTIFY_SOURCE`).
    fn __getcwd_chk(buf: *mut c_char, size: usize, buflen: usize) -> *mut c_char {
        prepare { bytes(buf, size.min(buflen)) }
        fallback { no_fallback!(__getcwd_chk) }
    }

    /// `readlink(2)`.
    fn readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize {
        prepare { bytes(buf, size) }
        fallback { sys!(libc::SYS_readlinkat, CWD, path, buf, size) as isize }
    }

    /// `__readlink_chk` (`_FORTIFY_SOURCE`).
    fn __readlink_chk(path: *const c_char, buf: *mut c_char, size: usize, buflen: usize) -> isize {
        prepare { bytes(buf, size.min(buflen)) }
        fallback { no_fallback!(__readlink_chk) }
    }

    /// `readlinkat(2)`.
    fn readlinkat(dirfd: c_int, path: *const c_char, buf: *mut c_char, size: usize) -> isize {
        prepare { bytes(buf, size) }
        fallback { sys!(libc::SYS_readlinkat, dirfd, path, buf, size) as isize }
    }

    /// `__readlinkat_chk` (`_FORTIFY_SOURCE`).
    fn __readlinkat_chk(dirfd: c_int, path: *const c_char, buf: *mut c_char, size: usize, buflen: usize) -> isize {
        prepare { bytes(buf, size.min(buflen)) }
        fallback { no_fallback!(__readlinkat_chk) }
    }

    /// `getxattr(2)`.
    fn getxattr(path: *const c_char, name: *const c_char, value: *mut c_void, size: usize) -> isize {
        prepare { bytes(value, size) }
        fallback { sys!(libc::SYS_getxattr, path, name, value, size) as isize }
    }

    /// `lgetxattr(2)`.
    fn lgetxattr(path: *const c_char, name: *const c_char, value: *mut c_void, size: usize) -> isize {
        prepare { bytes(value, size) }
        fallback { sys!(libc::SYS_lgetxattr, path, name, value, size) as isize }
    }

    /// `fgetxattr(2)`.
    fn fgetxattr(fd: c_int, name: *const c_char, value: *mut c_void, size: usize) -> isize {
        prepare { bytes(value, size) }
        fallback { sys!(libc::SYS_fgetxattr, fd, name, value, size) as isize }
    }

    /// `listxattr(2)`.
    fn listxattr(path: *const c_char, list: *mut c_char, size: usize) -> isize {
        prepare { bytes(list, size) }
        fallback { sys!(libc::SYS_listxattr, path, list, size) as isize }
    }

    /// `llistxattr(2)`.
    fn llistxattr(path: *const c_char, list: *mut c_char, size: usize) -> isize {
        prepare { bytes(list, size) }
        fallback { sys!(libc::SYS_llistxattr, path, list, size) as isize }
    }

    /// `flistxattr(2)`.
    fn flistxattr(fd: c_int, list: *mut c_char, size: usize) -> isize {
        prepare { bytes(list, size) }
        fallback { sys!(libc::SYS_flistxattr, fd, list, size) as isize }
    }

    /// `name_to_handle_at(2)`: the handle (its header and `handle_bytes` bytes) and the mount
    /// id.
    fn name_to_handle_at(
        dirfd: c_int,
        path: *const c_char,
        handle: *mut libc::file_handle,
        mount_id: *mut c_int,
        flags: c_int,
    ) -> c_int {
        prepare {
            if !handle.is_null() {
                bytes(handle, 8 + (*handle).handle_bytes as usize);
            }
            out(mount_id)
        }
        fallback { sys!(libc::SYS_name_to_handle_at, dirfd, path, handle, mount_id, flags) as c_int }
    }

    /// `readdir(3)`: the stream's buffer (see the module docs).
    fn readdir(dir: *mut libc::DIR) -> *mut libc::dirent {
        prepare { prepare_dir(dir) }
        fallback { no_fallback!(readdir) }
    }

    /// `readdir64(3)`.
    fn readdir64(dir: *mut libc::DIR) -> *mut libc::dirent64 {
        prepare { prepare_dir(dir) }
        fallback { no_fallback!(readdir64) }
    }

    /// `readdir_r(3)`: the stream's buffer; libc copies the entry out itself.
    fn readdir_r(dir: *mut libc::DIR, entry: *mut libc::dirent, result: *mut *mut libc::dirent) -> c_int {
        prepare { prepare_dir(dir) }
        fallback { no_fallback!(readdir_r) }
    }

    /// `readdir64_r(3)`.
    fn readdir64_r(dir: *mut libc::DIR, entry: *mut libc::dirent64, result: *mut *mut libc::dirent64) -> c_int {
        prepare { prepare_dir(dir) }
        fallback { no_fallback!(readdir64_r) }
    }

    /// `getdents64(2)`.
    fn getdents64(fd: c_int, buf: *mut c_void, size: usize) -> isize {
        prepare { bytes(buf, size) }
        fallback { sys!(libc::SYS_getdents64, fd, buf, size) as isize }
    }

    /// `getdirentries(3)`: libc's internal `getdents64` into the buffer.
    fn getdirentries(fd: c_int, buf: *mut c_char, size: usize, base: *mut i64) -> isize {
        prepare {
            bytes(buf, size);
            out(base)
        }
        fallback { no_fallback!(getdirentries) }
    }

    /// `getdirentries64(3)`.
    fn getdirentries64(fd: c_int, buf: *mut c_char, size: usize, base: *mut i64) -> isize {
        prepare {
            bytes(buf, size);
            out(base)
        }
        fallback { no_fallback!(getdirentries64) }
    }
}
