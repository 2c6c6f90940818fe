//! Configuration: built in code or read from `CRTHREADS_*` environment variables.
//!
//! A [`Config`] is parsed and validated once, before the persistent heap is live. Every parse error
//! names the variable, the value it had and the values it accepts.
//!
//! | variable               | meaning                                   | default                     |
//! |------------------------|-------------------------------------------|-----------------------------|
//! | `CRTHREADS_DIR`        | checkpoint directory                      | `./<program>.crthreads`     |
//! | `CRTHREADS_BASE`       | fixed address of the persistent region    | `0x200000000000`            |
//! | `CRTHREADS_CAPACITY`   | size of the region (`K`/`M`/`G`/`T`)      | `64G`                       |
//! | `CRTHREADS_DURABILITY` | `process` or `sync`                       | `process`                   |
//! | `CRTHREADS_TRACKER`    | `auto`, `uffd`, `mprotect` or `full`      | `auto`                      |
//! | `CRTHREADS_REEXEC`     | `1`: re-execute once without ASLR; `0`    | `1`                         |
//! | `CRTHREADS_KEEP`       | `1`: keep the checkpoint after a clean exit | `0`                       |
//! | `CRTHREADS_STATS`      | file to append one JSON line per checkpoint | unset                     |

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Default base address of the persistent region: 32 TiB, far below where Linux x86-64 maps
/// executables (`0x55…`/`0x56…`), the heap after them, shared libraries, the vDSO and stacks
/// (`0x7f…`), with or without ASLR.
pub const DEFAULT_BASE: usize = 0x2000_0000_0000;
/// Default capacity of the persistent region (address space reserved, not memory used).
pub const DEFAULT_CAPACITY: usize = 64 << 30;
/// The smallest region crthreads accepts.
pub const MIN_CAPACITY: usize = 32 << 20;
/// The largest region crthreads accepts (page numbers are 32-bit).
pub const MAX_CAPACITY: usize = 4 << 40;
/// Region base and capacity must be multiples of this (2 MiB).
pub const REGION_ALIGN: usize = 2 << 20;
/// One past the highest user-space address on x86-64 with 4-level page tables.
pub const USER_TOP: usize = 0x7fff_ffff_f000;

/// How durable a committed checkpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives the death of the process: data is in the page cache when the commit returns.
    Process,
    /// Survives power loss: payload and commit record are ordered with `fdatasync`.
    Sync,
}

/// How pages written since the last checkpoint are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerKind {
    /// userfaultfd write-protection when the kernel has it, otherwise mprotect.
    Auto,
    /// userfaultfd write-protect in async mode, read back with `PAGEMAP_SCAN`.
    Uffd,
    /// `mprotect` + a SIGSEGV handler.
    Mprotect,
    /// No tracking: every checkpoint writes every live page (a baseline).
    Full,
}

/// Settings of a crthreads run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) dir: PathBuf,
    pub(crate) base: usize,
    pub(crate) capacity: usize,
    pub(crate) durability: Durability,
    pub(crate) tracker: TrackerKind,
    pub(crate) reexec: bool,
    pub(crate) keep: bool,
    pub(crate) stats: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            dir: default_dir(),
            base: DEFAULT_BASE,
            capacity: DEFAULT_CAPACITY,
            durability: Durability::Process,
            tracker: TrackerKind::Auto,
            reexec: true,
            keep: false,
            stats: None,
        }
    }
}

fn default_dir() -> PathBuf {
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_os_string()))
        .unwrap_or_else(|| "program".into());
    let mut dir = name;
    dir.push(".crthreads");
    PathBuf::from(dir)
}

impl Config {
    /// The defaults, overridden by every `CRTHREADS_*` variable that is set.
    pub fn from_env() -> Result<Config> {
        Config::default().with_env_from(|k| std::env::var_os(k))
    }

