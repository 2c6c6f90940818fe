//! The multithreaded examples (kmeans, tsp, gradient_descent, prodcons), each killed with
//! SIGKILL again and again and run again with the same command until it completes, under both
//! checkpoint policies, both write trackers and both durability levels; the completing run
//! prints the `result` of an uninterrupted run.
//!
//! Two kinds of kill. A *random* kill aims at a random progress unit `j` among those left, and
//! fires a random part of a unit after `iter j` appears, or as soon as the next `iter` line
//! does, so it lands while the example computes or checkpoints, never after it finished, and
//! not before the run committed a checkpoint of its own. A *failpoint* kill (with the
//! `failpoints` feature, which `make test` builds the examples with) arms
//! `CRTHREADS_FAILPOINT=<stage>`, and the run kills itself with SIGKILL at that stage of its
//! first checkpoint: while the threads are gathered, in the middle of writing, just before or
//! after the commit record, as the threads are released, or (first run only) while the first
//! checkpoint is mirrored into the second slot. Each run writes its own `CRTHREADS_STATS`
//! file, so the test knows which checkpoints were committed before each kill.
//!
//! Checks, run by run: stdout is consecutive `iter` lines, then at most one `result` line, last;
//! a killed run died of SIGKILL without a result. The run after a kill restored the newest
//! committed checkpoint (its `restored checkpoint <n>` note names it): after a random kill the
//! last one the statistics show or the one whose statistics line the kill cut off; after a
//! failpoint kill exactly the one the stage implies (a checkpoint killed before its commit
//! record is not restored, one killed after it is). It said where it resumed, printed no unit
//! past the first one the killed runs had not reached (nothing skipped), and, under
//! `every-release`, where every checkpoint follows `iter 0`, did not start over at `iter 0`.
//! The completing run prints the uninterrupted run's `result`, the last unit was printed, and
//! the checkpoint directory is gone.
//!
//! By default each example runs in two cases that between them cover both policies, both
//! trackers and both durability levels, with a few kills each and every failpoint stage used
//! across the cases (under a minute on two busy cores). `EXAMPLES_CRASH_SOAK=<n>` runs
//! every combination for every example, with `n` times the kills and every stage in each
//! case. The uffd tracker's cases are skipped, with the reason printed, on a kernel without
//! userfaultfd write-protection.
//!
//! The examples are the binaries `cargo test` builds next to the test executables; their sizes
//! are chosen per build profile so that a run lasts a few seconds either way.
//! `EXAMPLES_CRASH_SEED=<n>` replays a kill schedule (the moments still depend on timing);
//! `EXAMPLES_CRASH_ONLY=<text>` runs only the cases whose name (`tsp/interval/uffd/sync`)
//! contains it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::progress::{self, Kill, Outcome, committed};
use common::{Rng, TempDir, example_bin, killed, run_tests};

/// A run that takes longer than this is killed and reported as hung.
const LIMIT: Duration = Duration::from_secs(180);
/// The interval of the `interval` cases, in seconds: short, so that every run commits a checkpoint
/// well before it could end, even on a fast machine.
const INTERVAL: &str = "0.02";
const EXAMPLES: [&str; 4] = ["kmeans", "tsp", "gradient_descent", "prodcons"];
/// Every failpoint stage a checkpoint of persistent threads passes, `mirror` (reached only by
/// a fresh run's first checkpoint) first.
const STAGES: [&str; 7] =
    ["mirror", "before-payload", "mid-payload", "before-commit", "after-commit", "gathered", "before-resume"];

/// The arguments of each example: small for debug builds, larger for release builds.
fn args(example: &str) -> Vec<&'static str> {
    let release = !cfg!(debug_assertions);
    let a: &[&str] = match (example, release) {
        ("kmeans", false) => &["--points", "20000", "--k", "8", "--dim", "16", "--iters", "24", "--seed", "5"],
        ("kmeans", true) => &["--points", "200000", "--k", "16", "--dim", "32", "--iters", "30", "--seed", "5"],
        ("tsp", false) => &["--cities", "18", "--seed", "3"],
        ("tsp", true) => &["--cities", "19", "--seed", "2"],
        ("gradient_descent", false) => &["--samples", "40000", "--features", "32", "--epochs", "30"],
        ("gradient_descent", true) => &["--samples", "300000", "--features", "64", "--epochs", "40"],
        ("prodcons", false) => &["--items", "30", "--work", "60000"],
        ("prodcons", true) => &["--items", "40", "--work", "250000"],
        _ => unreachable!("no example {example}"),
    };
    a.to_vec()
}

