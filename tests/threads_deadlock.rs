//! Checkpoints never deadlock a threaded program: attempts that cannot gather every thread
//! are abandoned, the program completes with the right result, and the checkpoints that did
//! commit in the middle of the tangle resume it correctly after a SIGKILL.
//!
//! The child tangles its threads on purpose, while checkpoint requests flow from every side:
//! under `every-release` (or a short `interval`) every release of a last lock asks for one,
//! threads call `crthreads::checkpoint()` themselves, and the parent sends the external request
//! signal (`SIGRTMIN+9`, as `kill -s RTMIN+9`) every few milliseconds.
//!
//! In each round (all tangles in step: they meet at a barrier, at lock depth 0, between rounds),
//! a *holder* thread takes a lock and then blocks on something that only its *releaser* can end,
//! and the releaser ends it only after its own `checkpoint()` call returned. The holder is at
//! depth 1 for the whole attempt, never at a safepoint, so the call can only come back as
//! `Error::Abandoned`: every one of them must (any other outcome fails the child, and so would a
//! hang: the parent kills it past a generous limit). What the holders block on:
//!
//! | tangle   | the holder holds   | and blocks in                           | until the releaser      |
//! |----------|--------------------|-----------------------------------------|-------------------------|
//! | condvar  | a mutex            | `Condvar::wait_while`                   | parks at a release (every-release), then notifies |
//! | sem      | a mutex            | `Semaphore::acquire`                    | releases a permit       |
//! | barrier  | an rwlock (write)  | `Barrier::wait`                         | arrives                 |
//! | join     | a mutex            | `JoinHandle::join` of the releaser      | returns                 |
//! | blocking | an rwlock (read)   | `thread::blocking(waitpid)` of a child it forked | kills that child |
//!
//! Meanwhile workers update pairs of counters under nested mutexes and ask for checkpoints, and a
//! thread forks in a loop (each child `_exit`s at once) and waits for its children, half the
//! time inside `crthreads::thread::blocking`.
//!
//! Each configuration (both trackers, `every-release` and `interval`) runs the child once
//! uninterrupted (every counter exact, every releaser's checkpoint abandoned, the abandoned
//! attempts reported in the statistics, a final checkpoint commits once the tangle is over), and
//! once killed with SIGKILL at random moments and resumed until it completes (every counter
//! exact). `CRT_SOAK=n` runs n times the rounds and kills.

mod common;
mod threads_common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Rng, TempDir, child, role, run_tests};
use crthreads::sync::{Barrier, Condvar, Mutex, RwLock, Semaphore};
use threads_common::{Ended, Running, field, num, say, soak, stats};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// Counter workers and their iterations.
const WORKERS: u64 = 3;
const ITERS: u64 = 300;
/// Pairs of counters.
const PAIRS: usize = 3;
/// Forks the forking thread makes at least (it goes on until the rest is done).
const MIN_FORKS: u64 = 20;
/// The tangles whose releaser asks for a checkpoint that must be abandoned.
const FORCED: [&str; 4] = ["sem", "barrier", "join", "blocking"];
/// Threads that meet at the barrier between rounds: both sides of the condvar, sem, barrier and
/// blocking tangles, and the join tangle's holder (its releaser lives for one round).
const IN_STEP: usize = 9;
/// The longest one run may take.
const LIMIT: Duration = Duration::from_secs(120);

/// Rounds of each tangle (each costs at least one abandoned attempt: up to half a second).
fn rounds() -> u64 {
    std::env::var("CRT_ROUNDS").ok().and_then(|v| v.parse().ok()).expect("CRT_ROUNDS")
}

/// A round number handed from a holder to its releaser (with the pid of a child process, for the
/// blocking tangle).
#[derive(Default)]
struct Turn {
    at: Mutex<(u64, i32)>,
    cv: Condvar,
}

impl Turn {
    fn give(&self, round: u64, pid: i32) {
        *self.at.lock().unwrap() = (round, pid);
        self.cv.notify_all();
    }

    /// Waits (at depth 0: a safepoint) until round `round` was given; returns its pid.
    fn take(&self, round: u64) -> i32 {
        let g = self.at.lock().unwrap();
        self.cv.wait_while(g, |t| t.0 < round).unwrap().1
    }
}

/// The condvar tangle's state.
#[derive(Default)]
struct CvTurn {
    /// The round the holder waits in (set under the lock before it waits).
    waiting: u64,
    /// The round the releaser has posted.
    posted: u64,
}

