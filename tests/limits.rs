//! Resource limits: the persistent heap honours `RLIMIT_AS` and `RLIMIT_DATA` lowered while the
//! program runs (its region was reserved before, so the kernel cannot), a program started under
//! `ulimit -v` fits its region under the limit, an explicit capacity that cannot fit is refused
//! naming `CRTHREADS_CAPACITY`, and a full heap says which setting to raise.

mod common;

use std::os::unix::process::CommandExt;

use common::{TempDir, child, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// `VmSize` or `VmData` in bytes: what the kernel holds against `RLIMIT_AS` or `RLIMIT_DATA`.
fn usage(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 =
        s.lines().find_map(|l| l.strip_prefix(field)).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kib * 1024
}

/// Mallocs 1 MiB blocks (touching each) until malloc says no, or `max` blocks.
fn fill(max: usize) -> usize {
    let mut n = 0;
    while n < max {
        let p = crthreads::heap::malloc(1 << 20);
        if p.is_null() {
            break;
        }
        // SAFETY: a fresh block of 1 MiB.
        unsafe { p.write_bytes(1, 1 << 20) };
        n += 1;
    }
    n
}

/// Child: lowers `WHICH` to what the program uses now (counted as without the reservation)
/// plus 256 MiB, then allocates until malloc fails.
fn child_lower() {
    crthreads::init_from_env().unwrap();
    let capacity = crthreads::config().unwrap().get_capacity();
    let cap = 64u64 << 30;
    assert!(capacity.is_none(), "the default capacity");
    let (res, field) = if std::env::var("WHICH").unwrap() == "as" {
        (libc::RLIMIT_AS, "VmSize:")
    } else {
        (libc::RLIMIT_DATA, "VmData:")
    };
    let base = usage(field).saturating_sub(cap);
    let lim = libc::rlimit { rlim_cur: base + (256 << 20), rlim_max: libc::RLIM_INFINITY };
    // SAFETY: a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(res, &lim) }, 0);
    println!("got {} MiB", fill(4096));
}

/// Child: starts (under whatever limit the parent set), allocates 64 MiB, checkpoints; with
/// `CRASH`, dies; otherwise reports how it started.
fn child_start() {
    match crthreads::init_from_env() {
        Ok(s) => {
            // SAFETY: the root holds a plain integer.
            let mut r = unsafe { crthreads::root(|| 0u64) }.unwrap();
            println!("{s:?} root={} blocks={}", *r, fill(64));
            *r += 1;
            crthreads::checkpoint().unwrap();
            if std::env::var_os("CRASH").is_some() {
                // SAFETY: crash as a killed process would.
                unsafe { libc::raise(libc::SIGKILL) };
            }
        }
        Err(e) => {
            println!("refused: {e}");
            std::process::exit(1);
        }
    }
}

/// Child: a small region, filled up.
fn child_full() {
    crthreads::init(crthreads::Config::from_env().unwrap().capacity(64 << 20)).unwrap();
    println!("got {} MiB", fill(1000));
}

fn got(o: &std::process::Output) -> usize {
    let s = String::from_utf8_lossy(&o.stdout);
    s.split("got ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count: {s} {}", String::from_utf8_lossy(&o.stderr)))
}

fn limits_lowered_at_run_time_are_honoured() {
    for which in ["as", "data"] {
        let t = TempDir::new("lower");
        let o = child("lower").env("CRTHREADS_DIR", t.join("ck")).env("WHICH", which).output().unwrap();
        let n = got(&o);
        // 256 MiB of room; the runtime's own mappings take a little of it.
        assert!((128..=256).contains(&n), "{which}: {n} MiB allocated under a 256 MiB allowance: {o:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        let name = if which == "as" { "ulimit -v" } else { "ulimit -d" };
        assert!(err.contains("an allocation failed") && err.contains(name), "{which}: {err}");
    }
}

fn with_limit(cmd: &mut std::process::Command, bytes: u64) -> &mut std::process::Command {
    // SAFETY: setrlimit is async-signal-safe; the closure runs in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn a_program_started_under_ulimit_v_fits_and_resumes() {
    let t = TempDir::new("ulimit");
    let dir = t.join("ck");
    let o = with_limit(child("start").env("CRTHREADS_DIR", &dir).env("CRASH", "1"), 2 << 30).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("Fresh root=0 blocks=64"), "{s} {}", String::from_utf8_lossy(&o.stderr));
    let o = with_limit(child("start").env("CRTHREADS_DIR", &dir), 2 << 30).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("Restored { seq: 1 } root=1"), "{s} {}", String::from_utf8_lossy(&o.stderr));
}

fn an_explicit_capacity_that_does_not_fit_names_the_setting() {
    let t = TempDir::new("nofit");
    let o = with_limit(child("start").env("CRTHREADS_DIR", t.join("ck")).env("CRTHREADS_CAPACITY", "8G"), 2 << 30)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success(), "{s}");
    assert!(s.contains("refused:") && s.contains("CRTHREADS_CAPACITY") && s.contains("ulimit -v = 2 GiB"), "{s}");
}

fn a_full_heap_names_crthreads_capacity() {
    let t = TempDir::new("full");
    let o = child("full").env("CRTHREADS_DIR", t.join("ck")).output().unwrap();
    let n = got(&o);
    assert!((40..64).contains(&n), "{n} MiB from a 64 MiB region: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("the persistent heap is full") && err.contains("CRTHREADS_CAPACITY"), "{err}");
}

fn main() {
    match role().as_deref() {
        Some("lower") => return child_lower(),
        Some("start") => return child_start(),
        Some("full") => return child_full(),
        _ => {}
    }
    run_tests(&[
        ("limits_lowered_at_run_time_are_honoured", limits_lowered_at_run_time_are_honoured),
        ("a_program_started_under_ulimit_v_fits_and_resumes", a_program_started_under_ulimit_v_fits_and_resumes),
        (
            "an_explicit_capacity_that_does_not_fit_names_the_setting",
            an_explicit_capacity_that_does_not_fit_names_the_setting,
        ),
        ("a_full_heap_names_crthreads_capacity", a_full_heap_names_crthreads_capacity),
    ]);
}
