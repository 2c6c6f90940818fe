//! The crash demo behind `make demo`: K-means on persistent worker threads, killed with SIGKILL
//! again and again, still gets the same answer as a run that was never interrupted.
//!
//! ```text
//! demo <path to the kmeans example> [kmeans arguments...]
//! ```
//!
//! 1. Runs kmeans once, uninterrupted, in a fresh checkpoint directory and records its
//!    `result` line and its time per iteration.
//! 2. Runs it again in another fresh directory and kills it with SIGKILL 4 to 6 times at random
//!    moments, each time running the same command again, until it completes. A kill is aimed at
//!    a random iteration `j` and fires a random fraction of an iteration after `iter j` appears
//!    (or as soon as the next `iter` line does), so it lands while kmeans is computing or
//!    checkpointing, never after it finished.
//! 3. Checks that every kill landed mid-run (death by SIGKILL, no `result` line), that every
//!    resumed run started where the killed run was interrupted (not at `iter 0`), that each run
//!    printed consecutive iterations, that the checkpoint directory is gone after the clean
//!    exit, and that the final `result` equals the uninterrupted one.
//!
//! Every run uses the default checkpoint policy (`every-release`; a `CRTHREADS_POLICY` or
//! `CRTHREADS_INTERVAL` in the environment is dropped): kmeans's lock releases then commit the
//! printing of each `iter` line within the iteration, which is what makes the resume check of
//! step 3 exact.
//!
//! The kill schedule comes from a seed taken from the clock; it is printed, and
//! `KMEANS_DEMO_SEED=<seed>` replays the same choices (the moments still depend on timing).
//! Exit status: 0 if every check passed, 1 if one failed, 2 on a usage error.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEED_VAR: &str = "KMEANS_DEMO_SEED";
const MIN_KILLS: u64 = 4;
const MAX_KILLS: u64 = 6;
/// The fewest iterations among which `MAX_KILLS` kills can be spread (see `plan_kill`).
const MIN_ITERS: u64 = 20;

/// SplitMix64, for the kill schedule.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One line kmeans printed on stdout.
enum Line {
    Iter(u64),
    Result(String),
    Other(String),
}

fn parse_line(s: &str) -> Line {
    if let Some(n) = s.strip_prefix("iter ").and_then(|n| n.parse().ok()) {
        Line::Iter(n)
    } else if let Some(r) = s.strip_prefix("result ") {
        Line::Result(r.to_string())
    } else {
        Line::Other(s.to_string())
    }
}

/// A running kmeans whose stdout lines arrive, timestamped, on a channel.
struct Run {
    child: Child,
    lines: Receiver<(Instant, String)>,
    stderr: JoinHandle<Vec<String>>,
    started: Instant,
}

/// What a run printed and how it ended.
struct Outcome {
    status: ExitStatus,
    /// Stdout lines with their arrival time since the start.
    lines: Vec<(Duration, String)>,
    stderr: Vec<String>,
    /// When the kill was sent, since the start.
    killed_at: Option<Duration>,
}

impl Outcome {
    fn iters(&self) -> Vec<u64> {
        self.lines.iter().filter_map(|(_, l)| if let Line::Iter(i) = parse_line(l) { Some(i) } else { None }).collect()
    }
    fn result(&self) -> Option<String> {
        self.lines.iter().find_map(|(_, l)| if let Line::Result(r) = parse_line(l) { Some(r) } else { None })
    }
    fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }
    fn print_stderr(&self) {
        for l in &self.stderr {
            println!("      | {l}");
        }
    }
    /// Checks that the run printed consecutive `iter` lines, then (if it completed) exactly one
    /// `result` line, last, and nothing else.
    fn check_shape(&self, what: &str) -> Result<(), String> {
        let mut prev: Option<u64> = None;
        for (n, (_, l)) in self.lines.iter().enumerate() {
            match parse_line(l) {
                Line::Iter(i) => {
                    if let Some(p) = prev.filter(|&p| i != p + 1) {
                        return Err(format!("{what}: `iter {i}` follows `iter {p}`"));
                    }
                    prev = Some(i);
                }
                Line::Result(_) if n + 1 == self.lines.len() => {}
                Line::Result(_) => return Err(format!("{what}: the `result` line is not the last line")),
                Line::Other(o) => return Err(format!("{what}: unexpected line on stdout: `{o}`")),
            }
        }
        Ok(())
    }
}

/// Kills the child when dropped unless it was reaped: no kmeans outlives a failed demo.
struct Reaper<'a>(&'a mut Child, bool);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        if !self.1 {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(bin: &Path, args: &[String], dir: &Path) -> Result<Run, String> {
    let mut child = Command::new(bin)
        .args(args)
        .env("CRTHREADS_DIR", dir)
        .env_remove("CRTHREADS_KEEP")
        .env_remove("CRTHREADS_POLICY")
        .env_remove("CRTHREADS_INTERVAL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let started = Instant::now();
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().ok_or("kmeans has no stdout pipe")?;
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    let err = child.stderr.take().ok_or("kmeans has no stderr pipe")?;
    let stderr = std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).collect());
    Ok(Run { child, lines, stderr, started })
}

