//! `checkpoint` against running programs, and `clean`.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{TempDir, child};
use crate::{Out, Running, cli, created, s, seq_of, slot};

// ---------------------------------------------------------------------------------------------
// checkpoint.

/// Whether a slot of `dir` holds checkpoint `seq`, committed.
fn committed(dir: &Path, seq: u64) -> bool {
    (0..2).any(|s| seq_of(dir, s) == Some(seq))
}

/// The sequence number `crthreads checkpoint` printed.
fn printed_seq(o: &Out) -> u64 {
    o.expect(0);
    o.stdout.trim().parse().unwrap_or_else(|_| panic!("not a sequence number: {o:?}"))
}

pub fn checkpoint_of_a_busy_64_thread_program_returns_a_committed_seq() {
    let t = TempDir::new("cli-busy");
    let dir = t.join("ck");
    let mut r = Running::role("threads", &dir, &[("CRT_CLI_THREADS", "64")]);
    let pid = r.pid().to_string();
    // Manual policy: no checkpoint exists until one is asked for.
    assert!(!committed(&dir, 1), "a checkpoint before any request");
    let first = printed_seq(&cli(&["checkpoint", &pid]));
    assert!(first >= 1 && committed(&dir, first), "checkpoint {first} is not committed");
    let second = printed_seq(&cli(&["checkpoint", s(&dir)]));
    assert!(second > first && committed(&dir, second), "checkpoint {second} after {first}");
    let third = printed_seq(&cli(&["checkpoint", "--timeout", "60", "--progress", &pid]));
    assert!(third > second && committed(&dir, third), "checkpoint {third} after {second}");
    assert!(r.alive(), "the program runs on");
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert_eq!(j.get("seq").u64(), Some(third));
    assert_eq!(j.get("holder").u64(), Some(u64::from(r.pid())));
    let newest = j.get("slots").at(j.get("slot").u64().unwrap() as usize);
    assert_eq!(newest.get("threads").u64(), Some(65), "64 threads and the main thread: {newest:?}");
}

