//! The `crthreads` command, end to end: every command run as a user would run it, against
//! checkpoint directories written by real child processes.
//!
//! - `status` and `verify` on a directory a `create` child wrote (three checkpoints: slot-0
//!   holds checkpoint 3, slot-1 checkpoint 2), intact and then damaged (bits flipped in a page or
//!   a header, a truncated slot, a deleted slot, both slots damaged, another run's slot copied
//!   in), each with its exact exit status (0 intact, 1 a problem named on stderr, 3 nothing
//!   usable) and message, and without changing a file;
//! - `checkpoint` against a running `crthreads::main` program of 64 persistent threads, half in
//!   compute loops and half locking and unlocking, by pid and by directory: each returns a
//!   sequence number that a slot header then holds as committed; and its refusals (a crthreads
//!   program without persistent threads, a C program, a process that is not crthreads', a
//!   program whose checkpoints cannot gather every thread), after which the process still runs;
//! - `clean`, and its refusals (a directory a running program holds, until it is killed; one
//!   that is not a checkpoint directory);
//! - `run` executing a C program (`seed_counter.c` of the C suite) with the library preloaded,
//!   killed with SIGKILL and resumed; finding the library next to itself, in `../lib` or through
//!   `CRTHREADS_LIB`; setting only the environment for a program with crthreads linked in; its
//!   refusals;
//! - `checkpoint` against a C example (`prodcons`, 64 threads) relinked with `-lcrthreads`, by
//!   pid and by directory, after which it ends with glibc's result and output file; `make
//!   install` into a temporary prefix, a C program built with `pkg-config`, killed and resumed,
//!   then `make uninstall` (`cprog`);
//! - bad input of every command: exit status 2 and a message naming the mistake.
//!
//! Children are this test binary (`common::child`); the C program is built against the library
//! `make lib` builds (`lib_dir`). This file holds the children and the helpers; `inspect` tests
//! `status` and `verify`, `control` tests `checkpoint` and `clean`, `run` tests `run`.

#[path = "../common/mod.rs"]
mod common;
mod control;
mod cprog;
mod inspect;
#[path = "../common/json.rs"]
mod json;
#[path = "../../cabi/tests/common/lib_dir.rs"]
mod lib_dir;
mod run;

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{TempDir, child, role, run_tests, wait_or_kill};
use crthreads::store::format::{self, Geometry};
use json::J;

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// The command under test.
const CLI: &str = env!("CARGO_BIN_EXE_crthreads");
/// A command or child running longer than this is killed and reported as hung.
const LIMIT: Duration = Duration::from_secs(120);
/// Region size of the `create` child: the smallest, so slot files stay small.
const CAPACITY: usize = 32 << 20;
/// Passes the checkpoint directory to the `create` child.
const DIR_VAR: &str = "CRT_CLI_DIR";

// ---------------------------------------------------------------------------------------------
// Children.

/// Commits checkpoints 1, 2, 3 (slot-0 ends with 3, slot-1 with 2) and keeps them.
fn create_child() {
    let dir = PathBuf::from(std::env::var_os(DIR_VAR).expect("the parent names the directory"));
    let cfg = crthreads::Config::default().dir(dir).capacity(CAPACITY).keep(true);
    assert_eq!(crthreads::init(cfg).unwrap(), crthreads::Start::Fresh);
    // SAFETY: the root holds a Vec whose buffer lives in the persistent heap.
    let mut data = unsafe { crthreads::root(Vec::<u64>::new) }.unwrap();
    for g in 1..=3u64 {
        data.clear();
        data.extend((0..10_000).map(|i| i * g + 1));
        assert_eq!(crthreads::checkpoint().unwrap().seq, g);
    }
}

/// `crthreads::main` with `CRT_CLI_THREADS` persistent threads that never stop: even ones
/// compute without synchronising, odd ones lock and unlock a shared mutex. Prints `ready` once
/// every thread runs.
fn threads_child() {
    let n: usize = std::env::var("CRT_CLI_THREADS").unwrap().parse().unwrap();
    let r = crthreads::main(move || {
        let start = Arc::new(crthreads::sync::Barrier::new(n + 1));
        let counter = Arc::new(crthreads::sync::Mutex::new(0u64));
        for i in 0..n {
            let (start, counter) = (start.clone(), counter.clone());
            crthreads::thread::spawn(move || {
                start.wait();
                let mut x = i as u64 + 1;
                loop {
                    if i % 2 == 0 {
                        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                    } else {
                        *counter.lock().unwrap() += 1;
                    }
                }
            });
        }
        start.wait();
        println!("ready");
        loop {
            crthreads::thread::sleep(Duration::from_secs(1));
        }
    });
    r.unwrap();
}