/// When to kill a run: once `iter target` (or a later one) appears, wait `fraction` of an
/// iteration, or until the next `iter` line if that comes first.
struct KillPlan {
    target: u64,
    fraction: f64,
}

/// Follows a run to its end, killing it according to `plan`. Fails if it outlives `limit`.
fn follow(mut run: Run, plan: Option<&KillPlan>, per_iter: Duration, limit: Duration) -> Result<Outcome, String> {
    let mut reaper = Reaper(&mut run.child, false);
    let mut lines = Vec::new();
    let mut kill_deadline: Option<Instant> = None;
    let mut killed_at = None;
    loop {
        let now = Instant::now();
        let give_up = run.started + limit;
        if now >= give_up {
            return Err(format!("kmeans ran longer than {:.0} s; killed it", limit.as_secs_f64()));
        }
        let wait_until = kill_deadline.filter(|_| killed_at.is_none()).map_or(give_up, |d| d.min(give_up));
        match run.lines.recv_timeout(wait_until.saturating_duration_since(now)) {
            Ok((t, l)) => {
                if let (Some(plan), None) = (plan, killed_at) {
                    if let Line::Iter(i) = parse_line(&l) {
                        if kill_deadline.is_some() {
                            // The aimed-at iteration ended before the deadline: kill now.
                            kill_deadline = Some(t);
                        } else if i >= plan.target {
                            kill_deadline = Some(t + per_iter.mul_f64(plan.fraction));
                        }
                    }
                }
                lines.push((t - run.started, l));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let (Some(d), None) = (kill_deadline, killed_at) {
            if Instant::now() >= d {
                reaper.0.kill().map_err(|e| format!("cannot kill kmeans: {e}"))?;
                killed_at = Some(run.started.elapsed());
            }
        }
    }
    let status = reaper.0.wait().map_err(|e| format!("cannot wait for kmeans: {e}"))?;
    reaper.1 = true;
    let stderr = run.stderr.join().unwrap_or_default();
    Ok(Outcome { status, lines, stderr, killed_at })
}

/// Picks the iteration the next kill aims at, among those a resumed run at `resume` has left,
/// leaving room for the other `kills_left - 1` kills and at least one iteration after it (so
/// that the kill still finds kmeans running). `None` if no iteration is left to aim at.
fn plan_kill(rng: &mut Rng, resume: u64, iters: u64, kills_left: u64) -> Option<KillPlan> {
    let lo = resume.max(1); // iteration 0 done and committed: a resume will not print `iter 0`
    let last = iters.checked_sub(2)?; // the highest target that leaves an iteration after it
    if lo > last {
        return None;
    }
    let span = (last - lo) / kills_left.max(1);
    let target = rng.range(lo, lo + span);
    Some(KillPlan { target, fraction: rng.unit() })
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn seed() -> Result<(u64, bool), String> {
    match std::env::var(SEED_VAR) {
        Ok(v) => v.trim().parse().map(|s| (s, true)).map_err(|_| format!("{SEED_VAR} must be an integer, got `{v}`")),
        Err(std::env::VarError::NotPresent) => {
            let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
            Ok((t ^ (u64::from(std::process::id()) << 32), false))
        }
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{SEED_VAR} must be an integer")),
    }
}

fn demo(bin: &Path, args: &[String], base: &Path) -> Result<String, String> {
    let (seed, given) = seed()?;
    let mut rng = Rng(seed);
    println!("kmeans crash demo");
    println!("  program:   {} {}", bin.display(), args.join(" "));
    println!(
        "  kill seed: {seed} ({}; replay the schedule with {SEED_VAR}={seed})",
        if given { "from the environment" } else { "from the clock" }
    );

    // 1. Uninterrupted.
    println!("\n[1/2] uninterrupted run");
    let dir = base.join("uninterrupted");
    let out = follow(spawn(bin, args, &dir)?, None, Duration::ZERO, Duration::from_secs(600))?;
    out.print_stderr();
    if !out.status.success() {
        return Err(format!("the uninterrupted run failed: {}", out.status));
    }
    out.check_shape("the uninterrupted run")?;
    let iters = out.iters();
    let expected = out.result().ok_or("the uninterrupted run printed no `result` line")?;
    if iters.first() != Some(&0) {
        return Err("the uninterrupted run did not start at `iter 0`".into());
    }
    let n = iters.len() as u64;
    let elapsed = out.lines.last().map_or(Duration::ZERO, |l| l.0);
    let first_iter_at = out.lines.first().map_or(Duration::ZERO, |l| l.0);
    let per_iter = (elapsed - first_iter_at) / n.max(1) as u32;
    println!("  {n} iterations in {} ({} per iteration)", secs(elapsed), secs(per_iter));
    println!("  result {expected}");
    if n < MIN_ITERS {
        return Err(format!("the demo needs at least {MIN_ITERS} iterations to spread its kills over, not {n}"));
    }
    if dir.exists() {
        return Err(format!("the checkpoint directory {} survived a clean exit", dir.display()));
    }
    let limit = (elapsed * 10).max(Duration::from_secs(120));

    // 2. Killed repeatedly, resumed each time.
    let planned = rng.range(MIN_KILLS, MAX_KILLS);
    println!("\n[2/2] the same run, killed with SIGKILL {planned} times and resumed each time");
    let dir = base.join("killed");
    let mut kills = 0;
    let mut resume = 0; // first iteration of the current run
    let mut prev_last: Option<u64> = None; // the last `iter` line of the killed run before this one
    let mut report = String::new();
    let started = Instant::now();
    for run_no in 1.. {
        let plan = if kills < planned { plan_kill(&mut rng, resume, n, planned - kills) } else { None };
        if kills < planned && plan.is_none() {
            return Err(format!("no iteration left to aim kill {} at; use more iterations", kills + 1));
        }
        let out = follow(spawn(bin, args, &dir)?, plan.as_ref(), per_iter, limit)?;
        let what = format!("run {run_no}");
        out.check_shape(&what)?;
        let its = out.iters();
        let first = its.first().copied();
        let first_line = first.map_or_else(|| "(no `iter` line)".to_string(), |i| format!("`iter {i}`"));
        match prev_last {
            None => {
                if first != Some(0) {
                    return Err(format!("{what} started fresh but its first line is {first_line}, not `iter 0`"));
                }
                println!("  run {run_no}: first line {first_line} (fresh start)");
            }
            Some(last) => {
                println!("  run {run_no}: first line {first_line} (resumed after the kill during `iter {last}`)");
                if first == Some(0) {
                    return Err(format!("{what} restarted from `iter 0` instead of resuming"));
                }
                // The interrupted iteration is redone; the one after it if the kill landed
                // between the checkpoint and the next `iter` line.
                let ok = match first {
                    Some(f) => f == last || f == last + 1,
                    None => last + 1 == n,
                };
                if !ok {
                    return Err(format!(
                        "{what} resumed at {first_line}, but the killed run was interrupted during `iter {last}`"
                    ));
                }
                let _ = writeln!(report, "    after a kill during `iter {last}`: resumed at {first_line}");
            }
        }
        out.print_stderr();
        match (&plan, out.killed_at) {
            (Some(_), Some(at)) => {
                let last = its.last().copied().ok_or_else(|| format!("{what} was killed before any `iter` line"))?;
                if !out.killed() {
                    return Err(format!("{what} did not die from the SIGKILL sent at {}: {}", secs(at), out.status));
                }
                if let Some(r) = out.result() {
                    return Err(format!("kill {} landed after kmeans finished (`result {r}`)", kills + 1));
                }
                kills += 1;
                println!("    killed by SIGKILL {} in, during `iter {last}` (kill {kills} of {planned})", secs(at));
                prev_last = Some(last);
                resume = last;
            }
            (Some(p), None) => {
                return Err(format!(
                    "{what} ended ({}) before kill {} (aimed at `iter {}`) could land",
                    out.status,
                    kills + 1,
                    p.target
                ));
            }
            (None, _) => {
                if !out.status.success() {
                    return Err(format!("{what} failed: {}", out.status));
                }
                let got = out.result().ok_or_else(|| format!("{what} printed no `result` line"))?;
                println!("    completed: result {got}");
                if dir.exists() {
                    return Err(format!("the checkpoint directory {} survived a clean exit", dir.display()));
                }
                println!("\nsummary");
                println!(
                    "  kills:         {kills} SIGKILLs, all mid-run, over {run_no} runs in {}",
                    secs(started.elapsed())
                );
                println!("  resumed runs:  {}, none restarted from `iter 0`", run_no - 1);
                print!("{report}");
                println!("  uninterrupted: result {expected}");
                println!("  with kills:    result {got}");
                if got != expected {
                    return Err(format!("the results differ: {got} after {kills} kills, {expected} uninterrupted"));
                }
                return Ok(format!("identical results after {kills} kills"));
            }
        }
    }
    unreachable!("the run loop only ends by returning")
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(bin) = args.next().map(PathBuf::from) else {
        eprintln!("usage: demo <path to the kmeans example> [kmeans arguments...]");
        return ExitCode::from(2);
    };
    let Ok(args) = args.map(|a| a.into_string()).collect::<Result<Vec<String>, _>>() else {
        eprintln!("demo: the kmeans arguments must be UTF-8");
        return ExitCode::from(2);
    };
    if !bin.is_file() {
        eprintln!(
            "demo: {} is not a file; build it first with `cargo build --release --example kmeans`",
            bin.display()
        );
        return ExitCode::from(2);
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let base = std::env::temp_dir().join(format!("kmeans-demo-{}-{nanos}", std::process::id()));
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&base) {
        eprintln!("demo: cannot create {}: {e}", base.display());
        return ExitCode::FAILURE;
    }
    match demo(&bin, &args, &base) {
        Ok(msg) => {
            let _ = std::fs::remove_dir_all(&base);
            println!("\nPASS: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("\nFAIL: {e}");
            println!("(checkpoint directories kept in {})", base.display());
            ExitCode::FAILURE
        }
    }
}
