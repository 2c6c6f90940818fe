//! Another process, as `/proc` shows it: whether it runs, its name, the signals it catches, and
//! the checkpoint directory it holds.
//!
//! A crthreads program keeps its directory's lock file open for its whole run
//! (`store::file::Dir::claim`), so `/proc/PID/fd` names the directory exactly, whatever its
//! working directory or environment say now. The environment (`CRTHREADS_DIR`, resolved against
//! the working directory) is the fallback when the descriptors cannot be listed; either way the
//! caller checks that the process holds the directory's lock.

use std::io;
use std::path::{Path, PathBuf};

use crthreads::store::file::LOCK_NAME;

/// Process `pid` as `/proc` shows it.
pub struct Proc {
    pid: u32,
    root: PathBuf,
}

impl Proc {
    /// The process, if `/proc/<pid>` exists (it may be a zombie).
    pub fn open(pid: u32) -> Option<Proc> {
        let root = PathBuf::from(format!("/proc/{pid}"));
        root.join("stat").exists().then_some(Proc { pid, root })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its command name (`comm`), or `?`.
    pub fn name(&self) -> String {
        std::fs::read_to_string(self.root.join("comm")).map(|s| s.trim_end().to_string()).unwrap_or_else(|_| "?".into())
    }

    /// Whether it still runs: it exists and is not a zombie.
    pub fn running(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(self.root.join("stat")) else { return false };
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, None | Some("Z") | Some("X") | Some("x"))
    }

    /// Whether it has a handler installed for signal `sig` (`SigCgt` in its status).
    pub fn catches(&self, sig: i32) -> io::Result<bool> {
        let status = std::fs::read_to_string(self.root.join("status"))?;
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no SigCgt line"))?;
        Ok((1..=64).contains(&sig) && mask & (1u64 << (sig - 1)) != 0)
    }

    /// The checkpoint directories whose lock file it has open.
    pub fn lock_dirs(&self) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for e in std::fs::read_dir(self.root.join("fd"))? {
            let Ok(target) = std::fs::read_link(e?.path()) else { continue };
            // A removed file reads as "<path> (deleted)" and does not end with the name.
            if target.file_name().is_some_and(|n| n == LOCK_NAME) {
                if let Some(dir) = target.parent() {
                    if !dirs.iter().any(|d: &PathBuf| d == dir) {
                        dirs.push(dir.to_path_buf());
                    }
                }
            }
        }
        Ok(dirs)
    }

    /// The checkpoint directory its environment names: `CRTHREADS_DIR` (resolved against its
    /// working directory), else the default `<program>.crthreads` there.
    pub fn env_dir(&self) -> io::Result<PathBuf> {
        let env = std::fs::read(self.root.join("environ"))?;
        let cwd = std::fs::read_link(self.root.join("cwd"))?;
        let from_env = env.split(|&b| b == 0).find_map(|kv| kv.strip_prefix(b"CRTHREADS_DIR=")).map(|v| {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(std::ffi::OsStr::from_bytes(v))
        });
        let dir = match from_env {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => {
                let exe = std::fs::read_link(self.root.join("exe"))?;
                let mut name = exe.file_name().unwrap_or_default().to_os_string();
                name.push(".crthreads");
                PathBuf::from(name)
            }
        };
        Ok(if dir.is_absolute() { dir } else { cwd.join(dir) })
    }
}

/// Whether `s` names a process rather than a directory: all digits, no path separator.
pub fn looks_like_pid(s: &Path) -> Option<u32> {
    let t = s.to_str()?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_seen() {
        let me = Proc::open(std::process::id()).unwrap();
        assert!(me.running());
        assert!(!me.catches(libc::SIGRTMIN() + 9).unwrap());
        assert!(me.lock_dirs().unwrap().is_empty());
        assert!(Proc::open(u32::MAX - 1).is_none());
    }

    #[test]
    fn pids_are_digits_only() {
        assert_eq!(looks_like_pid(Path::new("123")), Some(123));
        assert_eq!(looks_like_pid(Path::new("./123")), None);
        assert_eq!(looks_like_pid(Path::new("0")), None);
        assert_eq!(looks_like_pid(Path::new("x1")), None);
    }
}