/// A crthreads program without persistent threads: one checkpoint, then it idles.
fn nothreads_child() {
    crthreads::init_from_env().unwrap();
    // SAFETY: the root holds a Vec whose buffer lives in the persistent heap.
    let mut v = unsafe { crthreads::root(Vec::<u64>::new) }.unwrap();
    v.push(7);
    crthreads::checkpoint().unwrap();
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `crthreads::main` with a thread blocked in `read` on a pipe nobody writes: no checkpoint
/// attempt can gather it. Prints `ready` once the thread sits in `read`.
fn stuck_child() {
    let r = crthreads::main(|| {
        let mut fds = [0; 2];
        // SAFETY: a valid array of two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let t = tid.clone();
        crthreads::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            t.store(unsafe { libc::gettid() }, std::sync::atomic::Ordering::SeqCst);
            let mut b = [0u8; 1];
            // SAFETY: reading into a valid buffer from our pipe.
            unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) }
        });
        // The kernel says when the thread is blocked in read (system call 0).
        loop {
            let id = tid.load(std::sync::atomic::Ordering::SeqCst);
            let sc = fs::read_to_string(format!("/proc/self/task/{id}/syscall")).unwrap_or_default();
            if id != 0 && sc.starts_with("0 ") {
                break;
            }
            crthreads::thread::sleep(Duration::from_millis(1));
        }
        println!("ready");
        loop {
            crthreads::thread::sleep(Duration::from_secs(1));
        }
    });
    r.unwrap();
}

/// Prints its pid and the variables `crthreads run` sets.
fn env_child() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| "-".into());
    println!(
        "pid={} LD_PRELOAD={} CRTHREADS_DIR={} CRTHREADS_POLICY={} CRTHREADS_REEXEC={} CRTHREADS_OWNER={}",
        std::process::id(),
        var("LD_PRELOAD"),
        var("CRTHREADS_DIR"),
        var("CRTHREADS_POLICY"),
        var("CRTHREADS_REEXEC"),
        var("CRTHREADS_OWNER")
    );
}

// ---------------------------------------------------------------------------------------------
// Running the command and children.

#[derive(Debug)]
struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }
    /// Asserts the exit status, showing everything otherwise.
    #[track_caller]
    fn expect(&self, code: i32) -> &Out {
        assert_eq!(self.code(), code, "exit status: {self:?}");
        self
    }
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
    fn json(&self) -> J {
        json::parse(&self.stdout)
    }
}

/// Removes what the test's own environment would leak into a command.
fn clean_env(c: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CRTHREADS_") || k == "LD_PRELOAD" || k == "LD_LIBRARY_PATH" {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null())
}

/// Runs `c` to its end (at most [`LIMIT`]), collecting its output.
fn output(c: &mut Command) -> Out {
    let mut ch = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = ch.stdout.take().unwrap();
    let mut err = ch.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || std::io::read_to_string(&mut out).unwrap());
    let t_err = std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap());
    let (status, hung) = wait_or_kill(&mut ch, LIMIT);
    let o = Out { status, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() };
    assert!(!hung, "hung, killed after {LIMIT:?}: {c:?}: {o:?}");
    o
}

