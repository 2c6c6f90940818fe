//! `CRTHREADS_ON_TERM=checkpoint`: a SIGTERM takes a checkpoint and ends the process as SIGTERM
//! would; the rerun resumes from that instant. `tests/c/term.c` (three threads announcing each
//! finished step on stderr) runs preloaded and relinked with `-lcrthreads` under the `manual`
//! policy, so the SIGTERM's checkpoint is the only one there is.
//!
//! - `checkpoint_on_term_*`: SIGTERM at a random moment (after a random number of announced
//!   steps). Checks: the run died of SIGTERM before finishing; exactly one checkpoint was
//!   committed (in its `CRTHREADS_STATS` file); the rerun does not call `main` again, exits 0
//!   with the uninterrupted run's result, and announces exactly the steps the first run had not
//!   (no step is done twice, none is lost); the checkpoint directory is gone after the clean exit.
//! - `without_the_option_sigterm_only_ends`: the default leaves SIGTERM alone (no checkpoint).
//! - `the_programs_own_handler_wins`: a SIGTERM handler the program installs replaces
//!   crthreads' one: it runs, and no checkpoint is taken.
//! - `a_bad_value_is_a_start_up_error`.
//!
//! `CRTHREADS_TEST_SEED` replays the SIGTERM moments (the seed is printed). `make lib` builds
//! the library first.

#[allow(dead_code)] // this driver uses part of the helpers
mod common;

use common::{Link, Program, Run, s};
use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant, SystemTime};

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The program's arguments: threads, steps per thread, work per step.
const ARGS: [&str; 3] = ["3", "400", "40000"];

/// Committed checkpoints recorded in the stats file so far (one line each).
fn commits(stats: &std::path::Path) -> usize {
    std::fs::read_to_string(stats).map(|t| t.lines().count()).unwrap_or(0)
}

/// The steps a run announced on stderr (`t<thread> step <n>`).
fn steps(stderr: &str) -> Vec<String> {
    stderr.lines().filter(|l| l.contains(" step ")).map(str::to_string).collect()
}

/// A random number in `0..n`, seeded from `CRTHREADS_TEST_SEED` or the clock (printed).
fn random_below(what: &str, n: u64) -> u64 {
    let seed = match std::env::var("CRTHREADS_TEST_SEED") {
        Ok(v) => v.parse().expect("CRTHREADS_TEST_SEED is a number"),
        Err(_) => {
            let t = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
        }
    };
    eprintln!("{what}: SIGTERM moment from CRTHREADS_TEST_SEED={seed}");
    let mut x = seed | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) % n
}

/// Waits until `run` has announced `n` steps, then sends it SIGTERM.
fn term_after(run: &mut Run, n: usize) {
    let start = Instant::now();
    while steps(&run.stderr()).len() < n {
        if run.child.try_wait().expect("wait for the C program").is_some() {
            run.collect().fail(&format!("ended before announcing {n} steps"));
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = run.child.kill();
            run.collect().fail("hung");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: a signal to our own child, which has not been reaped yet.
    let r = unsafe { libc::kill(run.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(r, 0, "kill(SIGTERM)");
}

fn env<'a>(dir: &'a str, stats: &'a str, on_term: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![("CRTHREADS_DIR", dir), ("CRTHREADS_STATS", stats), ("CRTHREADS_POLICY", "manual")];
    if let Some(o) = on_term {
        v.push(("CRTHREADS_ON_TERM", o));
    }
    v
}

fn checkpoint_on_term(link: Link) {
    let what = format!("term [{link}]");
    let p = Program::build("term", link, RUN_LIMIT);
    let (rdir, rstats) = (p.path("ckpt-ref"), p.path("stats-ref"));
    let reference = p.start("reference", &ARGS, &env(s(&rdir), s(&rstats), Some("checkpoint"))).finish();
    reference.check(reference.status.success(), || "the uninterrupted run failed".into());
    reference.check(reference.stdout.starts_with("result "), || "no result line".into());
    let all: BTreeSet<String> = steps(&reference.stderr).into_iter().collect();
    assert_eq!(all.len(), 3 * 400, "{what}: the reference announces every step once");

    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let e = env(s(&dir), s(&stats), Some("checkpoint"));
    let mut first = p.start("first", &ARGS, &e);
    term_after(&mut first, 10 + random_below(&what, 600) as usize);
    let first = first.finish();
    first.check(first.status.signal() == Some(libc::SIGTERM), || "did not end as SIGTERM would".into());
    first.check(!first.stdout.contains("result"), || "finished before the SIGTERM".into());
    first.check(commits(&stats) == 1, || format!("{} checkpoints committed, not 1", commits(&stats)));

    let second = p.start("second", &ARGS, &e).finish();
    second.check(second.status.success(), || "the resumed run failed".into());
    second.check(!second.stderr.lines().any(|l| l == "start"), || "the resumed run called main again".into());
    second.check(second.stdout == reference.stdout, || {
        format!("the result differs from the uninterrupted run's:\n{}", reference.stdout)
    });
    let (a, b) = (steps(&first.stderr), steps(&second.stderr));
    let mut seen = BTreeSet::new();
    for step in a.iter().chain(&b) {
        second.check(seen.insert(step.clone()), || format!("`{step}` was done twice (first run:\n{})", first.stderr));
    }
    second.check(seen == all, || "some steps were never done".into());
    assert!(!dir.exists(), "{what}: the checkpoint directory survived a clean exit");
}

#[test]
fn checkpoint_on_term_preload() {
    checkpoint_on_term(Link::Preload);
}

#[test]
fn checkpoint_on_term_shared() {
    checkpoint_on_term(Link::Shared);
}

#[test]
fn without_the_option_sigterm_only_ends() {
    let p = Program::build("term", Link::Shared, RUN_LIMIT);
    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let mut run = p.start("default", &ARGS, &env(s(&dir), s(&stats), None));
    term_after(&mut run, 30);
    let done = run.finish();
    done.check(done.status.signal() == Some(libc::SIGTERM), || "did not die of SIGTERM".into());
    done.check(commits(&stats) == 0, || "a checkpoint was taken without CRTHREADS_ON_TERM".into());
}

#[test]
fn the_programs_own_handler_wins() {
    let p = Program::build("term", Link::Shared, RUN_LIMIT);
    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let args = ["--handler", ARGS[0], ARGS[1], ARGS[2]];
    let mut run = p.start("handler", &args, &env(s(&dir), s(&stats), Some("checkpoint")));
    term_after(&mut run, 30);
    let done = run.finish();
    done.check(done.status.code() == Some(3), || "the program's handler did not end it".into());
    done.check(done.stdout == "handled\n", || "the program's handler did not run".into());
    done.check(commits(&stats) == 0, || "SIGTERM took a checkpoint despite the program's handler".into());
}

#[test]
fn a_bad_value_is_a_start_up_error() {
    let p = Program::build("term", Link::Shared, RUN_LIMIT);
    let (dir, stats) = (p.path("ckpt"), p.path("stats"));
    let done = p.start("bad", &ARGS, &env(s(&dir), s(&stats), Some("save"))).finish();
    done.check(!done.status.success(), || "a bad CRTHREADS_ON_TERM was accepted".into());
    done.check(done.stderr.contains("CRTHREADS_ON_TERM=\"save\""), || "the error does not name the setting".into());
    done.check(!done.stderr.lines().any(|l| l == "start"), || "main ran despite the bad setting".into());
}
