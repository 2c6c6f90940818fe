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
    c_str(slot_name(s))
}

fn c_str(name: &str) -> CString {
    CString::new(name).expect("static name has no NUL")
}

/// Opens the directory at `path` and checks that it is private; `Ok(None)` if nothing exists
/// there (or a parent is not a directory, so nothing can).
fn open_verified(path: &Path) -> Result<Option<OwnedFd>> {
    let fd = match fs::open_dir(path) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno(libc::ELOOP)) => {
            return Err(Error::Insecure { path: path.into(), reason: "it is a symlink".into() });
        }
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
    let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", path, e))?;
    check_private(path, &st, true)?;
    Ok(Some(fd))
}

/// Creates `path` and any missing parents, mode 0700.
fn create_dirs(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let mut made = fs::mkdir(path, 0o700);
    if made == Err(Errno::NOENT) {
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
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::os_at("mkdir", path, e)),
    }
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

/// Name of the lock file inside a checkpoint directory.
pub const LOCK_NAME: &str = "crthreads.lock";

/// The first line of the lock file.
const LOCK_HEADER: &str = "crthreads checkpoint directory lock\n";

/// What a directory holds of crthreads' files ([`Dir::inventory`]): for each, `None` if it does
/// not exist, else whether it looks like crthreads' own (a slot file that is empty or starts
/// with the format's magic; the lock file's first line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// `slot-0` and `slot-1`.
    pub slots: [Option<bool>; 2],
    /// `crthreads.lock`.
    pub lock: Option<bool>,
    /// Other entries in the directory.
    pub others: usize,
}

impl Inventory {
    /// Whether any of crthreads' files exists.
    pub fn any(&self) -> bool {
        self.slots.iter().chain([&self.lock]).any(Option::is_some)
    }
}

/// How long a claim waits for a process that holds the directory but is exiting (a killed
/// process with a large address space takes a while to tear it down before its locks go).
const DYING_HOLDER_WAIT_MS: u64 = 10_000;

/// An open, verified checkpoint directory, claimed by this process.
///
/// The claim is a POSIX write lock on `crthreads.lock` in the directory, taken when the
/// program starts. POSIX record locks belong to the process: a forked child does not inherit
/// the claim, an `exec` drops it (the descriptor is close-on-exec), and a process that is
/// killed loses it. A second process is told at once which process holds the claim. On a
/// read-only file system the lock file cannot be opened for writing; a read lock then still
/// refuses a writer, and nothing can be written there anyway.
///
/// The lock file also records whether crthreads created the directory: only such a directory
/// is removed when its checkpoint is retired.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
    fd: OwnedFd,
    /// The lock file, holding this process's claim (None: not claimed, inspection only).
    lock: Option<OwnedFd>,
    /// crthreads created the directory (in this run or an earlier one).
    created: bool,
    /// This run created the directory.
    created_now: bool,
    /// Device and inode, to notice the directory being removed or replaced.
    id: (u64, u64),
}

impl Dir {
    /// Opens an existing directory and verifies it, without claiming it (for inspection).
    /// `Ok(None)` if it does not exist.
    pub fn open_existing(path: &Path) -> Result<Option<Dir>> {
        let Some(fd) = open_verified(path)? else { return Ok(None) };
        let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", path, e))?;
        Ok(Some(Dir {
            path: path.to_path_buf(),
            fd,
            lock: None,
            created: false,
            created_now: false,
            id: (st.dev, st.ino),
        }))
    }

