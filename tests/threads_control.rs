//! The program's control over checkpoints of a threaded program: hooks before and after a
//! checkpoint and after a restore, memory excluded from checkpoints (`crthreads::volatile`),
//! the warning for threads crthreads did not create, and abandoned attempts reported as such.
//! Each case runs in a child process started with `crthreads::main`; restores follow a real
//! SIGKILL.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use common::{TempDir, child, role, run_tests, wait_or_kill};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn run_child(role: &str, dir: &std::path::Path, limit: Duration) -> (std::process::ExitStatus, String, String) {
    let mut c = child(role)
        .env("CRTHREADS_DIR", dir)
        .env("CRTHREADS_POLICY", "manual")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut errp = c.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        errp.read_to_string(&mut err).unwrap();
        err
    });
    let (st, _) = wait_or_kill(&mut c, limit);
    let mut out = String::new();
    c.stdout.as_mut().unwrap().read_to_string(&mut out).unwrap();
    (st, out, reader.join().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Hooks.

static BEFORE: AtomicU64 = AtomicU64::new(0);
static AFTER_SEQ: AtomicU64 = AtomicU64::new(0);
static AFTER_ERR: AtomicU64 = AtomicU64::new(0);
static RESTORED_SEQ: AtomicU64 = AtomicU64::new(0);
/// A persistent counter the before-checkpoint hook increments (set by the main thread).
static COUNTER: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());

fn before() {
    BEFORE.fetch_add(1, Ordering::SeqCst);
    let p = COUNTER.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: the main thread's boxed counter, alive for the whole run; every persistent
        // thread is parked while the hook runs.
        unsafe { *p += 1 };
    }
}

fn after(r: Result<&crthreads::Stats, &crthreads::Error>) {
    match r {
        Ok(s) => AFTER_SEQ.store(s.seq, Ordering::SeqCst),
        Err(_) => {
            AFTER_ERR.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn restored(seq: u64) {
    RESTORED_SEQ.store(seq, Ordering::SeqCst);
}

fn child_hooks() {
    crthreads::hooks::before_checkpoint(before).unwrap();
    crthreads::hooks::after_checkpoint(after).unwrap();
    crthreads::hooks::after_restore(restored).unwrap();
    let r = crthreads::main(|| {
        let mut counter = Box::new(0u64);
        COUNTER.store(&mut *counter, Ordering::SeqCst);
        for i in 1..=3u64 {
            let s = crthreads::checkpoint().unwrap();
            if RESTORED_SEQ.load(Ordering::SeqCst) != 0 {
                // Resumed from the checkpoint this call asked for, in a new process.
                COUNTER.store(&mut *counter, Ordering::SeqCst);
                println!(
                    "restored {} counter {} before {}",
                    RESTORED_SEQ.load(Ordering::SeqCst),
                    *counter,
                    BEFORE.load(Ordering::SeqCst)
                );
                return;
            }
            assert_eq!(s.seq, i);
            assert_eq!(AFTER_SEQ.load(Ordering::SeqCst), s.seq, "the after hook saw this checkpoint");
            assert_eq!(BEFORE.load(Ordering::SeqCst), i);
            assert_eq!(*counter, i);
            assert!(s.threads_parked >= 1, "{s:?}");
        }
        println!("ready");
        loop {
            crthreads::thread::sleep(Duration::from_secs(1));
        }
    });
    r.unwrap();
}

fn hooks_run_around_checkpoints_and_after_a_restore() {
    let t = TempDir::new("hooks");
    let mut c = child("hooks")
        .env("CRTHREADS_DIR", t.join("ck"))
        .env("CRTHREADS_POLICY", "manual")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 6];
    c.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"ready\n");
    c.kill().unwrap();
    c.wait().unwrap();
    let (st, out, err) = run_child("hooks", &t.join("ck"), Duration::from_secs(60));
    assert!(st.success(), "{out}\n{err}");
    // The hook ran after the restore with checkpoint 3; the counter the before-hook bumped
    // before checkpoint 3 was copied is 3 in it; no checkpoint ran in the new process.
    assert_eq!(out.trim(), "restored 3 counter 3 before 0", "{err}");
}

// ---------------------------------------------------------------------------------------------
// Volatile memory.

fn child_volatile() {
    let r = crthreads::main(|| {
        let (lo, len) = crthreads::region().unwrap();
        let inside = |p: *const u8| (p as usize) >= lo && (p as usize) < lo + len;
        let first = crthreads::checkpoint().unwrap();
        let _ = first;
        let scratch: Vec<u8> = crthreads::volatile(|| vec![0x5a; 8 << 20]);
        let kept: Vec<u8> = vec![0xa5; 8 << 20];
        assert!(!inside(scratch.as_ptr()), "volatile memory lies outside the persistent region");
        assert!(inside(kept.as_ptr()));
        let s = crthreads::checkpoint().unwrap();
        // The kept 8 MiB are written (2048 pages, in one slot), the volatile 8 MiB are not.
        println!("written {} kept {} scratch {}", s.bytes_written, kept.len(), scratch.len());
        // Freeing a volatile block from outside the section goes back to volatile memory.
        drop(scratch);
        drop(kept);
    });
    r.unwrap();
}

fn volatile_memory_is_not_checkpointed() {
    let t = TempDir::new("volatile");
    let (st, out, err) = run_child("volatile", &t.join("ck"), Duration::from_secs(60));
    assert!(st.success(), "{out}\n{err}");
    let nums: Vec<u64> = out.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [written, kept, scratch] = nums[..] else { panic!("{out}") };
    assert!(written >= kept, "the persistent 8 MiB are written: {out}");
    assert!(written < kept + scratch / 2, "the volatile 8 MiB are not: {out}");
}

// ---------------------------------------------------------------------------------------------
// Threads crthreads did not create.

fn child_foreign() {
    let r = crthreads::main(|| {
        let mine = crthreads::thread::spawn(|| (0..1000).map(|i| vec![i as u8; 100]).collect::<Vec<_>>().len());
        assert_eq!(mine.join().unwrap(), 1000);
        println!("persistent thread done");
        if std::env::var("FOREIGN").is_ok() {
            let h = std::thread::spawn(|| (0..1000).map(|i| vec![i as u8; 100]).collect::<Vec<_>>().len());
            assert_eq!(h.join().unwrap(), 1000);
            println!("std thread done");
        }
    });
    r.unwrap();
    // The OS main thread carries on after the main persistent thread ended: not a warning.
    let v: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100]).collect();
    println!("after main {}", v.len());
}

