//! A Rust program's SIGSEGV handling under the mprotect tracker, where every heap write after a
//! checkpoint faults into crthreads' handler.
//!
//! - A handler the program installed *before* crthreads started stays the program's: queries
//!   report it, tracked heap writes never reach it, and a genuine fault does, with its address.
//! - A handler installed *after* start-up behaves the same.
//! - A stack overflow, in a spawned thread or in the main thread, still prints Rust's
//!   "has overflowed its stack" and kills the process with the same signal as without
//!   crthreads (Rust's own SIGSEGV handler, installed before `main`, is the program's handler).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TempDir, child, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// The invalid address the children write to.
const BAD: usize = 0x10;

fn init() {
    let dir = std::env::var("DIR").unwrap();
    let cfg = crthreads::Config::from_env().unwrap().dir(dir).tracker(crthreads::TrackerKind::Mprotect);
    crthreads::init(cfg).unwrap();
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// The program's handler: reports the address (raw bytes on stderr, no allocation) and exits 77.
extern "C" fn handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 18];
    // SAFETY: the kernel's siginfo for a SIGSEGV.
    let addr = unsafe { (*info).si_addr() } as usize;
    crthreads::sys::write_stderr(&[b"handler: addr=", crthreads::sys::hex(addr, &mut b), b"\n"]);
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(77) };
}

fn install_handler() {
    // SAFETY: an all-zero sigaction is valid; the handler is async-signal-safe.
    unsafe {
        let mut a: libc::sigaction = core::mem::zeroed();
        a.sa_sigaction = handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        a.sa_flags = libc::SA_SIGINFO;
        assert_eq!(libc::sigaction(libc::SIGSEGV, &a, core::ptr::null_mut()), 0);
    }
}

fn query() -> usize {
    // SAFETY: a query into a valid struct.
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGSEGV, core::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Checkpoints, writes every page of a heap block (each write a tracking fault), then writes
/// to an invalid address.
fn tracked_writes_then_a_fault() {
    let mut v = vec![1u8; 64 * 4096];
    crthreads::checkpoint().unwrap();
    for i in (0..v.len()).step_by(4096) {
        v[i] = 2;
    }
    assert_eq!(CALLS.load(Ordering::Relaxed), 0, "the program's handler ran for tracked writes");
    eprintln!("tracked writes ok");
    // SAFETY: deliberately invalid: a genuine fault for the program's handler.
    unsafe { (BAD as *mut u8).write_volatile(1) };
    eprintln!("survived a wild write");
}

fn child_before() {
    install_handler();
    let mine = query();
    init();
    assert_eq!(query(), mine, "sigaction(SIGSEGV, NULL, &old) does not report the program's handler");
    tracked_writes_then_a_fault();
}

fn child_after() {
    init();
    install_handler();
    assert_eq!(query(), handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize);
    tracked_writes_then_a_fault();
}

/// Recurses until the stack overflows.
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 32]);
    deep(n + 1).wrapping_add(pad[n as usize % 32])
}

fn child_overflow() {
    if std::env::var_os("WITH_CRTHREADS").is_some() {
        init();
        let mut v = vec![1u8; 16 * 4096];
        crthreads::checkpoint().unwrap();
        v[3 * 4096] = 2;
        eprintln!("tracked writes ok");
    }
    if std::env::var("WHERE").unwrap() == "thread" {
        let t = std::thread::Builder::new().name("deep".into()).stack_size(256 << 10).spawn(|| deep(0)).unwrap();
        let _ = t.join();
    } else {
        deep(0);
    }
    eprintln!("survived a stack overflow");
}

fn output(role: &str, dir: &TempDir, env: &[(&str, &str)]) -> (Output, String) {
    let o = child(role).env("DIR", dir.join("ckpt")).envs(env.iter().copied()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, err)
}

fn handler_installed_before_start_gets_genuine_faults_only() {
    let d = TempDir::new("segv-before");
    let (o, err) = output("before", &d, &[]);
    assert!(err.contains("tracked writes ok"), "{err}");
    assert!(err.contains(&format!("handler: addr={BAD:#x}")), "{err}");
    assert_eq!(o.status.code(), Some(77), "{err}");
}

fn handler_installed_after_start_gets_genuine_faults_only() {
    let d = TempDir::new("segv-after");
    let (o, err) = output("after", &d, &[]);
    assert!(err.contains("tracked writes ok"), "{err}");
    assert!(err.contains(&format!("handler: addr={BAD:#x}")), "{err}");
    assert_eq!(o.status.code(), Some(77), "{err}");
}

fn stack_overflow_is_reported_as_without_crthreads() {
    for place in ["thread", "main"] {
        let d = TempDir::new("overflow");
        let (plain, plain_err) = output("overflow", &d, &[("WHERE", place)]);
        let (with, with_err) = output("overflow", &d, &[("WHERE", place), ("WITH_CRTHREADS", "1")]);
        assert!(plain_err.contains("has overflowed its stack"), "[{place}, without crthreads] {plain_err}");
        assert!(with_err.contains("tracked writes ok"), "[{place}] {with_err}");
        assert!(with_err.contains("has overflowed its stack"), "[{place}, with crthreads] {with_err}");
        assert!(!with_err.contains("survived"), "[{place}] {with_err}");
        let sig = plain.status.signal();
        assert!(sig == Some(libc::SIGABRT) || sig == Some(libc::SIGSEGV), "[{place}] without crthreads: {plain:?}");
        assert_eq!(with.status.signal(), sig, "[{place}] {with_err}");
    }
}

fn main() {
    match role().as_deref() {
        Some("before") => return child_before(),
        Some("after") => return child_after(),
        Some("overflow") => return child_overflow(),
        _ => {}
    }
    run_tests(&[
        (
            "handler_installed_before_start_gets_genuine_faults_only",
            handler_installed_before_start_gets_genuine_faults_only,
        ),
        (
            "handler_installed_after_start_gets_genuine_faults_only",
            handler_installed_after_start_gets_genuine_faults_only,
        ),
        ("stack_overflow_is_reported_as_without_crthreads", stack_overflow_is_reported_as_without_crthreads),
    ]);
}
