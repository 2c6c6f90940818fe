//! Regressions of the thread runtime found in review, each reproduced by a real program run
//! many times:
//! - a thread that prints continuously is preempted only in its own code, never inside std's
//!   stdout (a rollback or a restore then resumed it inside `println!` with stdout's lock and
//!   `RefCell` in another state: "already borrowed");
//! - after a rollback, OS threads of threads born after the checkpoint retire, and threads
//!   spawned right after the rollback into their slots run once, with their own context;
//! - a child forked by a persistent thread can lock and unlock (it has no coordinator);
//! - a hook that asks for a checkpoint is refused, not recursed into;
//! - a checkpoint asked for while `crthreads::main` creates the main thread waits until its
//!   record is whole (one taken meanwhile found the record live with no stack yet, and
//!   panicked, or could have saved a thread with no context to resume).

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use common::{TempDir, child, role, run_tests, wait_or_kill};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn output(mut c: std::process::Child, limit: Duration) -> (std::process::ExitStatus, bool, String, String) {
    let mut errp = c.stderr.take().unwrap();
    let mut outp = c.stdout.take().unwrap();
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        errp.read_to_string(&mut s).unwrap();
        s
    });
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        outp.read_to_string(&mut s).unwrap();
        s
    });
    let (st, hung) = wait_or_kill(&mut c, limit);
    (st, hung, o.join().unwrap(), e.join().unwrap())
}

// ---------------------------------------------------------------------------------------------
// A printing thread, rolled back and restored.

static ROLLED: AtomicU32 = AtomicU32::new(0);

fn printer(lines: u64) -> u64 {
    let mut x = 1.000_001f64;
    for k in 0..lines {
        x = x * 1.000_000_3 + 0.5;
        println!("{k} {x:.9} {:e} {:?} {:>20.5}", x * 3.3, x / 7.0, x.sqrt());
    }
    x.to_bits()
}

fn child_printer() {
    let r = crthreads::main(move || {
        // Read inside: what is allocated before crthreads::main is not persistent.
        let mode = std::env::var("MODE").unwrap();
        let lines: u64 = std::env::var("LINES").unwrap().parse().unwrap();
        let p = crthreads::thread::spawn(move || printer(lines));
        if mode == "rollback" {
            crthreads::thread::sleep(Duration::from_millis(20));
            crthreads::checkpoint().unwrap();
            if ROLLED.load(Ordering::SeqCst) == 0 {
                crthreads::thread::sleep(Duration::from_millis(20));
                ROLLED.store(1, Ordering::SeqCst);
                let e = crthreads::rollback();
                panic!("rollback returned {e:?}");
            }
        }
        let bits = p.join().unwrap();
        eprintln!("printer done {bits:x}");
    });
    r.unwrap();
}

