//! Where checkpoints go: a relative directory is resolved once, at start (a program that
//! changes directory still checkpoints where the next run looks), and a directory removed while
//! the program runs is recreated with a complete checkpoint instead of checkpoints going into
//! unlinked files.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{TempDir, child, killed, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn die() -> ! {
    // SAFETY: raising SIGKILL on ourselves, as a crash would.
    unsafe { libc::raise(libc::SIGKILL) };
    unreachable!()
}

/// Child: starts in the directory the parent chose, with a relative CRTHREADS_DIR, then moves
/// to `ELSEWHERE` and counts to 3, checkpointing each step, then crashes.
fn child_chdir() {
    let start = crthreads::init_from_env().unwrap();
    // SAFETY: the root holds a plain integer.
    let mut n = unsafe { crthreads::root(|| 0u64) }.unwrap();
    println!("{start:?} n={}", *n);
    std::env::set_current_dir(std::env::var("ELSEWHERE").unwrap()).unwrap();
    while *n < 3 {
        *n += 1;
        crthreads::checkpoint().unwrap();
    }
    die();
}

/// Child: checkpoints, waits for the parent to remove the directory, then checkpoints twice
/// more and crashes.
fn child_removed() {
    crthreads::init_from_env().unwrap();
    // SAFETY: the root holds a Vec of the persistent heap.
    let mut v = unsafe { crthreads::root(Vec::<u64>::new) }.unwrap();
    v.extend(0..50_000);
    crthreads::checkpoint().unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    for round in 1..=2u64 {
        for x in v.iter_mut() {
            *x += 1;
        }
        let st = crthreads::checkpoint().unwrap();
        println!("round {round}: seq {} mirrored {}", st.seq, st.mirrored);
    }
    std::io::stdout().flush().unwrap();
    die();
}

/// Child: restores and reports.
fn child_verify() {
    let start = crthreads::init_from_env().unwrap();
    // SAFETY: as the writer.
    let v = unsafe { crthreads::root(Vec::<u64>::new) }.unwrap();
    let ok = v.len() == 50_000 && v.iter().enumerate().all(|(i, &x)| x == i as u64 + 2);
    println!("{start:?} ok={ok}");
}

fn a_relative_directory_is_resolved_once_at_start() {
    let t = TempDir::new("rel");
    let (home, elsewhere) = (t.join("home"), t.join("elsewhere"));
    std::fs::create_dir(&home).unwrap();
    std::fs::create_dir(&elsewhere).unwrap();
    let run = || {
        child("chdir").current_dir(&home).env("CRTHREADS_DIR", "job.ck").env("ELSEWHERE", &elsewhere).output().unwrap()
    };
    let o = run();
    assert!(killed(&o.status), "{o:?}");
    assert!(home.join("job.ck/slot-0").exists(), "checkpoints go where the program started");
    assert!(!elsewhere.join("job.ck").exists(), "not into the directory it moved to");
    let o = run();
    assert!(String::from_utf8_lossy(&o.stdout).contains("Restored { seq: 3 } n=3"), "{o:?}");
}

fn a_removed_directory_is_recreated_with_a_complete_checkpoint() {
    let t = TempDir::new("removed");
    let dir = t.join("ck");
    let mut c = child("removed")
        .env("CRTHREADS_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    std::fs::remove_dir_all(&dir).unwrap();
    writeln!(c.stdin.take().unwrap(), "go").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let o = c.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(killed(&o.status), "{rest} {err}");
    assert!(
        err.contains("was removed or replaced while the program ran; recreating it and writing a full checkpoint"),
        "{err}"
    );
    assert!(rest.contains("round 1: seq 2 mirrored true"), "a new, complete image: {rest}");
    assert!(rest.contains("round 2: seq 3 mirrored false"), "then incremental again: {rest}");
    assert!(dir.join("slot-0").exists() && dir.join("slot-1").exists());
    let v = child("verify").env("CRTHREADS_DIR", &dir).output().unwrap();
    let s = String::from_utf8_lossy(&v.stdout);
    assert!(s.contains("Restored { seq: 3 } ok=true"), "{s} {}", String::from_utf8_lossy(&v.stderr));
}

fn main() {
    match role().as_deref() {
        Some("chdir") => return child_chdir(),
        Some("removed") => return child_removed(),
        Some("verify") => return child_verify(),
        _ => {}
    }
    run_tests(&[
        ("a_relative_directory_is_resolved_once_at_start", a_relative_directory_is_resolved_once_at_start),
        (
            "a_removed_directory_is_recreated_with_a_complete_checkpoint",
            a_removed_directory_is_recreated_with_a_complete_checkpoint,
        ),
    ]);
}
