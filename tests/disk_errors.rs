//! A checkpoint that cannot be written (disk full, read-only file system) fails cleanly: the
//! program gets an error and a warning and keeps running, the previous checkpoint stays
//! restorable, and a later checkpoint succeeds once there is room again.
//!
//! These tests mount small tmpfs file systems, which needs root; without it they say so and
//! are skipped.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, child, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

struct State {
    small: Vec<u64>,
    big: Option<Vec<u8>>,
}

const N: u64 = 2000;

fn init() -> crthreads::Start {
    let dir = std::env::var("DIR").unwrap();
    crthreads::init(crthreads::Config::from_env().unwrap().dir(dir).capacity(64 << 20).keep(true)).unwrap()
}

fn set(s: &mut State, k: u64) {
    for (i, v) in s.small.iter_mut().enumerate() {
        *v = i as u64 * k;
    }
}

fn die() -> ! {
    // SAFETY: raising SIGKILL on ourselves, as a crash would.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!()
}

/// Child: two good checkpoints, then one that cannot fit because the disk is full.
fn child_fill() {
    assert_eq!(init(), crthreads::Start::Fresh);
    // SAFETY: the root holds only heap data.
    let mut s = unsafe { crthreads::root(|| State { small: vec![0; N as usize], big: None }) }.unwrap();
    set(&mut s, 1);
    crthreads::checkpoint().unwrap();
    set(&mut s, 2);
    println!("ok {}", crthreads::checkpoint().unwrap().seq);
    // Something else fills the disk.
    let ballast = PathBuf::from(std::env::var("MNT").unwrap()).join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![1u8; 1 << 16];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    s.big = Some(vec![7u8; 8 << 20]);
    set(&mut s, 3);
    match crthreads::checkpoint() {
        Ok(st) => println!("unexpected success {}", st.seq),
        Err(e) => println!("failed errno={:?} {e}", e.errno().map(|e| e.0)),
    }
    if std::env::var("THEN").as_deref() == Ok("die") {
        die();
    }
    if std::env::var("THEN").as_deref() == Ok("repeat") {
        // A program that keeps checkpointing on a full disk.
        for _ in 0..40 {
            assert!(crthreads::checkpoint().is_err());
        }
        die();
    }
    // The program keeps running; once there is room again, the checkpoint goes through.
    std::fs::remove_file(&ballast).unwrap();
    set(&mut s, 4);
    println!("ok {}", crthreads::checkpoint().unwrap().seq);
    die();
}

/// Child: restores from a directory on a file system that has become read-only, keeps
/// working, and tries to checkpoint.
fn child_readonly() {
    assert_eq!(init(), crthreads::Start::Restored { seq: 1 });
    // SAFETY: same root type as the writer.
    let mut s = unsafe { crthreads::root(|| State { small: Vec::new(), big: None }) }.unwrap();
    assert_eq!(s.small[1], 5);
    set(&mut s, 6);
    match crthreads::checkpoint() {
        Ok(st) => println!("unexpected success {}", st.seq),
        Err(e) => println!("failed errno={:?} {e}", e.errno().map(|e| e.0)),
    }
    set(&mut s, 7);
    match crthreads::checkpoint() {
        Ok(st) => println!("unexpected success {}", st.seq),
        Err(e) => println!("failed again errno={:?}", e.errno().map(|e| e.0)),
    }
    println!("still running k={}", s.small[1]);
    die();
}

/// Child: one checkpoint, then a crash.
fn child_one() {
    assert_eq!(init(), crthreads::Start::Fresh);
    // SAFETY: the root holds only heap data.
    let mut s = unsafe { crthreads::root(|| State { small: vec![0; N as usize], big: None }) }.unwrap();
    set(&mut s, 5);
    println!("ok {}", crthreads::checkpoint().unwrap().seq);
    die();
}

/// Child: restores and prints what it finds.
fn child_verify() {
    let start = init();
    // SAFETY: same root type as the writers.
    let s = unsafe { crthreads::root(|| State { small: Vec::new(), big: None }) }.unwrap();
    let k = s.small[1];
    let consistent = s.small.iter().enumerate().all(|(i, &v)| v == i as u64 * k)
        && s.big.as_ref().is_none_or(|b| b.len() == 8 << 20 && b.iter().all(|&x| x == 7));
    println!("{start:?} k={k} consistent={consistent} big={}", s.big.is_some());
}

struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .status();
        match st {
            Ok(s) if s.success() => Some(Mount(at.to_path_buf())),
            _ => None,
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn skip(what: &str) {
    println!("SKIPPED {what}: mounting a tmpfs needs root (CAP_SYS_ADMIN)");
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run_fill(then: &str) -> Option<(String, String, String)> {
    let t = TempDir::new("full");
    let Some(m) = Mount::tmpfs(&t.join("mnt"), "24m") else {
        skip("disk full");
        return None;
    };
    let dir = m.0.join("ckpt");
    let w = child("fill").env("DIR", &dir).env("MNT", &m.0).env("THEN", then).output().unwrap();
    assert_eq!(w.status.signal(), Some(libc::SIGKILL), "writer: {}", String::from_utf8_lossy(&w.stderr));
    let v = child("verify").env("DIR", &dir).output().unwrap();
    assert!(v.status.success(), "verify: {}", String::from_utf8_lossy(&v.stderr));
    Some((out(&w), String::from_utf8_lossy(&w.stderr).into_owned(), out(&v)))
}

fn disk_full_fails_that_checkpoint_and_keeps_the_previous_one() {
    let Some((w, err, v)) = run_fill("die") else { return };
    assert!(w.contains(&format!("failed errno=Some({})", libc::ENOSPC)), "the checkpoint must fail with ENOSPC: {w}");
    assert!(err.contains("warning: checkpoint 3 failed") && err.contains("checkpoint 2 stays intact"), "{err}");
    assert!(v.contains("Restored { seq: 2 }") && v.contains("k=2 consistent=true big=false"), "{v}");
}

fn the_program_continues_and_checkpoints_again_when_space_returns() {
    let Some((w, _, v)) = run_fill("continue") else { return };
    assert!(w.contains("failed errno="), "{w}");
    assert!(w.contains("ok 3"), "the checkpoint must succeed once there is room again: {w}");
    assert!(v.contains("Restored { seq: 3 }") && v.contains("k=4 consistent=true big=true"), "{v}");
}

fn repeated_failures_do_not_flood_stderr() {
    let Some((_, err, v)) = run_fill("repeat") else { return };
    let lines = err.lines().filter(|l| l.contains("warning: checkpoint 3 failed")).count();
    // 41 failures: reported the 1st, 2nd, 4th, 8th, 16th and 32nd time.
    assert_eq!(lines, 6, "{err}");
    assert!(err.contains("(32 times so far)"), "{err}");
    assert!(v.contains("Restored { seq: 2 }"), "{v}");
}

fn read_only_file_system_fails_cleanly() {
    let t = TempDir::new("ro");
    let Some(m) = Mount::tmpfs(&t.join("mnt"), "16m") else { return skip("read-only") };
    let dir = m.0.join("ckpt");
    let w = child("one").env("DIR", &dir).output().unwrap();
    assert!(out(&w).contains("ok 1"), "{} {}", out(&w), String::from_utf8_lossy(&w.stderr));
    let st = Command::new("mount").args(["-o", "remount,ro"]).arg(&m.0).status().unwrap();
    assert!(st.success(), "remount read-only");
    let r = child("readonly").env("DIR", &dir).output().unwrap();
    let rs = out(&r);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.signal(), Some(libc::SIGKILL), "{rs} {err}");
    assert!(rs.contains(&format!("failed errno=Some({})", libc::EROFS)), "{rs} {err}");
    assert!(rs.contains("failed again") && rs.contains("still running k=7"), "{rs}");
    assert!(err.contains("checkpoint 1 stays intact"), "{err}");
    let v = child("verify").env("DIR", &dir).output().unwrap();
    let vs = out(&v);
    assert!(
        vs.contains("Restored { seq: 1 }") && vs.contains("k=5 consistent=true"),
        "{vs} {}",
        String::from_utf8_lossy(&v.stderr)
    );
}

fn main() {
    match role().as_deref() {
        Some("fill") => return child_fill(),
        Some("readonly") => return child_readonly(),
        Some("one") => return child_one(),
        Some("verify") => return child_verify(),
        _ => {}
    }
    run_tests(&[
        (
            "disk_full_fails_that_checkpoint_and_keeps_the_previous_one",
            disk_full_fails_that_checkpoint_and_keeps_the_previous_one,
        ),
        (
            "the_program_continues_and_checkpoints_again_when_space_returns",
            the_program_continues_and_checkpoints_again_when_space_returns,
        ),
        ("read_only_file_system_fails_cleanly", read_only_file_system_fails_cleanly),
        ("repeated_failures_do_not_flood_stderr", repeated_failures_do_not_flood_stderr),
    ]);
}
