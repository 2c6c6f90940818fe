//! Helpers shared by the integration tests: temporary directories and child processes, and (in
//! `progress`) running an example program and killing it in the middle of a progress unit.
//!
//! Tests that crash a program run the test binary itself as the child: `child(role)` starts
//! `current_exe()` with `CRT_TEST_ROLE=<role>`, and the test's `main` (these tests use
//! `harness = false`) calls [`role`] first to dispatch to the child's code.
#![allow(dead_code)]

pub mod progress;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("crt-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, s: &str) -> PathBuf {
        self.0.join(s)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The role this process plays, if it was started by [`child`].
pub fn role() -> Option<String> {
    std::env::var("CRT_TEST_ROLE").ok()
}

/// A command running this test binary as a child in `role`, with crthreads' environment
/// cleared of anything inherited.
pub fn child(role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    for (k, _) in std::env::vars() {
        if k.starts_with("CRTHREADS_") {
            c.env_remove(k);
        }
    }
    c.env("CRT_TEST_ROLE", role).stdin(Stdio::null());
    c
}

/// The example binary `name`, built by cargo next to the test executables
/// (`target/<profile>/deps/<test>` → `target/<profile>/examples/<name>`).
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("examples").join(name);
    assert!(
        bin.is_file(),
        "the {name} example is missing at {}: build it with `cargo build --example {name}` \
         (a plain `cargo test` builds it; `cargo test --test <one test>` alone does not)",
        bin.display()
    );
    bin
}

/// Waits for `c` at most `limit`; kills it with SIGKILL if it runs longer. Returns the status
/// and whether it had to be killed.
pub fn wait_or_kill(c: &mut Child, limit: Duration) -> (ExitStatus, bool) {
    let t = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return (s, false);
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            return (c.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `s` is death by SIGKILL.
pub fn killed(s: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    s.signal() == Some(libc::SIGKILL)
}

/// A small deterministic generator (SplitMix64) for children and parents to agree on data.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs the named tests of a `harness = false` test binary, printing libtest-like lines, and
/// exits non-zero if any failed. An argument filters tests by substring.
pub fn run_tests(tests: &[(&str, fn())]) {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        ran += 1;
        let t = Instant::now();
        let r = std::panic::catch_unwind(f);
        let ok = r.is_ok();
        println!("test {name} ... {} ({:.1}s)", if ok { "ok" } else { "FAILED" }, t.elapsed().as_secs_f64());
        if !ok {
            failed.push(*name);
        }
    }
    println!("\n{ran} tests, {} failed", failed.len());
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(101);
    }
}