/// One example under one combination of settings: `kills` random kills and a failpoint kill at
/// each of `stages`.
struct Case {
    example: &'static str,
    policy: &'static str,
    tracker: &'static str,
    durability: &'static str,
    kills: u64,
    stages: Vec<&'static str>,
}

impl Case {
    fn name(&self) -> String {
        format!("{}/{}/{}/{}", self.example, self.policy, self.tracker, self.durability)
    }
}

/// The cases to run. By default two per example, one per policy, with the other tracker and the
/// other durability level in the second, and the four combinations of tracker and level each
/// once under each policy across the examples; the
/// seven failpoint stages are dealt out two per case, so each is used two or three times.
/// `soak` (`EXAMPLES_CRASH_SOAK`) runs all eight combinations per example, `soak` times the
/// kills, and every stage in each.
fn cases(soak: u64) -> Vec<Case> {
    let failpoints = crthreads::failpoint::ENABLED;
    let mut out = Vec::new();
    for (e, example) in EXAMPLES.into_iter().enumerate() {
        for policy in ["every-release", "interval"] {
            for tracker in ["uffd", "mprotect"] {
                for durability in ["process", "sync"] {
                    let (t, d, p) = (tracker == "uffd", durability == "sync", policy == "interval");
                    // By default: (uffd?, sync?) of the every-release case; the interval case
                    // takes the other tracker and the other level.
                    let er = (e % 2 == 0, e >= 2);
                    if soak == 0 && (t, d) != if p { (!er.0, !er.1) } else { er } {
                        continue;
                    }
                    let i = out.len();
                    let stages: Vec<&str> = match (failpoints, soak) {
                        (false, _) => Vec::new(),
                        (true, 0) => vec![STAGES[(2 * i) % 7], STAGES[(2 * i + 1) % 7]],
                        (true, _) => STAGES.to_vec(),
                    };
                    let kills = if p { 3 } else { 4 } * soak.max(1);
                    out.push(Case { example, policy, tracker, durability, kills, stages });
                }
            }
        }
    }
    out
}

