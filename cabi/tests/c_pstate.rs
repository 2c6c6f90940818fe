//! Process state restored with a C program's threads: `tests/c/pstate.c` changes its working
//! directory, umask, soft limit on open files, a signal handler (with flags and mask), a
//! disposition (`SIG_IGN`) and its main thread's signal mask, then waits in `pthread_join` while
//! a worker computes. It is killed with SIGKILL after checkpoints were committed (policy
//! `interval`, every 50 ms) and run again with the same command from the original directory
//! (umask 022, the default limits, no handlers): the resumed run must print the state the
//! program had set (and its handler must run on `raise(SIGUSR1)`), and the uninterrupted run's
//! result. Preloaded and relinked with `-lcrthreads`. `make lib` builds the library first.

#[allow(dead_code)] // this driver uses part of the helpers
mod common;

use common::{Link, Program, s};
use std::time::{Duration, Instant};

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Committed checkpoints recorded in the stats file so far (one line each).
fn commits(stats: &std::path::Path) -> usize {
    std::fs::read_to_string(stats).map(|t| t.lines().count()).unwrap_or(0)
}

fn killed_and_resumed(link: Link) {
    let p = Program::build("pstate", link, RUN_LIMIT);
    let work = p.path("workdir");
    std::fs::create_dir(&work).expect("create the program's working directory");
    let args = [s(&work), "3000"];
    let env = |dir: &str, stats: &str| {
        vec![
            ("CRTHREADS_DIR".to_string(), dir.to_string()),
            ("CRTHREADS_STATS".to_string(), stats.to_string()),
            ("CRTHREADS_POLICY".to_string(), "interval".to_string()),
            ("CRTHREADS_INTERVAL".to_string(), "0.05".to_string()),
        ]
    };
    let refs = |v: &[(String, String)]| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
    let start = |label: &str, e: &[(String, String)]| {
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // umask 022 in every run: the program's 027 can only come back from the checkpoint.
        p.start_with(label, &args, &e, |c| {
            use std::os::unix::process::CommandExt;
            // SAFETY: umask is async-signal-safe and cannot fail.
            unsafe {
                c.pre_exec(|| {
                    libc::umask(0o022);
                    Ok(())
                });
            }
        })
    };

    let (rdir, rstats) = (p.path("ckpt-ref"), p.path("stats-ref"));
    let reference = start("reference", &refs(&env(s(&rdir), s(&rstats)))).finish();
    reference.check(reference.status.success(), || "the uninterrupted run failed".into());
    reference.check(
        reference.stdout.starts_with("cwd=workdir umask=027 nofile=200 usr1=ok pipe=ign mask=usr2 handled=1 total="),
        || "the uninterrupted run does not see the state it set".into(),
    );

    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let e = env(s(&dir), s(&stats));
    let mut first = start("first", &e);
    let t0 = Instant::now();
    while !first.stderr().contains("ready") || commits(&stats) < 2 {
        if first.child.try_wait().expect("wait for the C program").is_some() {
            first.collect().fail("ended before it could be killed (make its run longer)");
        }
        if t0.elapsed() > RUN_LIMIT {
            let _ = first.child.kill();
            first.collect().fail("hung");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = first.child.kill();
    let first = first.collect();
    first.check(first.stdout.is_empty(), || "finished before the kill".into());

    let second = start("second", &e).finish();
    second.check(second.status.success(), || "the resumed run failed".into());
    second.check(!second.stderr.lines().any(|l| l == "start"), || "the resumed run called main again".into());
    second.check(second.stdout == reference.stdout, || {
        format!("the resumed run's process state differs from the uninterrupted run's:\n{}", reference.stdout)
    });
    assert!(!dir.exists(), "the checkpoint directory survived a clean exit");
}

#[test]
fn preload_process_state_is_restored() {
    killed_and_resumed(Link::Preload);
}

#[test]
fn shared_process_state_is_restored() {
    killed_and_resumed(Link::Shared);
}
