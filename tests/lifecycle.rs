//! The life cycle of a checkpoint: kept across crashes and failures, retired by a clean exit
//! (unless kept on purpose), untouched by forked children; and the runtime's misuse errors.

mod common;

use std::path::Path;

use common::{TempDir, child, killed, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn init() -> crthreads::Start {
    let dir = std::env::var("DIR").unwrap();
    crthreads::init(crthreads::Config::from_env().unwrap().dir(dir)).unwrap()
}

/// Child: one checkpoint, then leaves the way `HOW` says.
fn child_exit() {
    let start = init();
    // SAFETY: the root holds a plain integer.
    let mut r = unsafe { crthreads::root(|| 0u64) }.unwrap();
    println!("{start:?} root={}", *r);
    *r += 1;
    crthreads::checkpoint().unwrap();
    match std::env::var("HOW").unwrap().as_str() {
        "exit0" => std::process::exit(0),
        "exit3" => std::process::exit(3),
        "panic" => panic!("the program failed"),
        "return" => {}
        other => panic!("unknown HOW {other}"),
    }
}

/// Child: starts, maybe restores, and exits 0 without touching its data (like `prog --version`).
fn child_version() {
    let start = init();
    println!("{start:?}");
    std::process::exit(0);
}

/// Child: one checkpoint, retires the checkpoint, changes the data and checkpoints again, then
/// crashes: the checkpoints after the retirement must form a new, complete image.
fn child_retire_then_work() {
    init();
    // SAFETY: the root holds a plain integer.
    let mut r = unsafe { crthreads::root(|| 0u64) }.unwrap();
    *r = 1;
    crthreads::checkpoint().unwrap();
    crthreads::retire().unwrap();
    *r = 2;
    let st = crthreads::checkpoint().unwrap();
    println!("after retire: seq {} mirrored {}", st.seq, st.mirrored);
    // SAFETY: crash as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Child: forks; the child exits 0 (and tries to checkpoint first); the parent then crashes.
fn child_fork() {
    init();
    // SAFETY: the root holds a plain integer.
    let mut r = unsafe { crthreads::root(|| 0u64) }.unwrap();
    *r = 42;
    crthreads::checkpoint().unwrap();
    // SAFETY: the process is single-threaded, so the child may do anything the parent could.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        match crthreads::checkpoint() {
            Ok(_) => println!("child checkpoint unexpectedly succeeded"),
            Err(e) => println!("child checkpoint refused: {e}"),
        }
        std::process::exit(0);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    println!("child exited {}", libc::WEXITSTATUS(status));
    // SAFETY: crash as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Child: misuse of the runtime.
fn child_misuse() {
    let dir = std::env::var("DIR").unwrap();
    assert!(matches!(crthreads::checkpoint(), Err(crthreads::Error::NotInitialised)));
    init();
    let again = crthreads::init(crthreads::Config::default().dir(dir));
    println!("second init: {:?}", again.map_err(|e| e.to_string()));
    // SAFETY: a plain integer root.
    let r = unsafe { crthreads::root(|| 7u32) }.unwrap();
    // SAFETY: as above.
    let twice = unsafe { crthreads::root(|| 7u32) };
    println!("root twice: {}", twice.err().map(|e| e.to_string()).unwrap_or_default());
    crthreads::checkpoint().unwrap();
    let _ = *r;
    // SAFETY: crash, keeping the checkpoint.
    unsafe { libc::raise(libc::SIGKILL) };
}

/// Child: restores a checkpoint whose root is a u32 but asks for a String.
fn child_wrong_root() {
    init();
    // SAFETY: the type is checked against the checkpoint's.
    match unsafe { crthreads::root(|| String::from("x")) } {
        Ok(_) => println!("wrong root accepted"),
        Err(e) => println!("wrong root: {e}"),
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn run(role: &str, dir: &Path, how: &str, keep: bool) -> std::process::Output {
    let mut c = child(role);
    c.env("DIR", dir).env("HOW", how);
    if keep {
        c.env("CRTHREADS_KEEP", "1");
    }
    c.output().unwrap()
}

fn a_clean_exit_retires_the_checkpoint() {
    for how in ["exit0", "return"] {
        let t = TempDir::new("retire");
        let dir = t.join("ckpt");
        let o = run("exit", &dir, how, false);
        assert!(o.status.success(), "{how}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!dir.exists(), "{how}: the checkpoint directory must be gone after a clean exit");
        let o = run("exit", &dir, how, false);
        assert!(stdout(&o).contains("Fresh root=0"), "{how}: a new run starts fresh: {}", stdout(&o));
    }
}

fn a_failing_exit_or_panic_keeps_it() {
    for how in ["exit3", "panic"] {
        let t = TempDir::new("keep");
        let dir = t.join("ckpt");
        let o = run("exit", &dir, how, false);
        assert!(!o.status.success(), "{how}");
        assert!(dir.join("slot-0").exists(), "{how}: the checkpoint must survive a failing exit");
        let o = run("exit", &dir, "exit3", false);
        assert!(stdout(&o).contains("Restored { seq: 1 } root=1"), "{how}: {}", stdout(&o));
    }
}

fn keep_keeps_it_after_a_clean_exit() {
    let t = TempDir::new("keep1");
    let dir = t.join("ckpt");
    assert!(run("exit", &dir, "exit0", true).status.success());
    let o = run("exit", &dir, "exit0", true);
    assert!(stdout(&o).contains("Restored { seq: 1 } root=1"), "{}", stdout(&o));
}

fn a_forked_child_neither_checkpoints_nor_retires() {
    let t = TempDir::new("fork");
    let dir = t.join("ckpt");
    let o = child("fork").env("DIR", &dir).output().unwrap();
    let s = stdout(&o);
    assert!(s.contains("child checkpoint refused") && s.contains("forked child"), "{s}");
    assert!(s.contains("child exited 0"), "{s}");
    assert!(dir.join("slot-0").exists(), "the child's clean exit must not delete the parent's checkpoint");
    let o = run("exit", &dir, "exit3", false);
    assert!(stdout(&o).contains("Restored { seq: 1 } root=42"), "{}", stdout(&o));
}

fn a_run_that_does_not_use_the_checkpoint_keeps_it() {
    let t = TempDir::new("unused");
    let dir = t.join("ckpt");
    let o = run("exit", &dir, "exit3", false);
    assert!(stdout(&o).contains("Fresh root=0"), "{}", stdout(&o));
    // `prog --version` after a crash: restores, exits 0 without taking the root.
    let o = run("version", &dir, "", false);
    assert!(o.status.success() && stdout(&o).contains("Restored { seq: 1 }"), "{o:?}");
    assert!(dir.join("slot-0").exists(), "a run that did not use the checkpoint must not retire it");
    let o = run("exit", &dir, "exit3", false);
    assert!(stdout(&o).contains("Restored { seq: 1 } root=1"), "the job resumes: {}", stdout(&o));
}

fn a_directory_crthreads_did_not_create_is_left_in_place() {
    use std::os::unix::fs::DirBuilderExt;
    let t = TempDir::new("mine");
    let dir = t.join("mine");
    std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
    let o = run("version", &dir, "", false);
    assert!(o.status.success() && stdout(&o).contains("Fresh"), "{o:?}");
    assert!(dir.is_dir(), "an existing directory is not removed");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "and is left empty, as it was");
    let o = run("exit", &dir, "exit0", false);
    assert!(o.status.success(), "{o:?}");
    assert!(dir.is_dir(), "retiring a checkpoint keeps a directory crthreads did not create");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "its checkpoint files are gone");
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"), "{o:?}");
    // A directory that did not exist is not left behind by a run that wrote nothing.
    let fresh = t.join("never");
    let o = run("version", &fresh, "", false);
    assert!(o.status.success(), "{o:?}");
    assert!(!fresh.exists(), "a run that wrote nothing leaves no directory behind");
}

fn the_working_directory_as_checkpoint_directory_gives_no_warnings() {
    let t = TempDir::new("dot");
    let o = child("exit").current_dir(t.path()).env("DIR", ".").env("HOW", "exit0").output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("warning") && !err.contains("rmdir"), "{err}");
    assert!(t.path().is_dir());
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0, "slot and lock files removed, directory kept");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // `/` qualifies as a private directory only for root.
        let o = child("version").env("DIR", "/").output().unwrap();
        assert!(o.status.success(), "{o:?}");
        assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"), "{o:?}");
        assert!(!Path::new("/crthreads.lock").exists(), "the claim on / is given up at exit");
    }
}

