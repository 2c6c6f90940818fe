//! The checkpoint-aware primitives on real threads: many threads, many rounds, and waits cut
//! short at random.
//!
//! A restored thread comes back from its wait as a spurious wake-up, and a thread parked at a
//! safepoint may return from `park::wait` at any time; every primitive must treat such a return
//! as one more trip round its loop. These tests produce such returns for real: a no-op SIGUSR1
//! handler installed without `SA_RESTART` makes a futex wait that the signal interrupts return
//! `EINTR`, and a storm thread sends SIGUSR1 to every worker over and over while they work. Every
//! worker ends at lock depth 0.

use std::collections::VecDeque;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crthreads::sync::{Barrier, Condvar, Mutex, OnceLock, RwLock, Semaphore, lock_depth};

static HANDLED: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_sigusr1(_: libc::c_int) {
    HANDLED.fetch_add(1, Relaxed);
}

fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction is valid (empty mask); the handler only touches an atomic,
        // which is async-signal-safe. No SA_RESTART: interrupted futex waits return EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigusr1 as *const () as libc::sighandler_t;
            sa.sa_flags = 0;
            assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
        }
    });
}

/// Runs `work(i)` on `n` threads while a storm of SIGUSR1 interrupts their waits. The workers
/// start once the storm has sent its first round, report when done, and stay alive (in a std
/// barrier) until the storm has stopped, so no signal is ever sent to a thread that has exited.
///
/// A worker that panics fails the test, and so do workers that are still not done after
/// `STUCK` (a lost wake-up leaves them asleep for good); either way the workers are left blocked,
/// and alive, until the test process exits.
fn stormy<F>(n: usize, work: F)
where
    F: Fn(usize) + Send + Sync + 'static,
{
    install_handler();
    let work = Arc::new(work);
    let go = Arc::new(std::sync::Barrier::new(n + 1));
    let release = Arc::new(std::sync::Barrier::new(n + 1));
    let (done_tx, done_rx) = mpsc::channel();
    let workers: Vec<JoinHandle<()>> = (0..n)
        .map(|i| {
            let (work, go, release, done) = (work.clone(), go.clone(), release.clone(), done_tx.clone());
            std::thread::spawn(move || {
                go.wait();
                let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    work(i);
                    assert_eq!(lock_depth(), 0, "worker {i} ends holding locks");
                }))
                .is_ok();
                done.send(ok).unwrap();
                release.wait();
            })
        })
        .collect();
    let targets: Vec<libc::pthread_t> = workers.iter().map(|h| h.as_pthread_t()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, go2) = (stop.clone(), go.clone());
    let storm = std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut first = true;
        while !stop2.load(Relaxed) {
            for &t in &targets {
                // SAFETY: every target is alive until the storm has been joined (see above).
                if unsafe { libc::pthread_kill(t, libc::SIGUSR1) } == 0 {
                    sent += 1;
                }
            }
            if std::mem::take(&mut first) {
                go2.wait();
            }
            // Pacing, so the workers get the cores; nothing waits on this.
            std::thread::sleep(Duration::from_micros(200));
        }
        sent
    });
    let mut failure = None;
    for _ in 0..n {
        match done_rx.recv_timeout(STUCK) {
            Ok(true) => (),
            Ok(false) => {
                failure = Some("a worker panicked (see its message above)");
                break;
            }
            Err(_) => {
                failure = Some("workers are stuck: a lost wake-up?");
                break;
            }
        }
    }
    stop.store(true, Relaxed);
    let sent = storm.join().unwrap();
    if let Some(f) = failure {
        panic!("{f}");
    }
    release.wait();
    workers.into_iter().for_each(|h| h.join().unwrap());
    assert!(sent >= n as u64 && HANDLED.load(Relaxed) > 0, "the storm interrupted nobody");
}

/// How long workers may take before they count as stuck: far beyond what the work needs.
const STUCK: Duration = Duration::from_secs(120);

