//! The one error type of crthreads.
//!
//! Every failure a user can meet is a variant here, and its `Display` says what was wrong *and*
//! what to do about it: the variable and the values it accepts, the file and how to start fresh.
//! OS errors keep their [`Errno`]; they are never flattened into strings.

use std::fmt;
use std::path::PathBuf;

/// An OS error number (`errno`), kept as a number so callers can match on it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// `ENOSPC`: the device is full.
    pub const NOSPC: Errno = Errno(libc::ENOSPC);
    /// `EEXIST`: the object (or address range) already exists.
    pub const EXIST: Errno = Errno(libc::EEXIST);
    /// `ENOENT`: no such file.
    pub const NOENT: Errno = Errno(libc::ENOENT);
    /// `EINTR`: interrupted by a signal.
    pub const INTR: Errno = Errno(libc::EINTR);
    /// `EAGAIN`/`EWOULDBLOCK`.
    pub const AGAIN: Errno = Errno(libc::EAGAIN);

    /// The calling thread's current `errno`.
    pub fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Errno({}: {})", self.0, self)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // std's io::Error renders strerror_r's text followed by " (os error N)".
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        f.write_str(text)
    }
}

/// Everything that can go wrong in crthreads.
///
/// `Debug` prints the same message as `Display`, so that `fn main() -> Result<(), Error>` and
/// `unwrap()` show the explanation and its hints rather than a structure dump.
#[non_exhaustive]
#[derive(Clone)]
pub enum Error {
    /// An OS call failed. `what` names the operation and, where there is one, the file.
    Os {
        /// The operation, e.g. `"open"`.
        op: &'static str,
        /// The file or directory involved, if any.
        path: Option<PathBuf>,
        /// The error number the OS returned.
        errno: Errno,
    },
    /// A configuration value (usually a `CRTHREADS_*` environment variable) is invalid.
    Config {
        /// The variable or `Config` field, e.g. `"CRTHREADS_CAPACITY"`.
        var: &'static str,
        /// The value that was given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The address range the persistent region needs is already mapped.
    AddressInUse {
        /// First byte of the range.
        base: usize,
        /// Length of the range in bytes.
        len: usize,
        /// The mapping found there, as `/proc/self/maps` shows it.
        conflict: String,
    },
    /// A checkpoint slot failed validation.
    Corrupt {
        /// The slot file.
        path: PathBuf,
        /// What did not validate.
        reason: String,
    },
    /// No slot in the checkpoint directory holds a valid checkpoint.
    NoValidCheckpoint {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Why each slot was rejected (a read the OS refused keeps its errno).
        reasons: Vec<Error>,
    },
    /// The checkpoint was written by a different binary, or with a different memory layout.
    Mismatch {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What differs.
        what: String,
    },
    /// A checkpoint file or directory has unsafe ownership or permissions.
    Insecure {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The process runs setuid or setgid (AT_SECURE); crthreads refuses to restore state there.
    SecureExecution,
    /// Another live process uses the checkpoint directory.
    DirectoryBusy {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The process holding it, when it could be told.
        pid: Option<u32>,
    },
    /// The persistent region does not fit under the process's address-space or data limit.
    OverLimit {
        /// The region size asked for, in bytes.
        capacity: usize,
        /// The limit (`RLIMIT_AS` or `RLIMIT_DATA`), in bytes.
        limit: u64,
        /// Which limit: `"ulimit -v"` or `"ulimit -d"`.
        which: &'static str,
        /// Where the size came from: `"CRTHREADS_CAPACITY"` (or the API), `"the checkpoint"`, or
        /// `"the default"` (fitted under the limit, and still too large).
        origin: &'static str,
    },
    /// A call that would deadlock or tear state: made from a signal handler that interrupted
    /// crthreads (the allocator or a checkpoint) in the same thread.
    Reentered {
        /// The call refused.
        call: &'static str,
    },
    /// The persistent heap has no room left.
    OutOfMemory,
    /// `init` was called twice, or with different fixed settings than the first call.
    AlreadyInitialised,
    /// A setting fixed at initialisation was asked to change afterwards.
    Conflict {
        /// The setting.
        setting: &'static str,
        /// Its active value.
        active: String,
        /// The value asked for.
        requested: String,
    },
    /// A runtime call was made before `init`.
    NotInitialised,
    /// The persistent root holds a value of another type.
    RootType {
        /// The type the caller asked for.
        expected: String,
        /// Size and alignment of what the root holds.
        found: String,
    },
    /// The persistent root was already taken in this run.
    RootTaken,
    /// A checkpoint attempt was abandoned: not every persistent thread reached a safepoint in
    /// time. Nothing was written; the previous checkpoint stays valid and a later attempt retries.
    Abandoned {
        /// The attempt's number (in this run).
        attempt: u64,
        /// How many threads were still running the program's code or blocked outside crthreads.
        stuck: usize,
        /// How long the attempt waited, ms.
        waited_ms: u64,
    },
    /// A requested facility does not exist on this machine.
    Unsupported {
        /// What was asked for.
        what: String,
        /// Why it is unavailable and what to use instead.
        why: String,
    },
}

/// `Result` with crthreads' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An OS error on an operation without a file.
    pub(crate) fn os(op: &'static str, errno: Errno) -> Error {
        Error::Os { op, path: None, errno }
    }

    /// An OS error on an operation on `path`.
    pub(crate) fn os_at(op: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Error {
        Error::Os { op, path: Some(path.into()), errno }
    }

    /// The OS error number, if this is an OS error.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, path: Some(p), errno } => {
                write!(f, "{op} {}: {errno}", p.display())?;
                match errno.0 {
                    libc::ENOSPC => f.write_str(" (the disk is full: free space or point CRTHREADS_DIR elsewhere)"),
                    libc::EACCES | libc::EPERM | libc::EROFS => {
                        f.write_str(" (point CRTHREADS_DIR at a directory you can write)")
                    }
                    libc::ENOTDIR => f.write_str(" (a part of the path is a file: point CRTHREADS_DIR elsewhere)"),
                    _ => Ok(()),
                }
            }
            Error::Os { op, path: None, errno } => write!(f, "{op}: {errno}"),
            Error::Config { var, value, expected } => {
                write!(f, "{var}={value:?} is not valid: expected {expected}")
            }
            Error::AddressInUse { base, len, conflict } => write!(
                f,
                "the persistent region {:#x}..{:#x} overlaps an existing mapping ({conflict}); \
                 choose a free range with CRTHREADS_BASE and CRTHREADS_CAPACITY",
                base,
                base + len
            ),
            Error::Corrupt { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::NoValidCheckpoint { dir, reasons } => {
                write!(f, "no valid checkpoint in {}:", dir.display())?;
                for r in reasons {
                    write!(f, "\n  - {r}")?;
                }
                write!(f, "\nthe previous state cannot be recovered; remove {} to start fresh", dir.display())
            }
            Error::Mismatch { dir, what } => write!(
                f,
                "the checkpoint in {} cannot be restored by this process: {what}; run the program \
                 that wrote it, or remove {} to start fresh",
                dir.display(),
                dir.display()
            ),
            Error::Insecure { path, reason } => write!(
                f,
                "refusing to use {}: {reason} (checkpoints hold code addresses, so they must be \
                 private: owned by you, not writable by group or others)",
                path.display()
            ),
            Error::SecureExecution => {
                f.write_str("refusing to checkpoint or restore a setuid/setgid process (AT_SECURE is set)")
            }
            Error::DirectoryBusy { dir, pid } => {
                write!(f, "checkpoint directory {} is in use by ", dir.display())?;
                match pid {
                    Some(p) => write!(f, "process {p}")?,
                    None => f.write_str("another running process")?,
                }
                f.write_str("; wait for it to exit, or choose another CRTHREADS_DIR")
            }
            Error::OverLimit { capacity, limit, which, origin } => {
                write!(
                    f,
                    "the persistent region ({} from {origin}) does not fit under this process's limit \
                     ({which} = {})",
                    human(*capacity as u64),
                    human(*limit)
                )?;
                match *origin {
                    "the checkpoint" => f.write_str(
                        "; the checkpoint was written with this region size and needs it to resume: raise the limit",
                    ),
                    "the default" => f.write_str(
                        "; raise the limit (crthreads needs room for a region of at least 32 MiB, and as much \
                         again for the rest of the program)",
                    ),
                    _ => f.write_str("; lower CRTHREADS_CAPACITY or raise the limit"),
                }
            }
            Error::Reentered { call } => write!(
                f,
                "{call} was called from a signal handler that interrupted crthreads (malloc, free or a \
                 checkpoint) in the same thread, which would deadlock; it is refused: call it from the \
                 program's normal flow (for example, set a flag in the handler and checkpoint after it \
                 returns)"
            ),
            Error::OutOfMemory => {
                f.write_str("the persistent heap is full; raise CRTHREADS_CAPACITY (only for a fresh start)")
            }
            Error::AlreadyInitialised => f.write_str("crthreads is already initialised"),
            Error::Conflict { setting, active, requested } => write!(
                f,
                "crthreads is already running with {setting} = {active}; it cannot change to \
                 {requested} now (set CRTHREADS_{} in the environment instead, or CRTHREADS_AUTO=0 \
                 to initialise from the program)",
                setting.to_uppercase()
            ),
            Error::NotInitialised => f.write_str("crthreads is not initialised: call init first"),
            Error::RootType { expected, found } => write!(
                f,
                "the persistent root holds {found}, not a {expected}; the program's root type \
                 changed since the checkpoint was written"
            ),
            Error::RootTaken => f.write_str("the persistent root was already taken in this run"),
            Error::Abandoned { attempt, stuck, waited_ms } => write!(
                f,
                "checkpoint attempt {attempt} was abandoned: {stuck} thread(s) did not reach a safepoint \
                 within {waited_ms} ms (a thread that holds a crthreads lock while waiting for a parked \
                 thread, or that is blocked outside crthreads, delays checkpoints); the previous \
                 checkpoint stays valid and the next attempt retries"
            ),
            Error::Unsupported { what, why } => write!(f, "{what} is not available: {why}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// A byte count in the largest binary unit that keeps it whole-ish (`64 GiB`, `1.5 GiB`).
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v.fract() == 0.0 { format!("{} {}", v as u64, UNITS[u]) } else { format!("{v:.1} {}", UNITS[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_display_is_strerror_text() {
        assert_eq!(Errno(libc::ENOENT).to_string(), "No such file or directory");
    }

    #[test]
    fn disk_full_says_what_to_do() {
        let e = Error::os_at("write", "/x/slot-0", Errno::NOSPC);
        let s = e.to_string();
        assert!(s.contains("/x/slot-0") && s.contains("disk is full"), "{s}");
    }

    #[test]
    fn config_error_names_variable_and_accepted_values() {
        let e =
            Error::Config { var: "CRTHREADS_DURABILITY", value: "fast".into(), expected: "`process` or `sync`".into() };
        let s = e.to_string();
        assert!(s.contains("CRTHREADS_DURABILITY") && s.contains("fast") && s.contains("sync"));
    }
}
