//! Lock/unlock pairs: crthreads' checkpoint-aware `sync::Mutex` against `std::sync::Mutex` and
//! glibc's `pthread_mutex_t`, measured in the same run.
//!
//! Uncontended: one thread takes and releases a mutex `--pairs` times, incrementing the counter
//! it protects. Contended: two threads do the same on one shared mutex. Reported: the median
//! nanoseconds per pair over `--rounds` rounds (rounds interleaved, each starting with another
//! lock, so machine noise hits every lock alike) and crthreads' ratio to each baseline. The
//! contended figure depends on how the two threads' turns interleave and swings by ±30% from run
//! to run on a small VM; compare it across several runs.
//!
//! This process never calls `crthreads::init`, so no checkpoint is ever due: the figures are
//! the cost of the lock word plus the lock-depth bookkeeping, the path every release takes when
//! no checkpoint is pending. `lockcost` measures the same inside a running crthreads program.
//!
//! `cargo run --release -p crthreads-benches --bin mutex`

use crthreads_benches::arg;
use crthreads_benches::locks::{Locks, Which};

fn main() {
    let pairs: u64 = arg("--pairs", 20_000_000);
    let contended_pairs: u64 = arg("--contended-pairs", 2_000_000);
    let rounds: usize = arg("--rounds", 9);
    // `--only crthreads|std|glibc` and `--threads 1|2`: one pass of one lock, for profilers.
    let only: String = arg("--only", String::new());
    let locks = Locks::default();
    if !only.is_empty() {
        let which = Which::parse(&only).expect("--only takes crthreads, std or glibc");
        let threads: u64 = arg("--threads", 1);
        let n = if threads == 1 { pairs } else { contended_pairs };
        println!("{only}, {threads} thread(s): {:.2} ns/pair", locks.ns_per_pair(which, threads, n));
        return;
    }
    println!("mutex lock/unlock pairs (each around a counter increment), median of {rounds} rounds");
    println!(
        "crthreads::init is not called: no checkpoint is ever due (the depth bookkeeping runs, the safepoint finds nothing to do)"
    );
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "case", "crthreads ns", "std ns", "glibc ns", "cr/std", "cr/glibc"
    );
    for (label, threads, n) in [("uncontended, 1 thread", 1, pairs), ("contended, 2 threads", 2, contended_pairs)] {
        let [c, s, g] = locks.compare(threads, n, rounds);
        println!("{label:<24} {c:>12.2} {s:>12.2} {g:>12.2} {:>9.2}x {:>9.2}x", c / s, c / g);
    }
    assert_eq!(crthreads::sync::lock_depth(), 0);
    // Every pair was counted under its lock.
    let total = |n: u64, t: u64| (n / 10 + rounds as u64 * n) * t;
    let expect = total(pairs, 1) + total(contended_pairs, 2);
    assert_eq!(locks.counts(), [expect; 3]);
}
