//! Configuration: built in code or read from `CRTHREADS_*` environment variables.
//!
//! A [`Config`] is parsed and validated once, before the persistent heap is live. Every error
//! names where the bad value came from (the environment variable, the `crattr` field or the
//! `Config` method), repeats the value exactly as it was given, and lists what is accepted.
//! Words and units are accepted in any case (`sync`, `SYNC`; `64G`, `64gib`, `64 GB`).
//!
//! | variable               | meaning                                     | default                 |
//! |------------------------|---------------------------------------------|-------------------------|
//! | `CRTHREADS_DIR`        | checkpoint directory                        | `./<program>.crthreads` |
//! | `CRTHREADS_BASE`       | fixed address of the persistent region      | the checkpoint's, or `0x200000000000` |
//! | `CRTHREADS_CAPACITY`   | size of the region (`K`/`M`/`G`/`T`)        | the checkpoint's, or `64G` (less under a finite `ulimit -v`/`-d`) |
//! | `CRTHREADS_DURABILITY` | `process` or `sync`                         | `process`               |
//! | `CRTHREADS_TRACKER`    | `auto`, `uffd`, `mprotect` or `full`        | `auto`                  |
//! | `CRTHREADS_REEXEC`     | `1`: re-execute once without ASLR; `0`      | `1`                     |
//! | `CRTHREADS_KEEP`       | `1`: keep the checkpoint after a clean exit | `0`                     |
//! | `CRTHREADS_STATS`      | file to append one JSON line per checkpoint | unset                   |
//! | `CRTHREADS_AUTO`       | C library: `0` waits for `crinit()`         | `1`                     |
//! | `CRTHREADS_POLICY`     | `every-release`, `interval` or `manual`     | `every-release`         |
//! | `CRTHREADS_INTERVAL`   | seconds between checkpoints (`interval`)    | `1`                     |
//! | `CRTHREADS_ON_TERM`    | `checkpoint`: SIGTERM takes a checkpoint, then ends the process as SIGTERM would; `default` | `default` |
//! | `CRTHREADS_UNSUPPORTED_FDS` | C programs: `refuse` a checkpoint while the program holds a descriptor no restore can give back (socket, pipe, eventfd…), or `ignore` them | `refuse` |
//! | `CRTHREADS_LIB`        | `crthreads run`: the `libcrthreads.so` to preload | next to `crthreads`, or `../lib` |
//!
//! A relative directory (the default is one) is resolved against the working directory once,
//! when crthreads starts ([`Config::resolved`]), so a program that changes directory later
//! still checkpoints where it will look on the next run.

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

/// The environment variables crthreads reads (others with the prefix draw a warning).
pub const KNOWN_VARS: &[&str] = &[
    "CRTHREADS_DIR",
    "CRTHREADS_BASE",
    "CRTHREADS_CAPACITY",
    "CRTHREADS_DURABILITY",
    "CRTHREADS_TRACKER",
    "CRTHREADS_REEXEC",
    "CRTHREADS_KEEP",
    "CRTHREADS_STATS",
    "CRTHREADS_AUTO",
    "CRTHREADS_FAILPOINT",
    "CRTHREADS_POLICY",
    "CRTHREADS_INTERVAL",
    "CRTHREADS_ON_TERM",
    "CRTHREADS_UNSUPPORTED_FDS",
    // Read by the `crthreads` command (`run`), inherited by the programs it runs.
    "CRTHREADS_LIB",
    // Set by crthreads itself: the persistent process's mark, and the re-execution marker.
    "CRTHREADS_OWNER",
    "CRTHREADS_REEXECED",
];

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

impl TrackerKind {
    /// The name used in `CRTHREADS_TRACKER` and in statistics.
    pub fn name(self) -> &'static str {
        match self {
            TrackerKind::Auto => "auto",
            TrackerKind::Uffd => "uffd",
            TrackerKind::Mprotect => "mprotect",
            TrackerKind::Full => "full",
        }
    }
}

