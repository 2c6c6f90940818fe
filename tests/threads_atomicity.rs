//! Failure atomicity of critical sections in a threaded program killed with SIGKILL.
//!
//! The child (`crthreads::main`) runs six persistent threads that update pairs of counters
//! which must stay equal: lock, bump `a`, work (and allocate: every update is also pushed on a
//! persistent log), bump `b`, unlock. Some updates nest a second lock (two pairs, or a pair and
//! a ledger whose total must equal the pairs' nested shares); some go through an `RwLock`
//! writer, and readers check the invariant under the read lock. Every operation is derived from
//! (thread, iteration), so the parent knows the exact totals a complete run ends with.
//!
//! The parent kills the child over and over, at random moments and at every failpoint stage
//! (the checkpoint stages and the thread stages `gathered` and `before-resume`), and runs it
//! again until it completes. After each restore, before any thread resumes, an `after_restore`
//! hook reads the restored state and prints it: every pair must be whole (`a == b`, the log
//! sums to `a`, the ledger equals the nested shares, every lock is free), and under
//! `every-release` every value a thread printed after its unlock returned must still be there
//! (restored counters are at least the last printed values). The completed run must print the
//! exact expected totals. Each campaign runs with both trackers (uffd, mprotect), both
//! durability modes, and the `every-release` and `interval` policies.

mod common;
mod threads_common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{Rng, TempDir, child, role, run_tests};
use crthreads::sync::{Mutex, RwLock};
use threads_common::{Ended, Running, StatLine, field, num, stats};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// Worker threads of the child.
const THREADS: u64 = 6;
/// Pairs behind mutexes; the pair behind the rwlock is reported as pair `PAIRS`.
const PAIRS: usize = 4;
/// Operations per worker thread under `every-release` (each release waits for a checkpoint).
const ITERS_EVERY_RELEASE: u64 = 1500;
/// Operations per worker thread under `interval` (runs much faster: more work, so that the
/// kills land before the end).
const ITERS_INTERVAL: u64 = 12_000;

/// The child's operations per worker thread (`CRT_ITERS`).
fn iters() -> u64 {
    std::env::var("CRT_ITERS").ok().and_then(|v| v.parse().ok()).expect("CRT_ITERS")
}
/// Marks the shared state, so the hook can tell it found it.
const MAGIC: u64 = 0x7061_6972_735f_6f6b;
/// The longest a run may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// The workload: (thread, iteration) → operation. Shared by the child and the parent's model.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// One pair: `a += d`, work, `b += d`.
    Simple { p: usize, d: u64 },
    /// Pair `p` and the ledger, nested: the ledger is released first (depth 1, no safepoint).
    Ledger { p: usize, d: u64 },
    /// Pairs `p < q`, nested; the inner pair is finished and released first.
    Two { p: usize, q: usize, d: u64 },
    /// The rwlock's pair, under the write lock.
    Write { d: u64 },
    /// The rwlock's pair checked under a read lock.
    Read,
}

fn op(t: u64, i: u64) -> Op {
    let mut r = Rng(t.wrapping_mul(0x9E37_79B9) ^ i.wrapping_mul(0x85EB_CA6B) ^ 0x5EED);
    let d = 1 + r.below(7);
    let p = r.below(PAIRS as u64) as usize;
    match r.below(10) {
        0..=3 => Op::Simple { p, d },
        4..=5 => Op::Ledger { p, d },
        6 => {
            let q = (p + 1 + r.below(PAIRS as u64 - 1) as usize) % PAIRS;
            Op::Two { p: p.min(q), q: p.max(q), d }
        }
        7..=8 => Op::Write { d },
        _ => Op::Read,
    }
}

/// The totals a complete run ends with: each pair's `a` (the rwlock's last), each pair's
/// nested share, and the ledger.
fn expected(iters: u64) -> ([u64; PAIRS + 1], [u64; PAIRS], u64) {
    let (mut a, mut nested, mut ledger) = ([0; PAIRS + 1], [0; PAIRS], 0);
    for t in 0..THREADS {
        for i in 0..iters {
            match op(t, i) {
                Op::Simple { p, d } => a[p] += d,
                Op::Ledger { p, d } => {
                    a[p] += d;
                    nested[p] += d;
                    ledger += d;
                }
                Op::Two { p, q, d } => {
                    a[p] += d;
                    a[q] += d;
                }
                Op::Write { d } => a[PAIRS] += d,
                Op::Read => {}
            }
        }
    }
    (a, nested, ledger)
}

