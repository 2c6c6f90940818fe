//! C threads mode killed and resumed: `tests/c/threads_resume.c` (pthreads, a mutex, a
//! condition variable, a barrier, a semaphore and thread-specific data; its state in the heap
//! and on its threads' stacks) runs with its `main` as a persistent thread, preloaded and
//! relinked with `-lcrthreads` (see `c_suite.rs` for the link modes).
//!
//! For each mode, one uninterrupted run gives the reference result. Then, in a fresh checkpoint
//! directory, the program is killed with SIGKILL [`KILLS`] times, each time after a random
//! number (1 to 3) of new committed checkpoints (seen in its `CRTHREADS_STATS` file) and a
//! random delay, and run again with the same command until it completes. Checks: every killed
//! run was killed mid-run (it had not finished); every run after the first resumes without
//! calling `main` again (it never prints `start`); the final run exits 0 with the reference
//! result (the program itself checks that its two sums, updated together in every critical
//! section, stayed equal, and that the threads' counts add up); the checkpoint directory is gone
//! after the clean exit.
//!
//! The `interval` policy (every 50 ms) exercises preemption of the compute loops; the
//! `every-release` case (relinked only, fewer steps) a checkpoint at each last-lock release.
//! `CRTHREADS_TEST_SEED` replays the random kill moments (the seed is printed). The library is
//! not built here: `make lib` builds it first.

#[allow(dead_code)] // this driver uses part of the helpers
mod common;

use common::rng::Rng;
use common::{Link, Program, s};
use std::time::{Duration, Instant};

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Kills per mode.
const KILLS: u32 = 6;

/// Committed checkpoints recorded in the stats file so far (one line each).
fn commits(stats: &std::path::Path) -> usize {
    std::fs::read_to_string(stats).map(|t| t.lines().count()).unwrap_or(0)
}

/// The environment as `Program::start` takes it.
fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Runs the scenario for `link` with `policy` (`CRTHREADS_POLICY`) and the program's `args`.
fn kill_and_resume(link: Link, policy: &str, args: &[&str]) {
    let what = format!("threads_resume [{link}, {policy}]");
    let p = Program::build("threads_resume", link, RUN_LIMIT);
    let env = |dir: &str, stats: &str| -> Vec<(String, String)> {
        vec![
            ("CRTHREADS_DIR".into(), dir.into()),
            ("CRTHREADS_STATS".into(), stats.into()),
            ("CRTHREADS_POLICY".into(), policy.into()),
            ("CRTHREADS_INTERVAL".into(), "0.05".into()),
        ]
    };

    let (rdir, rstats) = (p.path("ckpt-ref"), p.path("stats-ref"));
    let renv = env(s(&rdir), s(&rstats));
    let reference = p.start("reference", args, &as_refs(&renv)).finish();
    reference.check(reference.status.success(), || "the uninterrupted run failed".into());
    reference.check(reference.stdout.starts_with("result "), || "no result line".into());
    reference.check(reference.stderr.contains("start"), || "a fresh run calls main".into());

    let mut rng = Rng::new(&what);
    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let kenv = env(s(&dir), s(&stats));
    for round in 0..=KILLS {
        let run = p.start(&format!("run{round}"), args, &as_refs(&kenv));
        if round == KILLS {
            let done = run.finish();
            done.check(done.status.success(), || "the last run failed".into());
            done.check(!done.stderr.contains("start"), || "a resumed run called main again".into());
            done.check(done.stdout == reference.stdout, || {
                format!("the result differs from the uninterrupted run's:\n{}", reference.stdout)
            });
            assert!(!dir.exists(), "{what}: the checkpoint directory survived a clean exit");
            return;
        }
        let mut run = run;
        let want = commits(&stats) + 1 + rng.below(3) as usize;
        let start = Instant::now();
        while commits(&stats) < want {
            if run.child.try_wait().expect("wait for the C program").is_some() {
                run.collect().fail(&format!(
                    "ended before {want} checkpoints were committed (make its run longer, or kill earlier)"
                ));
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = run.child.kill();
                run.collect().fail("hung: no checkpoint committed");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        let exited = run.child.try_wait().expect("wait for the C program").is_some();
        let _ = run.child.kill();
        let done = run.collect();
        done.check(!exited, || "finished before the kill".into());
        if round > 0 {
            done.check(!done.stderr.contains("start"), || "a resumed run called main again".into());
        }
    }
}

#[test]
fn preload_interval() {
    kill_and_resume(Link::Preload, "interval", &["4", "400000", "3000"]);
}

#[test]
fn shared_interval() {
    kill_and_resume(Link::Shared, "interval", &["4", "400000", "3000"]);
}

#[test]
fn shared_every_release() {
    kill_and_resume(Link::Shared, "every-release", &["3", "20000", "3000"]);
}