#[test]
fn barrier_of_64_threads_over_many_generations() {
    const N: usize = 64;
    const ROUNDS: usize = 1_000;
    let b = Arc::new(Barrier::new(N));
    let arrived = Arc::new(AtomicUsize::new(0));
    let leaders = Arc::new(AtomicUsize::new(0));
    let (b2, arrived2, leaders2) = (b.clone(), arrived.clone(), leaders.clone());
    stormy(N, move |_| {
        for round in 0..ROUNDS {
            arrived2.fetch_add(1, Relaxed);
            if b2.wait().is_leader() {
                leaders2.fetch_add(1, Relaxed);
            }
            // Everyone arrived in this round before anyone leaves it, and nobody gets two rounds
            // ahead.
            let a = arrived2.load(Relaxed);
            assert!(a >= (round + 1) * N && a < (round + 2) * N, "round {round}: {a} arrivals");
            assert_eq!(lock_depth(), 0);
        }
    });
    assert_eq!(leaders.load(Relaxed), ROUNDS, "one leader per generation");
    assert_eq!(arrived.load(Relaxed), ROUNDS * N);
}

#[test]
fn mutex_counters_under_contention_and_interrupts() {
    const N: usize = 16;
    const ITERS: u64 = 20_000;
    let a = Arc::new(Mutex::new(0u64));
    let b = Arc::new(Mutex::new(0u64));
    let (a2, b2) = (a.clone(), b.clone());
    stormy(N, move |_| {
        for _ in 0..ITERS {
            let mut ga = a2.lock().unwrap();
            *ga += 1;
            let mut gb = b2.lock().unwrap();
            assert_eq!(lock_depth(), 2);
            *gb += 2;
            drop(ga);
            assert_eq!(lock_depth(), 1);
            drop(gb);
        }
    });
    assert_eq!(*a.lock().unwrap(), N as u64 * ITERS);
    assert_eq!(*b.lock().unwrap(), 2 * N as u64 * ITERS);
}

#[test]
fn rwlock_readers_and_writers_under_interrupts() {
    const N: usize = 12;
    const ITERS: u64 = 10_000;
    let l = Arc::new(RwLock::new((0u64, 0u64)));
    let l2 = l.clone();
    stormy(N, move |i| {
        for k in 0..ITERS {
            if (i + k as usize) % 3 == 0 {
                let mut g = l2.write().unwrap();
                g.0 += 1;
                g.1 += 1;
            } else {
                let g = l2.read().unwrap();
                assert_eq!(g.0, g.1, "a reader saw half a write");
            }
        }
    });
    let (x, y) = *l.read().unwrap();
    assert_eq!(x, y);
    let writes: u64 = (0..N).map(|i| (0..ITERS).filter(|k| (i + *k as usize) % 3 == 0).count() as u64).sum();
    assert_eq!(x, writes);
}

#[test]
fn condvar_bounded_queue_under_interrupts() {
    const PRODUCERS: usize = 4;
    const ITEMS: u64 = 20_000;
    struct Queue {
        items: Mutex<(VecDeque<u64>, usize)>,
        not_empty: Condvar,
        not_full: Condvar,
    }
    let q = Arc::new(Queue {
        items: Mutex::new((VecDeque::new(), 0)),
        not_empty: Condvar::new(),
        not_full: Condvar::new(),
    });
    let sum = Arc::new(AtomicU64::new(0));
    let (q2, sum2) = (q.clone(), sum.clone());
    stormy(2 * PRODUCERS, move |i| {
        if i < PRODUCERS {
            for v in 1..=ITEMS {
                let g = q2.items.lock().unwrap();
                let mut g = q2.not_full.wait_while(g, |(items, _)| items.len() >= 8).unwrap();
                assert_eq!(lock_depth(), 1);
                g.0.push_back(v);
                drop(g);
                q2.not_empty.notify_one();
            }
            let mut g = q2.items.lock().unwrap();
            g.1 += 1;
            drop(g);
            q2.not_empty.notify_all();
        } else {
            loop {
                let g = q2.items.lock().unwrap();
                let mut g = q2.not_empty.wait_while(g, |(items, done)| items.is_empty() && *done < PRODUCERS).unwrap();
                let Some(v) = g.0.pop_front() else { break };
                drop(g);
                q2.not_full.notify_one();
                sum2.fetch_add(v, Relaxed);
            }
        }
    });
    assert_eq!(sum.load(Relaxed), PRODUCERS as u64 * ITEMS * (ITEMS + 1) / 2);
    assert!(q.items.lock().unwrap().0.is_empty());
}