// ---------------------------------------------------------------------------------------------
// The child.

#[derive(Default)]
struct Pair {
    a: u64,
    b: u64,
    /// Updates that came through the ledger.
    nested: u64,
    /// Every update's amount: sums to `a`.
    log: Vec<u8>,
}

impl Pair {
    fn whole(&self) -> bool {
        self.a == self.b && self.log.iter().map(|&d| d as u64).sum::<u64>() == self.a
    }
    fn show(&self) -> String {
        let sum: u64 = self.log.iter().map(|&d| d as u64).sum();
        format!("{},{},{},{}", self.a, self.b, self.nested, sum)
    }
}

#[repr(C)]
struct Shared {
    magic: u64,
    nonce: u64,
    pairs: [Mutex<Pair>; PAIRS],
    ledger: Mutex<u64>,
    rw: RwLock<Pair>,
}

/// Work inside a critical section (nothing the compiler can drop).
fn work(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..1500 {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
    }
    x
}

/// Prints a line with one `write(2)`: std's stdout lock is never held in the program's own
/// code, where a thread could be preempted and parked with it (see `threads_common::say`).
fn say(line: String) {
    threads_common::say(&line);
}

fn run_op(s: &Shared, t: u64, i: u64) {
    match op(t, i) {
        Op::Simple { p, d } => {
            let v = {
                let mut g = s.pairs[p].lock().unwrap();
                assert!(g.a == g.b, "pair {p} torn on entry: {}", g.show());
                g.a += d;
                g.log.push(d as u8);
                work(d ^ i);
                g.b += d;
                g.a
            };
            say(format!("v {p} {v}"));
        }
        Op::Ledger { p, d } => {
            let v = {
                let mut g = s.pairs[p].lock().unwrap();
                assert!(g.a == g.b, "pair {p} torn on entry: {}", g.show());
                let mut l = s.ledger.lock().unwrap();
                g.a += d;
                *l += d;
                work(d);
                g.nested += d;
                drop(l);
                work(i);
                g.log.push(d as u8);
                g.b += d;
                g.a
            };
            say(format!("v {p} {v}"));
        }
        Op::Two { p, q, d } => {
            let (vp, vq) = {
                let mut gp = s.pairs[p].lock().unwrap();
                let mut gq = s.pairs[q].lock().unwrap();
                assert!(gp.a == gp.b && gq.a == gq.b, "torn on entry: {} {}", gp.show(), gq.show());
                gp.a += d;
                gq.a += d;
                work(i);
                gq.log.push(d as u8);
                gq.b += d;
                let vq = gq.a;
                drop(gq);
                work(d);
                gp.log.push(d as u8);
                gp.b += d;
                (gp.a, vq)
            };
            say(format!("v {p} {vp}"));
            say(format!("v {q} {vq}"));
        }
        Op::Write { d } => {
            let v = {
                let mut g = s.rw.write().unwrap();
                assert!(g.a == g.b, "rw pair torn on entry: {}", g.show());
                g.a += d;
                g.log.push(d as u8);
                work(i);
                g.b += d;
                g.a
            };
            say(format!("v {PAIRS} {v}"));
        }
        Op::Read => {
            let g = s.rw.read().unwrap();
            assert!(g.a == g.b, "rw pair torn under a read lock: {}", g.show());
        }
    }
}

/// The state the hook must find: its address and nonce are written to `CRT_STATE` by the
/// fresh run that made it.
fn state_file() -> std::path::PathBuf {
    std::env::var_os("CRT_STATE").expect("CRT_STATE").into()
}