/// `crthreads ARGS...`.
fn cli<S: AsRef<OsStr>>(args: &[S]) -> Out {
    output(clean_env(&mut Command::new(CLI)).args(args))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A child in `role`, running until dropped (then killed with SIGKILL).
struct Running {
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl Running {
    /// Starts `cmd` and waits for its `ready` line.
    fn start(cmd: &mut Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n", "the child did not get ready");
        Running { child, _stdout: stdout }
    }
    fn role(role: &str, dir: &Path, env: &[(&str, &str)]) -> Running {
        Running::start(
            child(role).env("CRTHREADS_DIR", dir).env("CRTHREADS_POLICY", "manual").envs(env.iter().copied()),
        )
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Kills the child and returns what it wrote on stderr (if that was piped).
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child.stderr.take().map(|mut e| std::io::read_to_string(&mut e).unwrap()).unwrap_or_default()
    }
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories.

/// A directory written by a `create` child, in a temporary directory.
fn created(tag: &str) -> (TempDir, PathBuf) {
    let t = TempDir::new(tag);
    let dir = t.join("ck");
    let o = output(child("create").env(DIR_VAR, &dir));
    assert!(o.status.success(), "create child: {o:?}");
    assert_eq!((seq_of(&dir, 0), seq_of(&dir, 1)), (Some(3), Some(2)), "slot-0 holds 3, slot-1 holds 2");
    (t, dir)
}

fn slot(dir: &Path, s: usize) -> PathBuf {
    dir.join(format!("slot-{s}"))
}

/// The header of slot `s`, if it decodes (a committed checkpoint). Reads the header only: slot
/// files are sparse and can be long.
fn header(dir: &Path, s: usize) -> Option<format::Header> {
    let mut b = vec![0u8; format::HEADER_LEN];
    fs::File::open(slot(dir, s)).ok()?.read_exact_at(&mut b, 0).ok()?;
    format::decode_header(&b, s as u32).ok()
}

/// The committed checkpoint slot `s` holds, if its header decodes.
fn seq_of(dir: &Path, s: usize) -> Option<u64> {
    header(dir, s).map(|h| h.seq)
}

fn flip(dir: &Path, s: usize, at: u64) {
    let f = OpenOptions::new().read(true).write(true).open(slot(dir, s)).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x10;
    f.write_all_at(&b, at).unwrap();
}

/// A stored page (not a hole) of slot `s`'s heap area: the last one with `last`.
fn stored_page(dir: &Path, s: usize, last: bool) -> u64 {
    let f = fs::File::open(slot(dir, s)).unwrap();
    let heap = *header(dir, s).unwrap().extents.last().unwrap();
    let geo = Geometry::new(CAPACITY as u64);
    let stored = |p: &u64| {
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, geo.chunk_off(p / format::GROUP_PAGES as u64) + (p % format::GROUP_PAGES as u64) * 8)
            .unwrap();
        !format::Entry::unpack(u64::from_le_bytes(b)).hole
    };
    let mut pages = heap.first..heap.end();
    let p = if last { pages.rev().find(stored) } else { pages.find(stored) };
    p.expect("a stored heap page")
}

fn page_off(p: u64) -> u64 {
    Geometry::new(CAPACITY as u64).page_off(p)
}

fn main() {
    match role().as_deref() {
        Some("create") => return create_child(),
        Some("threads") => return threads_child(),
        Some("nothreads") => return nothreads_child(),
        Some("stuck") => return stuck_child(),
        Some("env") => return env_child(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("help_and_command_line_mistakes", inspect::help_and_command_line_mistakes),
        ("status_and_verify_report_an_intact_checkpoint", inspect::status_and_verify_report_an_intact_checkpoint),
        (
            "a_damaged_newest_slot_leaves_only_the_older_usable",
            inspect::a_damaged_newest_slot_leaves_only_the_older_usable,
        ),
        ("a_damaged_older_slot_keeps_the_newest_usable", inspect::a_damaged_older_slot_keeps_the_newest_usable),
        ("a_deleted_slot_means_the_newest_cannot_be_told", inspect::a_deleted_slot_means_the_newest_cannot_be_told),
        ("a_slot_of_another_series_is_named", inspect::a_slot_of_another_series_is_named),
        ("no_usable_checkpoint_is_exit_status_3", inspect::no_usable_checkpoint_is_exit_status_3),
        ("verify_shows_progress_when_asked", inspect::verify_shows_progress_when_asked),
        (
            "checkpoint_of_a_busy_64_thread_program_returns_a_committed_seq",
            control::checkpoint_of_a_busy_64_thread_program_returns_a_committed_seq,
        ),
        (
            "checkpoint_refuses_processes_that_do_not_take_requests",
            control::checkpoint_refuses_processes_that_do_not_take_requests,
        ),
        ("checkpoint_times_out_when_no_attempt_can_commit", control::checkpoint_times_out_when_no_attempt_can_commit),
        (
            "checkpoint_names_missing_processes_and_idle_directories",
            control::checkpoint_names_missing_processes_and_idle_directories,
        ),
        ("clean_removes_a_checkpoint_directory", control::clean_removes_a_checkpoint_directory),
        ("clean_refuses_a_held_directory_unless_forced", control::clean_refuses_a_held_directory_unless_forced),
        ("clean_refuses_what_is_not_a_checkpoint_directory", control::clean_refuses_what_is_not_a_checkpoint_directory),
        (
            "run_executes_a_c_program_with_the_library_preloaded",
            run::run_executes_a_c_program_with_the_library_preloaded,
        ),
        ("run_finds_the_library_next_to_itself_or_in_lib", run::run_finds_the_library_next_to_itself_or_in_lib),
        (
            "run_sets_only_the_environment_for_a_program_with_crthreads_linked_in",
            run::run_sets_only_the_environment_for_a_program_with_crthreads_linked_in,
        ),
        ("run_reports_mistakes_before_starting_anything", run::run_reports_mistakes_before_starting_anything),
        (
            "checkpoint_of_a_busy_64_thread_c_program_and_it_runs_on_to_the_right_result",
            cprog::checkpoint_of_a_busy_64_thread_c_program_and_it_runs_on_to_the_right_result,
        ),
        (
            "make_install_gives_a_pkg_config_build_that_resumes",
            cprog::make_install_gives_a_pkg_config_build_that_resumes,
        ),
    ]);
}
