//! Regression: the coordinator kept taking checkpoints after the main persistent thread had
//! ended (under `interval` the timer keeps firing while the program prints its result and
//! exits), and during the exit itself.
//!
//! Two consequences, each a test here: a clean exit could leave the checkpoint directory behind
//! (a checkpoint written while, or after, the exit retired it), and a kill after the main thread
//! ended restored a checkpoint without a main thread to resume, so `crthreads::main` ran the
//! program's closure again: the program started over from the beginning.
//!
//! The child runs its main persistent thread for a few checkpoints, returns, and then lingers
//! (as a program that prints its result and cleans up does) with the interval policy firing
//! every few milliseconds.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

use common::{TempDir, child, killed, role, run_tests, wait_or_kill};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const LIMIT: Duration = Duration::from_secs(60);

fn restored(seq: u64) {
    println!("restored {seq}");
}

/// The child: a short main persistent thread, then `CAM_LINGER_MS` of lingering; with
/// `CAM_BLOCK=1` it then says `lingered` and waits for its stdin to close.
fn child_main() {
    crthreads::hooks::after_restore(restored).unwrap();
    let r = crthreads::main(|| {
        println!("main started");
        // Committed after the line above: a run that restores never prints it again.
        crthreads::checkpoint().unwrap();
        for _ in 0..10 {
            crthreads::thread::sleep(Duration::from_millis(5));
        }
        7u64
    })
    .unwrap();
    println!("returned {r}");
    let ms: u64 = std::env::var("CAM_LINGER_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    std::thread::sleep(Duration::from_millis(ms));
    if std::env::var("CAM_BLOCK").is_ok_and(|v| v == "1") {
        println!("lingered");
        std::io::stdout().flush().unwrap();
        let _ = std::io::read_to_string(std::io::stdin());
    }
}

fn command(dir: &std::path::Path, linger_ms: u64, block: bool) -> std::process::Command {
    let mut c = child("main");
    c.env("CRTHREADS_DIR", dir)
        .env("CRTHREADS_POLICY", "interval")
        .env("CRTHREADS_INTERVAL", "0.002")
        .env("CRTHREADS_DURABILITY", "sync")
        .env("CAM_LINGER_MS", linger_ms.to_string())
        .env("CAM_BLOCK", if block { "1" } else { "0" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn a_clean_exit_after_lingering_leaves_no_checkpoint() {
    for i in 0..12 {
        let t = TempDir::new("cam-exit");
        let dir = t.join("ckpt");
        let mut c = command(&dir, 60, false).stdin(Stdio::null()).spawn().unwrap();
        let (st, hung) = wait_or_kill(&mut c, LIMIT);
        let out = std::io::read_to_string(c.stdout.take().unwrap()).unwrap();
        let err = std::io::read_to_string(c.stderr.take().unwrap()).unwrap();
        assert!(!hung && st.success(), "run {i}: {st}\n{out}\n{err}");
        assert!(out.contains("returned 7"), "run {i}: {out}");
        assert!(!dir.exists(), "run {i}: the checkpoint directory survived a clean exit: {:?}", ls(&dir));
    }
}

fn ls(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn a_kill_after_main_returned_does_not_start_the_program_again() {
    for i in 0..4 {
        let t = TempDir::new("cam-kill");
        let dir = t.join("ckpt");
        let mut c = command(&dir, 100, true).stdin(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut seen = Vec::new();
        for l in lines.by_ref() {
            let l = l.unwrap();
            let done = l == "lingered";
            seen.push(l);
            if done {
                break;
            }
        }
        assert_eq!(seen.last().map(String::as_str), Some("lingered"), "run {i}: {seen:?}");
        c.kill().unwrap();
        let st = c.wait().unwrap();
        assert!(killed(&st), "run {i}: {st}");
        assert!(seen.contains(&"main started".to_string()), "run {i}: {seen:?}");

        let mut c = command(&dir, 0, false).stdin(Stdio::null()).spawn().unwrap();
        let (st, hung) = wait_or_kill(&mut c, LIMIT);
        let out = std::io::read_to_string(c.stdout.take().unwrap()).unwrap();
        let err = std::io::read_to_string(c.stderr.take().unwrap()).unwrap();
        assert!(!hung && st.success(), "run {i}, after the kill: {st}\n{out}\n{err}");
        assert!(out.contains("restored "), "run {i}: the checkpoint was not restored:\n{out}\n{err}");
        assert!(!out.contains("main started"), "run {i}: the program started over after the restore:\n{out}");
        assert!(out.contains("returned 7"), "run {i}: {out}");
        assert!(!dir.exists(), "run {i}: the checkpoint directory survived a clean exit");
    }
}

fn main() {
    if role().as_deref() == Some("main") {
        child_main();
        return;
    }
    run_tests(&[
        ("a_clean_exit_after_lingering_leaves_no_checkpoint", a_clean_exit_after_lingering_leaves_no_checkpoint),
        (
            "a_kill_after_main_returned_does_not_start_the_program_again",
            a_kill_after_main_returned_does_not_start_the_program_again,
        ),
    ]);
}