/// The example `name` with `args`, checkpointing into `dir`, with nothing inherited from
/// crthreads' environment.
fn command(name: &str, args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(example_bin(name));
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("CRTHREADS_")) {
            c.env_remove(k);
        }
    }
    c.args(args).env("CRTHREADS_DIR", dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// `run` with this test's limit.
fn run(cmd: Command, kill: Option<&Kill>, per_unit: Duration) -> Outcome {
    progress::run(cmd, kill, per_unit, LIMIT)
}

/// The checkpoint a run says it restored.
fn restored(out: &Outcome) -> Option<u64> {
    out.stderr.lines().find_map(|l| l.split_once(": restored checkpoint ")?.1.trim().parse().ok())
}

/// What a checkpoint directory holds, for failure messages: its files, and the lock file's text.
fn listing(dir: &Path) -> String {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let lock = std::fs::read_to_string(dir.join("crthreads.lock")).unwrap_or_default();
    format!("{names:?}, lock file {lock:?}")
}

/// An uninterrupted run: the expected result, the number of units and the time per unit.
#[derive(Clone)]
struct Baseline {
    result: String,
    units: u64,
    per_unit: Duration,
}

/// The uninterrupted run of `example` (run once per test process, then remembered).
fn baseline(example: &'static str) -> Baseline {
    static DONE: Mutex<Vec<(&str, Baseline)>> = Mutex::new(Vec::new());
    if let Some((_, b)) = DONE.lock().unwrap().iter().find(|(e, _)| *e == example) {
        return b.clone();
    }
    let t = TempDir::new(&format!("ex-{example}-plain"));
    let ckpt = t.join("ckpt");
    let out = run(command(example, &args(example), &ckpt), None, Duration::ZERO);
    assert!(out.status.success(), "{example}: the uninterrupted run failed: {}\n{}", out.status, out.stderr);
    out.assert_shape(&format!("{example}: uninterrupted run"));
    let units = out.iters().len() as u64;
    assert_eq!(out.iters(), (0..units).collect::<Vec<_>>(), "{example}: uninterrupted run");
    assert!(units >= 20, "{example}: {units} units are too few to spread kills over");
    assert!(!ckpt.exists(), "{example}: the checkpoint directory survived a clean exit: {}", listing(&ckpt));
    let result = out.result().expect("a result line").to_string();
    let b = Baseline { result, units, per_unit: out.elapsed / units as u32 };
    println!("  {example}: {units} units, {:?} per unit, result {}", b.per_unit, b.result);
    DONE.lock().unwrap().push((example, b.clone()));
    b
}

fn seed() -> u64 {
    match std::env::var("EXAMPLES_CRASH_SEED") {
        Ok(v) => v.trim().parse().expect("EXAMPLES_CRASH_SEED must be an integer"),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    }
}

/// Why the uffd tracker cannot run here, if it cannot: a tiny run of an example with
/// `CRTHREADS_TRACKER=uffd` either completes or refuses the tracker by name.
fn uffd_unavailable() -> Option<String> {
    let t = TempDir::new("ex-uffd-probe");
    let out = command("tsp", &["--cities", "4"], &t.join("ckpt"))
        .env("CRTHREADS_TRACKER", "uffd")
        .output()
        .expect("run the tsp example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return None;
    }
    assert!(stderr.contains("userfaultfd"), "the uffd probe failed for another reason: {}\n{stderr}", out.status);
    Some(stderr.lines().find(|l| l.contains("userfaultfd")).unwrap_or_default().to_string())
}

/// One planned kill.
enum Planned {
    /// SIGKILL from the test, at a random moment after the run committed a checkpoint.
    Random,
    /// `CRTHREADS_FAILPOINT=<stage>`: the run kills itself at that stage of its first
    /// checkpoint (`mirror` at the first checkpoint of the fresh run, `mirror@1`).
    Failpoint(&'static str),
}

/// The kills of `case`, in order: `mirror` can only be the first run's; every other failpoint
/// kill needs a checkpoint to fall back to, so a random kill (which waits for one) comes
/// first; the failpoint kills come early, while many units are left, and the rest of the
/// random kills spread over the remaining units.
fn plan(case: &Case) -> Vec<Planned> {
    let mut p = Vec::new();
    if case.stages.contains(&"mirror") {
        p.push(Planned::Failpoint("mirror"));
    }
    if case.kills > 0 {
        p.push(Planned::Random);
    }
    p.extend(case.stages.iter().filter(|s| **s != "mirror").map(|s| Planned::Failpoint(s)));
    p.extend((1..case.kills).map(|_| Planned::Random));
    p
}

/// Runs one case: kills, resumes, checks.
fn killed_and_resumed(case: &Case, base: &Baseline, rng: &mut Rng) {
    let name = case.name();
    let args = args(case.example);
    let units = base.units;
    let t = TempDir::new(&format!("ex-{}-killed", case.example));
    let ckpt = t.join("ckpt");
    let plan = plan(case);
    // The newest checkpoint known to be committed: from the statistics, or restored.
    let mut newest: Option<u64> = None;
    let mut reached: Option<u64> = None; // the last unit a killed run printed
    let mut expect_restore: Option<u64> = None; // what the failpoint kill before implies
    let mut restores = 0;
    let mut randoms_left = case.kills;
    for (run_no, planned) in plan.iter().map(Some).chain([None]).enumerate() {
        let stats = t.join(&format!("stats-{run_no}.jsonl"));
        let kill = matches!(planned, Some(Planned::Random)).then(|| {
            // Aim past what was reached and leave room for the other kills and a few units
            // after the last one, so that every kill still finds the example running.
            let lo = reached.unwrap_or(0).max(1);
            let hi = units - 1 - (units / 8).max(2);
            let span = hi.saturating_sub(lo) / randoms_left;
            let fraction = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            Kill { target: lo + rng.below(span + 1), fraction, gate: Some(stats.clone()) }
        });
        let mut cmd = command(case.example, &args, &ckpt);
        cmd.env("CRTHREADS_POLICY", case.policy)
            .env("CRTHREADS_TRACKER", case.tracker)
            .env("CRTHREADS_DURABILITY", case.durability)
            .env("CRTHREADS_STATS", &stats);
        if case.policy == "interval" {
            cmd.env("CRTHREADS_INTERVAL", INTERVAL);
        }
        let stage = match planned {
            Some(Planned::Failpoint(s)) => Some(*s),
            _ => None,
        };
        match stage {
            Some("mirror") => {
                assert_eq!(run_no, 0, "{name}: the mirror stage is reached by a fresh run only");
                cmd.env("CRTHREADS_FAILPOINT", "mirror@1");
            }
            Some(s) => {
                assert!(newest.is_some() || expect_restore.is_some(), "{name}: {s} planned with no checkpoint");
                cmd.env("CRTHREADS_FAILPOINT", s);
            }
            None => {}
        }
        let out = run(cmd, kill.as_ref(), base.per_unit);
        let what = match stage {
            Some(s) => format!("{name}, run {run_no} (failpoint {s})"),
            None => format!("{name}, run {run_no}"),
        };
        out.assert_shape(&what);
        let iters = out.iters();
        let first = iters.first().copied();
        if run_no > 0 {
            match (expect_restore.take(), newest, restored(&out)) {
                (Some(e), _, r) => assert_eq!(
                    r,
                    Some(e),
                    "{what}: restored {r:?}, but the failpoint kill before implies checkpoint {e}\n{}",
                    out.stderr
                ),
                (None, Some(n), Some(r)) => assert!(
                    r == n || r == n + 1,
                    "{what}: restored checkpoint {r}, but the newest committed one is {n}\n{}",
                    out.stderr
                ),
                (None, Some(n), None) => {
                    panic!("{what}: checkpoint {n} was committed, yet the run did not restore it\n{}", out.stderr)
                }
                // A commit whose statistics line the kill cut off.
                (None, None, Some(r)) => {
                    assert_eq!(r, 1, "{what}: restored checkpoint {r} of none committed\n{}", out.stderr)
                }
                (None, None, None) => {
                    assert_eq!(first, Some(0), "{what}: a fresh run starts at unit 0\n{}", out.stderr)
                }
            }
            if restored(&out).is_some() {
                restores += 1;
                // Said at the first `iter` line, or at the end (a failpoint can end the run
                // before either).
                if first.is_some() || planned.is_none() {
                    assert!(out.stderr.contains("resuming at iteration"), "{what}: no resume note\n{}", out.stderr);
                }
                if let (Some(f), Some(r)) = (first, reached) {
                    assert!(f <= r + 1, "{what}: resumed at unit {f}, past unit {}, which no run reached", r + 1);
                }
                if case.policy == "every-release" {
                    assert_ne!(first, Some(0), "{what}: restored, yet started over at unit 0\n{}", out.stderr);
                }
            }
        }
        let had = restored(&out).max(newest); // committed: this run resumed from it
        newest = committed(&stats).last().copied().max(had);
        if let Some(last) = iters.last() {
            reached = Some(reached.map_or(*last, |r| r.max(*last)));
        }
        match (planned, &kill) {
            (Some(Planned::Random), Some(k)) => {
                assert!(
                    out.kill_sent,
                    "{what}: ended ({}) before the kill aimed at unit {} was sent",
                    out.status, k.target
                );
                randoms_left -= 1;
            }
            (Some(Planned::Failpoint(s)), _) => {
                // The stage against the commit of the checkpoint it killed: the run's first to
                // reach the stage, so the run committed none before it (unless, for
                // `mid-payload`, one too small to have a middle, or, for the stages after
                // gathering, attempts that were abandoned), and its statistics list every
                // commit before the kill.
                let last = || newest.expect("a checkpoint to fall back to");
                expect_restore = Some(match *s {
                    "mirror" => 1,
                    "after-commit" => last() + 1,
                    _ => last(),
                });
            }
            _ => {}
        }
        if planned.is_some() {
            assert!(killed(&out.status), "{what}: not killed by SIGKILL: {}\n{}", out.status, out.stderr);
            assert_eq!(out.result(), None, "{what}: the kill landed after the example finished");
            continue;
        }
        assert!(out.status.success(), "{what}: failed: {}\n{}", out.status, out.stderr);
        assert_eq!(out.result(), Some(base.result.as_str()), "{what}: the result after {run_no} kills differs");
        assert_eq!(iters.last().copied().or(reached), Some(units - 1), "{what}: the last unit was never printed");
        assert!(
            !ckpt.exists(),
            "{what}: the checkpoint directory survived a clean exit: {}\n{}",
            listing(&ckpt),
            out.stderr
        );
        // Every kill came after a checkpoint of its run, or of the run before: every run
        // after one resumed.
        assert_eq!(restores, run_no, "{what}: {run_no} kills, but {restores} runs resumed");
        let stages = if case.stages.is_empty() { String::new() } else { format!(" (failpoints {:?})", case.stages) };
        println!("  {name}: {run_no} kills{stages}, each resumed, {} checkpoints in all", newest.unwrap_or(0));
    }
}

fn crash_all() {
    let seed = seed();
    println!("kill schedule seed {seed} (replay with EXAMPLES_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let soak: u64 =
        std::env::var("EXAMPLES_CRASH_SOAK").map_or(0, |v| v.trim().parse().expect("EXAMPLES_CRASH_SOAK: n"));
    let only = std::env::var("EXAMPLES_CRASH_ONLY").unwrap_or_default();
    if !crthreads::failpoint::ENABLED {
        println!("  failpoint kills skipped: built without the `failpoints` feature");
    }
    let no_uffd = uffd_unavailable();
    if let Some(why) = &no_uffd {
        println!("  uffd cases skipped: this kernel refuses the userfaultfd tracker: {why}");
    }
    let mut done = Vec::new();
    for case in cases(soak) {
        if !case.name().contains(only.as_str()) || (case.tracker == "uffd" && no_uffd.is_some()) {
            continue;
        }
        let base = baseline(case.example);
        killed_and_resumed(&case, &base, &mut rng);
        done.push(case.name());
    }
    assert!(!done.is_empty(), "no case matches EXAMPLES_CRASH_ONLY={only}");
}

/// Arguments that do not fit are refused before crthreads starts, with the usage and status 2.
fn bad_arguments_are_refused() {
    let t = TempDir::new("ex-args");
    let ckpt = t.join("ckpt");
    for (example, args, needle) in [
        ("tsp", &["--cities", "3"][..], "`--cities` must be from 4 to 40, got 3"),
        ("tsp", &["--threads", "x"][..], "`--threads` expects an integer from 1 to 256, got `x`"),
        ("kmeans", &["--threads", "0"][..], "`--threads` must be from 1 to 256"),
        ("gradient_descent", &["--rate", "0"][..], "`--rate` must be from 1 to 100000, got 0"),
        ("gradient_descent", &["--epochs"][..], "`--epochs` needs a value"),
        ("prodcons", &["--producers", "1001"][..], "`--producers` must be from 1 to 1000, got 1001"),
        ("prodcons", &["--queue", "4"][..], "unknown argument `--queue`"),
    ] {
        let out = command(example, args, &ckpt).output().expect("run the example");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{example} {args:?}: {}\n{stderr}", out.status);
        assert!(stderr.contains(needle), "{example} {args:?}: stderr lacks `{needle}`:\n{stderr}");
        assert!(stderr.contains("usage:"), "{example} {args:?}: no usage:\n{stderr}");
        assert!(out.stdout.is_empty(), "{example} {args:?}: printed on stdout");
        assert!(!ckpt.exists(), "{example} {args:?}: created a checkpoint directory");
    }
}

/// A checkpoint written with some arguments is not resumed with others: the run stops with
/// status 2 before printing anything and keeps the checkpoint, which the original command
/// then resumes to the uninterrupted result.
fn other_arguments_do_not_resume_a_checkpoint() {
    let t = TempDir::new("ex-mismatch");
    let ckpt = t.join("ckpt");
    let args = args("kmeans");
    let Baseline { result: expected, units, per_unit } = baseline("kmeans");
    let out =
        run(command("kmeans", &args, &ckpt), Some(&Kill { target: units / 2, fraction: 0.5, gate: None }), per_unit);
    assert!(killed(&out.status), "not killed: {}\n{}", out.status, out.stderr);
    let mut other = args.clone();
    other.extend(["--seed", "6"]); // a later flag overrides the earlier one
    let out = run(command("kmeans", &other, &ckpt), None, per_unit);
    assert_eq!(out.status.code(), Some(2), "{}\n{}", out.status, out.stderr);
    assert!(out.stderr.contains("was taken with `"), "{}", out.stderr);
    assert!(out.lines.is_empty(), "printed on stdout: {:?}", out.lines);
    assert!(ckpt.exists(), "the checkpoint was not kept");
    let out = run(command("kmeans", &args, &ckpt), None, per_unit);
    assert!(out.status.success(), "{}\n{}", out.status, out.stderr);
    assert!(restored(&out).is_some(), "did not resume:\n{}", out.stderr);
    assert_eq!(out.result(), Some(expected.as_str()));
}

fn main() {
    run_tests(&[
        ("killed_and_resumed_examples_match_uninterrupted_runs", crash_all),
        ("bad_arguments_are_refused", bad_arguments_are_refused),
        ("other_arguments_do_not_resume_a_checkpoint", other_arguments_do_not_resume_a_checkpoint),
    ]);
}
