//! A minimal stop-the-world in plain pthreads: the baseline of the `latency` benchmark.
//!
//! It does what a checkpoint request does, without crthreads and without writing anything: a
//! requesting thread wakes a coordinator thread; the coordinator signals the spinning threads
//! that are running, each handler parks its thread (on a futex, inside the handler) and counts
//! it stopped; once none runs, the coordinator releases them all and wakes the requester. As in
//! crthreads, a released thread counts itself running again only when it gets a CPU, and one
//! released but not yet scheduled needs no signal at the next request.
//!
//! | word      | meaning                                                         |
//! |-----------|-----------------------------------------------------------------|
//! | `RUNNING` | spinners not parked in the handler                              |
//! | `PHASE`   | 1 while the coordinator gathers, else 0                         |
//! | `RELEASE` | generation: parked spinners sleep until it changes              |
//! | `REQUEST` | bumped by the requester; the coordinator sleeps on it           |
//! | `DONE`    | bumped by the coordinator after a release; the requester sleeps |
//!
//! One instance per process (the words are statics shared with the signal handler).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::stats::mono_ns;

static RUNNING: AtomicU32 = AtomicU32::new(0);
static PHASE: AtomicU32 = AtomicU32::new(0);
static RELEASE: AtomicU32 = AtomicU32::new(0);
static REQUEST: AtomicU32 = AtomicU32::new(0);
static DONE: AtomicU32 = AtomicU32::new(0);

/// How often the coordinator signals threads that still run (crthreads' resignal period).
const RESIGNAL: Duration = Duration::from_millis(2);

fn futex_wait(w: &AtomicU32, v: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as i64 });
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT on a live atomic word with a valid (or null) relative timeout; it
    // returns at once if the word no longer holds `v`.
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG, v, tsp) };
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a live atomic word.
    unsafe { libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, i32::MAX) };
}

/// Parks the interrupted spinner while the coordinator gathers (async-signal-safe: atomics and
/// futex calls only).
extern "C" fn on_signal(_: libc::c_int) {
    while PHASE.load(Ordering::SeqCst) == 1 {
        let g = RELEASE.load(Ordering::SeqCst);
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        futex_wake(&RUNNING);
        while RELEASE.load(Ordering::SeqCst) == g {
            futex_wait(&RELEASE, g, None);
        }
        // Running again (Dekker with the coordinator: publish, then look at the phase).
        RUNNING.fetch_add(1, Ordering::SeqCst);
    }
}

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

/// With `spinners` threads spinning, `rounds` requests `gap` apart: µs from each request to
/// the requester running again after every spinner was stopped and released.
pub fn run(spinners: usize, rounds: usize, gap: Duration) -> Vec<f64> {
    let sig = libc::SIGUSR1;
    // SAFETY: installs a handler that uses only atomics and futex calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        assert_eq!(libc::sigaction(sig, &sa, std::ptr::null_mut()), 0, "sigaction");
    }
    // The spinners of an earlier run have exited (counted as running).
    RUNNING.store(0, Ordering::SeqCst);
    let first = REQUEST.load(Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let mut hs = Vec::new();
    for _ in 0..spinners {
        let (stop, tx) = (stop.clone(), tx.clone());
        RUNNING.fetch_add(1, Ordering::SeqCst);
        hs.push(std::thread::spawn(move || {
            // SAFETY: pthread_self has no preconditions.
            tx.send(unsafe { libc::pthread_self() } as usize).unwrap();
            black_box(spin(&stop));
        }));
    }
    let tids: Vec<usize> = (0..spinners).map(|_| rx.recv().unwrap()).collect();
    let coordinator = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = first;
            loop {
                let r = REQUEST.load(Ordering::SeqCst);
                if r == seen {
                    futex_wait(&REQUEST, r, None);
                    continue;
                }
                seen = r;
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                PHASE.store(1, Ordering::SeqCst);
                let mut last = 0;
                loop {
                    let n = RUNNING.load(Ordering::SeqCst);
                    if n == 0 {
                        break;
                    }
                    let now = mono_ns();
                    if now - last >= RESIGNAL.as_nanos() as u64 {
                        for &t in &tids {
                            // SAFETY: the spinners run until `stop`, after the last request.
                            unsafe { libc::pthread_kill(t as libc::pthread_t, sig) };
                        }
                        last = now;
                    }
                    futex_wait(&RUNNING, n, Some(RESIGNAL / 2));
                }
                PHASE.store(0, Ordering::SeqCst);
                RELEASE.fetch_add(1, Ordering::SeqCst);
                futex_wake(&RELEASE);
                DONE.fetch_add(1, Ordering::SeqCst);
                futex_wake(&DONE);
            }
        })
    };
    let mut us = Vec::new();
    for _ in 0..rounds {
        std::thread::sleep(gap);
        let t0 = mono_ns();
        let d = DONE.load(Ordering::SeqCst);
        REQUEST.fetch_add(1, Ordering::SeqCst);
        futex_wake(&REQUEST);
        while DONE.load(Ordering::SeqCst) == d {
            futex_wait(&DONE, d, None);
        }
        us.push((mono_ns() - t0) as f64 / 1e3);
    }
    stop.store(true, Ordering::SeqCst);
    REQUEST.fetch_add(1, Ordering::SeqCst);
    futex_wake(&REQUEST);
    coordinator.join().unwrap();
    for h in hs {
        h.join().unwrap();
    }
    // SAFETY: restores the default disposition; no spinner runs any more.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
    us
}