#[test]
fn semaphore_bounds_a_pool_under_interrupts() {
    const N: usize = 16;
    const PERMITS: u32 = 3;
    let s = Arc::new(Semaphore::new(PERMITS));
    let inside = Arc::new(AtomicUsize::new(0));
    let (s2, inside2) = (s.clone(), inside.clone());
    stormy(N, move |_| {
        for _ in 0..10_000 {
            s2.acquire();
            let n = inside2.fetch_add(1, Relaxed) + 1;
            assert!(n <= PERMITS as usize, "{n} inside with {PERMITS} permits");
            assert_eq!(lock_depth(), 0, "a permit is not a lock");
            inside2.fetch_sub(1, Relaxed);
            s2.release();
        }
    });
    assert_eq!(s.available(), PERMITS);
}

#[test]
fn once_lock_waiters_under_interrupts() {
    const N: usize = 16;
    for _ in 0..20 {
        let cell = Arc::new(OnceLock::new());
        let started = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (cell2, started2, runs2) = (cell.clone(), started.clone(), runs.clone());
        stormy(N, move |i| {
            started2.fetch_add(1, Relaxed);
            let v = *cell2.get_or_init(|| {
                runs2.fetch_add(1, Relaxed);
                // Keep the others waiting in the Once until they have all arrived and the storm
                // has had time to cut their waits short a few times.
                let handled = HANDLED.load(Relaxed);
                while started2.load(Relaxed) < N || HANDLED.load(Relaxed) < handled + 8 * N as u64 {
                    std::thread::yield_now();
                }
                i
            });
            assert_eq!(Some(&v), cell2.get());
        });
        assert_eq!(runs.load(Relaxed), 1);
    }
}

#[test]
fn timed_waits_time_out_despite_interrupts() {
    let m = Arc::new(Mutex::new(0u32));
    let c = Arc::new(Condvar::new());
    let s = Arc::new(Semaphore::new(0));
    let (m2, c2, s2) = (m.clone(), c.clone(), s.clone());
    stormy(4, move |_| {
        // Nobody notifies or releases: every one of these must run to its deadline (a wall-clock
        // time), however often the signal cuts a wait short.
        let d = Duration::from_millis(50);
        let start = SystemTime::now();
        let (g, r) = c2.wait_timeout_while(m2.lock().unwrap(), d, |_| true).unwrap();
        assert!(r.timed_out());
        assert!(SystemTime::now() >= start + d, "gave up before the deadline");
        assert_eq!(lock_depth(), 1);
        drop(g);
        let start = SystemTime::now();
        assert!(!s2.acquire_timeout(d));
        assert!(SystemTime::now() >= start + d, "gave up before the deadline");
    });
    assert_eq!(s.available(), 0);
}

// Every primitive can be a static, as std's can (their constructors are `const`).
static COUNTER: Mutex<u64> = Mutex::new(0);
static TABLE: RwLock<Vec<u32>> = RwLock::new(Vec::new());
static READY: Condvar = Condvar::new();
static GATE: Barrier = Barrier::new(2);
static CONFIG: OnceLock<String> = OnceLock::new();
static ONCE: crthreads::sync::Once = crthreads::sync::Once::new();
static TOKENS: Semaphore = Semaphore::new(1);

#[test]
fn statics() {
    std::thread::scope(|s| {
        s.spawn(|| {
            *COUNTER.lock().unwrap() += 1;
            TABLE.write().unwrap().push(1);
            GATE.wait();
        });
        GATE.wait();
    });
    let g = READY.wait_timeout_while(COUNTER.lock().unwrap(), Duration::from_secs(60), |c| *c == 0).unwrap().0;
    assert_eq!(*g, 1);
    drop(g);
    assert_eq!(*TABLE.read().unwrap(), [1]);
    ONCE.call_once(|| CONFIG.set("x".to_string()).unwrap());
    assert_eq!(CONFIG.get().map(String::as_str), Some("x"));
    TOKENS.acquire();
    assert!(!TOKENS.try_acquire());
    TOKENS.release();
    assert_eq!(lock_depth(), 0);
}