    /// Applies variables looked up through `get` (the environment, or a test's map).
    pub fn with_env_from(mut self, get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Config> {
        if let Some(v) = get("CRTHREADS_DIR") {
            if v.is_empty() {
                return Err(bad("CRTHREADS_DIR", &v, "a directory path"));
            }
            self.dir = PathBuf::from(v);
        }
        if let Some(v) = get("CRTHREADS_BASE") {
            self.base = parse_addr(utf8("CRTHREADS_BASE", &v)?)
                .ok_or_else(|| bad("CRTHREADS_BASE", &v, "an address such as 0x200000000000"))?;
        }
        if let Some(v) = get("CRTHREADS_CAPACITY") {
            self.capacity = parse_size(utf8("CRTHREADS_CAPACITY", &v)?)
                .ok_or_else(|| bad("CRTHREADS_CAPACITY", &v, "a size such as 64G, 512M or 1073741824"))?;
        }
        if let Some(v) = get("CRTHREADS_DURABILITY") {
            self.durability = match utf8("CRTHREADS_DURABILITY", &v)? {
                "process" => Durability::Process,
                "sync" => Durability::Sync,
                _ => return Err(bad("CRTHREADS_DURABILITY", &v, "`process` or `sync`")),
            };
        }
        if let Some(v) = get("CRTHREADS_TRACKER") {
            self.tracker = match utf8("CRTHREADS_TRACKER", &v)? {
                "auto" => TrackerKind::Auto,
                "uffd" => TrackerKind::Uffd,
                "mprotect" => TrackerKind::Mprotect,
                "full" => TrackerKind::Full,
                _ => return Err(bad("CRTHREADS_TRACKER", &v, "`auto`, `uffd`, `mprotect` or `full`")),
            };
        }
        if let Some(v) = get("CRTHREADS_REEXEC") {
            self.reexec = parse_bool("CRTHREADS_REEXEC", &v)?;
        }
        if let Some(v) = get("CRTHREADS_KEEP") {
            self.keep = parse_bool("CRTHREADS_KEEP", &v)?;
        }
        if let Some(v) = get("CRTHREADS_STATS") {
            if v.is_empty() {
                return Err(bad("CRTHREADS_STATS", &v, "a file path"));
            }
            self.stats = Some(PathBuf::from(v));
        }
        self.validate()?;
        Ok(self)
    }

    /// Sets the checkpoint directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.dir = dir.into();
        self
    }
    /// Sets the fixed base address of the persistent region.
    pub fn base(mut self, base: usize) -> Config {
        self.base = base;
        self
    }
    /// Sets the size of the persistent region in bytes.
    pub fn capacity(mut self, capacity: usize) -> Config {
        self.capacity = capacity;
        self
    }
    /// Sets the durability of commits.
    pub fn durability(mut self, d: Durability) -> Config {
        self.durability = d;
        self
    }
    /// Chooses the dirty-page tracker.
    pub fn tracker(mut self, t: TrackerKind) -> Config {
        self.tracker = t;
        self
    }
    /// Whether to re-execute the program once with ASLR disabled (default: yes).
    pub fn reexec(mut self, on: bool) -> Config {
        self.reexec = on;
        self
    }
    /// Whether to keep the checkpoint when the program exits with status 0 (default: no).
    pub fn keep(mut self, on: bool) -> Config {
        self.keep = on;
        self
    }
    /// Appends one JSON line of statistics per checkpoint to `file`.
    pub fn stats(mut self, file: impl Into<PathBuf>) -> Config {
        self.stats = Some(file.into());
        self
    }

    /// The checkpoint directory.
    pub fn get_dir(&self) -> &Path {
        &self.dir
    }
    /// The durability of commits.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }
    /// The base address of the region.
    pub fn get_base(&self) -> usize {
        self.base
    }
    /// The capacity of the region.
    pub fn get_capacity(&self) -> usize {
        self.capacity
    }

    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<()> {
        let hex = |v: usize| format!("{v:#x}");
        if self.base == 0 || self.base % REGION_ALIGN != 0 || self.base >= USER_TOP {
            return Err(Error::Config {
                var: "CRTHREADS_BASE",
                value: hex(self.base),
                expected: format!("a non-zero multiple of 2 MiB below {USER_TOP:#x}"),
            });
        }
        if self.capacity < MIN_CAPACITY || self.capacity > MAX_CAPACITY || self.capacity % REGION_ALIGN != 0 {
            return Err(Error::Config {
                var: "CRTHREADS_CAPACITY",
                value: self.capacity.to_string(),
                expected: "a multiple of 2 MiB, at least 32M and at most 4T".into(),
            });
        }
        if self.base.checked_add(self.capacity).is_none_or(|end| end > USER_TOP) {
            return Err(Error::Config {
                var: "CRTHREADS_CAPACITY",
                value: self.capacity.to_string(),
                expected: format!(
                    "a size that fits between CRTHREADS_BASE={} and the top of user space {USER_TOP:#x}",
                    hex(self.base)
                ),
            });
        }
        Ok(())
    }
}

/// Settings a program passes at initialisation (the C `struct crattr`); `None` keeps what the
/// environment or the defaults say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Checkpoint directory.
    pub dir: Option<PathBuf>,
    /// Region base address.
    pub base: Option<usize>,
    /// Region capacity.
    pub capacity: Option<usize>,
    /// Durability.
    pub durability: Option<Durability>,
    /// Keep the checkpoint after a clean exit.
    pub keep: Option<bool>,
    /// Statistics file.
    pub stats: Option<PathBuf>,
}

