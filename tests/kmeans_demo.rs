//! The crash demo in small: the kmeans example, killed with SIGKILL two or three times at
//! random moments and resumed each time, prints the same `result` as an uninterrupted run, and
//! no resumed run starts over.
//!
//! The test runs the example binary that `cargo test` builds next to the test executables
//! (`target/<profile>/examples/kmeans`). `KMEANS_TEST_SEED=<n>` replays a kill schedule.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::progress::{Kill, run};
use common::{Rng, TempDir, killed};

const ARGS: &[&str] = &["--points", "12000", "--k", "10", "--iters", "24", "--dim", "12", "--seed", "5"];
const ITERS: u64 = 24;
/// Generous: a hung run fails the test instead of blocking it forever.
const LIMIT: Duration = Duration::from_secs(300);

fn kmeans_bin() -> PathBuf {
    common::example_bin("kmeans")
}

fn kmeans(bin: &Path, args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(bin);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("CRTHREADS_")) {
            c.env_remove(k);
        }
    }
    c.args(args).env("CRTHREADS_DIR", dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn seed() -> u64 {
    match std::env::var("KMEANS_TEST_SEED") {
        Ok(v) => v.trim().parse().expect("KMEANS_TEST_SEED must be an integer"),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    }
}

#[test]
fn killed_and_resumed_run_matches_uninterrupted_run() {
    let bin = kmeans_bin();
    let seed = seed();
    println!("kill schedule seed {seed} (replay with KMEANS_TEST_SEED={seed})");
    let mut rng = Rng(seed);

    let plain = TempDir::new("kmeans-plain");
    let ckpt = plain.join("ckpt");
    let base = run(kmeans(&bin, ARGS, &ckpt), None, Duration::ZERO, LIMIT);
    assert!(base.status.success(), "uninterrupted run failed: {}\n{}", base.status, base.stderr);
    base.assert_shape("uninterrupted run");
    assert_eq!(base.iters(), (0..ITERS).collect::<Vec<_>>(), "uninterrupted run");
    let expected = base.result().expect("uninterrupted run printed no result line").to_string();
    assert!(!ckpt.exists(), "the checkpoint directory survived a clean exit");
    let per_iter = base.elapsed / ITERS as u32;

    let crashy = TempDir::new("kmeans-killed");
    let ckpt = crashy.join("ckpt");
    let planned = 2 + rng.below(2);
    let mut kills = 0;
    let mut interrupted: Option<u64> = None; // the iteration the last kill interrupted
    loop {
        let kill = (kills < planned).then(|| {
            // Aim after iteration 0 is committed (a resume then never prints `iter 0`) and
            // before the last iteration (so the kill finds kmeans still running).
            let lo = interrupted.unwrap_or(0).max(1);
            let span = (ITERS - 2).saturating_sub(lo) / (planned - kills);
            let fraction = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            Kill { target: lo + rng.below(span + 1), fraction, gate: None }
        });
        let out = run(kmeans(&bin, ARGS, &ckpt), kill.as_ref(), per_iter, LIMIT);
        let what = format!("run after {kills} kills");
        out.assert_shape(&what);
        let iters = out.iters();
        match interrupted {
            None => assert_eq!(iters.first(), Some(&0), "{what}: a fresh run starts at iter 0\n{}", out.stderr),
            Some(last) => {
                let first = iters.first().copied();
                let shown = first.map_or_else(|| "none".to_string(), |f| format!("`iter {f}`"));
                println!("{what}: first line {shown}, after a kill during iter {last}");
                assert_ne!(first, Some(0), "{what}: restarted from iter 0\n{}", out.stderr);
                assert!(
                    first == Some(last) || first == Some(last + 1) || (first.is_none() && last + 1 == ITERS),
                    "{what}: resumed at {first:?}, but the kill interrupted iter {last}\n{}",
                    out.stderr
                );
                assert!(out.stderr.contains("resuming at iteration"), "{what}: no restore note\n{}", out.stderr);
            }
        }
        if let Some(k) = &kill {
            assert!(
                out.kill_sent,
                "{what}: ended ({}) before the kill aimed at iter {} was sent",
                out.status, k.target
            );
            assert!(killed(&out.status), "{what}: not killed by SIGKILL: {}\n{}", out.status, out.stderr);
            assert_eq!(out.result(), None, "{what}: the kill landed after kmeans finished");
            interrupted = Some(*iters.last().expect("killed before printing any iter line"));
            kills += 1;
            continue;
        }
        assert!(out.status.success(), "{what}: failed: {}\n{}", out.status, out.stderr);
        assert_eq!(out.result(), Some(expected.as_str()), "result after {kills} kills differs from uninterrupted");
        assert!(!ckpt.exists(), "the checkpoint directory survived a clean exit");
        break;
    }
    assert_eq!(kills, planned);
}

#[test]
fn bad_arguments_are_rejected_before_anything_starts() {
    let bin = kmeans_bin();
    let dir = TempDir::new("kmeans-args");
    let ckpt = dir.join("ckpt");
    for (args, needle) in [
        (&["--points", "3", "--k", "5"][..], "must not exceed `--points`"),
        (&["--points", "many"][..], "`--points` expects a positive integer, got `many`"),
        (&["--iters", "-1"][..], "`--iters` expects a non-negative integer"),
        (&["--k=0"][..], "`--k` must be at least 1"),
        (&["--frobnicate", "1"][..], "unknown argument `--frobnicate`"),
        (&["--seed"][..], "`--seed` needs a value"),
    ] {
        let out = kmeans(&bin, args, &ckpt).output().expect("run kmeans");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}\n{stderr}", out.status);
        assert!(stderr.contains(needle), "{args:?}: stderr lacks `{needle}`:\n{stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: printed on stdout");
        assert!(!ckpt.exists(), "{args:?}: created a checkpoint directory");
    }
}
