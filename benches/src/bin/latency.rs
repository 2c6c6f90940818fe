//! Request-to-commit latency of a checkpoint with 64 persistent threads in a mix of states,
//! for each tracker.
//!
//! A child runs `crthreads::main` with `CRTHREADS_POLICY=manual` and starts 64 persistent
//! threads (`--mix compute,condvar,sleep,lock`, 16 of each by default):
//! - *compute*: a tight arithmetic loop with no safepoint; a checkpoint must preempt them by
//!   signal;
//! - *condvar*: blocked in a `Condvar::wait` (at depth 0: already at a safepoint);
//! - *sleep*: `crthreads::thread::sleep` of 5 ms in a loop;
//! - *lock*: lock/increment/unlock in a loop, four threads to each of four mutexes (they park
//!   at a release or while waiting for the lock).
//!
//! **In-process requests.** The main persistent thread calls `crthreads::checkpoint()`
//! `--requests` times (after 3 warm-up calls, the first of which writes the complete image),
//! sleeping `--gap-ms` between calls, and times each call from the call to its return: the
//! coordinator gathers all 65 threads (preempting the compute ones), commits, and releases
//! them, and the caller runs again. Reported: median, p90 and max of that latency, and the
//! medians of `gather_us` and `duration_us` (the commit) from the `CRTHREADS_STATS` file.
//!
//! **External requests.** Then the parent sends the process `SIGRTMIN+9` (what `kill -s RTMIN+9`
//! does) `--requests` times, each `--gap-ms` after the previous one was committed; an `after_checkpoint` hook in the child
//! records `CLOCK_MONOTONIC` when each checkpoint was committed (before the threads resume),
//! and the parent takes the latency from just before `kill` to that time (the clock is the
//! same in both processes).
//!
//! **Baseline.** Before each child, this process runs a minimal stop-the-world in plain
//! pthreads (`crthreads_benches::stw`) with as many spinning threads as the mix keeps busy
//! (compute + lock): a request wakes a coordinator thread, which signals the running spinners,
//! waits until each is parked in its handler, releases them and wakes the requester. It writes
//! nothing; it is the hand-offs and the preemption alone, under the same CPU load. On a small
//! VM both figures are dominated by how soon the scheduler runs the coordinator and then the
//! requester among the busy threads: the table splits the latency into its parts.
//!
//! `cargo run --release -p crthreads-benches --bin latency -- [--requests 60] [--gap-ms 10] [--mix 16,16,16,16] [--trackers uffd,mprotect]`

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crthreads::sync::{Condvar, Mutex};
use crthreads_benches::stats::{self, mono_ns, quantile};
use crthreads_benches::stw;
use crthreads_benches::{TempDir, Watchdog, arg, child, field, median, role};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// Warm-up checkpoints before the timed ones.
const WARMUP: usize = 3;

/// What the workers share (in the persistent heap).
struct Shared {
    stop: AtomicBool,
    /// The condvar workers' flag: set to end their wait.
    done: Mutex<bool>,
    cv: Condvar,
    locks: [Mutex<u64>; 4],
    started: AtomicU32,
}

/// A tight loop in this program's own code, with no safepoint: only a preemption signal stops
/// it for a checkpoint. Not inlined, so that it is not folded into a crthreads or std function
/// (which are never preempted).
#[inline(never)]
fn spin(stop: &AtomicBool) -> u64 {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for j in 0..1000u64 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(j));
        }
    }
    x
}

/// The hook reports checkpoints only once the external phase began.
static EXTERNAL: AtomicBool = AtomicBool::new(false);
/// When each checkpoint ended (monotonic ns), by sequence number modulo the length; set by
/// the hook.
static ENDS: [AtomicU64; 1024] = [const { AtomicU64::new(0) }; 1024];

/// After each checkpoint attempt (on the coordinator, before the threads resume): records when
/// it ended; in the external phase, also writes `ext-commit <seq> <monotonic ns>` (or
/// `ext-failed 0 <ns>`) to stdout with one `write`, without allocating.
fn after_checkpoint(r: Result<&crthreads::Stats, &crthreads::Error>) {
    let t = mono_ns();
    if let Ok(s) = r {
        ENDS[s.seq as usize % ENDS.len()].store(t, Ordering::SeqCst);
    }
    if !EXTERNAL.load(Ordering::SeqCst) {
        return;
    }
    let mut buf = [0u8; 96];
    let mut c = std::io::Cursor::new(&mut buf[..]);
    let _ = match r {
        Ok(s) => writeln!(c, "ext-commit {} {t}", s.seq),
        Err(_) => writeln!(c, "ext-failed 0 {t}"),
    };
    let n = c.position() as usize;
    // SAFETY: writes `n` initialised bytes of `buf` to fd 1.
    unsafe { libc::write(1, buf.as_ptr().cast(), n) };
}