    /// Claims the directory for this process: creates it (mode 0700, with missing parents) if
    /// needed, verifies it and takes its lock. Fails at once with the holder's pid if another
    /// live process has it; waits a few seconds for a holder that is exiting. With `durable`, a
    /// directory created here is made to survive power loss (its parent is synced).
    pub fn claim(path: &Path, durable: bool) -> Result<Dir> {
        let (fd, created_now) = match open_verified(path)? {
            Some(fd) => (fd, false),
            None => {
                create_dirs(path)?;
                if durable {
                    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                    let pfd = fs::open_dir(parent).map_err(|e| Error::os_at("open", parent, e))?;
                    fs::fsync(pfd.as_fd()).map_err(|e| Error::os_at("fsync", parent, e))?;
                }
                (open_verified(path)?.ok_or_else(|| Error::os_at("open", path, Errno::NOENT))?, true)
            }
        };
        let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", path, e))?;
        let mut dir =
            Dir { path: path.to_path_buf(), fd, lock: None, created: created_now, created_now, id: (st.dev, st.ino) };
        let (lock, created, writable) = dir.open_lock_file(created_now)?;
        dir.created = created;
        let deadline = crate::sys::now_ns() + DYING_HOLDER_WAIT_MS * 1_000_000;
        loop {
            match fs::try_lock_file(lock.as_fd(), writable) {
                Ok(None) => break,
                Ok(Some(pid)) => {
                    let dying = pid != 0 && crate::sys::proc::is_exiting(pid);
                    if !dying || crate::sys::now_ns() > deadline {
                        return Err(Error::DirectoryBusy { dir: path.to_path_buf(), pid: (pid != 0).then_some(pid) });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(Error::os_at("lock", dir.lock_path(), e)),
            }
        }
        dir.lock = Some(lock);
        Ok(dir)
    }

    /// Opens (or creates) the lock file; returns it, whether crthreads created the directory (as
    /// the file records) and whether it is open for writing.
    fn open_lock_file(&self, created_now: bool) -> Result<(OwnedFd, bool, bool)> {
        let name = c_str(LOCK_NAME);
        let path = self.lock_path();
        let mut writable = true;
        let fd = match fs::openat(self.fd.as_fd(), &name, libc::O_RDWR, 0) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match fs::openat(self.fd.as_fd(), &name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL, 0o600) {
                    Ok(fd) => {
                        let note = if created_now { "created=1\n" } else { "created=0\n" };
                        fs::write_all(fd.as_fd(), format!("{LOCK_HEADER}{note}").as_bytes())
                            .map_err(|e| Error::os_at("write", &path, e))?;
                        fd
                    }
                    // Another process created it a moment ago.
                    Err(Errno::EXIST) => fs::openat(self.fd.as_fd(), &name, libc::O_RDWR, 0)
                        .map_err(|e| Error::os_at("open", &path, e))?,
                    Err(e) => return Err(Error::os_at("create", &path, e)),
                }
            }
            // A read-only file system: a read lock still keeps writers out.
            Err(Errno(libc::EROFS)) => {
                writable = false;
                fs::openat(self.fd.as_fd(), &name, libc::O_RDONLY, 0).map_err(|e| Error::os_at("open", &path, e))?
            }
            Err(Errno(libc::ELOOP)) => {
                return Err(Error::Insecure { path, reason: "it is a symlink".into() });
            }
            Err(e) => return Err(Error::os_at("open", &path, e)),
        };
        let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", &path, e))?;
        check_private(&path, &st, false)?;
        let mut buf = [0u8; 128];
        let n = fs::pread_into(fd.as_fd(), &mut buf, 0).unwrap_or(0);
        let created = created_now || buf[..n].windows(9).any(|w| w == b"created=1");
        Ok((fd, created, writable))
    }

    fn lock_path(&self) -> PathBuf {
        self.path.join(LOCK_NAME)
    }

    /// Whether the directory is still where it was claimed: not removed, renamed or replaced
    /// while the program ran.
    pub fn is_intact(&self) -> bool {
        let Ok(st) = fs::fstat(self.fd.as_fd()) else { return false };
        if st.nlink == 0 {
            return false;
        }
        matches!(fs::lstat(&self.path), Ok(now) if (now.dev, now.ino) == self.id)
    }

