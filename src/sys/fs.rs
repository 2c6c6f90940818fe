//! Files: open relative to a directory descriptor, positional I/O, sync, locks, metadata.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{cvt, retry};
use crate::error::Errno;

/// The metadata crthreads checks on checkpoint files and directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Owner.
    pub uid: u32,
    /// Permission and type bits.
    pub mode: u32,
    /// Hard links (0: the file or directory was removed while open).
    pub nlink: u64,
    /// Size in bytes.
    pub size: u64,
    /// Bytes allocated on disk (less than `size` for a sparse file).
    pub disk_bytes: u64,
    /// Last modification, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

impl Stat {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
    /// Whether this is a FIFO or a socket (which must never be opened or waited on).
    pub fn is_fifo_or_socket(&self) -> bool {
        matches!(self.mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
    }
    /// Whether this is a character device (such as `/dev/null`).
    pub fn is_char_device(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFCHR
    }
}

fn cpath(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno(libc::EINVAL))
}

/// Where the runtime's own descriptors go when the limit allows: above the program's, so that
/// a restore can give the program its files back at their old numbers (and a program started
/// with its standard descriptors closed never finds its output going to crthreads' files).
pub const RUNTIME_FD_MIN: i32 = 512;

/// The runtime's descriptors that had to stay below [`RUNTIME_FD_MIN`] (a low descriptor
/// limit), one bit each: never taken for the program's.
static LOW_RUNTIME: [core::sync::atomic::AtomicU64; RUNTIME_FD_MIN as usize / 64] =
    [const { core::sync::atomic::AtomicU64::new(0) }; RUNTIME_FD_MIN as usize / 64];

/// Whether `fd` is (or was) one of the runtime's own descriptors.
pub fn is_runtime_fd(fd: i32) -> bool {
    fd >= RUNTIME_FD_MIN
        || (fd >= 0 && LOW_RUNTIME[fd as usize / 64].load(core::sync::atomic::Ordering::Relaxed) & 1 << (fd % 64) != 0)
}

/// Takes ownership of a descriptor just returned by the kernel, moving it to
/// [`RUNTIME_FD_MIN`] or above (3 or above if the descriptor limit is lower). The result is
/// close-on-exec.
pub(crate) fn owned(fd: libc::c_long) -> OwnedFd {
    let fd = fd as i32;
    if (0..RUNTIME_FD_MIN).contains(&fd) {
        // SAFETY: F_DUPFD_CLOEXEC only creates a new descriptor; `fd` is ours.
        let mut high = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, RUNTIME_FD_MIN) } as i32;
        if high < 0 && fd < 3 {
            // SAFETY: as above.
            high = unsafe { libc::syscall(libc::SYS_fcntl, fd, libc::F_DUPFD_CLOEXEC, 3) } as i32;
        }
        if high >= 3 {
            // SAFETY: `fd` is ours and no longer needed; the duplicate refers to the same file.
            unsafe { libc::close(fd) };
            if high < RUNTIME_FD_MIN {
                LOW_RUNTIME[high as usize / 64].fetch_or(1 << (high % 64), core::sync::atomic::Ordering::Relaxed);
            }
            // SAFETY: `high` was just created and is owned by no one else.
            return unsafe { OwnedFd::from_raw_fd(high) };
        }
        LOW_RUNTIME[fd as usize / 64].fetch_or(1 << (fd % 64), core::sync::atomic::Ordering::Relaxed);
    }
    // SAFETY: `fd` was just returned by a successful open and is owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Opens the directory at `path` without following a final symlink.
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    let c = cpath(path)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is a valid NUL-terminated string.
    retry(|| cvt(unsafe { libc::open(c.as_ptr(), flags) } as libc::c_long)).map(owned)
}

/// Creates the directory `path` with `mode`.
pub(crate) fn mkdir(path: &Path, mode: u32) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    cvt(unsafe { libc::mkdir(c.as_ptr(), mode) } as libc::c_long).map(drop)
}

/// Opens `name` inside `dir` (never following a symlink) with
/// `flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK`: non-blocking so that a FIFO planted in the
/// directory is opened at once (and then refused by the caller's type check) instead of
/// blocking forever; on a regular file the flag has no effect.
pub(crate) fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let flags = flags | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK;
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor.
    retry(|| cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode) } as libc::c_long)).map(owned)
}

/// Removes `name` from `dir`.
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and `dir` is an open descriptor.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } as libc::c_long).map(drop)
}

