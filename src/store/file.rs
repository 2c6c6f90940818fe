//! The checkpoint directory and its slot files, with the ownership and permission rules.
//!
//! Directories are created `0700` and files `0600`. Before anything is read from or written to
//! them, both must be owned by the effective user and not writable by group or others (the
//! rule OpenSSH's StrictModes applies): a checkpoint sets the instruction pointer on restore,
//! so whoever can write it can run code as us. Files are opened relative to the directory's
//! descriptor and never through a symlink.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::error::{Errno, Error, Result};
use crate::sys::fs;

/// Name of slot `s`'s file.
pub fn slot_name(s: usize) -> &'static str {
    ["slot-0", "slot-1"][s]
}

fn c_name(s: usize) -> CString {
    CString::new(slot_name(s)).expect("static name has no NUL")
}

/// Checks that `st` (of `path`) is owned by the effective user and not group/other writable.
pub fn check_private(path: &Path, st: &fs::Stat, want_dir: bool) -> Result<()> {
    let insecure = |reason: String| Err(Error::Insecure { path: path.to_path_buf(), reason });
    if want_dir && !st.is_dir() {
        return insecure("it is not a directory".into());
    }
    if !want_dir && !st.is_file() {
        return insecure("it is not a regular file".into());
    }
    let euid = fs::geteuid();
    if st.uid != euid {
        return insecure(format!("it is owned by uid {}, not by you (uid {euid})", st.uid));
    }
    if st.mode & 0o022 != 0 {
        return insecure(format!("its mode {:o} lets group or others write it (chmod go-w)", st.mode & 0o7777));
    }
    Ok(())
}

/// An open, locked, verified checkpoint directory.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
    fd: OwnedFd,
}

impl Dir {
    /// Opens an existing directory, verifies it and takes its lock. `Ok(None)` if it does not
    /// exist.
    pub fn open_existing(path: &Path) -> Result<Option<Dir>> {
        let fd = match fs::open_dir(path) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno(libc::ELOOP)) => {
                return Err(Error::Insecure { path: path.into(), reason: "it is a symlink".into() });
            }
            // Either the path names something that is not a directory, or one of its parents
            // is not a directory (then nothing can exist there: no checkpoint to restore, and
            // creating the directory fails when a checkpoint is taken).
            Err(Errno(libc::ENOTDIR)) => {
                return match fs::lstat(path) {
                    Ok(st) if st.is_symlink() => {
                        Err(Error::Insecure { path: path.into(), reason: "it is a symlink".into() })
                    }
                    Ok(_) => Err(Error::os_at("open", path, Errno(libc::ENOTDIR))),
                    Err(_) => Ok(None),
                };
            }
            Err(e) => return Err(Error::os_at("open", path, e)),
        };
        Dir::verify_and_lock(path, fd).map(Some)
    }

    /// Opens the directory, creating it (and missing parents) with mode 0700 if needed. With
    /// `durable`, a directory created here is made to survive power loss (its parent is
    /// synced).
    pub fn open_or_create(path: &Path, durable: bool) -> Result<Dir> {
        if let Some(d) = Dir::open_existing(path)? {
            return Ok(d);
        }
        use std::os::unix::fs::DirBuilderExt;
        let mut made = fs::mkdir(path, 0o700);
        if made == Err(Errno::NOENT) {
            // Missing parents are created too (0700).
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                let r = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent);
                // EEXIST here means an ancestor exists but is not a directory.
                made = match r.map_err(|e| e.raw_os_error().unwrap_or(libc::EIO)) {
                    Err(libc::EEXIST) => Err(Errno(libc::ENOTDIR)),
                    Err(e) => Err(Errno(e)),
                    Ok(()) => fs::mkdir(path, 0o700),
                };
            }
        }
        match made {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(Error::os_at("mkdir", path, e)),
        }
        if durable && made.is_ok() {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let pfd = fs::open_dir(parent).map_err(|e| Error::os_at("open", parent, e))?;
            fs::fsync(pfd.as_fd()).map_err(|e| Error::os_at("fsync", parent, e))?;
        }
        Dir::open_existing(path)?.ok_or_else(|| Error::os_at("open", path, Errno::NOENT))
    }

    fn verify_and_lock(path: &Path, fd: OwnedFd) -> Result<Dir> {
        let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", path, e))?;
        check_private(path, &st, true)?;
        // A process killed a moment ago may still be exiting (tearing down a large address
        // space takes a while): give it a few seconds to let go of the lock.
        for _ in 0..500 {
            match fs::try_lock_exclusive(fd.as_fd()) {
                Ok(true) => return Ok(Dir { path: path.to_path_buf(), fd }),
                Ok(false) => std::thread::sleep(std::time::Duration::from_millis(10)),
                Err(e) => return Err(Error::os_at("flock", path, e)),
            }
        }
        Err(Error::DirectoryBusy { dir: path.to_path_buf() })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Path of slot `s`'s file.
    pub fn slot_path(&self, s: usize) -> PathBuf {
        self.path.join(slot_name(s))
    }

    /// Opens slot `s`'s file (read-only, or for reading and writing) if it exists, verifying
    /// it.
    pub fn open_slot(&self, s: usize, writable: bool) -> Result<Option<OwnedFd>> {
        let mode = if writable { libc::O_RDWR } else { libc::O_RDONLY };
        match fs::openat(self.fd.as_fd(), &c_name(s), mode, 0) {
            Ok(fd) => {
                self.verify_file(s, &fd)?;
                fs::fadvise_random(fd.as_fd());
                Ok(Some(fd))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(Errno(libc::ELOOP)) => {
                Err(Error::Insecure { path: self.slot_path(s), reason: "it is a symlink".into() })
            }
            Err(e) => Err(Error::os_at("open", self.slot_path(s), e)),
        }
    }

    /// Opens slot `s`'s file, creating it (mode 0600) if needed. Returns whether it was created.
    pub fn create_slot(&self, s: usize) -> Result<(OwnedFd, bool)> {
        if let Some(fd) = self.open_slot(s, true)? {
            return Ok((fd, false));
        }
        let fd = fs::openat(self.fd.as_fd(), &c_name(s), libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600)
            .map_err(|e| Error::os_at("create", self.slot_path(s), e))?;
        self.verify_file(s, &fd)?;
        fs::fadvise_random(fd.as_fd());
        Ok((fd, true))
    }

    fn verify_file(&self, s: usize, fd: &OwnedFd) -> Result<()> {
        let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", self.slot_path(s), e))?;
        check_private(&self.slot_path(s), &st, false)
    }

    /// Makes the directory's entries durable.
    pub fn sync(&self) -> Result<()> {
        fs::fsync(self.fd.as_fd()).map_err(|e| Error::os_at("fsync", &self.path, e))
    }

    /// Removes both slot files and then the directory, if it is empty.
    pub fn remove(self) -> Result<()> {
        for s in 0..2 {
            match fs::unlinkat(self.fd.as_fd(), &c_name(s)) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::os_at("unlink", self.slot_path(s), e)),
            }
        }
        match fs::rmdir(&self.path) {
            Ok(()) | Err(Errno(libc::ENOTEMPTY)) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::os_at("rmdir", &self.path, e)),
        }
    }
}
