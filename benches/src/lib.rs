//! Shared helpers for the benchmark binaries: timing, medians, arguments, child processes (a
//! benchmark that needs a crthreads runtime per configuration runs itself again as a child, with
//! `CRT_BENCH_ROLE` naming its part), temporary directories and a watchdog; and the modules
//! `locks` (the lock comparison), `stats` (the runtime's statistics file) and `stw` (a
//! plain-pthreads stop-the-world).
//!
//! Every benchmark measures its baseline in the same run (glibc's malloc, a plain `pwrite`,
//! ...) and reports medians of repeated rounds and their ratio, because the machines these run
//! on are noisy. A benchmark whose child fails or hangs panics (the watchdog kills a hung child)
//! rather than report a figure; with `panic = "abort"` its temporary directory is then left
//! behind under the system temp dir (`crt-bench-*`).

use std::time::Instant;

pub mod locks;
pub mod stats;
pub mod stw;

/// Median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Runs `f` `rounds` times and returns the median of what it returns.
pub fn median_of(rounds: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..rounds).map(|_| f()).collect();
    median(&mut v)
}

/// Seconds taken by `f`.
pub fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// SplitMix64.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// Next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A fresh temporary directory path (not created).
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("crt-bench-{tag}-{}", std::process::id()))
}

/// Argument `--name value` parsed, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {name}: {v}")))
        .unwrap_or(default)
}

/// The role this process plays, if a benchmark started it as a child (see [`child`]).
pub fn role() -> Option<String> {
    std::env::var("CRT_BENCH_ROLE").ok()
}

/// A command running this benchmark binary again as a child in `role`, with every inherited
/// `CRTHREADS_*` variable removed (the caller sets the ones the child needs) and the same
/// arguments.
pub fn child(role: &str) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().expect("current_exe"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CRTHREADS_") {
            c.env_remove(k);
        }
    }
    c.args(std::env::args().skip(1)).env("CRT_BENCH_ROLE", role).stdin(std::process::Stdio::null());
    c
}

/// Runs `c` to completion; panics with its stderr if it fails. Returns its stdout.
pub fn run_child(c: &mut std::process::Command) -> String {
    let out = c.output().expect("cannot start the benchmark's child");
    if !out.status.success() {
        panic!(
            "benchmark child failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The whitespace-separated fields after `key` on the first line of `out` that starts with it.
pub fn field<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .map(|l| l.split_whitespace().skip(1).collect())
        .unwrap_or_default()
}

/// A fresh directory under the system temp dir, removed (with everything in it) when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    /// Creates `crt-bench-<tag>-<pid>`, emptied first.
    pub fn new(tag: &str) -> TempDir {
        let p = temp_dir(tag);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    /// A path inside the directory.
    pub fn join(&self, s: &str) -> std::path::PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills a child process with SIGKILL if it is still running after a time limit, so that a
/// benchmark whose child hangs fails instead of waiting forever. Cancelled when dropped.
pub struct Watchdog {
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    /// Watches process `pid` for `limit`.
    pub fn new(pid: u32, limit: std::time::Duration) -> Watchdog {
        use std::sync::atomic::Ordering;
        let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, f) = (cancel.clone(), fired.clone());
        std::thread::spawn(move || {
            let t = Instant::now();
            while !c.load(Ordering::SeqCst) {
                if t.elapsed() > limit {
                    f.store(true, Ordering::SeqCst);
                    // SAFETY: a signal to our own child, which has not been reaped (the caller
                    // holds it until the watchdog is dropped).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        Watchdog { cancel, fired }
    }

    /// Whether the child was killed for running too long.
    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