struct Shared {
    pairs: [Mutex<(u64, u64)>; PAIRS],
    /// Each tangle's count of completed rounds, changed under the lock its holder holds.
    cv_outer: Mutex<u64>,
    sem_outer: Mutex<u64>,
    barrier_outer: RwLock<u64>,
    join_outer: Mutex<u64>,
    blocking_outer: RwLock<u64>,
    /// Rounds the blocking tangle's holder completed (it holds only a read lock).
    blocking_done: AtomicU64,
    cv_turn: Mutex<CvTurn>,
    cv: Condvar,
    sem_turn: Turn,
    sem: Semaphore,
    barrier_turn: Turn,
    pair_barrier: Barrier,
    blocking_turn: Turn,
    /// Where the tangles meet between rounds.
    step: Barrier,
    /// Checkpoints asked for by each releaser of [`FORCED`] that came back abandoned.
    forced: [AtomicU64; 4],
    /// The workers' checkpoints: committed, abandoned.
    committed: AtomicU64,
    abandoned: AtomicU64,
    forks: AtomicU64,
    stop_forking: AtomicBool,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            pairs: Default::default(),
            cv_outer: Mutex::new(0),
            sem_outer: Mutex::new(0),
            barrier_outer: RwLock::new(0),
            join_outer: Mutex::new(0),
            blocking_outer: RwLock::new(0),
            blocking_done: AtomicU64::new(0),
            cv_turn: Mutex::new(CvTurn::default()),
            cv: Condvar::new(),
            sem_turn: Turn::default(),
            sem: Semaphore::new(0),
            barrier_turn: Turn::default(),
            pair_barrier: Barrier::new(2),
            blocking_turn: Turn::default(),
            step: Barrier::new(IN_STEP),
            forced: Default::default(),
            committed: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            forks: AtomicU64::new(0),
            stop_forking: AtomicBool::new(false),
        }
    }
}

/// Asks for a checkpoint; true if it committed, false if it was abandoned. Any other error fails
/// the child.
fn explicit() -> bool {
    match crthreads::checkpoint() {
        Ok(_) => true,
        Err(crthreads::Error::Abandoned { stuck, .. }) => {
            assert!(stuck >= 1, "an abandoned attempt names at least one stuck thread");
            false
        }
        Err(e) => panic!("checkpoint failed: {e}"),
    }
}

/// A releaser's checkpoint, which its holder makes impossible: counted, and must be abandoned.
fn forced(s: &Shared, tangle: usize) {
    assert!(!explicit(), "{}: a checkpoint committed while a holder held a lock", FORCED[tangle]);
    s.forced[tangle].fetch_add(1, Ordering::SeqCst);
}

fn cv_holder(s: &Shared, r: u64) {
    let mut outer = s.cv_outer.lock().unwrap();
    let mut t = s.cv_turn.lock().unwrap();
    t.waiting = r;
    s.cv.notify_all();
    // Depth 1 while waiting: `cv_outer` stays held.
    t = s.cv.wait_while(t, |t| t.posted < r).unwrap();
    drop(t);
    *outer += 1;
}

fn cv_releaser(s: &Shared, r: u64) {
    let t = s.cv_turn.lock().unwrap();
    // A wait at depth 0: a safepoint.
    let t = s.cv.wait_while(t, |t| t.waiting < r).unwrap();
    // Under every-release this release parks, while the holder waits at depth 1 for the post
    // below: the attempt must be given up for the program to go on.
    drop(t);
    s.cv_turn.lock().unwrap().posted = r;
    s.cv.notify_all();
}

fn sem_holder(s: &Shared, r: u64) {
    let mut outer = s.sem_outer.lock().unwrap();
    s.sem_turn.give(r, 0);
    s.sem.acquire();
    *outer += 1;
}

fn sem_releaser(s: &Shared, r: u64) {
    s.sem_turn.take(r);
    forced(s, 0);
    s.sem.release();
}

fn barrier_holder(s: &Shared, r: u64) {
    let mut outer = s.barrier_outer.write().unwrap();
    s.barrier_turn.give(r, 0);
    s.pair_barrier.wait();
    *outer += 1;
}

fn barrier_releaser(s: &Shared, r: u64) {
    s.barrier_turn.take(r);
    forced(s, 1);
    s.pair_barrier.wait();
}

fn join_holder(s: &Arc<Shared>, _r: u64) {
    let mut outer = s.join_outer.lock().unwrap();
    let s2 = s.clone();
    crthreads::thread::spawn(move || forced(&s2, 2)).join().unwrap();
    *outer += 1;
}