/// Removes the empty directory `path`.
pub(crate) fn rmdir(path: &Path) -> Result<(), Errno> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    cvt(unsafe { libc::rmdir(c.as_ptr()) } as libc::c_long).map(drop)
}

fn to_stat(st: &libc::stat) -> Stat {
    Stat {
        uid: st.st_uid,
        mode: st.st_mode,
        nlink: st.st_nlink,
        size: st.st_size as u64,
        disk_bytes: st.st_blocks as u64 * 512,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        dev: st.st_dev,
        ino: st.st_ino,
    }
}

/// Metadata of an open file.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> Result<Stat, Errno> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer and `fd` is open.
    cvt(unsafe { libc::syscall(libc::SYS_fstat, fd.as_raw_fd(), &mut st) })?;
    Ok(to_stat(&st))
}

/// Metadata of `path` itself (not following a final symlink, like `lstat(2)`).
pub(crate) fn lstat(path: &Path) -> Result<Stat, Errno> {
    let c = cpath(path)?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    cvt(unsafe {
        libc::syscall(libc::SYS_newfstatat, libc::AT_FDCWD, c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW)
    })?;
    Ok(to_stat(&st))
}

/// Metadata of `path` (following symlinks, like `stat(2)`).
pub(crate) fn stat(path: &Path) -> Result<Stat, Errno> {
    let c = cpath(path)?;
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out-pointer.
    cvt(unsafe { libc::syscall(libc::SYS_newfstatat, libc::AT_FDCWD, c.as_ptr(), &mut st, 0) })?;
    Ok(to_stat(&st))
}

/// Writes all of `len` bytes at `ptr` to `fd` at `offset`.
///
/// # Safety
/// `ptr..ptr+len` must be readable for the duration of the call. Concurrent writers to that
/// memory only make the written bytes unspecified, which is the caller's business.
pub(crate) unsafe fn pwrite_all(
    fd: BorrowedFd<'_>,
    mut ptr: *const u8,
    mut len: usize,
    mut offset: u64,
) -> Result<(), Errno> {
    while len > 0 {
        // SAFETY: forwarded from the caller: the range is readable.
        // A raw syscall: `pwrite` may be interposed by this very library.
        let n = retry(|| cvt(unsafe { libc::syscall(libc::SYS_pwrite64, fd.as_raw_fd(), ptr, len, offset as i64) }))?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        let n = n as usize;
        // SAFETY: n <= len, so the advanced pointer stays within (or one past) the range.
        ptr = unsafe { ptr.add(n) };
        len -= n;
        offset += n as u64;
    }
    Ok(())
}

