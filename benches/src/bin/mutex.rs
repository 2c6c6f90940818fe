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
//! no checkpoint is pending.
//!
//! `cargo run --release -p crthreads-benches --bin mutex`

use std::cell::UnsafeCell;
use std::hint::black_box;

use crthreads_benches::{arg, median, time};

/// glibc's default (normal) mutex around a counter.
struct PthreadMutex {
    m: UnsafeCell<libc::pthread_mutex_t>,
    v: UnsafeCell<u64>,
}

// SAFETY: `v` is only touched between pthread_mutex_lock and pthread_mutex_unlock of `m`, and a
// pthread mutex may be used from any thread at a fixed address (it is never moved while shared).
unsafe impl Sync for PthreadMutex {}

impl PthreadMutex {
    fn new() -> PthreadMutex {
        PthreadMutex { m: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER), v: UnsafeCell::new(0) }
    }

    #[inline]
    fn bump(&self) {
        // SAFETY: `m` is an initialised mutex that stays at this address; `v` is only touched
        // with it held.
        unsafe {
            libc::pthread_mutex_lock(self.m.get());
            *self.v.get() += 1;
            libc::pthread_mutex_unlock(self.m.get());
        }
    }
}

/// The three locks, each around a counter.
struct Locks {
    cr: crthreads::sync::Mutex<u64>,
    std: std::sync::Mutex<u64>,
    glibc: PthreadMutex,
}

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Crthreads,
    Std,
    Glibc,
}

/// `pairs` lock/increment/unlock pairs on one of the locks.
#[inline(never)]
fn run(locks: &Locks, which: Which, pairs: u64) {
    match which {
        Which::Crthreads => {
            for _ in 0..pairs {
                *black_box(&locks.cr).lock().unwrap() += 1;
            }
        }
        Which::Std => {
            for _ in 0..pairs {
                *black_box(&locks.std).lock().unwrap() += 1;
            }
        }
        Which::Glibc => {
            for _ in 0..pairs {
                black_box(&locks.glibc).bump();
            }
        }
    }
}

/// Nanoseconds per pair, with `threads` threads sharing the lock.
fn ns_per_pair(locks: &Locks, which: Which, threads: u64, pairs: u64) -> f64 {
    let secs = time(|| {
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(|| run(locks, which, pairs));
            }
            run(locks, which, pairs);
        })
    });
    secs * 1e9 / (threads * pairs) as f64
}

fn main() {
    let pairs: u64 = arg("--pairs", 20_000_000);
    let contended_pairs: u64 = arg("--contended-pairs", 2_000_000);
    let rounds: usize = arg("--rounds", 9);
    // `--only crthreads|std|glibc` and `--threads 1|2`: one pass of one lock, for profilers.
    let only: String = arg("--only", String::new());
    let locks = Locks { cr: crthreads::sync::Mutex::new(0), std: std::sync::Mutex::new(0), glibc: PthreadMutex::new() };
    if !only.is_empty() {
        let which = match only.as_str() {
            "crthreads" => Which::Crthreads,
            "std" => Which::Std,
            "glibc" => Which::Glibc,
            _ => panic!("--only takes crthreads, std or glibc"),
        };
        let threads: u64 = arg("--threads", 1);
        let n = if threads == 1 { pairs } else { contended_pairs };
        println!("{only}, {threads} thread(s): {:.2} ns/pair", ns_per_pair(&locks, which, threads, n));
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
    let all = [Which::Crthreads, Which::Std, Which::Glibc];
    for (label, threads, n) in [("uncontended, 1 thread", 1, pairs), ("contended, 2 threads", 2, contended_pairs)] {
        for w in all {
            // Warm up (page in, train the predictors).
            ns_per_pair(&locks, w, threads, n / 10);
        }
        let mut samples = [Vec::new(), Vec::new(), Vec::new()];
        for r in 0..rounds {
            // Each round starts with a different lock, so that no lock always follows another.
            for k in 0..all.len() {
                let i = (r + k) % all.len();
                samples[i].push(ns_per_pair(&locks, all[i], threads, n));
            }
        }
        let [c, s, g] = samples.map(|mut v| median(&mut v));
        println!("{label:<24} {c:>12.2} {s:>12.2} {g:>12.2} {:>9.2}x {:>9.2}x", c / s, c / g);
    }
    assert_eq!(crthreads::sync::lock_depth(), 0);
    // Every pair was counted under its lock.
    let total = |n: u64, t: u64| (n / 10 + rounds as u64 * n) * t;
    let expect = total(pairs, 1) + total(contended_pairs, 2);
    assert_eq!(*locks.cr.lock().unwrap(), expect);
    assert_eq!(*locks.std.lock().unwrap(), expect);
    // SAFETY: all other threads are done.
    assert_eq!(unsafe { *locks.glibc.v.get() }, expect);
}