fn a_printing_thread_survives_rollbacks_and_restores() {
    for tracker in ["uffd", "mprotect"] {
        for round in 0..6 {
            let t = TempDir::new("printer");
            let c = child("printer")
                .env("CRTHREADS_DIR", t.join("ck"))
                .env("CRTHREADS_TRACKER", tracker)
                .env("CRTHREADS_POLICY", "manual")
                .env("MODE", "rollback")
                .env("LINES", "20000")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (st, hung, _out, err) = output(c, Duration::from_secs(120));
            assert!(!hung && st.success(), "[{tracker} rollback {round}] {st:?}\n{err}");
            assert!(err.contains("printer done"), "[{tracker} rollback {round}] {err}");
        }
        for round in 0..6 {
            let t = TempDir::new("printer");
            let run = |kill: Option<Duration>| {
                let c = child("printer")
                    .env("CRTHREADS_DIR", t.join("ck"))
                    .env("CRTHREADS_TRACKER", tracker)
                    .env("CRTHREADS_POLICY", "interval")
                    .env("CRTHREADS_INTERVAL", "0.01")
                    .env("MODE", "restore")
                    .env("LINES", "60000")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                output(c, kill.unwrap_or(Duration::from_secs(120)))
            };
            let (_, killed, _, _) = run(Some(Duration::from_millis(300 + 50 * round)));
            if !killed {
                continue; // finished before the kill: nothing to resume
            }
            let (st, hung, _out, err) = run(None);
            assert!(!hung && st.success(), "[{tracker} restore {round}] {st:?}\n{err}");
            assert!(err.contains("printer done"), "[{tracker} restore {round}] {err}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Spawning into the slots of threads a rollback retired.

static STARTS: AtomicU64 = AtomicU64::new(0);
const K: u64 = 24;

fn child_respawn() {
    let r = crthreads::main(|| {
        crthreads::checkpoint().unwrap();
        if ROLLED.load(Ordering::SeqCst) == 0 {
            for _ in 0..K {
                std::mem::forget(crthreads::thread::spawn(|| {
                    loop {
                        crthreads::thread::sleep(Duration::from_millis(1));
                    }
                }));
            }
            // At once, the OS threads of some are still starting: the rollback must retire
            // them too, and a spawn after it must not share their slots.
            let pause: u64 = std::env::var("PAUSE_MS").unwrap().parse().unwrap();
            crthreads::thread::sleep(Duration::from_millis(pause));
            ROLLED.store(1, Ordering::SeqCst);
            let e = crthreads::rollback();
            panic!("rollback returned {e:?}");
        }
        let hs: Vec<_> = (0..K)
            .map(|_| {
                crthreads::thread::spawn(|| {
                    STARTS.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        crthreads::thread::sleep(Duration::from_millis(50));
        STARTS.load(Ordering::SeqCst)
    });
    println!("starts {}", r.unwrap());
}

fn threads_spawned_after_a_rollback_run_once() {
    for round in 0..24 {
        let t = TempDir::new("respawn");
        let mut c = child("respawn");
        c.env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_POLICY", "manual")
            .env("PAUSE_MS", if round % 2 == 0 { "20" } else { "0" });
        if round % 4 == 3 && crthreads::failpoint::ENABLED {
            // Every OS thread slow to start: the rollback comes before any of them ran.
            c.env("CRTHREADS_FAILPOINT_START_DELAY_MS", "30");
        }
        let c = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (st, hung, out, err) = output(c, Duration::from_secs(60));
        assert!(!hung && st.success(), "[round {round}] {st:?}\n{out}\n{err}");
        assert_eq!(out.trim(), format!("starts {K}"), "[round {round}] {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// A forked child of a persistent thread.

fn child_fork() {
    let r = crthreads::main(|| {
        let m = crthreads::sync::Mutex::new(0u32);
        // SAFETY: the child only locks, unlocks and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            for _ in 0..100 {
                *m.lock().unwrap() += 1;
            }
            // SAFETY: leaving the child without running the parent's exit handlers.
            unsafe { libc::_exit(if *m.lock().unwrap() == 100 { 0 } else { 1 }) };
        }
        let mut st = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0
    });
    println!("child ok {}", r.unwrap());
}

fn a_child_forked_by_a_persistent_thread_locks_and_unlocks() {
    for policy in ["every-release", "manual"] {
        let t = TempDir::new("forkchild");
        let c = child("fork")
            .env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_POLICY", policy)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (st, hung, out, err) = output(c, Duration::from_secs(30));
        assert!(!hung && st.success(), "[{policy}] {st:?}\n{out}\n{err}");
        assert_eq!(out.trim(), "child ok true", "[{policy}] {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// A hook that asks for a checkpoint.

static NESTED: AtomicU32 = AtomicU32::new(0);

fn nested_checkpoint() {
    if matches!(crthreads::checkpoint(), Err(crthreads::Error::Reentered { .. })) {
        NESTED.fetch_add(1, Ordering::SeqCst);
    }
}

fn child_hook() {
    crthreads::hooks::before_checkpoint(nested_checkpoint).unwrap();
    if std::env::var("THREADS").is_ok() {
        let r = crthreads::main(|| crthreads::checkpoint().map(|s| s.seq));
        println!("outer {:?} refused {}", r.unwrap().ok(), NESTED.load(Ordering::SeqCst));
    } else {
        crthreads::init_from_env().unwrap();
        let r = crthreads::checkpoint().map(|s| s.seq);
        println!("outer {:?} refused {}", r.ok(), NESTED.load(Ordering::SeqCst));
    }
}

fn a_checkpoint_asked_for_in_a_hook_is_refused() {
    for threads in [false, true] {
        let t = TempDir::new("hookck");
        let mut c = child("hook");
        c.env("CRTHREADS_DIR", t.join("ck")).env("CRTHREADS_POLICY", "manual");
        if threads {
            c.env("THREADS", "1");
        }
        let c = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (st, hung, out, err) = output(c, Duration::from_secs(30));
        assert!(!hung && st.success(), "[threads {threads}] {st:?}\n{out}\n{err}");
        assert_eq!(out.trim(), "outer Some(1) refused 1", "[threads {threads}] {err}");
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint requests from the moment the request handler is installed.

/// The main persistent thread has started (volatile: this test never restores).
static MAIN_RUNS: AtomicBool = AtomicBool::new(false);

fn child_early() {
    let sig = libc::SIGRTMIN() + 9;
    // Ignored until crthreads installs its handler (the default action would end the process).
    // SAFETY: setting a disposition before any other thread runs.
    unsafe { libc::signal(sig, libc::SIG_IGN) };
    std::thread::spawn(move || {
        // SAFETY: a sigaction query into a zeroed local, then signals to this process; nothing
        // here allocates (this thread is not a persistent one).
        unsafe {
            loop {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old);
                if old.sa_sigaction != libc::SIG_IGN {
                    break;
                }
                std::hint::spin_loop();
            }
            // Until the main persistent thread runs (a flood that went on would keep it parked:
            // every request is served by an attempt of its own).
            while !MAIN_RUNS.load(Ordering::SeqCst) {
                libc::kill(libc::getpid(), sig);
            }
        }
    });
    let r = crthreads::main(|| {
        MAIN_RUNS.store(true, Ordering::SeqCst);
        crthreads::checkpoint().map(|s| s.threads_parked)
    });
    println!("main {:?}", r.unwrap());
}

fn checkpoints_asked_for_while_the_main_thread_is_created_wait_for_it() {
    for run in 0..40 {
        let t = TempDir::new("early");
        let c = child("early")
            .env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_POLICY", "manual")
            .env("CRTHREADS_STATS", t.join("stats"))
            .env("CRTHREADS_KEEP", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (st, hung, out, err) = output(c, Duration::from_secs(30));
        assert!(!hung && st.success(), "[run {run}] {st:?}\n{out}\n{err}");
        assert_eq!(out.trim(), "main Ok(1)", "[run {run}] {err}");
        // Every checkpoint this run took holds the main thread.
        let stats = std::fs::read_to_string(t.join("stats")).unwrap_or_default();
        for l in stats.lines() {
            assert!(l.contains("\"threads_parked\":1,"), "[run {run}] a checkpoint without the main thread: {l}");
        }
    }
}

fn main() {
    match role().as_deref() {
        Some("early") => return child_early(),
        Some("printer") => return child_printer(),
        Some("respawn") => return child_respawn(),
        Some("fork") => return child_fork(),
        Some("hook") => return child_hook(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("a_printing_thread_survives_rollbacks_and_restores", a_printing_thread_survives_rollbacks_and_restores),
        ("threads_spawned_after_a_rollback_run_once", threads_spawned_after_a_rollback_run_once),
        (
            "a_child_forked_by_a_persistent_thread_locks_and_unlocks",
            a_child_forked_by_a_persistent_thread_locks_and_unlocks,
        ),
        ("a_checkpoint_asked_for_in_a_hook_is_refused", a_checkpoint_asked_for_in_a_hook_is_refused),
        (
            "checkpoints_asked_for_while_the_main_thread_is_created_wait_for_it",
            checkpoints_asked_for_while_the_main_thread_is_created_wait_for_it,
        ),
    ]);
}