fn checkpoints_after_retire_start_a_complete_image() {
    let t = TempDir::new("reretire");
    let dir = t.join("ckpt");
    let o = child("retire-then-work").env("DIR", &dir).output().unwrap();
    assert!(killed(&o.status), "{o:?}");
    assert!(stdout(&o).contains("after retire: seq 1 mirrored true"), "a new series with a full image: {o:?}");
    let o = run("exit", &dir, "exit3", false);
    assert!(stdout(&o).contains("Restored { seq: 1 } root=2"), "{}", stdout(&o));
}

fn main_returning_an_error_prints_the_message() {
    let o =
        std::process::Command::new(common::example_bin("counter")).env("CRTHREADS_CAPACITY", "lots").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("Error: CRTHREADS_CAPACITY=\"lots\" is not valid: expected a size such as 64G"),
        "the Display text, with its hint: {err}"
    );
    assert!(!err.contains("Config {"), "not a Debug dump: {err}");
}

fn misuse_gives_clear_errors() {
    let t = TempDir::new("misuse");
    let dir = t.join("ckpt");
    let o = child("misuse").env("DIR", &dir).output().unwrap();
    let s = stdout(&o);
    assert!(s.contains("second init: Err(\"crthreads is already initialised\")"), "{s}");
    assert!(s.contains("root twice: the persistent root was already taken"), "{s}");
    let o = child("wrong-root").env("DIR", &dir).output().unwrap();
    let s = stdout(&o);
    assert!(s.contains("wrong root: the persistent root holds") && s.contains("String"), "{s}");
}

