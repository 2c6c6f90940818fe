//! Descriptors no restore can give back: `tests/c/fds.c` computes, then holds a pipe, a socket
//! pair and an eventfd while it computes more, closes them and computes again (policy
//! `interval`, every 50 ms; relinked with `-lcrthreads`).
//!
//! - `refused_while_held`: while they are open, checkpoints are refused with a warning naming
//!   the lowest such descriptor and its kind; once they are closed checkpoints commit again. The
//!   program is killed with SIGKILL after such a commit and resumes to the uninterrupted result.
//! - `ignored_when_asked`: with `CRTHREADS_UNSUPPORTED_FDS=ignore` checkpoints commit while they
//!   are open (the program is killed after two of them) and the rerun resumes from there, without
//!   those descriptors, to the same result.
//!
//! `make lib` builds the library first.

#[allow(dead_code)] // this driver uses part of the helpers
mod common;

use common::{Link, Program, Run, s};
use std::time::{Duration, Instant};

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Committed checkpoints recorded in the stats file so far (one line each).
fn commits(stats: &std::path::Path) -> usize {
    std::fs::read_to_string(stats).map(|t| t.lines().count()).unwrap_or(0)
}

/// Waits until `ok()` holds while `run` runs.
fn wait_for(run: &mut Run, what: &str, mut ok: impl FnMut(&Run) -> bool) {
    let t0 = Instant::now();
    while !ok(run) {
        if run.child.try_wait().expect("wait for the C program").is_some() {
            run.collect().fail(&format!("ended before {what}"));
        }
        if t0.elapsed() > RUN_LIMIT {
            let _ = run.child.kill();
            run.collect().fail(&format!("hung waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The descriptors the program announced with `held`.
fn held(stderr: &str) -> Option<Vec<i32>> {
    let line = stderr.lines().find(|l| l.starts_with("held "))?;
    Some(line.split_whitespace().skip(1).map(|n| n.parse().expect("a descriptor number")).collect())
}

fn scenario(ignore: bool) {
    let p = Program::build("fds", Link::Shared, RUN_LIMIT);
    let args = ["300", "1500", "1500"];
    let env = |dir: &str, stats: &str| {
        let mut v = vec![
            ("CRTHREADS_DIR".to_string(), dir.to_string()),
            ("CRTHREADS_STATS".to_string(), stats.to_string()),
            ("CRTHREADS_POLICY".to_string(), "interval".to_string()),
            ("CRTHREADS_INTERVAL".to_string(), "0.05".to_string()),
        ];
        if ignore {
            v.push(("CRTHREADS_UNSUPPORTED_FDS".to_string(), "ignore".to_string()));
        }
        v
    };
    let start = |label: &str, e: &[(String, String)]| {
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        p.start(label, &args, &e)
    };
    let (rdir, rstats) = (p.path("ckpt-ref"), p.path("stats-ref"));
    let reference = start("reference", &env(s(&rdir), s(&rstats))).finish();
    reference.check(reference.status.success(), || "the uninterrupted run failed".into());
    reference.check(reference.stdout.starts_with("result "), || "no result line".into());

    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let e = env(s(&dir), s(&stats));
    let mut first = start("first", &e);
    wait_for(&mut first, "holding its descriptors", |r| held(&r.stderr()).is_some());
    let at_held = commits(&stats);
    if ignore {
        wait_for(&mut first, "two checkpoints while holding them", |r| {
            commits(&stats) >= at_held + 2 || r.stderr().contains("closed")
        });
        if first.stderr().contains("closed") {
            let _ = first.child.kill();
            first.collect().fail("closed its descriptors before two checkpoints were taken (make B longer)");
        }
    } else {
        wait_for(&mut first, "closing them", |r| r.stderr().contains("closed"));
        let at_closed = commits(&stats);
        wait_for(&mut first, "a checkpoint after closing them", |_| commits(&stats) > at_closed);
    }
    let _ = first.child.kill();
    let first = first.collect();
    first.check(first.stdout.is_empty(), || "finished before the kill".into());
    let fds = held(&first.stderr).expect("held line");
    let lowest = *fds.iter().min().expect("descriptors");
    let kind = if lowest == fds[0] || lowest == fds[1] {
        "a pipe or FIFO"
    } else if lowest == fds[4] {
        "a kernel object"
    } else {
        "a socket"
    };
    let refusal = format!("descriptor {lowest} is open ({kind}");
    if ignore {
        first.check(!first.stderr.contains("is open ("), || "a checkpoint was refused under `ignore`".into());
    } else {
        first.check(first.stderr.contains(&refusal), || format!("no warning containing `{refusal}`"));
        first.check(first.stderr.contains("CRTHREADS_UNSUPPORTED_FDS=ignore"), || {
            "the warning does not say how to opt out".into()
        });
    }

    let second = start("second", &e).finish();
    second.check(second.status.success(), || "the resumed run failed".into());
    second.check(!second.stderr.lines().any(|l| l == "start"), || "the resumed run called main again".into());
    second.check(second.stdout == reference.stdout, || {
        format!("the result differs from the uninterrupted run's:\n{}", reference.stdout)
    });
    assert!(!dir.exists(), "the checkpoint directory survived a clean exit");
}

#[test]
fn refused_while_held() {
    scenario(false);
}

#[test]
fn ignored_when_asked() {
    scenario(true);
}