impl Overrides {
    /// `cfg` with these overrides applied.
    pub fn apply(&self, mut cfg: Config) -> Config {
        if let Some(d) = &self.dir {
            cfg.dir = d.clone();
        }
        if let Some(b) = self.base {
            cfg.base = b;
        }
        if let Some(c) = self.capacity {
            cfg.capacity = c;
        }
        if let Some(d) = self.durability {
            cfg.durability = d;
        }
        if let Some(k) = self.keep {
            cfg.keep = k;
        }
        if let Some(s) = &self.stats {
            cfg.stats = Some(s.clone());
        }
        cfg
    }
}

fn bad(var: &'static str, v: &OsStr, expected: &str) -> Error {
    Error::Config { var, value: v.to_string_lossy().into_owned(), expected: expected.into() }
}

fn utf8<'a>(var: &'static str, v: &'a OsStr) -> Result<&'a str> {
    v.to_str().map(str::trim).ok_or_else(|| bad(var, v, "UTF-8 text"))
}

fn parse_bool(var: &'static str, v: &OsStr) -> Result<bool> {
    match utf8(var, v)? {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(bad(var, v, "`1` or `0`")),
    }
}

/// Parses `0x…` hexadecimal or decimal.
pub(crate) fn parse_addr(s: &str) -> Option<usize> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => usize::from_str_radix(&h.replace('_', ""), 16).ok(),
        None => s.replace('_', "").parse().ok(),
    }
}

/// Parses a byte count with an optional binary suffix: `4096`, `512K`, `64M`, `2G`, `1T`, `64GiB`.
pub(crate) fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let s = s.strip_suffix("iB").or_else(|| s.strip_suffix('B')).unwrap_or(s);
    let (num, shift) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 10),
        'm' | 'M' => (&s[..s.len() - 1], 20),
        'g' | 'G' => (&s[..s.len() - 1], 30),
        't' | 'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: usize = num.trim().parse().ok()?;
    n.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn with(vars: &[(&str, &str)]) -> Result<Config> {
        let m: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Config::default().with_env_from(|k| m.get(k).cloned())
    }

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("64GiB"), Some(64 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(parse_size("99999999999999T"), None);
    }

    #[test]
    fn env_overrides_defaults() {
        let c = with(&[
            ("CRTHREADS_DIR", "/tmp/x"),
            ("CRTHREADS_BASE", "0x100000000000"),
            ("CRTHREADS_CAPACITY", "1G"),
            ("CRTHREADS_DURABILITY", "sync"),
            ("CRTHREADS_TRACKER", "mprotect"),
            ("CRTHREADS_REEXEC", "0"),
            ("CRTHREADS_KEEP", "1"),
            ("CRTHREADS_STATS", "/tmp/s.json"),
        ])
        .unwrap();
        assert_eq!(c.dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.base, 0x1000_0000_0000);
        assert_eq!(c.capacity, 1 << 30);
        assert_eq!(c.durability, Durability::Sync);
        assert_eq!(c.tracker, TrackerKind::Mprotect);
        assert!(!c.reexec && c.keep);
        assert_eq!(c.stats, Some(PathBuf::from("/tmp/s.json")));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, val, needle) in [
            ("CRTHREADS_DURABILITY", "fast", "`process` or `sync`"),
            ("CRTHREADS_TRACKER", "ebpf", "`mprotect`"),
            ("CRTHREADS_CAPACITY", "lots", "64G"),
            ("CRTHREADS_CAPACITY", "1M", "at least 32M"),
            ("CRTHREADS_CAPACITY", "33M", "multiple of 2 MiB"),
            ("CRTHREADS_CAPACITY", "8T", "at most 4T"),
            ("CRTHREADS_BASE", "0x1234", "multiple of 2 MiB"),
            ("CRTHREADS_BASE", "nowhere", "an address"),
            ("CRTHREADS_REEXEC", "maybe", "`1` or `0`"),
            ("CRTHREADS_DIR", "", "directory"),
        ] {
            let e = with(&[(var, val)]).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(needle), "{var}={val}: {e}");
        }
    }

    #[test]
    fn region_must_fit_in_user_space() {
        let e = with(&[("CRTHREADS_BASE", "0x7fff00000000"), ("CRTHREADS_CAPACITY", "64G")]).unwrap_err();
        assert!(e.to_string().contains("top of user space"), "{e}");
    }
}