fn a_thread_crthreads_did_not_create_is_named_when_it_allocates() {
    let t = TempDir::new("foreign");
    let (st, out, err) = run_child("foreign", &t.join("ck"), Duration::from_secs(60));
    assert!(st.success(), "{out}\n{err}");
    assert!(out.contains("after main 1000"), "{out}");
    assert!(!err.contains("did not start"), "no warning without a foreign thread: {err}");

    let mut c = child("foreign")
        .env("CRTHREADS_DIR", t.join("ck2"))
        .env("FOREIGN", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (st, _) = wait_or_kill(&mut c, Duration::from_secs(60));
    let mut err = String::new();
    c.stderr.as_mut().unwrap().read_to_string(&mut err).unwrap();
    assert!(st.success(), "{err}");
    assert_eq!(err.matches("crthreads::thread::spawn did not start").count(), 1, "warned once: {err}");
    assert!(err.contains("Start it with crthreads::thread::spawn"), "says what to do: {err}");
}

// ---------------------------------------------------------------------------------------------
// Abandoned attempts.

fn child_abandon() {
    crthreads::hooks::after_checkpoint(after).unwrap();
    let r = crthreads::main(|| {
        let mut fds = [0; 2];
        // SAFETY: a valid array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let rd = fds[0];
        // A thread blocked in a system call crthreads does not know cannot be parked.
        let blocked = crthreads::thread::spawn(move || {
            let mut b = [0u8; 1];
            // SAFETY: reading into a valid buffer from our pipe.
            unsafe { libc::read(rd, b.as_mut_ptr().cast(), 1) }
        });
        // Until the thread is inside read(2), it can still be parked (or preempted) and the
        // checkpoint commits: ask again until one is abandoned.
        let mut committed = 0;
        let e = loop {
            match crthreads::checkpoint() {
                Ok(_) => {
                    committed += 1;
                    assert!(committed < 50, "the blocked thread never made an attempt fail");
                    crthreads::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => break e,
            }
        };
        println!("first: {e}");
        assert!(matches!(e, crthreads::Error::Abandoned { .. }), "{e}");
        assert_eq!(AFTER_ERR.load(Ordering::SeqCst), 1, "the after hook saw the abandoned attempt");
        // SAFETY: writing one byte into our pipe.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(blocked.join().unwrap(), 1);
        let s = crthreads::checkpoint().unwrap();
        println!("then: abandoned {}", s.abandoned);
        assert_eq!(s.seq, committed + 1);
        assert_eq!(s.abandoned, 1);
    });
    r.unwrap();
}

fn an_attempt_that_cannot_gather_every_thread_is_abandoned_and_reported() {
    let t = TempDir::new("abandon");
    let (st, out, err) = run_child("abandon", &t.join("ck"), Duration::from_secs(60));
    assert!(st.success(), "{out}\n{err}");
    assert!(out.contains("was abandoned: 1 thread(s) did not reach a safepoint"), "{out}");
    assert!(out.contains("the previous checkpoint stays valid"), "{out}");
    assert!(out.contains("then: abandoned 1"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// In-process rollback.

static ROLLED: AtomicU64 = AtomicU64::new(0);
static AT_GATHER: AtomicU64 = AtomicU64::new(0);
static WATCHED: AtomicPtr<std::sync::atomic::AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

fn note_gather() {
    let p = WATCHED.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: the main thread's counter, alive for the whole run.
        AT_GATHER.store(unsafe { &*p }.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn note_rollback(seq: u64) {
    ROLLED.store(seq, Ordering::SeqCst);
}

fn child_rollback() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    crthreads::hooks::before_checkpoint(note_gather).unwrap();
    crthreads::hooks::after_restore(note_rollback).unwrap();
    let r = crthreads::main(|| {
        let counter = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let b_ran = Arc::new(AtomicBool::new(false));
        WATCHED.store(Arc::as_ptr(&counter) as *mut _, Ordering::SeqCst);
        let a = {
            let (c, stop) = (counter.clone(), stop.clone());
            crthreads::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    crthreads::thread::sleep(Duration::from_millis(2));
                    c.fetch_add(1, Ordering::SeqCst);
                }
                c.load(Ordering::SeqCst)
            })
        };
        crthreads::thread::sleep(Duration::from_millis(50));
        let s = crthreads::checkpoint().unwrap();
        let seen = counter.load(Ordering::SeqCst);
        if ROLLED.load(Ordering::SeqCst) != 0 {
            let at_gather = AT_GATHER.load(Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
            let last = a.join().unwrap();
            let next = crthreads::checkpoint().unwrap().seq;
            println!(
                "rolled back to {} seq {} restored {} at_gather {} seen {} b_ran {} last {} next {}",
                ROLLED.load(Ordering::SeqCst),
                s.seq,
                s.restored,
                at_gather,
                seen,
                b_ran.load(Ordering::SeqCst),
                last,
                next
            );
            return;
        }
        assert_eq!(s.seq, 1);
        let _b = {
            let (flag, stop) = (b_ran.clone(), stop.clone());
            crthreads::thread::spawn(move || {
                flag.store(true, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    crthreads::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        crthreads::thread::sleep(Duration::from_millis(200));
        println!("before rollback {} b_ran {}", counter.load(Ordering::SeqCst), b_ran.load(Ordering::SeqCst));
        let e = crthreads::rollback();
        panic!("rollback returned: {e:?}");
    });
    r.unwrap();
}

fn rollback_restores_every_thread_in_process() {
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("rollback");
        let mut c = child("rollback")
            .env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_POLICY", "manual")
            .env("CRTHREADS_TRACKER", tracker)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (st, hung) = wait_or_kill(&mut c, Duration::from_secs(60));
        let mut out = String::new();
        c.stdout.as_mut().unwrap().read_to_string(&mut out).unwrap();
        let mut err = String::new();
        c.stderr.as_mut().unwrap().read_to_string(&mut err).unwrap();
        assert!(!hung && st.success(), "[{tracker}] {st:?}\n{out}\n{err}");
        let num = |key: &str, line: &str| -> u64 {
            let w: Vec<&str> = line.split_whitespace().collect();
            let i = w.iter().position(|x| *x == key).unwrap_or_else(|| panic!("{key} in {line}"));
            w[i + 1].parse().unwrap_or_else(|_| panic!("{key} in {line}"))
        };
        let mut lines = out.lines();
        let before = lines.next().unwrap_or_else(|| panic!("[{tracker}] {out}\n{err}"));
        let after = lines.next().unwrap_or_else(|| panic!("[{tracker}] {out}\n{err}"));
        assert!(before.contains("b_ran true"), "{before}");
        assert_eq!(num("to", after), 1, "rolled back to checkpoint 1: {after}");
        assert_eq!(num("seq", after), 1, "checkpoint() resumed as restored from 1: {after}");
        assert!(after.contains("restored true"), "{after}");
        assert!(after.contains("b_ran false"), "the thread started after the checkpoint is gone: {after}");
        let (g, seen, b) = (num("at_gather", after), num("seen", after), num("rollback", before));
        assert!(
            seen >= g && seen < b,
            "the counter went back to its checkpointed value {g}, then on: {after} / {before}"
        );
        assert!(num("last", after) >= seen, "{after}");
        assert_eq!(num("next", after), 2, "checkpoints go on after a rollback: {after}");
    }
}

fn child_rollback_heap() {
    crthreads::init_from_env().unwrap();
    // SAFETY: the root holds a Vec of the persistent heap.
    let mut v = unsafe { crthreads::root(Vec::<u64>::new) }.unwrap();
    v.extend(0..1000);
    assert_eq!(crthreads::checkpoint().unwrap().seq, 1);
    v.iter_mut().for_each(|x| *x *= 3);
    v.extend(0..100_000);
    let seq = crthreads::rollback().unwrap();
    println!("rolled back to {seq}: len {} sum {}", v.len(), v.iter().sum::<u64>());
    // The heap works after the rollback.
    v.extend(0..10);
    let s = crthreads::checkpoint().unwrap();
    println!("then checkpoint {} len {}", s.seq, v.len());
}

fn rollback_without_threads_restores_the_heap() {
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("rollheap");
        let mut c = child("rollback-heap")
            .env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_TRACKER", tracker)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (st, _) = wait_or_kill(&mut c, Duration::from_secs(60));
        let mut out = String::new();
        c.stdout.as_mut().unwrap().read_to_string(&mut out).unwrap();
        let mut err = String::new();
        c.stderr.as_mut().unwrap().read_to_string(&mut err).unwrap();
        assert!(st.success(), "[{tracker}] {out}\n{err}");
        assert!(out.contains("rolled back to 1: len 1000 sum 499500"), "[{tracker}] {out}");
        assert!(out.contains("then checkpoint 2 len 1010"), "[{tracker}] {out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Blocking calls.

fn child_blocking() {
    let r = crthreads::main(|| {
        let reader = crthreads::thread::spawn(|| {
            let mut buf = vec![0u8; 64];
            let n = crthreads::thread::blocking(|| {
                // SAFETY: reading standard input into our buffer.
                unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) }
            });
            assert!(n > 0, "read failed: {n}");
            String::from_utf8_lossy(&buf[..n as usize]).trim().to_string()
        });
        crthreads::thread::sleep(Duration::from_millis(50));
        // The reader is blocked in read(2): checkpoints do not wait for it.
        for i in 1..=3 {
            let s = crthreads::checkpoint().unwrap();
            if s.restored {
                assert_eq!(s.seq, 3, "resumed in the last checkpoint: {s:?}");
                break;
            }
            assert_eq!(s.seq, i);
            assert_eq!(s.abandoned, 0);
            assert_eq!(s.threads_parked, 2, "{s:?}");
        }
        println!("checkpointed");
        let line = reader.join().unwrap();
        println!("read {line}");
    });
    r.unwrap();
}

fn a_blocking_call_does_not_delay_checkpoints_and_is_repeated_after_a_restore() {
    let t = TempDir::new("blocking");
    // First run: stdin stays open and empty, so the reader blocks; kill it once checkpointed.
    let mut c = child("blocking")
        .env("CRTHREADS_DIR", t.join("ck"))
        .env("CRTHREADS_POLICY", "manual")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = [0u8; 13];
    c.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"checkpointed\n");
    c.kill().unwrap();
    c.wait().unwrap();
    // Second run: restored inside the blocking call, the reader reads again.
    let mut c = child("blocking")
        .env("CRTHREADS_DIR", t.join("ck"))
        .env("CRTHREADS_POLICY", "manual")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        c.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    }
    let (st, hung) = wait_or_kill(&mut c, Duration::from_secs(60));
    let mut out = String::new();
    c.stdout.as_mut().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    c.stderr.as_mut().unwrap().read_to_string(&mut err).unwrap();
    assert!(!hung && st.success(), "{out}\n{err}");
    // Resumed past the checkpoints (the main thread was parked in the last one).
    assert_eq!(out.trim(), "checkpointed\nread hello", "{err}");
}

// ---------------------------------------------------------------------------------------------
// Where preemption may park a thread.

#[inline(never)]
fn user_compute(n: u64) -> u64 {
    (0..n).fold(1u64, |a, k| a.wrapping_mul(31).wrapping_add(k))
}

fn child_preemptible() {
    let r = crthreads::main(|| {
        let probe = |what: &str, addr: usize| println!("{what} {}", crthreads::thread::preemptible_address(addr));
        probe("user", user_compute as *const () as usize);
        let w: fn(&mut std::io::Stdout, &[u8]) -> std::io::Result<usize> = <std::io::Stdout as std::io::Write>::write;
        probe("print", w as *const () as usize);
        probe("alloc", std::alloc::alloc as *const () as usize);
        let cr: unsafe fn(&crthreads::CrAlloc, std::alloc::Layout) -> *mut u8 =
            <crthreads::CrAlloc as std::alloc::GlobalAlloc>::alloc;
        probe("cralloc", cr as *const () as usize);
        probe("vecpush", Vec::<u64>::push as *const () as usize);
        probe("checkpoint", crthreads::checkpoint as *const () as usize);
        std::hint::black_box(user_compute(10));
    });
    r.unwrap();
}

fn preemption_parks_only_in_the_programs_own_code() {
    let t = TempDir::new("preemptible");
    let (st, out, err) = run_child("preemptible", &t.join("ck"), Duration::from_secs(60));
    assert!(st.success(), "{out}\n{err}");
    let expect = "user true\nprint false\nalloc false\ncralloc false\nvecpush false\ncheckpoint false";
    assert_eq!(out.trim(), expect, "{err}");
}

fn main() {
    match role().as_deref() {
        Some("hooks") => return child_hooks(),
        Some("volatile") => return child_volatile(),
        Some("foreign") => return child_foreign(),
        Some("abandon") => return child_abandon(),
        Some("rollback") => return child_rollback(),
        Some("blocking") => return child_blocking(),
        Some("preemptible") => return child_preemptible(),
        Some("rollback-heap") => return child_rollback_heap(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("preemption_parks_only_in_the_programs_own_code", preemption_parks_only_in_the_programs_own_code),
        (
            "a_blocking_call_does_not_delay_checkpoints_and_is_repeated_after_a_restore",
            a_blocking_call_does_not_delay_checkpoints_and_is_repeated_after_a_restore,
        ),
        ("rollback_restores_every_thread_in_process", rollback_restores_every_thread_in_process),
        ("rollback_without_threads_restores_the_heap", rollback_without_threads_restores_the_heap),
        ("hooks_run_around_checkpoints_and_after_a_restore", hooks_run_around_checkpoints_and_after_a_restore),
        ("volatile_memory_is_not_checkpointed", volatile_memory_is_not_checkpointed),
        (
            "a_thread_crthreads_did_not_create_is_named_when_it_allocates",
            a_thread_crthreads_did_not_create_is_named_when_it_allocates,
        ),
        (
            "an_attempt_that_cannot_gather_every_thread_is_abandoned_and_reported",
            an_attempt_that_cannot_gather_every_thread_is_abandoned_and_reported,
        ),
    ]);
}