/// After a restore, before any thread resumes: reports the restored state.
fn on_restore(seq: u64) {
    let text = std::fs::read_to_string(state_file()).unwrap_or_default();
    let mut w = text.split_whitespace().map(|x| u64::from_str_radix(x, 16).unwrap_or(0));
    let (addr, nonce) = (w.next().unwrap_or(0), w.next().unwrap_or(0));
    let (lo, len) = crthreads::region().unwrap();
    let inside = addr as usize >= lo && (addr as usize) + std::mem::size_of::<Shared>() <= lo + len;
    // SAFETY: a read of two words inside the mapped region (checked above); they are compared
    // before anything else is read through the address.
    let found =
        inside && unsafe { (addr as *const u64).read() == MAGIC && (addr as *const u64).add(1).read() == nonce };
    if !found {
        // The checkpoint predates the shared state (or its address file).
        say(format!("resume seq={seq} state=none"));
        return;
    }
    // SAFETY: the shared state of this checkpoint (magic and nonce match); no thread runs.
    let s = unsafe { &*(addr as *const Shared) };
    let mut line = format!("resume seq={seq} state=found");
    for (p, m) in s.pairs.iter().enumerate() {
        match m.try_lock() {
            Ok(g) => line += &format!(" p{p}={}", g.show()),
            Err(_) => line += &format!(" p{p}=held"),
        }
    }
    match s.ledger.try_lock() {
        Ok(l) => line += &format!(" ledger={}", *l),
        Err(_) => line += " ledger=held",
    }
    match s.rw.try_write() {
        Ok(g) => line += &format!(" p{PAIRS}={}", g.show()),
        Err(_) => line += &format!(" p{PAIRS}=held"),
    }
    say(line);
}