    /// The process that holds the directory's claim, if one does (`Some(0)`: a process in
    /// another PID namespace). Takes no lock and creates nothing.
    pub fn lock_holder(&self) -> Result<Option<u32>> {
        let fd = match fs::openat(self.fd.as_fd(), &c_str(LOCK_NAME), libc::O_RDONLY, 0) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno(libc::ELOOP)) => {
                return Err(Error::Insecure { path: self.lock_path(), reason: "it is a symlink".into() });
            }
            Err(e) => return Err(Error::os_at("open", self.lock_path(), e)),
        };
        fs::lock_holder(fd.as_fd()).map_err(|e| Error::os_at("lock (query)", self.lock_path(), e))
    }

    /// What the directory holds of crthreads' files, and whether each looks like crthreads' own.
    pub fn inventory(&self) -> Result<Inventory> {
        let look = |name: &str, expect: &[u8]| -> Result<Option<bool>> {
            let path = self.path.join(name);
            match fs::openat(self.fd.as_fd(), &c_str(name), libc::O_RDONLY, 0) {
                Ok(fd) => {
                    let st = fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat", &path, e))?;
                    if !st.is_file() {
                        return Ok(Some(false));
                    }
                    let mut buf = vec![0u8; expect.len()];
                    let n = fs::pread_into(fd.as_fd(), &mut buf, 0).map_err(|e| Error::os_at("read", &path, e))?;
                    // An empty or short file is what a crash right after creating it (or truncation) leaves.
                    Ok(Some(buf[..n] == expect[..n]))
                }
                Err(Errno::NOENT) => Ok(None),
                Err(Errno(libc::ELOOP)) => Ok(Some(false)),
                Err(e) => Err(Error::os_at("open", path, e)),
            }
        };
        let slots = [look(slot_name(0), &super::format::MAGIC)?, look(slot_name(1), &super::format::MAGIC)?];
        let lock = look(LOCK_NAME, LOCK_HEADER.as_bytes())?;
        let others = std::fs::read_dir(&self.path)
            .map_err(|e| Error::os_at("read directory", &self.path, Errno(e.raw_os_error().unwrap_or(libc::EIO))))?
            .filter_map(|e| e.ok())
            .filter(|e| ![slot_name(0), slot_name(1), LOCK_NAME].iter().any(|n| e.file_name() == *n))
            .count();
        Ok(Inventory { slots, lock, others })
    }

    /// Removes both slot files and the lock file, then the directory if that left it empty (the
    /// `crthreads clean` command: the user asked for the directory to go, whoever created it).
    /// Returns the files removed and whether the directory was removed too.
    pub fn remove_all(self) -> Result<(Vec<PathBuf>, bool)> {
        let mut removed = Vec::new();
        for name in [slot_name(0), slot_name(1), LOCK_NAME] {
            match fs::unlinkat(self.fd.as_fd(), &c_str(name)) {
                Ok(()) => removed.push(self.path.join(name)),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::os_at("unlink", self.path.join(name), e)),
            }
        }
        match fs::rmdir(&self.path) {
            Ok(()) => Ok((removed, true)),
            Err(Errno(libc::ENOTEMPTY)) | Err(Errno::EXIST) | Err(Errno(libc::EBUSY)) | Err(Errno(libc::EINVAL)) => {
                Ok((removed, false))
            }
            Err(e) => Err(Error::os_at("rmdir", &self.path, e)),
        }
    }

    /// Whether this run created the directory.
    pub fn created_now(&self) -> bool {
        self.created_now
    }

    /// Whether either slot file exists.
    pub fn has_slots(&self) -> bool {
        (0..2).any(|s| fs::openat(self.fd.as_fd(), &c_name(s), libc::O_RDONLY, 0).is_ok())
    }

    /// Gives the claim up and, if the directory holds no slot file, leaves it as it was found:
    /// removes the lock file, and the directory if crthreads created it. For a run that wrote no
    /// checkpoint, or could not start.
    pub fn release_unused(self) {
        if self.lock.is_none() || self.has_slots() {
            return;
        }
        let _ = fs::unlinkat(self.fd.as_fd(), &c_str(LOCK_NAME));
        if self.created {
            let _ = fs::rmdir(&self.path);
        }
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

    /// Removes both slot files and the lock file, then the directory if crthreads created it
    /// (a directory the user made, or `/` or `.`, is left in place).
    pub fn remove(self) -> Result<()> {
        for s in 0..2 {
            match fs::unlinkat(self.fd.as_fd(), &c_name(s)) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::os_at("unlink", self.slot_path(s), e)),
            }
        }
        if self.lock.is_some() {
            match fs::unlinkat(self.fd.as_fd(), &c_str(LOCK_NAME)) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::os_at("unlink", self.lock_path(), e)),
            }
        }
        if !self.created {
            return Ok(());
        }
        match fs::rmdir(&self.path) {
            Ok(()) | Err(Errno(libc::ENOTEMPTY)) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::os_at("rmdir", &self.path, e)),
        }
    }
}