fn main() {
    match role().as_deref() {
        Some("exit") => return child_exit(),
        Some("fork") => return child_fork(),
        Some("misuse") => return child_misuse(),
        Some("wrong-root") => return child_wrong_root(),
        Some("version") => return child_version(),
        Some("retire-then-work") => return child_retire_then_work(),
        _ => {}
    }
    run_tests(&[
        ("a_clean_exit_retires_the_checkpoint", a_clean_exit_retires_the_checkpoint),
        ("a_failing_exit_or_panic_keeps_it", a_failing_exit_or_panic_keeps_it),
        ("keep_keeps_it_after_a_clean_exit", keep_keeps_it_after_a_clean_exit),
        ("a_forked_child_neither_checkpoints_nor_retires", a_forked_child_neither_checkpoints_nor_retires),
        ("misuse_gives_clear_errors", misuse_gives_clear_errors),
        ("a_run_that_does_not_use_the_checkpoint_keeps_it", a_run_that_does_not_use_the_checkpoint_keeps_it),
        (
            "a_directory_crthreads_did_not_create_is_left_in_place",
            a_directory_crthreads_did_not_create_is_left_in_place,
        ),
        (
            "the_working_directory_as_checkpoint_directory_gives_no_warnings",
            the_working_directory_as_checkpoint_directory_gives_no_warnings,
        ),
        ("checkpoints_after_retire_start_a_complete_image", checkpoints_after_retire_start_a_complete_image),
        ("main_returning_an_error_prints_the_message", main_returning_an_error_prints_the_message),
    ]);
}