/// Whether stdin reached its end (or failed), without waiting.
fn stdin_closed() -> bool {
    let mut p = libc::pollfd { fd: 0, events: libc::POLLIN, revents: 0 };
    // SAFETY: polls one valid pollfd, with no timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0
}

fn child_main(mix: [usize; 4], requests: usize, gap: Duration) {
    crthreads::hooks::after_checkpoint(after_checkpoint).expect("hook");
    let r = crthreads::main(move || {
        let sh = Arc::new(Shared {
            stop: AtomicBool::new(false),
            done: Mutex::new(false),
            cv: Condvar::new(),
            locks: Default::default(),
            started: AtomicU32::new(0),
        });
        let mut hs = Vec::new();
        let total: usize = mix.iter().sum();
        for (kind, &n) in mix.iter().enumerate() {
            for k in 0..n {
                let sh = sh.clone();
                hs.push(crthreads::thread::spawn(move || {
                    sh.started.fetch_add(1, Ordering::SeqCst);
                    match kind {
                        0 => {
                            black_box(spin(&sh.stop));
                        }
                        1 => {
                            let mut g = sh.done.lock().unwrap();
                            while !*g {
                                g = sh.cv.wait(g).unwrap();
                            }
                        }
                        2 => {
                            while !sh.stop.load(Ordering::Relaxed) {
                                crthreads::thread::sleep(Duration::from_millis(5));
                            }
                        }
                        _ => {
                            let m = &sh.locks[k % 4];
                            while !sh.stop.load(Ordering::Relaxed) {
                                *m.lock().unwrap() += 1;
                            }
                        }
                    }
                }));
            }
        }
        while sh.started.load(Ordering::SeqCst) < total as u32 {
            crthreads::thread::sleep(Duration::from_millis(1));
        }
        // Let the condvar workers reach their wait.
        crthreads::thread::sleep(Duration::from_millis(50));
        let (mut lat_us, mut commit_us, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
        let mut failed = 0;
        for i in 0..WARMUP + requests {
            crthreads::thread::sleep(gap);
            let t0 = mono_ns();
            let r = crthreads::checkpoint();
            let t2 = mono_ns();
            if i < WARMUP {
                continue;
            }
            match r {
                Ok(s) => {
                    // The hook ran for this call's attempt, on the coordinator, before
                    // releasing us.
                    let t1 = ENDS[s.seq as usize % ENDS.len()].load(Ordering::SeqCst);
                    lat_us.push((t2 - t0) as f64 / 1e3);
                    commit_us.push(t1.saturating_sub(t0) as f64 / 1e3);
                    seqs.push(s.seq);
                }
                Err(_) => failed += 1,
            }
        }
        // External phase: the parent sends the requests, then closes our stdin (looked at with
        // a poll that does not wait, between sleeps, so that this thread never blocks outside
        // crthreads).
        EXTERNAL.store(true, Ordering::SeqCst);
        println!("ready {}", std::process::id());
        std::io::stdout().flush().unwrap();
        while !stdin_closed() {
            crthreads::thread::sleep(Duration::from_millis(2));
        }
        sh.stop.store(true, Ordering::SeqCst);
        *sh.done.lock().unwrap() = true;
        sh.cv.notify_all();
        for h in hs {
            h.join().unwrap();
        }
        (lat_us, commit_us, seqs, failed)
    });
    let (lat_us, commit_us, seqs, failed) = r.unwrap_or_else(|e| panic!("crthreads::main: {e}"));
    let join = |v: &[String]| v.join(" ");
    println!("lat {}", join(&lat_us.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>()));
    println!("commit {}", join(&commit_us.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>()));
    println!("seqs {}", join(&seqs.iter().map(|x| x.to_string()).collect::<Vec<_>>()));
    println!("failed {failed}");
}

/// One request: its latency (to the return, or to the commit for an external one), the time
/// from the request to the end of its checkpoint, and its statistics line.
struct Req {
    total_us: f64,
    to_commit_us: f64,
    line: stats::Line,
}

/// Matches each request's figures (in the order made) with its statistics line, by `seq`.
fn match_requests(total_us: &[f64], to_commit_us: &[f64], seqs: &[u64], all: &[stats::Line]) -> Vec<Req> {
    (0..seqs.len())
        .map(|i| Req {
            total_us: total_us[i],
            to_commit_us: to_commit_us[i],
            line: *all
                .iter()
                .find(|l| l.seq == seqs[i])
                .unwrap_or_else(|| panic!("checkpoint {} is not in the statistics file", seqs[i])),
        })
        .collect()
}

/// What one child measured: in-process and external requests, each with the number of failed
/// (abandoned) attempts, and the checkpoints committed that no request asked for.
struct Measured {
    rows: [(Vec<Req>, usize); 2],
    unasked: usize,
}

/// Runs the child for `tracker`.
fn measure(tracker: &str, dir: &TempDir, requests: usize, gap: Duration) -> Measured {
    let stats_path = dir.join(&format!("{tracker}.jsonl"));
    let mut c = child("threads")
        .env("CRTHREADS_DIR", dir.join(tracker))
        .env("CRTHREADS_POLICY", "manual")
        .env("CRTHREADS_TRACKER", tracker)
        .env("CRTHREADS_STATS", &stats_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let dog = Watchdog::new(c.id(), Duration::from_secs(100));
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    let mut next = |line: &mut String| {
        line.clear();
        out.read_line(line).expect("read the child's output");
        line.trim_end().to_string()
    };
    let ready = next(&mut line);
    let Some(pid) = ready.strip_prefix("ready ") else {
        drop(dog);
        panic!("the child ended ({}) before the external phase", c.wait().unwrap());
    };
    let pid: i32 = pid.parse().unwrap();
    // The request signal (crthreads' `preempt::request_signal`).
    let sig = libc::SIGRTMIN() + 9;
    let (mut ext_us, mut ext_seqs, mut ext_failed) = (Vec::new(), Vec::new(), 0);
    for _ in 0..requests {
        // The same pause as between in-process requests: the threads run again in between.
        std::thread::sleep(gap);
        let t0 = mono_ns();
        // SAFETY: a signal to our own child (not reaped yet), which handles it.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill");
        // The first attempt that ended after the signal was sent (an attempt nobody asked for
        // may have ended in between: see `unasked` in the table's notes).
        loop {
            let l = next(&mut line);
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() == 3, "the child said {l:?} (killed by the watchdog: {})", dog.fired());
            let (seq, t1): (u64, u64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
            if t1 < t0 {
                continue;
            }
            match f[0] {
                "ext-commit" => {
                    ext_us.push((t1 - t0) as f64 / 1e3);
                    ext_seqs.push(seq);
                }
                _ => ext_failed += 1,
            }
            break;
        }
    }
    // Lets the child finish.
    drop(c.stdin.take());
    let mut rest = String::new();
    loop {
        let l = next(&mut line);
        if l.is_empty() {
            break;
        }
        if l.starts_with("ext-") {
            continue; // attempts nobody asked for, after the last request
        }
        rest += &l;
        rest.push('\n');
    }
    let fired = dog.fired();
    drop(dog);
    let st = c.wait().unwrap();
    assert!(st.success() && !fired, "the child failed: {st} (killed by the watchdog: {fired})");
    let nums = |k: &str| field(&rest, k).iter().map(|x| x.parse().unwrap()).collect::<Vec<f64>>();
    let (lat, commit) = (nums("lat"), nums("commit"));
    let seqs: Vec<u64> = field(&rest, "seqs").iter().map(|x| x.parse().unwrap()).collect();
    let failed: usize = field(&rest, "failed")[0].parse().unwrap();
    let all = stats::read(&stats_path);
    // Each request was served by its own attempt (they were made one after the other).
    let unasked = all.len().saturating_sub(WARMUP + seqs.len() + ext_seqs.len());
    Measured {
        rows: [
            (match_requests(&lat, &commit, &seqs, &all), failed),
            (match_requests(&ext_us, &ext_us, &ext_seqs, &all), ext_failed),
        ],
        unasked,
    }
}

/// One row of the table; `base_us` is the baseline's median, for the ratio.
fn row(tracker: &str, how: &str, reqs: &[Req], failed: usize, base_us: f64) {
    let q = |f: &dyn Fn(&Req) -> f64, p: f64| quantile(&mut reqs.iter().map(f).collect::<Vec<_>>(), p) / 1e3;
    // Waiting for the coordinator to run: the time to the commit minus gathering and checkpoint.
    let wake = |r: &Req| r.to_commit_us - (r.line.gather_us + r.line.duration_us) as f64;
    let p50 = q(&|r| r.total_us, 0.5);
    println!(
        "{:<9} {:<18} {:>4} {:>8.2} {:>8.2} {:>8.2} {:>7.1}x | {:>9.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} | {:>7} {:>6} {:>6}",
        tracker,
        how,
        reqs.len(),
        p50,
        q(&|r| r.total_us, 0.9),
        q(&|r| r.total_us, 1.0),
        p50 * 1e3 / base_us,
        q(&|r| r.to_commit_us, 0.5),
        q(&wake, 0.5),
        q(&|r| r.line.gather_us as f64, 0.5),
        q(&|r| r.line.duration_us as f64, 0.5),
        q(&|r| r.total_us - r.to_commit_us, 0.5),
        median(&mut reqs.iter().map(|r| r.line.pages_written as f64).collect::<Vec<_>>()),
        reqs.iter().map(|r| r.line.threads_parked).max().unwrap_or(0),
        failed
    );
}

fn main() {
    let requests: usize = arg("--requests", 60);
    let gap = Duration::from_millis(arg("--gap-ms", 10));
    let mix: String = arg("--mix", "16,16,16,16".to_string());
    let mix: Vec<usize> = mix.split(',').map(|s| s.parse().expect("--mix takes four counts")).collect();
    let mix: [usize; 4] = mix.try_into().expect("--mix takes four counts: compute,condvar,sleep,lock");
    if role().as_deref() == Some("threads") {
        return child_main(mix, requests, gap);
    }
    let trackers: String = arg("--trackers", "uffd,mprotect".to_string());
    let dir = TempDir::new("latency");
    let busy = mix[0] + mix[3];
    println!(
        "checkpoint request-to-commit latency, {} persistent threads + the requesting main thread \
         (compute {}, condvar wait {}, sleep {}, lock loop {}), policy manual, {requests} requests each",
        mix.iter().sum::<usize>(),
        mix[0],
        mix[1],
        mix[2],
        mix[3]
    );
    // Each tracker's child, with the baseline measured before it (interleaved, so that both
    // see the same machine).
    let mut base_us = Vec::new();
    let mut results = Vec::new();
    for tracker in trackers.split(',') {
        base_us.extend(stw::run(busy, requests, gap));
        results.push((tracker, measure(tracker, &dir, requests, gap)));
    }
    let base_p50 = quantile(&mut base_us, 0.5);
    println!(
        "{:<9} {:<18} {:>4} {:>8} {:>8} {:>8} {:>8} | {:>9} {:>7} {:>7} {:>7} {:>7} | {:>7} {:>6} {:>6}",
        "tracker",
        "request",
        "n",
        "p50 ms",
        "p90 ms",
        "max ms",
        "/base",
        "to commit",
        "wake",
        "gather",
        "commit",
        "resume",
        "written",
        "parked",
        "failed"
    );
    for (tracker, m) in &results {
        let [(int, int_failed), (ext, ext_failed)] = &m.rows;
        row(tracker, "checkpoint() call", int, *int_failed, base_p50);
        row(tracker, "SIGRTMIN+9", ext, *ext_failed, base_p50);
    }
    println!(
        "{:<9} {:<18} {:>4} {:>8.2} {:>8.2} {:>8.2} {:>7.1}x",
        "baseline",
        format!("stop {busy} spinners"),
        base_us.len(),
        base_p50 / 1e3,
        quantile(&mut base_us, 0.9) / 1e3,
        quantile(&mut base_us, 1.0) / 1e3,
        1.0
    );
    println!(
        "\np50/p90/max: checkpoint() call: from the call to its return; SIGRTMIN+9: from kill() to the end of the \
         checkpoint (before the threads resume); /base: p50 over the baseline's p50.\nmedians, ms: to commit: \
         from the request to the end of the checkpoint; wake: of that, before gathering began (the request reaching \
         the coordinator thread, and it getting a CPU); gather: gather_us; commit: duration_us; resume: from the end \
         of the checkpoint to the caller running again.\nwritten: median pages per checkpoint; parked: \
         threads_parked; failed: abandoned attempts.\nunasked: checkpoints committed that no request \
         asked for: {}.\nbaseline (this process, plain pthreads, same run, \
         interleaved): a minimal stop-the-world with {busy} spinning threads (the mix's CPU-bound ones): a request \
         wakes a coordinator thread, which signals the running spinners, waits until every one is parked in its \
         handler, releases them and wakes the requester; nothing is written.",
        results.iter().map(|(t, m)| format!("{t} {}", m.unasked)).collect::<Vec<_>>().join(", ")
    );
}
