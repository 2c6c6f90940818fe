//! The one-time re-execution without address-space randomisation: a program that executes
//! itself again (`/proc/self/exe`) gets a fixed layout again and resumes; and the process keeps
//! the name `ps` shows, not `exe`.

mod common;

use std::os::unix::process::CommandExt;

use common::{TempDir, child, killed, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn comm() -> String {
    std::fs::read_to_string("/proc/self/comm").unwrap().trim().to_string()
}

/// Child: phase 1 checkpoints and executes itself (same pid) as phase 2, which must restore
/// it, checkpoint again and crash.
fn child_selfexec() {
    let phase = std::env::var("PHASE").unwrap_or_default();
    let start = crthreads::init_from_env().unwrap();
    // SAFETY: the root holds a plain integer.
    let mut n = unsafe { crthreads::root(|| 0u64) }.unwrap();
    println!("phase {phase} pid {} {start:?} n={} comm={}", std::process::id(), *n, comm());
    *n += 1;
    crthreads::checkpoint().unwrap();
    if phase == "1" {
        let e = std::process::Command::new("/proc/self/exe").env("PHASE", "2").exec();
        panic!("exec: {e}");
    }
    // SAFETY: crash as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

fn a_program_that_executes_itself_resumes() {
    let t = TempDir::new("selfexec");
    let o = child("selfexec").env("CRTHREADS_DIR", t.join("ck")).env("PHASE", "1").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(killed(&o.status), "{s} {err}");
    let pid =
        |p: &str| s.lines().find(|l| l.starts_with(p)).and_then(|l| l.split_whitespace().nth(3)).unwrap().to_string();
    assert!(s.contains("phase 1") && s.contains("Fresh n=0"), "{s}");
    assert!(
        s.contains("phase 2") && s.contains("Restored { seq: 1 } n=1"),
        "phase 2 restores phase 1's checkpoint: {s} {err}"
    );
    assert_eq!(pid("phase 1"), pid("phase 2"), "the same process");
    assert!(!err.contains("warning"), "{err}");
    let o = child("selfexec").env("CRTHREADS_DIR", t.join("ck")).env("PHASE", "2").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("Restored { seq: 2 } n=2"), "and a later run resumes: {s}");
}

fn the_process_keeps_its_name() {
    let t = TempDir::new("comm");
    let o = child("selfexec").env("CRTHREADS_DIR", t.join("ck")).env("PHASE", "2").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    let exe = std::env::current_exe().unwrap();
    let name: String = exe.file_name().unwrap().to_string_lossy().chars().take(15).collect();
    assert!(s.contains(&format!("comm={name}")), "ps shows {name:?}, not `exe`: {s}");
}

fn main() {
    if role().as_deref() == Some("selfexec") {
        return child_selfexec();
    }
    run_tests(&[
        ("a_program_that_executes_itself_resumes", a_program_that_executes_itself_resumes),
        ("the_process_keeps_its_name", the_process_keeps_its_name),
    ]);
}
