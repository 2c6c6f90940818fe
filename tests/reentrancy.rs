//! `checkpoint()` called from a signal handler: when the handler interrupted crthreads itself in
//! the same thread (inside `malloc`, `free`, or a checkpoint), the call is refused with
//! `Error::Reentered` instead of deadlocking; otherwise it checkpoints. Either way the heap
//! stays consistent, in the running process and in what a restore brings back.
//!
//! The child allocates and frees in a tight loop while a timer signal fires every 3 ms and
//! its handler calls `checkpoint()`. Before this was handled, the first signal that landed
//! inside `malloc` deadlocked the process forever (the parent kills a child that hangs, and the
//! test fails).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Rng, TempDir, child, killed, role, run_tests, wait_or_kill};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

static OK: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    match crthreads::checkpoint() {
        Ok(_) => OK.fetch_add(1, Ordering::Relaxed),
        Err(crthreads::Error::Reentered { .. }) => REFUSED.fetch_add(1, Ordering::Relaxed),
        Err(_) => OTHER.fetch_add(1, Ordering::Relaxed),
    };
}

fn timer(us: i64) {
    let t = libc::itimerval {
        it_interval: libc::timeval { tv_sec: 0, tv_usec: us },
        it_value: libc::timeval { tv_sec: 0, tv_usec: us },
    };
    // SAFETY: a valid itimerval; no old value wanted.
    unsafe { libc::setitimer(libc::ITIMER_REAL, &t, core::ptr::null_mut()) };
}

struct State {
    #[allow(clippy::vec_box)] // each item its own allocation, on purpose: the test churns malloc
    items: Vec<Box<[u64; 6]>>,
    total: u64,
}

fn child_churn() {
    crthreads::init(crthreads::Config::from_env().unwrap().capacity(256 << 20)).unwrap();
    // SAFETY: State holds only persistent data.
    let mut s = unsafe { crthreads::root(|| State { items: Vec::new(), total: 0 }) }.unwrap();
    // SAFETY: installing a plain handler; SA_RESTART keeps system calls going.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGALRM, &sa, core::ptr::null_mut());
    }
    let die_at: u64 = std::env::var("DIE_AT").ok().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    let mut rng = Rng(9);
    timer(3000);
    for i in 0..300_000u64 {
        if i == die_at {
            // SAFETY: crash as a killed process would, in the middle of the churn.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        let r = rng.next();
        if r % 3 == 0 && !s.items.is_empty() {
            let k = (r as usize / 3) % s.items.len();
            let b = s.items.swap_remove(k);
            s.total -= b[0];
        } else {
            let mut v: Vec<u8> = Vec::with_capacity((r % 700) as usize);
            v.push(1);
            s.items.push(Box::new([i, r, 0, 0, 0, v.len() as u64]));
            s.total += i;
        }
    }
    timer(0);
    let ok = crthreads::heap::check_invariants().is_ok();
    let (o, r, x) = (OK.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed), OTHER.load(Ordering::Relaxed));
    println!("done ok={o} refused={r} other={x} invariants={ok}");
    crthreads::checkpoint().unwrap();
    // SAFETY: crash as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

fn child_verify() {
    let start = crthreads::init(crthreads::Config::from_env().unwrap().capacity(256 << 20)).unwrap();
    let inv = crthreads::heap::check_invariants().map(|_| ()).map_err(|e| e.replace(' ', "_"));
    // SAFETY: as the writer.
    let s = unsafe { crthreads::root(|| State { items: Vec::new(), total: 0 }) }.unwrap();
    let sum: u64 = s.items.iter().map(|b| b[0]).sum();
    println!("{start:?} invariants={inv:?} consistent={}", sum == s.total);
}

fn run(dir: &std::path::Path, die_at: Option<u64>) -> String {
    let mut c = child("churn");
    c.env("CRTHREADS_DIR", dir).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    if let Some(d) = die_at {
        c.env("DIE_AT", d.to_string());
    }
    let mut p = c.spawn().unwrap();
    let (st, hung) = wait_or_kill(&mut p, Duration::from_secs(120));
    let mut out = String::new();
    std::io::Read::read_to_string(p.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(!hung, "the child hung (a checkpoint from the signal handler deadlocked): {out}");
    assert!(killed(&st), "{out}");
    out
}

fn checkpoints_from_signal_handlers_never_deadlock() {
    let t = TempDir::new("reenter");
    let dir = t.join("ck");
    let out = run(&dir, None);
    assert!(out.contains("other=0 invariants=true"), "{out}");
    let ok: u64 = out.split("ok=").nth(1).and_then(|v| v.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(ok > 0, "some handler checkpoints went through: {out}");
    let v = child("verify").env("CRTHREADS_DIR", &dir).output().unwrap();
    let s = String::from_utf8_lossy(&v.stdout);
    assert!(s.contains("invariants=Ok(()) consistent=true"), "{s} {}", String::from_utf8_lossy(&v.stderr));
}

fn a_checkpoint_taken_inside_the_churn_restores_a_consistent_heap() {
    for die_at in [120_000, 250_000] {
        let t = TempDir::new("reenter-kill");
        let dir = t.join("ck");
        run(&dir, Some(die_at));
        let v = child("verify").env("CRTHREADS_DIR", &dir).output().unwrap();
        let s = String::from_utf8_lossy(&v.stdout);
        // The program's own data may be mid-update at an asynchronous checkpoint; the heap may not.
        assert!(
            s.contains("Restored") && s.contains("invariants=Ok(())"),
            "{s} {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

fn main() {
    match role().as_deref() {
        Some("churn") => return child_churn(),
        Some("verify") => return child_verify(),
        _ => {}
    }
    run_tests(&[
        ("checkpoints_from_signal_handlers_never_deadlock", checkpoints_from_signal_handlers_never_deadlock),
        (
            "a_checkpoint_taken_inside_the_churn_restores_a_consistent_heap",
            a_checkpoint_taken_inside_the_churn_restores_a_consistent_heap,
        ),
    ]);
}
