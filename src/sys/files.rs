//! The program's open regular files, for the C runtime's process state (`posix::process`):
//! listing them (descriptor, path, flags, offset, size) and opening one again at its old
//! descriptor number. Raw system calls only: the C library's `open` and `read` families are
//! interposed by crthreads.
#![allow(unsafe_code)] // Raw system calls into stack buffers.

use crate::error::Errno;

/// One open regular file.
pub struct OpenFile {
    /// Its descriptor.
    pub fd: i32,
    /// Its path (`/proc/self/fd/<fd>`'s target), at most `path.len()` bytes.
    pub path: [u8; 480],
    /// Bytes of `path` used.
    pub path_len: usize,
    /// `fcntl(F_GETFL)`.
    pub flags: i32,
    /// The file offset.
    pub offset: i64,
    /// The file's size.
    pub size: i64,
}

/// Lists the open descriptors from 3 up to (not including) `below` into `fds` (at most its
/// length); returns how many. No allocation.
fn list(below: i32, fds: &mut [i32; 256]) -> Result<usize, Errno> {
    // SAFETY: a NUL-terminated path; the descriptor is closed below.
    let d = unsafe {
        libc::syscall(libc::SYS_open, c"/proc/self/fd".as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
    } as i32;
    if d < 0 {
        return Err(Errno::last());
    }
    let mut buf = [0u8; 4096];
    let mut n = 0;
    loop {
        // SAFETY: `buf` is writable for its length; `d` is an open directory.
        let got = unsafe { libc::syscall(libc::SYS_getdents64, d, buf.as_mut_ptr(), buf.len()) };
        if got <= 0 {
            break;
        }
        let mut off = 0usize;
        while off < got as usize {
            let reclen = u16::from_ne_bytes([buf[off + 16], buf[off + 17]]) as usize;
            let name = &buf[off + 19..off + reclen];
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            let mut v: i32 = -1;
            for &b in &name[..end] {
                if !b.is_ascii_digit() {
                    v = -1;
                    break;
                }
                v = v.max(0) * 10 + (b - b'0') as i32;
            }
            if v >= 3 && v < below && v != d && n < fds.len() {
                fds[n] = v;
                n += 1;
            }
            off += reclen;
        }
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(d) };
    Ok(n)
}

/// `fd`'s `/proc/self/fd` link into `out`; returns the bytes used (0 if unreadable).
fn link_of(fd: i32, out: &mut [u8]) -> usize {
    let mut link = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut digits = [0u8; 20];
    let ds = super::dec(fd as u64, &mut digits);
    link[14..14 + ds.len()].copy_from_slice(ds);
    // SAFETY: NUL-terminated link path; `out` is writable for its length.
    let len = unsafe { libc::syscall(libc::SYS_readlink, link.as_ptr(), out.as_mut_ptr(), out.len()) };
    if len <= 0 || len as usize > out.len() { 0 } else { len as usize }
}

/// A descriptor a restore cannot give back (see [`each_unsupported`]).
pub struct Unsupported<'a> {
    /// Its number.
    pub fd: i32,
    /// What it is: `a socket`, `a pipe or FIFO`, `a kernel object`.
    pub kind: &'static str,
    /// Its `/proc/self/fd` link (`socket:[1234]`, `anon_inode:[eventfd]`), maybe cut short.
    pub link: &'a [u8],
    /// Its device and inode numbers.
    pub dev: u64,
    pub ino: u64,
}

/// The device and inode of the open descriptor `fd`, and its file type (`st_mode & S_IFMT`).
pub fn identity(fd: i32) -> Option<(u64, u64, u32)> {
    // SAFETY: an all-zero stat is a valid out-buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    if unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino, st.st_mode & libc::S_IFMT))
}

/// Calls `each` for every descriptor from 3 up to `below` that no restore can give back: a
/// socket, a pipe or FIFO, or a kernel object without a path (`anon_inode:`: eventfd, epoll,
/// signalfd, timerfd, inotify, pidfd). Regular files, directories and devices are not listed.
/// No allocation.
pub fn each_unsupported(below: i32, mut each: impl FnMut(&Unsupported)) -> Result<(), Errno> {
    let mut fds = [0i32; 256];
    let n = list(below, &mut fds)?;
    let mut buf = [0u8; 64];
    for &fd in &fds[..n] {
        let Some((dev, ino, fmt)) = identity(fd) else { continue };
        let len = link_of(fd, &mut buf);
        let kind = match fmt {
            libc::S_IFSOCK => "a socket",
            libc::S_IFIFO => "a pipe or FIFO",
            _ if buf[..len].starts_with(b"anon_inode:") => "a kernel object",
            _ => continue,
        };
        each(&Unsupported { fd, kind, link: &buf[..len], dev, ino });
    }
    Ok(())
}

/// Calls `each` for every open regular file with a descriptor from 3 up to (not including)
/// `below`, whose path fits. No allocation.
pub fn each_regular(below: i32, mut each: impl FnMut(&OpenFile)) -> Result<(), Errno> {
    let mut fds = [0i32; 256];
    let n = list(below, &mut fds)?;
    for &fd in &fds[..n] {
        // SAFETY: an all-zero stat is a valid out-buffer.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: `st` is a valid out-pointer.
        if unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let mut f = OpenFile { fd, path: [0; 480], path_len: 0, flags: 0, offset: 0, size: st.st_size };
        let len = link_of(fd, &mut f.path);
        if len == 0 || len >= f.path.len() || f.path[0] != b'/' {
            continue;
        }
        f.path_len = len;
        // SAFETY: plain descriptor queries.
        unsafe {
            f.flags = libc::syscall(libc::SYS_fcntl, fd, libc::F_GETFL) as i32;
            f.offset = libc::syscall(libc::SYS_lseek, fd, 0, libc::SEEK_CUR);
        }
        if f.flags < 0 || f.offset < 0 {
            continue;
        }
        each(&f);
    }
    Ok(())
}

/// Opens `f.path` again at descriptor `f.fd`, with its flags (never creating or truncating),
/// cut back to `f.size` if it is open for writing, at offset `f.offset`.
pub fn reopen(f: &OpenFile) -> Result<(), Errno> {
    let mut path = [0u8; 481];
    path[..f.path_len].copy_from_slice(&f.path[..f.path_len]);
    let flags = f.flags & !(libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL);
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { libc::syscall(libc::SYS_open, path.as_ptr(), flags, 0) } as i32;
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: plain descriptor operations on our new descriptor.
    unsafe {
        if flags & libc::O_ACCMODE != libc::O_RDONLY && libc::syscall(libc::SYS_ftruncate, fd, f.size) != 0 {
            let e = Errno::last();
            libc::syscall(libc::SYS_close, fd);
            return Err(e);
        }
        libc::syscall(libc::SYS_lseek, fd, f.offset, libc::SEEK_SET);
        if fd != f.fd {
            let r = libc::syscall(libc::SYS_dup2, fd, f.fd);
            let e = Errno::last();
            libc::syscall(libc::SYS_close, fd);
            if r < 0 {
                return Err(e);
            }
        }
    }
    Ok(())
}
