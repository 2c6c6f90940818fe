//! What an uncontended lock/unlock pair costs inside a running crthreads program, in its two
//! regimes: when no checkpoint is due, and when every release of a last lock commits one.
//!
//! 1. **No checkpoint due** (`CRTHREADS_POLICY=manual`): a child runs `crthreads::main`, and its
//!    main persistent thread takes and releases crthreads' `sync::Mutex`, `std::sync::Mutex` and
//!    glibc's `pthread_mutex_t` `--pairs` times each (around a counter increment), rounds
//!    interleaved, the same loop as the `mutex` benchmark (which runs without `init`). Reported:
//!    median ns per pair and crthreads' ratio to std and glibc; the goal is at most 1.2x. The
//!    child's statistics file must stay empty (no checkpoint was taken).
//! 2. **Checkpoint on every release** (`CRTHREADS_POLICY=every-release`): a child's main
//!    persistent thread takes and releases one `sync::Mutex` around a counter in the persistent
//!    heap for `--seconds`; each release to depth 0 parks the thread until a checkpoint that
//!    covers it was committed. Reported per tracker (and with `CRTHREADS_DURABILITY=sync`, where
//!    every checkpoint waits for `fdatasync`): µs per pair (median, p90), checkpoints per second,
//!    and, from the `CRTHREADS_STATS` file, the median pages written (stored or recorded as holes),
//!    dirty pages, bytes written and checkpoint duration per checkpoint. A checkpoint writes the
//!    pages its slot lacks: this epoch's and the previous one's (the slots alternate), plus the
//!    live part of the thread's stack.
//!
//! `cargo run --release -p crthreads-benches --bin lockcost -- [--pairs 20000000] [--rounds 9] [--seconds 2]`

use std::time::{Duration, Instant};

use crthreads_benches::locks::Locks;
use crthreads_benches::stats::{self, quantile};
use crthreads_benches::{TempDir, arg, child, field, median, role, run_child};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// Child, policy manual: the three locks compared on the main persistent thread.
fn child_manual(pairs: u64, rounds: usize) {
    let r = crthreads::main(move || {
        let locks = Locks::default();
        let ns = locks.compare(1, pairs, rounds);
        assert_eq!(crthreads::sync::lock_depth(), 0);
        assert_eq!(locks.counts(), [pairs / 10 + rounds as u64 * pairs; 3], "a pair was not counted");
        ns
    });
    let [c, s, g] = r.unwrap_or_else(|e| panic!("crthreads::main: {e}"));
    println!("manual {c} {s} {g}");
}

/// Child, policy every-release: lock/unlock pairs for `secs`, each committing a checkpoint.
fn child_every_release(secs: f64) {
    let r = crthreads::main(move || {
        let m = Box::new(crthreads::sync::Mutex::new(0u64));
        // Warm up: the first checkpoint is complete (and mirrored into both slots).
        for _ in 0..20 {
            *m.lock().unwrap() += 1;
        }
        // Per-pair times, in memory no checkpoint copies.
        let cap = 1 << 20;
        let mut us: Vec<f64> = crthreads::volatile(|| Vec::with_capacity(cap));
        let first = crthreads::checkpoint().expect("checkpoint").seq;
        let limit = Duration::from_secs_f64(secs);
        let t = Instant::now();
        while t.elapsed() < limit && us.len() < cap {
            let p = Instant::now();
            *m.lock().unwrap() += 1;
            us.push(p.elapsed().as_secs_f64() * 1e6);
        }
        let elapsed = t.elapsed().as_secs_f64();
        let last = crthreads::checkpoint().expect("checkpoint").seq;
        assert_eq!(*m.lock().unwrap(), 20 + us.len() as u64, "a pair was not counted");
        let n = us.len();
        let (p50, p90) = (quantile(&mut us, 0.5), quantile(&mut us, 0.9));
        crthreads::volatile(move || drop(us));
        (n, elapsed, p50, p90, first, last)
    });
    let (n, elapsed, p50, p90, first, last) = r.unwrap_or_else(|e| panic!("crthreads::main: {e}"));
    println!("every {n} {elapsed} {p50} {p90} {first} {last}");
}