/// Reads up to `len` bytes at `offset` into `ptr`, stopping early only at end of file.
/// Returns the number of bytes read.
///
/// # Safety
/// `ptr..ptr+len` must be writable and not aliased by any live reference.
pub(crate) unsafe fn pread_full(fd: BorrowedFd<'_>, ptr: *mut u8, len: usize, offset: u64) -> Result<usize, Errno> {
    let mut done = 0;
    while done < len {
        let n = retry(|| {
            // SAFETY: forwarded from the caller; `done < len` keeps the destination in range.
            // A raw syscall: `pread` is interposed by this very library (track::interpose).
            cvt(unsafe {
                libc::syscall(
                    libc::SYS_pread64,
                    fd.as_raw_fd(),
                    ptr.add(done),
                    len - done,
                    (offset + done as u64) as i64,
                )
            })
        })?;
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// Opens `path` for appending (creating it with `mode`), non-blocking so that a FIFO is not
/// waited on; the caller checks the file's type.
pub(crate) fn open_append(path: &Path, mode: u32) -> Result<OwnedFd, Errno> {
    let c = cpath(path)?;
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: `c` is a valid NUL-terminated string.
    retry(|| cvt(unsafe { libc::open(c.as_ptr(), flags, mode) } as libc::c_long)).map(owned)
}

/// Appends `buf` to `fd` with raw system calls (no stdio, no interposed symbol).
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: `buf` is readable for its length; `fd` is open.
        let n = retry(|| cvt(unsafe { libc::syscall(libc::SYS_write, fd.as_raw_fd(), buf.as_ptr(), buf.len()) }))?;
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// The whole contents of a small file such as one under `/proc`, read with raw system calls
/// (the runtime must not go through the read family this library interposes).
pub(crate) fn read_small_file(path: &Path) -> Result<Vec<u8>, Errno> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let fd = retry(|| cvt(unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as libc::c_long))
        .map(owned)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `buf` is a writable buffer of its length; `fd` is open.
        let n = retry(|| cvt(unsafe { libc::syscall(libc::SYS_read, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) }))?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

/// Reads the start of a small file (such as one under `/proc`) into `buf` with raw system
/// calls and no allocation. Returns the bytes read.
pub(crate) fn read_into_stack(path: &CStr, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `path` is NUL-terminated.
    let fd = retry(|| cvt(unsafe { libc::syscall(libc::SYS_open, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }))?;
    let fd = owned(fd);
    let mut done = 0;
    while done < buf.len() {
        let n = retry(|| {
            // SAFETY: the unfilled tail of `buf` is writable; `fd` is open.
            cvt(unsafe { libc::syscall(libc::SYS_read, fd.as_raw_fd(), buf[done..].as_mut_ptr(), buf.len() - done) })
        })?;
        if n == 0 {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}

/// Reads into a byte slice; see [`pread_full`].
pub(crate) fn pread_into(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    // SAFETY: `buf` is a unique, writable slice.
    unsafe { pread_full(fd, buf.as_mut_ptr(), buf.len(), offset) }
}

/// Writes a byte slice; see [`pwrite_all`].
pub(crate) fn pwrite_from(fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> Result<(), Errno> {
    // SAFETY: `buf` is a readable slice.
    unsafe { pwrite_all(fd, buf.as_ptr(), buf.len(), offset) }
}

/// Flushes file data (and the metadata needed to read it back) to stable storage.
pub(crate) fn fdatasync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: `fd` is open.
    retry(|| cvt(unsafe { libc::fdatasync(fd.as_raw_fd()) } as libc::c_long)).map(drop)
}

/// Flushes a file or directory, metadata included.
pub(crate) fn fsync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: `fd` is open.
    retry(|| cvt(unsafe { libc::fsync(fd.as_raw_fd()) } as libc::c_long)).map(drop)
}

/// Takes a POSIX lock on the whole of `fd` without blocking: a write lock (`fd` opened for
/// writing) or, with `!write`, a read lock (which still conflicts with any write lock).
/// `Ok(None)`: taken. `Ok(Some(pid))`: another process holds it (`pid` 0 if it lives in another
/// PID namespace). POSIX record locks belong to the process, not to the descriptor: a forked
/// child does not inherit them, and they go away when the process exits or execs (the
/// descriptor is close-on-exec).
pub(crate) fn try_lock_file(fd: BorrowedFd<'_>, write: bool) -> Result<Option<u32>, Errno> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = if write { libc::F_WRLCK } else { libc::F_RDLCK } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `fd` is open and `fl` is a valid lock description.
    match retry(|| cvt(unsafe { libc::syscall(libc::SYS_fcntl, fd.as_raw_fd(), libc::F_SETLK, &fl) })) {
        Ok(_) => return Ok(None),
        Err(Errno::AGAIN) | Err(Errno(libc::EACCES)) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: as above; F_GETLK fills `fl` with the conflicting lock.
    cvt(unsafe { libc::syscall(libc::SYS_fcntl, fd.as_raw_fd(), libc::F_GETLK, &mut fl) })?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        // Released in between: try again.
        return try_lock_file(fd, write);
    }
    Ok(Some(fl.l_pid.max(0) as u32))
}

/// The process holding a POSIX lock on `fd` that would conflict with a write lock, without
/// taking any lock: `Ok(None)` if there is none, `Ok(Some(pid))` otherwise (`pid` 0 if it lives in
/// another PID namespace).
pub(crate) fn lock_holder(fd: BorrowedFd<'_>) -> Result<Option<u32>, Errno> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `fd` is open and `fl` is a valid lock description, which F_GETLK fills in.
    cvt(unsafe { libc::syscall(libc::SYS_fcntl, fd.as_raw_fd(), libc::F_GETLK, &mut fl) })?;
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then(|| fl.l_pid.max(0) as u32))
}

/// Sets the file's size.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> Result<(), Errno> {
    // SAFETY: `fd` is open.
    retry(|| cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len as i64) } as libc::c_long)).map(drop)
}

/// Tells the kernel that `fd` is accessed at random (no readahead). Besides sparing useless
/// reads, this keeps the page cache in small folios for the file, which makes later 4 KiB
/// writes into it cheap. Advisory: errors are ignored.
pub(crate) fn fadvise_random(fd: BorrowedFd<'_>) {
    // SAFETY: `fd` is open; posix_fadvise only sets a hint.
    unsafe { libc::posix_fadvise(fd.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
}

/// The effective user id.
pub(crate) fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}
