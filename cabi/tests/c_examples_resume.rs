//! The C example programs (`examples/c/`) killed with SIGKILL at random moments and resumed,
//! built both ways (see `c_examples.rs` for the variants): `shared` (relinked with
//! `-lcrthreads`) and `preload` (the plain build under `LD_PRELOAD=libcrthreads.so`). Their
//! `main` runs as a persistent thread; their globals and their output file are restored with
//! their threads.
//!
//! For each example and variant: the plain build (glibc's threads, no crthreads) runs once to
//! give the reference: its result line and output file. Then, in a fresh checkpoint directory
//! (policy `interval`, every 50 ms), the variant is killed [`KILLS`] times, each after 1 to 3
//! new committed checkpoints (seen in its `CRTHREADS_STATS` file) and a random delay, and run
//! again with the same command until it completes (a resumed run that completes before its
//! kill moment is the last one; the first run is always killed). Checks: no killed run had
//! finished; no run
//! after the first starts over (none prints the example's start-up line on stderr); the last run
//! exits 0, prints the reference's result line last, and leaves an output file equal to the
//! reference's byte for byte (a restore cuts the file back to its checkpointed size, so records
//! written after the checkpoint are not kept twice); the checkpoint directory is gone after
//! the clean exit. Each run's arguments make it take one to two seconds.
//!
//! `CRTHREADS_TEST_SEED` replays the kill moments (the seed is printed). The programs are built
//! with the Makefile rules (as `c_examples.rs` does); `make lib` builds the library first.

#[allow(dead_code)] // this driver builds with make, so it uses only part of the helpers
mod common;

use common::rng::Rng;
use common::{Link, Program, s};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Kills per example and variant.
const KILLS: u32 = 3;

/// Builds `name` (variant `link`) with the Makefile rule of `make c-examples`.
fn build(name: &'static str, link: Link) -> Program {
    let exe = if link == Link::Shared { name.to_string() } else { format!("{name}-plain") };
    let p = Program::to_build(name, link, &exe, RUN_LIMIT);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new("make");
    cmd.current_dir(&root)
        .arg("--no-print-directory")
        .arg(format!("C_EXAMPLES_DIR={}", s(&p.path("")).trim_end_matches('/')))
        .arg(format!("C_LIB_DIR={}", s(&common::lib_dir())))
        .arg(&p.exe)
        .stdin(Stdio::null());
    // Under `make test` the outer make's job server is not ours to use.
    for k in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL"] {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run make: {e}"));
    assert!(
        out.status.success() && p.exe.is_file(),
        "building {} with make failed: {cmd:?}\n{}{}",
        p.exe.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// Committed checkpoints recorded in the stats file so far (one line each).
fn commits(stats: &Path) -> usize {
    std::fs::read_to_string(stats).map(|t| t.lines().count()).unwrap_or(0)
}

/// Whether a run's stderr shows that its `main` started: a line `<name>: ...` other than the
/// final `done in` one.
fn started(name: &str, stderr: &str) -> bool {
    let prefix = format!("{name}: ");
    stderr.lines().any(|l| l.starts_with(&prefix) && !l.contains("done in"))
}

fn resume(name: &'static str, link: Link, args: &[&str]) {
    let what = format!("{name} [{link}]");
    let plain = build(name, Link::Plain);
    let ref_out = plain.path("reference.out");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--out", s(&ref_out)]);
    let reference = plain.start("reference", &all, &[]).finish();
    reference.check(reference.status.success(), || "the plain run failed".into());
    reference.check(started(name, &reference.stderr), || "the start-up line is missing on stderr".into());
    let want_result = reference.stdout.lines().last().unwrap_or("").to_string();
    let want_file = std::fs::read(&ref_out).expect("the reference output file");

    let p = build(name, link);
    let (dir, stats, out) = (p.path("ckpt"), p.path("stats"), p.path("resumed.out"));
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--out", s(&out)]);
    let env = [
        ("CRTHREADS_DIR", s(&dir)),
        ("CRTHREADS_STATS", s(&stats)),
        ("CRTHREADS_POLICY", "interval"),
        ("CRTHREADS_INTERVAL", "0.05"),
    ];
    let mut rng = Rng::new(&what);
    let last = |done: &common::Done| {
        done.check(done.status.success(), || "the last run failed".into());
        done.check(!started(name, &done.stderr), || "a resumed run started over".into());
        done.check(done.stdout.lines().last() == Some(want_result.as_str()), || {
            format!("the last line should be the plain run's `{want_result}`")
        });
        let got = std::fs::read(&out).expect("the output file");
        done.check(got == want_file, || {
            format!(
                "the output file differs from the plain run's:\n--- plain ---\n{}--- resumed ---\n{}",
                String::from_utf8_lossy(&want_file),
                String::from_utf8_lossy(&got)
            )
        });
        assert!(!dir.exists(), "{what}: the checkpoint directory survived a clean exit");
    };
    for round in 0..=KILLS {
        let mut run = p.start(&format!("run{round}"), &all, &env);
        if round == KILLS {
            last(&run.finish());
            return;
        }
        let want = commits(&stats) + 1 + rng.below(3) as usize;
        let start = Instant::now();
        while commits(&stats) < want {
            if run.child.try_wait().expect("wait for the example").is_some() {
                // What was left after the earlier kills took less than the chosen number of
                // checkpoints: this run is the last one (the first run must be killed).
                let done = run.collect();
                done.check(round > 0, || format!("ended before {want} checkpoints were committed"));
                eprintln!("{what}: completed after {round} kills");
                last(&done);
                return;
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = run.child.kill();
                run.collect().fail("hung: no checkpoint committed");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.below(50_000)));
        let exited = run.child.try_wait().expect("wait for the example").is_some();
        let _ = run.child.kill();
        let done = run.collect();
        done.check(!exited, || "finished before the kill".into());
        if round > 0 {
            done.check(!started(name, &done.stderr), || "a resumed run started over".into());
        }
    }
}

macro_rules! examples {
    ($($test:ident: $name:literal, $link:ident, [$($arg:literal),*];)*) => {
        $(
            #[test]
            fn $test() {
                resume($name, Link::$link, &[$($arg),*]);
            }
        )*
    };
}

examples! {
    counter_shared: "counter", Shared, ["--iters", "4"];
    counter_preload: "counter", Preload, ["--iters", "4"];
    kmeans_shared: "kmeans", Shared, ["--iters", "5"];
    kmeans_preload: "kmeans", Preload, ["--iters", "5"];
    tsp_shared: "tsp", Shared, ["--size", "14", "--iters", "30"];
    tsp_preload: "tsp", Preload, ["--size", "14", "--iters", "30"];
    gradient_descent_shared: "gradient_descent", Shared, ["--iters", "100"];
    gradient_descent_preload: "gradient_descent", Preload, ["--iters", "100"];
    prodcons_shared: "prodcons", Shared, ["--iters", "6"];
    prodcons_preload: "prodcons", Preload, ["--iters", "6"];
}