fn child_counters() {
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let s = Arc::new(Shared {
            magic: MAGIC,
            nonce,
            pairs: Default::default(),
            ledger: Mutex::new(0),
            rw: RwLock::new(Pair::default()),
        });
        let tmp = state_file().with_extension("tmp");
        std::fs::write(&tmp, format!("{:x} {:x}", Arc::as_ptr(&s) as usize, nonce)).unwrap();
        std::fs::rename(&tmp, state_file()).unwrap();
        say("run fresh".into());
        let iters = iters();
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = s.clone();
                crthreads::thread::spawn(move || {
                    for i in 0..iters {
                        run_op(&s, t, i);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let mut line = "final".to_string();
        for (p, m) in s.pairs.iter().enumerate() {
            let g = m.lock().unwrap();
            assert!(g.whole(), "pair {p} at the end: {}", g.show());
            line += &format!(" p{p}={}", g.show());
        }
        line += &format!(" ledger={}", *s.ledger.lock().unwrap());
        let g = s.rw.read().unwrap();
        assert!(g.whole(), "rw pair at the end: {}", g.show());
        line += &format!(" p{PAIRS}={}", g.show());
        drop(g);
        say(line);
    });
    if let Err(e) = r {
        eprintln!("crthreads: {e}");
        std::process::exit(2);
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// Parses `pN=a,b,nested,logsum` from a resume or final line.
fn pair(line: &str, p: usize) -> Option<[u64; 4]> {
    let v = field(line, &format!("p{p}"))?;
    let n: Vec<u64> = v.split(',').filter_map(|x| x.parse().ok()).collect();
    n.try_into().ok()
}

/// How one run of a campaign is ended.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// SIGKILL from the parent, this long after the run printed its first line.
    After(Duration),
    /// A failpoint stage, at its first occurrence in the run.
    First(&'static str),
    /// A failpoint stage, at the `n`th checkpoint after the one the run restores (counted in
    /// the run for the thread stages, see `crthreads::failpoint`).
    Ahead(&'static str, u64),
    /// No kill: the run must complete.
    None,
}

struct Campaign {
    tracker: &'static str,
    durability: &'static str,
    /// `None`: every-release; `Some(s)`: interval of `s` seconds.
    interval: Option<&'static str>,
    seed: u64,
}

impl Campaign {
    fn name(&self) -> String {
        format!(
            "[{} {} {}]",
            self.tracker,
            self.durability,
            self.interval.map_or("every-release".to_string(), |s| format!("interval {s}s"))
        )
    }
}

/// The kills of a campaign: every failpoint stage (when compiled in) between random kills.
fn plan(seed: u64) -> Vec<Kill> {
    let mut r = Rng(seed);
    let mut rand = || Kill::After(Duration::from_millis(5 + r.below(120)));
    let mut v = Vec::new();
    if crthreads::failpoint::ENABLED {
        v.extend([
            Kill::First("mirror"),
            Kill::First("gathered"),
            rand(),
            Kill::Ahead("before-payload", 1),
            Kill::Ahead("mid-payload", 2),
            rand(),
            Kill::Ahead("before-commit", 3),
            Kill::Ahead("after-commit", 1),
            rand(),
            Kill::First("before-resume"),
            Kill::Ahead("gathered", 3),
            rand(),
            Kill::Ahead("before-resume", 4),
            Kill::First("mid-payload"),
            Kill::First("after-commit"),
        ]);
    }
    v.extend([rand(), rand(), rand(), rand()]);
    v
}

fn campaign(c: Campaign) {
    let name = c.name();
    let t = TempDir::new("atomic");
    let stats_path = t.join("stats");
    let iters = if c.interval.is_some() { ITERS_INTERVAL } else { ITERS_EVERY_RELEASE };
    let (want_a, want_nested, want_ledger) = expected(iters);
    // The highest value printed for each pair after an unlock returned, in any run so far.
    let mut printed = [0u64; PAIRS + 1];
    let mut last_seq = 0u64;
    let (mut kills, mut resumes) = (0, 0);
    let mut log = Vec::new();
    let kills_planned = plan(c.seed);
    for (run, kill) in kills_planned.iter().copied().chain(std::iter::once(Kill::None)).enumerate() {
        let mut cmd: Command = child("counters");
        cmd.env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_TRACKER", c.tracker)
            .env("CRTHREADS_DURABILITY", c.durability)
            .env("CRTHREADS_STATS", &stats_path)
            .env("CRT_STATE", t.join("state"))
            .env("CRT_ITERS", iters.to_string());
        match c.interval {
            Some(s) => cmd.env("CRTHREADS_POLICY", "interval").env("CRTHREADS_INTERVAL", s),
            None => cmd.env("CRTHREADS_POLICY", "every-release"),
        };
        let failpoint = match kill {
            Kill::First(stage) => stage.to_string(),
            Kill::Ahead(stage, n) if crthreads::failpoint::THREAD_STAGES.contains(&stage) => format!("{stage}@{n}"),
            // The run may restore one checkpoint past the last reported one (committed, then
            // killed before its statistics line was written).
            Kill::Ahead(stage, n) => format!("{stage}@{}", last_seq + 1 + n),
            Kill::After(_) | Kill::None => String::new(),
        };
        if !failpoint.is_empty() {
            cmd.env("CRTHREADS_FAILPOINT", &failpoint);
        }
        let mut r = Running::start(cmd);
        if let Kill::After(d) = kill {
            if r.wait_line(LIMIT, |l| l.starts_with("run ") || l.starts_with("resume ")).is_some() {
                std::thread::sleep(d);
                r.kill();
            }
        }
        let e = r.finish(LIMIT);
        log.push(format!(
            "run {run} {kill:?} {failpoint}: {:?}, {} lines, {}",
            e.status,
            e.out.len(),
            e.out.first().map_or("", |l| &l[..l.len().min(24)])
        ));
        let ctx = || format!("{name} run {run} ({kill:?})\n{}\n{}", log.join("\n"), e.show());
        assert!(!e.hung, "hung: {}", ctx());
        check_run(&c, &e, &mut printed, &mut last_seq, &ctx);
        if e.out.iter().any(|l| l.starts_with("resume ")) {
            resumes += 1;
        }
        if let Some(s) = stats(&stats_path).last() {
            last_seq = last_seq.max(s.get("seq"));
        }
        if e.killed() {
            kills += 1;
            continue;
        }
        assert!(e.status.success(), "the run failed: {}", ctx());
        let fin = e.out.iter().find(|l| l.starts_with("final")).unwrap_or_else(|| panic!("no final line: {}", ctx()));
        for p in 0..=PAIRS {
            let v = pair(fin, p).unwrap_or_else(|| panic!("pair {p} missing: {}", ctx()));
            assert_eq!(v[0], want_a[p], "pair {p}: final total: {}", ctx());
            assert_eq!(v[1], want_a[p], "pair {p}: final b: {}", ctx());
            assert_eq!(v[3], want_a[p], "pair {p}: final log: {}", ctx());
            if p < PAIRS {
                assert_eq!(v[2], want_nested[p], "pair {p}: nested share: {}", ctx());
            }
        }
        assert_eq!(num(fin, "ledger"), want_ledger, "ledger: {}", ctx());
        break;
    }
    let all = stats(&stats_path);
    let abandoned = all.iter().map(|s: &StatLine| s.get("abandoned")).max().unwrap_or(0);
    println!(
        "  {name}: {kills} kills, {resumes} resumes, {} checkpoints committed, {abandoned} abandoned attempts",
        all.len()
    );
    assert!(kills >= kills_planned.len() * 3 / 4, "{name}: too few runs were killed ({kills}): {}", log.join("\n"));
    assert!(resumes >= kills / 2, "{name}: too few runs resumed ({resumes} of {kills}): {}", log.join("\n"));
}

/// Checks a run's resume line (if it restored) against the invariants and against what earlier
/// runs printed, then records what this run printed.
fn check_run(c: &Campaign, e: &Ended, printed: &mut [u64; PAIRS + 1], last_seq: &mut u64, ctx: &dyn Fn() -> String) {
    if let Some(res) = e.out.iter().find(|l| l.starts_with("resume ")) {
        let seq = num(res, "seq");
        assert!(seq >= 1, "{}", ctx());
        *last_seq = (*last_seq).max(seq);
        if field(res, "state") == Some("found") {
            let mut nested = 0;
            for (p, &last) in printed.iter().enumerate() {
                let v =
                    pair(res, p).unwrap_or_else(|| panic!("pair {p} not free or missing after a restore: {}", ctx()));
                assert!(v[0] == v[1], "pair {p} torn after a restore (a != b): {res}\n{}", ctx());
                assert!(v[3] == v[0], "pair {p}: its log disagrees after a restore: {res}\n{}", ctx());
                if p < PAIRS {
                    nested += v[2];
                }
                if c.interval.is_none() {
                    assert!(
                        v[0] >= last,
                        "pair {p}: {} was printed after an unlock returned, the restore brought back {} \
                         (every-release lost a released critical section): {res}\n{}",
                        last,
                        v[0],
                        ctx()
                    );
                }
            }
            assert_eq!(field(res, "ledger").and_then(|l| l.parse().ok()), Some(nested), "ledger: {res}\n{}", ctx());
        } else {
            assert!(printed.iter().all(|&v| v == 0), "the restored checkpoint lost the shared state: {}", ctx());
        }
    }
    for l in &e.out {
        if let Some(rest) = l.strip_prefix("v ") {
            let mut w = rest.split_whitespace().map(|x| x.parse::<u64>().unwrap());
            let (p, v) = (w.next().unwrap() as usize, w.next().unwrap());
            printed[p] = printed[p].max(v);
        }
    }
}

fn campaigns(trackers: &[&'static str], interval: Option<&'static str>, seed: u64) {
    for (i, &tracker) in trackers.iter().enumerate() {
        for (j, durability) in ["process", "sync"].into_iter().enumerate() {
            campaign(Campaign { tracker, durability, interval, seed: seed + (i * 2 + j) as u64 });
        }
    }
}

fn every_release_critical_sections_survive_kills() {
    campaigns(&["uffd", "mprotect"], None, 100);
}

fn interval_critical_sections_survive_kills() {
    campaigns(&["uffd", "mprotect"], Some("0.02"), 200);
}

fn main() {
    match role().as_deref() {
        Some("counters") => return child_counters(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("every_release_critical_sections_survive_kills", every_release_critical_sections_survive_kills),
        ("interval_critical_sections_survive_kills", interval_critical_sections_survive_kills),
    ]);
}