/// When checkpoints are taken in a program with persistent threads (`CRTHREADS_POLICY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Every release of a thread's last lock is covered by a checkpoint before the unlock
    /// returns; concurrent releases share one (group commit).
    EveryRelease,
    /// A checkpoint at the next safepoints after each interval (`CRTHREADS_INTERVAL`).
    Interval(std::time::Duration),
    /// Only when asked: `checkpoint()` or the external request signal.
    Manual,
}

/// Where a setting's value came from: error messages name it and repeat the value as given.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Default,
    /// An environment variable and its text.
    Env(&'static str, String),
    /// A field of C's `struct crattr`.
    Crattr(&'static str),
    /// A `Config` builder method.
    Api(&'static str),
}

/// Origins of the settings that validation can reject.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origins {
    dir: Origin,
    base: Origin,
    capacity: Origin,
    stats: Origin,
}

impl Default for Origins {
    fn default() -> Origins {
        Origins { dir: Origin::Default, base: Origin::Default, capacity: Origin::Default, stats: Origin::Default }
    }
}

/// Settings of a crthreads run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) dir: PathBuf,
    /// `None`: the checkpoint's, or [`DEFAULT_BASE`].
    pub(crate) base: Option<usize>,
    /// `None`: the checkpoint's, or [`DEFAULT_CAPACITY`] fitted under the process's limits.
    pub(crate) capacity: Option<usize>,
    pub(crate) durability: Durability,
    pub(crate) tracker: TrackerKind,
    pub(crate) reexec: bool,
    pub(crate) keep: bool,
    pub(crate) stats: Option<PathBuf>,
    pub(crate) policy: Policy,
    /// `CRTHREADS_ON_TERM=checkpoint`: SIGTERM checkpoints, then ends the process.
    pub(crate) checkpoint_on_term: bool,
    /// `CRTHREADS_UNSUPPORTED_FDS=ignore`: checkpoint C programs that hold sockets, pipes and
    /// the like (not restored) instead of refusing.
    pub(crate) ignore_unsupported_fds: bool,
    origins: Origins,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            dir: default_dir(),
            base: None,
            capacity: None,
            durability: Durability::Process,
            tracker: TrackerKind::Auto,
            reexec: true,
            keep: false,
            stats: None,
            policy: Policy::EveryRelease,
            checkpoint_on_term: false,
            ignore_unsupported_fds: false,
            origins: Origins::default(),
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
            self.origins.dir = env_origin("CRTHREADS_DIR", &v);
            self.dir = PathBuf::from(v);
        }
        if let Some(v) = get("CRTHREADS_BASE") {
            self.base = Some(
                parse_addr(text("CRTHREADS_BASE", &v)?)
                    .ok_or_else(|| bad("CRTHREADS_BASE", &v, "an address such as 0x200000000000"))?,
            );
            self.origins.base = env_origin("CRTHREADS_BASE", &v);
        }
        if let Some(v) = get("CRTHREADS_CAPACITY") {
            self.capacity =
                Some(parse_size(text("CRTHREADS_CAPACITY", &v)?).ok_or_else(|| bad("CRTHREADS_CAPACITY", &v, SIZES))?);
            self.origins.capacity = env_origin("CRTHREADS_CAPACITY", &v);
        }
        if let Some(v) = get("CRTHREADS_DURABILITY") {
            self.durability = parse_durability(text("CRTHREADS_DURABILITY", &v)?)
                .ok_or_else(|| bad("CRTHREADS_DURABILITY", &v, "`process` or `sync` (in any case)"))?;
        }
        if let Some(v) = get("CRTHREADS_TRACKER") {
            self.tracker = parse_tracker(text("CRTHREADS_TRACKER", &v)?)
                .ok_or_else(|| bad("CRTHREADS_TRACKER", &v, "`auto`, `uffd`, `mprotect` or `full` (in any case)"))?;
        }
        if let Some(v) = get("CRTHREADS_REEXEC") {
            self.reexec = env_bool("CRTHREADS_REEXEC", &v)?;
        }
        if let Some(v) = get("CRTHREADS_KEEP") {
            self.keep = env_bool("CRTHREADS_KEEP", &v)?;
        }
        let interval = match get("CRTHREADS_INTERVAL") {
            Some(v) => Some(
                text("CRTHREADS_INTERVAL", &v)?
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .map(std::time::Duration::from_secs_f64)
                    .ok_or_else(|| {
                        bad("CRTHREADS_INTERVAL", &v, "a number of seconds such as 1 or 0.5 (up to 86400)")
                    })?,
            ),
            None => None,
        };
        if let Some(v) = get("CRTHREADS_POLICY") {
            self.policy = match text("CRTHREADS_POLICY", &v)?.to_ascii_lowercase().as_str() {
                "every-release" => Policy::EveryRelease,
                "interval" => Policy::Interval(interval.unwrap_or(std::time::Duration::from_secs(1))),
                "manual" => Policy::Manual,
                _ => return Err(bad("CRTHREADS_POLICY", &v, "`every-release`, `interval` or `manual` (in any case)")),
            };
        } else if let Some(i) = interval {
            // An interval alone asks for the interval policy.
            self.policy = Policy::Interval(i);
        }
        if let Some(v) = get("CRTHREADS_ON_TERM") {
            self.checkpoint_on_term = match text("CRTHREADS_ON_TERM", &v)?.to_ascii_lowercase().as_str() {
                "checkpoint" => true,
                "default" => false,
                _ => return Err(bad("CRTHREADS_ON_TERM", &v, "`checkpoint` or `default` (in any case)")),
            };
        }
        if let Some(v) = get("CRTHREADS_UNSUPPORTED_FDS") {
            self.ignore_unsupported_fds = match text("CRTHREADS_UNSUPPORTED_FDS", &v)?.to_ascii_lowercase().as_str() {
                "ignore" => true,
                "refuse" => false,
                _ => return Err(bad("CRTHREADS_UNSUPPORTED_FDS", &v, "`refuse` or `ignore` (in any case)")),
            };
        }
        if let Some(v) = get("CRTHREADS_STATS") {
            if v.is_empty() {
                return Err(bad("CRTHREADS_STATS", &v, "a file path"));
            }
            self.origins.stats = env_origin("CRTHREADS_STATS", &v);
            self.stats = Some(PathBuf::from(v));
        }
        self.validate()?;
        Ok(self)
    }

    /// Sets the checkpoint directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Config {
        self.dir = dir.into();
        self.origins.dir = Origin::Api("Config::dir");
        self
    }
    /// Sets the fixed base address of the persistent region.
    pub fn base(mut self, base: usize) -> Config {
        self.base = Some(base);
        self.origins.base = Origin::Api("Config::base");
        self
    }
    /// Sets the size of the persistent region in bytes.
    pub fn capacity(mut self, capacity: usize) -> Config {
        self.capacity = Some(capacity);
        self.origins.capacity = Origin::Api("Config::capacity");
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
    /// Chooses when checkpoints are taken in a program with persistent threads.
    pub fn policy(mut self, p: Policy) -> Config {
        self.policy = p;
        self
    }
    /// Whether SIGTERM takes a checkpoint and then ends the process as SIGTERM would (default:
    /// no; SIGTERM keeps its usual effect).
    pub fn checkpoint_on_term(mut self, on: bool) -> Config {
        self.checkpoint_on_term = on;
        self
    }
    /// The policy.
    pub fn get_policy(&self) -> Policy {
        self.policy
    }
    /// Appends one JSON line of statistics per checkpoint to `file`.
    pub fn stats(mut self, file: impl Into<PathBuf>) -> Config {
        self.stats = Some(file.into());
        self.origins.stats = Origin::Api("Config::stats");
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
    /// The base address of the region, if set (otherwise the checkpoint's or the default).
    pub fn get_base(&self) -> Option<usize> {
        self.base
    }
    /// The capacity of the region, if set (otherwise the checkpoint's or the default).
    pub fn get_capacity(&self) -> Option<usize> {
        self.capacity
    }
    /// The tracker asked for.
    pub fn get_tracker(&self) -> TrackerKind {
        self.tracker
    }

    /// This configuration with relative paths made absolute against the current working
    /// directory, as crthreads does once when it starts.
    pub fn resolved(mut self) -> Result<Config> {
        if self.dir.is_relative() || self.stats.as_ref().is_some_and(|s| s.is_relative()) {
            let cwd = std::env::current_dir().map_err(|e| Error::Os {
                op: "getcwd (to resolve the relative CRTHREADS_DIR)",
                path: Some(self.dir.clone()),
                errno: crate::error::Errno(e.raw_os_error().unwrap_or(libc::ENOENT)),
            })?;
            if self.dir.is_relative() {
                self.dir = cwd.join(&self.dir);
            }
            if let Some(s) = self.stats.as_mut().filter(|s| s.is_relative()) {
                *s = cwd.join(&*s);
            }
        }
        Ok(self)
    }

    /// Checks the combination of settings.
    pub fn validate(&self) -> Result<()> {
        if self.dir.as_os_str().is_empty() {
            return Err(self.reject(&self.origins.dir, String::new(), "a directory path"));
        }
        if self.stats.as_ref().is_some_and(|s| s.as_os_str().is_empty()) {
            return Err(self.reject(&self.origins.stats, String::new(), "a file path"));
        }
        if let Some(base) = self.base {
            if base == 0 || base % REGION_ALIGN != 0 || base >= USER_TOP {
                return Err(self.reject(
                    &self.origins.base,
                    format!("{base:#x}"),
                    &format!("a non-zero multiple of 2 MiB (0x200000) below {USER_TOP:#x}"),
                ));
            }
        }
        if let Some(cap) = self.capacity {
            if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) || cap % REGION_ALIGN != 0 {
                return Err(self.reject(
                    &self.origins.capacity,
                    cap.to_string(),
                    "a multiple of 2 MiB, at least 32M and at most 4T",
                ));
            }
        }
        let base = self.base.unwrap_or(DEFAULT_BASE);
        let cap = self.capacity.unwrap_or(MIN_CAPACITY);
        if base.checked_add(cap).is_none_or(|end| end > USER_TOP) {
            return Err(self.reject(
                &self.origins.capacity,
                cap.to_string(),
                &format!("a size that fits between the base {base:#x} and the top of user space {USER_TOP:#x}"),
            ));
        }
        Ok(())
    }

    fn reject(&self, origin: &Origin, value: String, expected: &str) -> Error {
        let (var, value) = match origin {
            Origin::Env(var, raw) => (*var, raw.clone()),
            Origin::Crattr(f) => (*f, value),
            Origin::Api(m) => (*m, value),
            Origin::Default => ("the default", value),
        };
        Error::Config { var, value, expected: expected.into() }
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
    /// `cfg` with these overrides applied and validated; errors name the `crattr` field.
    pub fn apply(&self, mut cfg: Config) -> Result<Config> {
        if let Some(d) = &self.dir {
            cfg.dir = d.clone();
            cfg.origins.dir = Origin::Crattr("crattr.dir");
        }
        if let Some(b) = self.base {
            cfg.base = Some(b);
            cfg.origins.base = Origin::Crattr("crattr.base");
        }
        if let Some(c) = self.capacity {
            cfg.capacity = Some(c);
            cfg.origins.capacity = Origin::Crattr("crattr.capacity");
        }
        if let Some(d) = self.durability {
            cfg.durability = d;
        }
        if let Some(k) = self.keep {
            cfg.keep = k;
        }
        if let Some(s) = &self.stats {
            cfg.stats = Some(s.clone());
            cfg.origins.stats = Origin::Crattr("crattr.stats");
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Whether the C library should initialise itself when it is loaded (`CRTHREADS_AUTO`).
pub fn auto_from_env() -> Result<bool> {
    match std::env::var_os("CRTHREADS_AUTO") {
        Some(v) => env_bool("CRTHREADS_AUTO", &v),
        None => Ok(true),
    }
}

/// `CRTHREADS_*` variables in the environment that crthreads does not know (likely typos).
pub fn unknown_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("CRTHREADS_") && !KNOWN_VARS.contains(&k.as_str()))
        .collect()
}

const SIZES: &str = "a size such as 64G, 512M or 1073741824 (suffixes K, M, G, T, optionally followed by B or iB, \
                     in any case)";
const BOOLS: &str = "`1` or `0` (also `true`/`false`, `yes`/`no`, `on`/`off`, in any case)";

fn env_origin(var: &'static str, v: &OsStr) -> Origin {
    Origin::Env(var, v.to_string_lossy().into_owned())
}

fn bad(var: &'static str, v: &OsStr, expected: &str) -> Error {
    Error::Config { var, value: v.to_string_lossy().into_owned(), expected: expected.into() }
}

fn text<'a>(var: &'static str, v: &'a OsStr) -> Result<&'a str> {
    v.to_str().map(str::trim).ok_or_else(|| bad(var, v, "UTF-8 text"))
}

fn env_bool(var: &'static str, v: &OsStr) -> Result<bool> {
    parse_bool(text(var, v)?).ok_or_else(|| bad(var, v, BOOLS))
}

/// Parses a yes/no setting in any case.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn parse_durability(s: &str) -> Option<Durability> {
    match s.to_ascii_lowercase().as_str() {
        "process" => Some(Durability::Process),
        "sync" => Some(Durability::Sync),
        _ => None,
    }
}

fn parse_tracker(s: &str) -> Option<TrackerKind> {
    [TrackerKind::Auto, TrackerKind::Uffd, TrackerKind::Mprotect, TrackerKind::Full]
        .into_iter()
        .find(|t| t.name().eq_ignore_ascii_case(s))
}

/// Parses `0x…` hexadecimal or decimal.
pub(crate) fn parse_addr(s: &str) -> Option<usize> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => usize::from_str_radix(&h.replace('_', ""), 16).ok(),
        None => s.replace('_', "").parse().ok(),
    }
}