fn blocking_holder(s: &Shared, r: u64) {
    let outer = s.blocking_outer.read().unwrap();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    // SAFETY: the child calls only async-signal-safe functions and never returns.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe calls only. The child dies with the OS thread that forked
        // it (a SIGKILL of the whole process included), so none outlives the test.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != me {
                libc::_exit(0);
            }
            loop {
                libc::pause();
            }
        }
    }
    assert!(pid > 0, "fork failed: {}", std::io::Error::last_os_error());
    s.blocking_turn.give(r, pid);
    let mut status = 0;
    // At depth 1 the call runs as it is, blocking this thread outside any safepoint.
    // SAFETY: waiting for our own child into a local.
    let w = crthreads::thread::blocking(|| unsafe { libc::waitpid(pid, &mut status, 0) });
    assert_eq!(w, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL, "the child: status {status:#x}");
    drop(outer);
    s.blocking_done.fetch_add(1, Ordering::SeqCst);
}

fn blocking_releaser(s: &Shared, r: u64) {
    let pid = s.blocking_turn.take(r);
    forced(s, 3);
    // SAFETY: kills the child the holder forked (and is waiting for, so it is not reaped yet).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill: {}", std::io::Error::last_os_error());
}

fn worker(s: &Shared, w: u64) {
    for i in 0..ITERS {
        let p = ((w + i) % PAIRS as u64) as usize;
        let q = (p + 1 + (i % 2) as usize) % PAIRS;
        let (lo, hi) = (p.min(q), p.max(q));
        {
            let mut a = s.pairs[lo].lock().unwrap();
            let mut b = s.pairs[hi].lock().unwrap();
            a.0 += 1;
            b.0 += 1;
            std::hint::black_box(&mut *a);
            a.1 += 1;
            b.1 += 1;
        }
        if i % 50 == 25 {
            let c = if explicit() { &s.committed } else { &s.abandoned };
            c.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn forker(s: &Shared) {
    let mut n = s.forks.load(Ordering::SeqCst);
    while n < MIN_FORKS || !s.stop_forking.load(Ordering::SeqCst) {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        // SAFETY: the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leaving the child at once, without exit handlers.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork failed: {}", std::io::Error::last_os_error());
        let mut status = 0;
        let mut wait = || {
            // SAFETY: waiting for our own child into a local.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            (r, std::io::Error::last_os_error().raw_os_error())
        };
        let (r, errno) = if n % 2 == 0 { crthreads::thread::blocking(wait) } else { wait() };
        // SAFETY: getpid has no preconditions.
        let resumed = unsafe { libc::getpid() } != me;
        // Resumed in a new process from a checkpoint taken after the fork: the child was the
        // old process's, this one has none to wait for.
        let gone = r == -1 && errno == Some(libc::ECHILD) && resumed;
        assert!(r == pid || gone, "waitpid: {r}, errno {errno:?}");
        n += 1;
        s.forks.store(n, Ordering::SeqCst);
    }
}

/// Runs `each` for every round, meeting the other tangles at the step barrier before each.
fn in_step(s: &Arc<Shared>, each: fn(&Arc<Shared>, u64)) {
    for r in 1..=rounds() {
        if s.step.wait().is_leader() {
            say(&format!("round {r}"));
        }
        each(s, r);
    }
}

fn on_restore(seq: u64) {
    say(&format!("resumed seq={seq}"));
}

fn child_tangle() {
    // A failed assertion on any thread ends the child at once (the others would wait for it
    // forever), and the parent reports it.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |p| {
        report(p);
        std::process::abort();
    }));
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        let s = Arc::new(Shared::new());
        let spawn = |f: fn(&Arc<Shared>)| {
            let s = s.clone();
            crthreads::thread::spawn(move || f(&s))
        };
        let fork = spawn(|s| forker(s));
        let tangles = [
            spawn(|s| in_step(s, |s, r| cv_holder(s, r))),
            spawn(|s| in_step(s, |s, r| cv_releaser(s, r))),
            spawn(|s| in_step(s, |s, r| sem_holder(s, r))),
            spawn(|s| in_step(s, |s, r| sem_releaser(s, r))),
            spawn(|s| in_step(s, |s, r| barrier_holder(s, r))),
            spawn(|s| in_step(s, |s, r| barrier_releaser(s, r))),
            spawn(|s| in_step(s, join_holder)),
            spawn(|s| in_step(s, |s, r| blocking_holder(s, r))),
            spawn(|s| in_step(s, |s, r| blocking_releaser(s, r))),
        ];
        assert_eq!(tangles.len(), IN_STEP);
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let s = s.clone();
                crthreads::thread::spawn(move || worker(&s, w))
            })
            .collect();
        for h in tangles.into_iter().chain(workers) {
            h.join().unwrap();
        }
        s.stop_forking.store(true, Ordering::SeqCst);
        fork.join().unwrap();
        // Nothing is tangled any more: this one commits.
        let last = crthreads::checkpoint();
        assert!(last.is_ok(), "the checkpoint after the tangle: {last:?}");
        let mut line = String::from("done");
        for (p, m) in s.pairs.iter().enumerate() {
            let g = m.lock().unwrap();
            line += &format!(" p{p}={},{}", g.0, g.1);
        }
        line += &format!(
            " cv={} sem={} barrier={} join={} blocking={},{}",
            *s.cv_outer.lock().unwrap(),
            *s.sem_outer.lock().unwrap(),
            *s.barrier_outer.read().unwrap(),
            *s.join_outer.lock().unwrap(),
            *s.blocking_outer.read().unwrap(),
            s.blocking_done.load(Ordering::SeqCst)
        );
        line += &format!(" posted={}", s.cv_turn.lock().unwrap().posted);
        for (t, n) in FORCED.iter().zip(&s.forced) {
            line += &format!(" forced_{t}={}", n.load(Ordering::SeqCst));
        }
        line += &format!(
            " committed={} abandoned={} forks={}",
            s.committed.load(Ordering::SeqCst),
            s.abandoned.load(Ordering::SeqCst),
            s.forks.load(Ordering::SeqCst)
        );
        say(&line);
    });
    if let Err(e) = r {
        eprintln!("crthreads: {e}");
        std::process::exit(2);
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// What each pair ends with.
fn expected_pairs() -> [u64; PAIRS] {
    let mut v = [0; PAIRS];
    for w in 0..WORKERS {
        for i in 0..ITERS {
            let p = ((w + i) % PAIRS as u64) as usize;
            let q = (p + 1 + (i % 2) as usize) % PAIRS;
            v[p] += 1;
            v[q] += 1;
        }
    }
    v
}

/// Whether process `pid` has a handler installed for `sig` (its `SigCgt` mask in /proc).
fn handles(pid: i32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask =
        status.lines().find_map(|l| l.strip_prefix("SigCgt:")).and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
    mask.is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// One configuration.
struct Config {
    tracker: &'static str,
    /// `None`: every-release.
    interval: Option<&'static str>,
    seed: u64,
}

impl Config {
    fn name(&self) -> String {
        format!("[{} {}]", self.tracker, self.interval.map_or("every-release".into(), |i| format!("interval {i}s")))
    }

    fn command(&self, t: &TempDir) -> Command {
        let mut cmd: Command = child("tangle");
        cmd.env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_TRACKER", self.tracker)
            .env("CRTHREADS_STATS", t.join("stats"))
            .env("CRT_ROUNDS", (3 * soak()).to_string());
        match self.interval {
            Some(i) => cmd.env("CRTHREADS_POLICY", "interval").env("CRTHREADS_INTERVAL", i),
            None => cmd.env("CRTHREADS_POLICY", "every-release"),
        };
        cmd
    }
}

/// Runs the child until it ends, sending it checkpoint requests all along; with `kill`, kills it
/// with SIGKILL that long after it printed its first `round` line (its threads are in the
/// tangle then). Returns how it ended and how many requests it was sent.
fn run(cmd: Command, kill: Option<Duration>, name: &str) -> (Ended, u64) {
    let mut r = Running::start(cmd);
    let sig = libc::SIGRTMIN() + 9;
    // The handler is installed once crthreads runs the program's threads: signal only after that
    // (the signal's default action ends the process).
    let start = Instant::now();
    while !handles(r.pid(), sig) && r.child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < LIMIT, "{name}: the child never installed its handler");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut signals = 0;
    let mut tangled: Option<Instant> = None;
    while start.elapsed() < LIMIT && r.child.try_wait().unwrap().is_none() {
        if tangled.is_none() && r.seen_line(|l| l.starts_with("round ")).is_some() {
            tangled = Some(Instant::now());
        }
        if let (Some(d), Some(t)) = (kill, tangled) {
            if t.elapsed() >= d {
                r.kill();
                break;
            }
        }
        // SAFETY: signals our own child, which handles it.
        unsafe { libc::kill(r.pid(), sig) };
        signals += 1;
        // Paces the requests; not synchronisation.
        std::thread::sleep(Duration::from_millis(15));
    }
    (r.finish(Duration::from_secs(1)), signals)
}

/// Checks the final line of a completed run: every counter exact, every forced checkpoint
/// abandoned.
fn check_done(e: &Ended, name: &str) -> String {
    assert!(!e.hung && e.status.success(), "{name}: the program did not complete in {LIMIT:?}: {}", e.show());
    let done = e.out.iter().find(|l| l.starts_with("done")).unwrap_or_else(|| panic!("{name}: {}", e.show())).clone();
    for (p, want) in expected_pairs().into_iter().enumerate() {
        assert_eq!(field(&done, &format!("p{p}")), Some(format!("{want},{want}").as_str()), "{name}: {done}");
    }
    let rounds = 3 * soak();
    for key in ["cv", "sem", "barrier", "join", "posted"] {
        assert_eq!(num(&done, key), rounds, "{name}: {key}: {done}");
    }
    assert_eq!(field(&done, "blocking"), Some(format!("0,{rounds}").as_str()), "{name}: {done}");
    for t in FORCED {
        assert_eq!(
            num(&done, &format!("forced_{t}")),
            rounds,
            "{name}: every checkpoint the {t} tangle's releaser asked for was abandoned: {done}"
        );
    }
    assert!(num(&done, "forks") >= MIN_FORKS, "{name}: {done}");
    done
}

/// An uninterrupted run: completes, and reports its abandoned attempts.
fn clean(c: &Config) {
    let name = c.name();
    let t = TempDir::new("tangle");
    let start = Instant::now();
    let (e, signals) = run(c.command(&t), None, &name);
    let done = check_done(&e, &name);
    let st = stats(&t.join("stats"));
    // The last checkpoint (after the tangle) reports every attempt abandoned before it: at least
    // one a round, since the releasers' checkpoints of each round were abandoned.
    let reported = st.last().map_or(0, |s| s.get("abandoned"));
    println!(
        "  {name} uninterrupted: {:.1}s, {} checkpoints, {reported} attempts abandoned; workers' checkpoints: {} \
         committed, {} abandoned; {signals} external requests, {} forks",
        start.elapsed().as_secs_f64(),
        st.len(),
        num(&done, "committed"),
        num(&done, "abandoned"),
        num(&done, "forks")
    );
    assert!(reported >= 3 * soak(), "{name}: the statistics report the abandoned attempts: {done}");
}

/// Runs killed with SIGKILL at random moments, then one that completes.
fn killed(c: &Config) {
    let name = c.name();
    let t = TempDir::new("tangle-kill");
    let mut rng = Rng(c.seed);
    let planned = 3 * soak() as usize;
    let (mut kills, mut resumes) = (0, 0);
    let mut log = Vec::new();
    for run_no in 0.. {
        let kill_after = (run_no < planned).then(|| Duration::from_millis(rng.below(300)));
        let (e, _) = run(c.command(&t), kill_after, &name);
        log.push(format!("run {run_no} (kill after {kill_after:?}): {:?}", e.status));
        resumes += e.out.iter().any(|l| l.starts_with("resumed")) as usize;
        if e.killed() && kill_after.is_some() {
            kills += 1;
            continue;
        }
        check_done(&e, &format!("{name} run {run_no} ({})", log.join("; ")));
        break;
    }
    println!("  {name} killed: {kills} kills, {resumes} runs resumed from a checkpoint");
    assert!(kills >= planned / 2, "{name}: too few runs were killed: {}", log.join("; "));
    assert!(resumes >= kills / 2, "{name}: too few runs resumed ({resumes} of {kills}): {}", log.join("; "));
}

fn tangled_threads_complete_under_every_release() {
    for (i, tracker) in ["uffd", "mprotect"].into_iter().enumerate() {
        let c = Config { tracker, interval: None, seed: 10 + i as u64 };
        clean(&c);
        killed(&c);
    }
}

fn tangled_threads_complete_under_interval() {
    for (i, tracker) in ["uffd", "mprotect"].into_iter().enumerate() {
        let c = Config { tracker, interval: Some("0.01"), seed: 20 + i as u64 };
        clean(&c);
        killed(&c);
    }
}

fn main() {
    match role().as_deref() {
        Some("tangle") => return child_tangle(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("tangled_threads_complete_under_every_release", tangled_threads_complete_under_every_release),
        ("tangled_threads_complete_under_interval", tangled_threads_complete_under_interval),
    ]);
}