fn main() {
    let pairs: u64 = arg("--pairs", 20_000_000);
    let rounds: usize = arg("--rounds", 9);
    let secs: f64 = arg("--seconds", 2.0);
    match role().as_deref() {
        Some("manual") => return child_manual(pairs, rounds),
        Some("every-release") => return child_every_release(secs),
        _ => {}
    }

    let dir = TempDir::new("lockcost");
    println!(
        "uncontended lock/unlock pairs inside crthreads::main (a persistent thread), each around a counter increment"
    );
    println!(
        "\n1. no checkpoint due (CRTHREADS_POLICY=manual): median ns/pair of {rounds} interleaved rounds of {pairs} pairs"
    );
    let stats_path = dir.join("manual.jsonl");
    let out = run_child(
        child("manual")
            .env("CRTHREADS_DIR", dir.join("manual"))
            .env("CRTHREADS_POLICY", "manual")
            .env("CRTHREADS_STATS", &stats_path),
    );
    let v: Vec<f64> = field(&out, "manual").iter().map(|x| x.parse().unwrap()).collect();
    let (c, s, g) = (v[0], v[1], v[2]);
    let taken = stats::read(&stats_path).len();
    assert_eq!(taken, 0, "a checkpoint was taken under the manual policy");
    println!("{:>12} {:>12} {:>12} {:>10} {:>10}", "crthreads ns", "std ns", "glibc ns", "cr/std", "cr/glibc");
    println!("{c:>12.2} {s:>12.2} {g:>12.2} {:>9.2}x {:>9.2}x   (goal: <= 1.2x)", c / s, c / g);

    println!(
        "\n2. a checkpoint on every release (CRTHREADS_POLICY=every-release), {secs} s per row; per checkpoint: medians from CRTHREADS_STATS"
    );
    println!(
        "{:<9} {:<10} {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>10} {:>11}",
        "tracker", "durability", "us/pair", "p90 us", "ckpt/s", "pairs", "written", "dirty", "bytes", "ckpt us"
    );
    for (tracker, durability) in [("uffd", "process"), ("mprotect", "process"), ("uffd", "sync")] {
        let tag = format!("every-{tracker}-{durability}");
        let stats_path = dir.join(&format!("{tag}.jsonl"));
        let out = run_child(
            child("every-release")
                .env("CRTHREADS_DIR", dir.join(&tag))
                .env("CRTHREADS_POLICY", "every-release")
                .env("CRTHREADS_TRACKER", tracker)
                .env("CRTHREADS_DURABILITY", durability)
                .env("CRTHREADS_STATS", &stats_path),
        );
        let f = field(&out, "every");
        let n: u64 = f[0].parse().unwrap();
        let elapsed: f64 = f[1].parse().unwrap();
        let (p50, p90): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        let (first, last): (u64, u64) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        // The checkpoints of the timed loop: strictly between the two explicit ones.
        let lines: Vec<stats::Line> =
            stats::read(&stats_path).into_iter().filter(|l| l.seq > first && l.seq < last).collect();
        assert_eq!(lines.len() as u64, n, "every release should have committed exactly one checkpoint");
        let med = |f: fn(&stats::Line) -> u64| median(&mut lines.iter().map(|l| f(l) as f64).collect::<Vec<_>>());
        println!(
            "{:<9} {:<10} {:>10.1} {:>10.1} {:>9.0} {:>9} {:>8} {:>8} {:>10} {:>11}",
            tracker,
            durability,
            p50,
            p90,
            n as f64 / elapsed,
            n,
            med(|l| l.pages_written),
            med(|l| l.dirty_pages),
            med(|l| l.bytes_written),
            med(|l| l.duration_us),
        );
    }
    println!(
        "\nus/pair: one lock/unlock including the checkpoint its release waits for; written: pages brought up to date \
         in the slot (stored or holes); ckpt us: the checkpoint itself (duration_us)"
    );
}