/// Parses a byte count with an optional binary suffix in any case: `4096`, `512K`, `64M`,
/// `2g`, `1T`, `64GiB`, `64 gb`.
pub(crate) fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix("ib").or_else(|| s.strip_suffix('b')).unwrap_or(&s).trim_end();
    let (num, shift) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 10),
        'm' => (&s[..s.len() - 1], 20),
        'g' => (&s[..s.len() - 1], 30),
        't' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let num = num.trim();
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = num.parse().ok()?;
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
    fn sizes_parse_with_binary_suffixes_in_any_case() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        for s in ["64GiB", "64gib", "64GIB", "64g", "64gb", "64 GB", " 64G "] {
            assert_eq!(parse_size(s), Some(64 << 30), "{s}");
        }
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        for s in ["G", "-1G", "99999999999999T", "1.5G", "64X", "", "+4G"] {
            assert_eq!(parse_size(s), None, "{s}");
        }
    }

    #[test]
    fn words_and_booleans_parse_in_any_case() {
        for (s, v) in [("TRUE", true), ("Yes", true), ("on", true), ("1", true), ("FALSE", false), ("Off", false)] {
            assert_eq!(parse_bool(s), Some(v), "{s}");
        }
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(with(&[("CRTHREADS_DURABILITY", "SYNC")]).unwrap().durability, Durability::Sync);
        assert_eq!(with(&[("CRTHREADS_TRACKER", "MProtect")]).unwrap().tracker, TrackerKind::Mprotect);
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
        assert_eq!(c.base, Some(0x1000_0000_0000));
        assert_eq!(c.capacity, Some(1 << 30));
        assert_eq!(c.durability, Durability::Sync);
        assert_eq!(c.tracker, TrackerKind::Mprotect);
        assert!(!c.reexec && c.keep);
        assert_eq!(c.stats, Some(PathBuf::from("/tmp/s.json")));
        let d = with(&[]).unwrap();
        assert_eq!((d.base, d.capacity), (None, None), "unset: taken from the checkpoint or defaulted at start");
    }

    #[test]
    fn bad_values_name_the_variable_repeat_the_text_and_list_what_is_accepted() {
        for (var, val, needle) in [
            ("CRTHREADS_DURABILITY", "fast", "`process` or `sync`"),
            ("CRTHREADS_TRACKER", "ebpf", "`mprotect`"),
            ("CRTHREADS_CAPACITY", "lots", "64G"),
            ("CRTHREADS_CAPACITY", "1M", "at least 32M"),
            ("CRTHREADS_CAPACITY", "33M", "multiple of 2 MiB"),
            ("CRTHREADS_CAPACITY", "8T", "at most 4T"),
            ("CRTHREADS_BASE", "0x1234", "multiple of 2 MiB"),
            ("CRTHREADS_BASE", "nowhere", "an address"),
            ("CRTHREADS_REEXEC", "maybe", "`yes`/`no`"),
            ("CRTHREADS_KEEP", "2", "`1` or `0`"),
            ("CRTHREADS_DIR", "", "directory"),
            ("CRTHREADS_ON_TERM", "save", "`checkpoint` or `default`"),
            ("CRTHREADS_UNSUPPORTED_FDS", "skip", "`refuse` or `ignore`"),
        ] {
            let e = with(&[(var, val)]).unwrap_err().to_string();
            assert!(e.contains(var) && e.contains(needle), "{var}={val}: {e}");
            assert!(e.contains(&format!("{var}={val:?}")), "the value is echoed as typed: {e}");
        }
    }

    #[test]
    fn on_term_parses() {
        assert!(!with(&[]).unwrap().checkpoint_on_term, "SIGTERM keeps its usual effect by default");
        assert!(with(&[("CRTHREADS_ON_TERM", "Checkpoint")]).unwrap().checkpoint_on_term);
        assert!(!with(&[("CRTHREADS_ON_TERM", "default")]).unwrap().checkpoint_on_term);
    }

    #[test]
    fn policies_parse() {
        assert_eq!(with(&[]).unwrap().policy, Policy::EveryRelease);
        assert_eq!(with(&[("CRTHREADS_POLICY", "Manual")]).unwrap().policy, Policy::Manual);
        assert_eq!(
            with(&[("CRTHREADS_POLICY", "interval"), ("CRTHREADS_INTERVAL", "0.25")]).unwrap().policy,
            Policy::Interval(std::time::Duration::from_millis(250))
        );
        assert_eq!(
            with(&[("CRTHREADS_INTERVAL", "2")]).unwrap().policy,
            Policy::Interval(std::time::Duration::from_secs(2))
        );
        for (k, v, needle) in [
            ("CRTHREADS_POLICY", "often", "`every-release`, `interval` or `manual`"),
            ("CRTHREADS_INTERVAL", "-1", "seconds"),
            ("CRTHREADS_INTERVAL", "soon", "seconds"),
        ] {
            let e = with(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(k) && e.contains(needle), "{e}");
        }
    }

    #[test]
    fn region_must_fit_in_user_space() {
        let e = with(&[("CRTHREADS_BASE", "0x7fff00000000"), ("CRTHREADS_CAPACITY", "64G")]).unwrap_err();
        assert!(e.to_string().contains("top of user space"), "{e}");
    }

    #[test]
    fn crattr_and_api_values_are_named_as_such() {
        let ov = Overrides { capacity: Some(12345), ..Default::default() };
        let e = ov.apply(Config::default()).unwrap_err().to_string();
        assert!(e.contains("crattr.capacity=\"12345\"") && !e.contains("CRTHREADS_"), "{e}");
        let ov = Overrides { dir: Some(PathBuf::new()), ..Default::default() };
        let e = ov.apply(Config::default()).unwrap_err().to_string();
        assert!(e.contains("crattr.dir") && e.contains("directory path"), "{e}");
        let e = Config::default().base(0x1234).validate().unwrap_err().to_string();
        assert!(e.contains("Config::base") && e.contains("0x1234"), "{e}");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        let c = Config::default().dir("job.ck").stats("s.json").resolved().unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.dir, cwd.join("job.ck"));
        assert_eq!(c.stats, Some(cwd.join("s.json")));
        let abs = Config::default().dir("/x/y").resolved().unwrap();
        assert_eq!(abs.dir, PathBuf::from("/x/y"));
    }
}