pub fn checkpoint_refuses_processes_that_do_not_take_requests() {
    let t = TempDir::new("cli-refuse");
    let dir = t.join("ck");
    let mut r = Running::role("nothreads", &dir, &[]);
    for target in [r.pid().to_string(), s(&dir).to_string()] {
        let o = cli(&["checkpoint", &target]);
        o.expect(69);
        let want = format!(
            "crthreads checkpoint: process {} ({}) holds the checkpoint directory {} but does not handle checkpoint \
             requests (SIGRTMIN+9)",
            r.pid(),
            fs::read_to_string(format!("/proc/{}/comm", r.pid())).unwrap().trim(),
            dir.display()
        );
        assert!(o.stderr.starts_with(&want), "{o:?}");
        assert!(r.alive(), "the process was not signalled");
    }
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    let o = cli(&["checkpoint", &sleeper.id().to_string()]);
    o.expect(69);
    assert!(o.stderr.contains("holds no crthreads checkpoint directory"), "{o:?}");
    assert!(sleeper.try_wait().unwrap().is_none(), "sleep was not signalled");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

pub fn checkpoint_times_out_when_no_attempt_can_commit() {
    let t = TempDir::new("cli-stuck");
    let dir = t.join("ck");
    let mut cmd = child("stuck");
    let mut r = Running::start(cmd.env("CRTHREADS_DIR", &dir).env("CRTHREADS_POLICY", "manual").stderr(Stdio::piped()));
    let o = cli(&["checkpoint", "--timeout", "2", "--no-progress", &r.pid().to_string()]);
    o.expect(75);
    assert!(o.stderr.starts_with("crthreads checkpoint: no checkpoint was committed within 2 s"), "{o:?}");
    assert!(o.stderr.contains("the program's stderr reports abandoned attempts"), "{o:?}");
    assert!(!committed(&dir, 1), "nothing was committed");
    assert!(r.alive());
    // What the message points at: the program reported the attempt the request started.
    let err = r.stop();
    assert!(err.contains("checkpoint attempt 1 was abandoned"), "{err}");
}

pub fn checkpoint_names_missing_processes_and_idle_directories() {
    let o = cli(&["checkpoint", "2147483646"]);
    o.expect(2);
    assert_eq!(o.stderr.trim(), "crthreads checkpoint: no running process has pid 2147483646");
    let (t, dir) = created("cli-idle");
    let o = cli(&["checkpoint", s(&dir)]);
    o.expect(69);
    assert_eq!(
        o.stderr.trim(),
        format!("crthreads checkpoint: no running program holds {}: start the program, then ask again", dir.display())
    );
    let o = cli(&["checkpoint", s(&t.join("nowhere"))]);
    o.expect(2);
    assert_eq!(
        o.stderr.trim(),
        format!("crthreads checkpoint: {} does not exist (no checkpoint directory there)", t.join("nowhere").display())
    );
}

// ---------------------------------------------------------------------------------------------
// clean.

pub fn clean_removes_a_checkpoint_directory() {
    let (_t, dir) = created("cli-clean");
    let o = cli(&["clean", s(&dir)]);
    o.expect(0);
    let d = dir.display();
    assert_eq!(o.lines(), [format!("removed {d}/slot-0, {d}/slot-1, {d}/crthreads.lock"), format!("removed {d}")]);
    assert!(!dir.exists());
    // Other files keep the directory.
    let (_t, dir) = created("cli-clean-keep");
    fs::write(dir.join("notes.txt"), "mine").unwrap();
    let o = cli(&["clean", s(&dir)]);
    o.expect(0);
    assert_eq!(o.lines()[1], format!("kept {}: it holds other files", dir.display()));
    assert!(dir.join("notes.txt").exists() && !slot(&dir, 0).exists() && !slot(&dir, 1).exists());
}

pub fn clean_refuses_a_held_directory_unless_forced() {
    let t = TempDir::new("cli-clean-held");
    let dir = t.join("ck");
    let r = Running::role("nothreads", &dir, &[]);
    let holder = |d: &Path| cli(&["status", "--json", s(d)]).expect(0).json().get("holder").u64();
    assert_eq!(holder(&dir), Some(u64::from(r.pid())), "status names the pid that holds the lock");
    let o = cli(&["clean", s(&dir)]);
    o.expect(75);
    let want = format!("crthreads clean: refusing to clean {}: process {} (", dir.display(), r.pid());
    assert!(o.stderr.starts_with(&want) && o.stderr.contains("--force"), "{o:?}");
    assert!(slot(&dir, 0).exists() && slot(&dir, 1).exists(), "nothing was removed");
    // Killed with SIGKILL, the program holds nothing: its checkpoint can be cleaned.
    r.stop();
    assert_eq!(holder(&dir), None, "the lock died with its holder");
    let o = cli(&["clean", s(&dir)]);
    o.expect(0);
    assert!(!dir.exists(), "{o:?}");

    // --force removes the files from under a running program, which runs on.
    let mut r = Running::role("nothreads", &dir, &[]);
    let o = cli(&["clean", "--force", s(&dir)]);
    o.expect(0);
    assert!(o.stderr.contains(&format!("is held by process {}", r.pid())), "{o:?}");
    assert!(!dir.exists());
    assert!(r.alive());
}

pub fn clean_refuses_what_is_not_a_checkpoint_directory() {
    let t = TempDir::new("cli-clean-foreign");
    fs::write(t.join("notes.txt"), "mine").unwrap();
    let o = cli(&["clean", s(t.path())]);
    o.expect(2);
    assert!(o.stderr.contains("does not look like a crthreads checkpoint directory"), "{o:?}");
    fs::write(t.join("slot-0"), "not a checkpoint").unwrap();
    let o = cli(&["clean", s(t.path())]);
    o.expect(2);
    assert!(o.stderr.contains(&format!("{} was not written by crthreads", t.join("slot-0").display())), "{o:?}");
    assert!(t.join("notes.txt").exists() && t.join("slot-0").exists());
    let o = cli(&["clean", s(&t.join("nowhere"))]);
    o.expect(2);
    assert!(o.stderr.contains("does not exist (nothing to clean)"), "{o:?}");
}
