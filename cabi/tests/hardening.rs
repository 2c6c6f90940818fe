//! End-to-end tests of how the C library behaves at the edges of a program's life: the processes
//! a persistent program runs, a program started without standard descriptors, the pthread keys it
//! leaves to the program, configuration errors, files that are not what they should be, and a
//! second instance on a directory in use. Each scenario runs in the three link modes (see
//! `c_suite.rs`) with real child processes, real SIGKILLs and real files.
//!
//! The scenarios (each C file's opening comment lists the checks the program makes itself):
//! - `children`: `hard_children.c run` checkpoints, then runs `hard_helper.c` (built in the same
//!   link mode) through `system`, `popen`, a shell script and `timeout`, and `cat` through
//!   `popen`. Every one must exit 0 and run plain: it inherits its parent's mark
//!   (`CRTHREADS_OWNER=<parent pid>:…`), mallocs outside the persistent region, restores nothing
//!   (`restore() == 0`), writes nothing (`checkpoint() == 0`, the slot files keep their bytes)
//!   and holds no descriptor in the checkpoint directory. After a SIGKILL the parent's
//!   checkpoint restores, and a clean exit of the restored run retires it.
//! - `background_child`: the parent starts the helper with fork + exec, checkpoints and is
//!   killed; the helper then sees the end of its stdin and exits 0 (the driver learns it from
//!   the end of file on a pipe only the helper still holds). The checkpoint must still be there
//!   and restore.
//! - `std_fds_closed`, `std_fds_closed_mprotect`: `hard_stdfds.c`, started with descriptors 0-2
//!   closed, under the default tracker and under `mprotect`. crthreads takes none of 0-2 (at
//!   start, at each checkpoint, at restore), every descriptor of its own is close-on-exec, the
//!   program's files get 0-2 and its writes (2 MiB per file, around a checkpoint) never reach a
//!   slot file: the next run, also without 0-2, restores the right data and finds the files as
//!   written.
//! - `pthread_keys`: `hard_keys.c` creates as many pthread keys under crthreads as the same
//!   program without it, and with every key taken, threads and checkpoints still work.
//! - `auto_garbage`: `CRTHREADS_AUTO=Maybe Later` ends the program with status 1 before `main`,
//!   with a message naming the variable, the value as typed and the accepted values.
//! - `durability_any_case`: `CRTHREADS_DURABILITY=SYNC` and `=Sync` start and checkpoint;
//!   `=Fast` is refused (so the variable is read at all).
//! - `crattr_late`, `crattr_auto`: `crinit` with `capacity = 12345` or `dir = ""`, before and
//!   after crthreads initialised itself, returns -1 / EINVAL with a message naming the `crattr`
//!   field (not an environment variable); nothing is left half initialised.
//! - `fifo_slot`: a FIFO named `slot-0` in the checkpoint directory is refused with a message
//!   naming it (not opened and waited on); it is left as it was.
//! - `fifo_stats`, `fifo_stats_with_reader`: a FIFO as `CRTHREADS_STATS`, without and with a
//!   reader, is refused with a message naming the variable, the path and what is expected (a
//!   regular file).
//! - `refused_stats_leaves_no_directory`, `refused_limit_leaves_no_directory`: a start refused
//!   after crthreads created the checkpoint directory (the statistics file is a FIFO; the
//!   region does not fit under `ulimit -v`) removes the directory again.
//! - `two_instances`: a second instance on a directory in use exits 1 at once with a message
//!   naming the first's pid, while the first has no checkpoint yet; the first goes on, and after
//!   its SIGKILL a new instance restores its checkpoint.
//!
//! No assertion is about time: a run that does not end within [`RUN_LIMIT`] is killed and
//! reported as hung (which is how waiting on a FIFO or on a lock shows up). Every child runs with
//! a fresh temporary `CRTHREADS_DIR`, without the inherited `CRTHREADS_*`, `LD_PRELOAD` and
//! `LD_LIBRARY_PATH`. On a failure the driver prints the program's stderr and stdout and keeps
//! its temporary directory. `CC` chooses the C compiler (default `cc`).
//!
//! The library is not built here: `make lib` builds it first. The driver looks in
//! `$CRTHREADS_LIB_DIR`, else in `<target dir>/release` (see `common/mod.rs`).
#![allow(unsafe_code)] // pre_exec hooks that arrange a child's descriptors, pipes, kill(2), mkfifo.

mod common;

use common::{Done, Link, Program, Run, s};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Where `hard_stdfds` finds its report file (its stdout) and its message file (its stderr).
const REPORT_FD: RawFd = 8;
const MESSAGE_FD: RawFd = 9;
/// Where `hard_children background` (and the helper it starts) find the driver's pipe.
const NOTIFY_FD: RawFd = 9;
/// How many bytes `hard_stdfds` writes to each of its files.
const FILE_LEN: u64 = 2 << 20;

impl Run {
    /// Polls until `ready(stdout)` holds (true) or the program exits (false). A program still
    /// running after [`RUN_LIMIT`] is killed and reported as hung.
    #[track_caller]
    fn wait_for(&mut self, ready: impl Fn(&str) -> bool) -> bool {
        loop {
            if ready(&self.stdout()) {
                return true;
            }
            if self.child.try_wait().expect("wait for the C program").is_some() {
                return ready(&self.stdout());
            }
            if self.started.elapsed() > self.limit {
                let _ = self.child.kill();
                self.collect().fail(&format!("hung: killed after {:?} while waiting for its output", self.limit));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits for the program's "READY" line (printed once it has checkpointed and waits to be
    /// killed), then kills it with SIGKILL and reaps it. Fails if it exits by itself.
    #[track_caller]
    fn kill_when_ready(mut self) -> Done {
        let ready = self.wait_for(|out| out.lines().any(|l| l == "READY"));
        let _ = self.child.kill();
        let done = self.collect();
        if !ready || done.status.signal() != Some(libc::SIGKILL) {
            done.fail("should have printed READY and waited to be killed");
        }
        done
    }
}

impl Done {
    /// Requires exit status 0 and the final "done" line.
    #[track_caller]
    fn expect_done(&self) {
        self.check(self.status.success(), || "failed: expected exit status 0".into());
        self.check(self.stdout.lines().any(|l| l == "done"), || "exited 0 without printing \"done\"".into());
    }

    /// Requires that crthreads refused to start: exit status 1 before `main` ran, with a message
    /// on stderr containing each of `needles`.
    #[track_caller]
    fn expect_refused(&self, needles: &[&str]) {
        self.check(self.status.code() == Some(1), || "crthreads should have refused to start (exit status 1)".into());
        self.check(!self.stdout.contains("main reached"), || "main ran, although crthreads refused to start".into());
        for n in needles {
            self.check(self.stderr.contains(n), || format!("the message on stderr does not contain {n:?}"));
        }
    }

    /// The value of the first stdout line starting with `prefix`.
    #[track_caller]
    fn line(&self, prefix: &str) -> &str {
        match self.stdout.lines().find_map(|l| l.strip_prefix(prefix)) {
            Some(v) => v,
            None => self.fail(&format!("printed no line starting with {prefix:?}")),
        }
    }

    /// The `key=value` fields of the line starting with `prefix`.
    #[track_caller]
    fn fields(&self, prefix: &str) -> HashMap<&str, &str> {
        self.line(prefix).split_whitespace().filter_map(|kv| kv.split_once('=')).collect()
    }

    /// The pid on the "parent pid=P ..." line.
    #[track_caller]
    fn parent_pid(&self) -> u32 {
        let f = self.fields("parent ");
        f.get("pid").and_then(|p| p.parse().ok()).unwrap_or_else(|| self.fail("malformed \"parent pid=\" line"))
    }

    /// Checks the helper's line for `tag`: it ran as a plain child of process `parent`.
    #[track_caller]
    fn expect_plain_helper(&self, tag: &str, parent: u32) {
        let f = self.fields(&format!("helper {tag} "));
        let get = |k: &str| f.get(k).copied().unwrap_or("(missing)");
        let what = format!("the helper run by {tag}");
        self.check(get("crthreads") == "1", || format!("{what} did not have the crthreads functions"));
        self.check(get("owner").starts_with(&format!("{parent}:")), || {
            format!("{what} should inherit the mark CRTHREADS_OWNER=<pid>:<start> of its parent {parent}")
        });
        self.check(get("pid") != parent.to_string(), || format!("{what} runs as the parent's process"));
        self.check(get("in_region") == "0", || {
            format!("{what} malloc'd a block inside the persistent region: it should run plain, with a volatile heap")
        });
        self.check(get("restore") == "0", || {
            format!("{what}: restore() should be 0 in a plain run (it restores nothing)")
        });
        self.check(get("checkpoint") == "0", || {
            format!("{what}: checkpoint() should return 0 in a plain run (it writes nothing)")
        });
        self.check(get("dir_fds") == "0", || {
            format!(
                "{what} holds descriptors in the parent's checkpoint directory: a plain run neither opens nor locks it"
            )
        });
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// A pipe, both ends close-on-exec (so that no other test's child inherits them).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just created both descriptors; nothing else owns them.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Reads `fd` until every writer has closed it (end of file); `None` if that takes longer than
/// `limit`.
fn read_to_eof(fd: OwnedFd, limit: Duration) -> Option<String> {
    let started = Instant::now();
    let mut text = Vec::new();
    let mut file = std::fs::File::from(fd);
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        let mut p = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `p` is one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        if n == 0 {
            return None;
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf).expect("read the notification pipe") {
            0 => return Some(String::from_utf8_lossy(&text).into_owned()),
            k => text.extend_from_slice(&buf[..k]),
        }
    }
}

/// Makes the child inherit `fd` as descriptor `to` (not close-on-exec).
fn inherit_as(cmd: &mut Command, fd: RawFd, to: RawFd) {
    // SAFETY: the hook runs in the child between fork and exec and makes one async-signal-safe
    // system call (dup2); it allocates nothing. `fd` stays open in the parent until the spawn
    // has returned.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, to) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts the child with descriptors 0, 1 and 2 closed: its stdout file moves to
/// [`REPORT_FD`], its stderr file to [`MESSAGE_FD`], and every other inherited descriptor is
/// made close-on-exec (so that the program's own check sees only what it and crthreads open).
fn close_standard_fds(cmd: &mut Command) {
    // SAFETY: the hook runs in the child between fork and exec (after std set up descriptors
    // 0-2) and makes only async-signal-safe system calls (dup2, close, fcntl); it allocates
    // nothing.
    unsafe {
        cmd.pre_exec(|| {
            for (from, to) in [(1, REPORT_FD), (2, MESSAGE_FD)] {
                if libc::dup2(from, to) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for fd in 0..3 {
                libc::close(fd);
            }
            for fd in (3..1024).filter(|&fd| fd != REPORT_FD && fd != MESSAGE_FD) {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
            Ok(())
        });
    }
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).expect("a path without NUL");
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}: {}", p.display(), std::io::Error::last_os_error());
}

fn is_fifo(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

// ---------------------------------------------------------------------------------------------
// Children run plain.

fn children(link: Link) {
    let helper = Program::build("hard_helper", link, RUN_LIMIT);
    let p = Program::build("hard_children", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let work = p.path("work");
    std::fs::create_dir(&work).expect("create the work directory");
    let env = [("CRTHREADS_DIR", s(&dir))];
    let args = |mode| [mode, s(&helper.exe), s(&work)];

    let first = p.start("run", &args("run"), &env).kill_when_ready();
    let parent = first.parent_pid();
    for tag in ["system", "popen", "script", "timeout"] {
        first.expect_plain_helper(tag, parent);
    }
    first.check(first.stdout.lines().any(|l| l == "popen cat ok"), || "popen(\"cat\") did not read back".into());
    first.check(first.stdout.lines().any(|l| l == "script ok PERSISTENT"), || {
        "the shell script did not run to its end (its last line is missing)".into()
    });
    first.check(first.stdout.lines().any(|l| l == "children done"), || "the parent did not finish its checks".into());
    first.check(exists(&dir), || format!("the checkpoint directory {} is gone after a SIGKILL", dir.display()));

    let second = p.start("check", &args("check"), &env).finish();
    second.expect_done();
    second.expect_plain_helper("check", second.parent_pid());
    second.check(!exists(&dir), || format!("{} still exists after the restored run's exit(0)", dir.display()));
}

fn background_child(link: Link) {
    let helper = Program::build("hard_helper", link, RUN_LIMIT);
    let p = Program::build("hard_children", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let env = [("CRTHREADS_DIR", s(&dir))];

    let (notify_r, notify_w) = pipe();
    let w = notify_w.as_raw_fd();
    let run = p.start_with("background", &["background", s(&helper.exe)], &env, |cmd| inherit_as(cmd, w, NOTIFY_FD));
    // Only the parent and its helper hold the write end now.
    drop(notify_w);
    let first = run.kill_when_ready();
    let parent = first.parent_pid();
    first.expect_plain_helper("background", parent);
    let started = first.fields("parent ").get("helper").copied().unwrap_or("?").to_string();
    first.check(first.fields("helper background ").get("pid") == Some(&started.as_str()), || {
        format!("the helper's line comes from another process than the one started ({started})")
    });

    // The parent is dead; the helper sees the end of its stdin, says so and exits 0.
    let notes = read_to_eof(notify_r, RUN_LIMIT)
        .unwrap_or_else(|| first.fail("the background helper did not exit after its parent was killed"));
    first.check(notes.lines().any(|l| l == "helper background exiting 0"), || {
        format!("the background helper did not reach its clean exit; it wrote {notes:?}")
    });
    first.check(exists(&dir), || {
        format!(
            "the checkpoint directory {} is gone after the background child's clean exit: a plain child must \
             never touch its parent's checkpoint",
            dir.display()
        )
    });

    let second = p.start("background-check", &["background-check"], &env).finish();
    second.expect_done();
    second.check(!exists(&dir), || format!("{} still exists after the restored run's exit(0)", dir.display()));
}

// ---------------------------------------------------------------------------------------------
// Standard descriptors closed.

/// `hard_stdfds` started without descriptors 0-2, under `CRTHREADS_TRACKER=tracker`.
fn std_fds_closed(link: Link, tracker: &str) {
    let p = Program::build("hard_stdfds", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let out = p.path("out");
    std::fs::create_dir(&out).expect("create the output directory");
    let env = [("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_TRACKER", tracker)];

    let first = p.start_with("first", &["first", s(&out)], &env, close_standard_fds).kill_when_ready();
    for name in ["a", "b", "c"] {
        let len = std::fs::metadata(out.join(name)).map(|m| m.len()).unwrap_or(0);
        first.check(len == FILE_LEN, || format!("{name} holds {len} bytes, the program wrote {FILE_LEN}"));
    }
    first.check(exists(&dir), || format!("the checkpoint directory {} is gone after a SIGKILL", dir.display()));

    let second = p.start_with("check", &["check", s(&out)], &env, close_standard_fds).finish();
    second.expect_done();
    second.check(!exists(&dir), || format!("{} still exists after the restored run's exit(0)", dir.display()));
}

// ---------------------------------------------------------------------------------------------
// pthread keys.

fn pthread_keys(link: Link) {
    let plain = Program::build("hard_keys", Link::Preload, RUN_LIMIT);
    let unused = plain.path("ckpt-unused");
    let without = plain
        .start_with("without", &[], &[("CRTHREADS_DIR", s(&unused))], |cmd| {
            cmd.env_remove("LD_PRELOAD");
        })
        .finish();
    without.expect_done();
    without.check(without.line("crthreads=").starts_with('0'), || "the run without crthreads had it".into());
    let want = without.line("keys ").to_string();

    let p = Program::build("hard_keys", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let with = p.start("with", &[], &[("CRTHREADS_DIR", s(&dir))]).finish();
    with.expect_done();
    with.check(with.line("crthreads=") == "1 in_region=1", || {
        "crthreads should be there and serve malloc from the persistent region".into()
    });
    let got = with.line("keys ");
    with.check(got == want, || {
        format!("the program could create {got} pthread keys under crthreads, {want} without it: crthreads takes keys")
    });
    with.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
}

// ---------------------------------------------------------------------------------------------
// Configuration errors.

fn auto_garbage(link: Link) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let done = p.start("auto", &["main"], &[("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_AUTO", "Maybe Later")]).finish();
    done.expect_refused(&["CRTHREADS_AUTO", "\"Maybe Later\"", "`1`", "`0`"]);
    done.check(!exists(&dir), || format!("{} was created, although crthreads did not start", dir.display()));
}

fn durability_any_case(link: Link) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    for value in ["SYNC", "Sync"] {
        let dir = p.path(&format!("ckpt-{value}"));
        let done = p.start(value, &["main"], &[("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_DURABILITY", value)]).finish();
        done.expect_done();
        done.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
    }
    // The variable is read: a value that is no durability is refused.
    let dir = p.path("ckpt-fast");
    let done = p.start("fast", &["main"], &[("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_DURABILITY", "Fast")]).finish();
    done.expect_refused(&["CRTHREADS_DURABILITY", "\"Fast\"", "sync"]);
}

fn crattr(link: Link, mode: &str, env: &[(&str, &str)]) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let mut all = vec![("CRTHREADS_DIR", s(&dir))];
    all.extend_from_slice(env);
    let done = p.start(mode, &[mode], &all).finish();
    done.expect_done();
    // The messages also went to stderr, with the same wording.
    for field in ["crattr.capacity=\"12345\"", "crattr.dir"] {
        done.check(done.stderr.contains(field), || format!("stderr does not name {field}"));
    }
    done.check(!done.stderr.contains("CRTHREADS_CAPACITY") && !done.stderr.contains("CRTHREADS_DIR"), || {
        "a bad crattr field was reported as an environment variable".into()
    });
    done.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
}

// ---------------------------------------------------------------------------------------------
// FIFOs are refused, not waited on.

fn fifo_slot(link: Link) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    std::fs::create_dir(&dir).expect("create the checkpoint directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    let slot = dir.join("slot-0");
    mkfifo(&slot);
    let done = p.start("fifo-slot", &["main"], &[("CRTHREADS_DIR", s(&dir))]).finish();
    done.expect_refused(&[s(&slot), "not a regular file"]);
    done.check(is_fifo(&slot), || format!("{} is no longer the FIFO it was", slot.display()));
}

/// A FIFO as `CRTHREADS_STATS`; with `reader`, the driver holds it open for reading while the
/// program runs (so that opening it for writing succeeds at once).
fn fifo_stats(link: Link, reader: bool) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let stats = p.path("stats.fifo");
    mkfifo(&stats);
    let _reader = reader.then(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&stats)
            .expect("open the FIFO for reading")
    });
    let label = if reader { "fifo-stats-reader" } else { "fifo-stats" };
    let done = p.start(label, &["main"], &[("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_STATS", s(&stats))]).finish();
    done.expect_refused(&["CRTHREADS_STATS", s(&stats), "regular file"]);
    done.check(is_fifo(&stats), || format!("{} is no longer the FIFO it was", stats.display()));
}

/// Limits the child's address space (`ulimit -v`) to `bytes`.
fn limit_address_space(cmd: &mut Command, bytes: u64) {
    // SAFETY: the hook runs in the child between fork and exec and makes one async-signal-safe
    // system call (setrlimit) on a valid struct; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A start refused after crthreads created the checkpoint directory must remove it again. With
/// `fifo`, the start is refused because the statistics file is a FIFO (found after the
/// directory was claimed); otherwise because the region does not fit under `ulimit -v` (found
/// while sizing the region).
fn refused_start_leaves_no_directory(link: Link, fifo: bool) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let done = if fifo {
        let stats = p.path("stats.fifo");
        mkfifo(&stats);
        let env = [("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_STATS", s(&stats))];
        let done = p.start("refused-stats", &["main"], &env).finish();
        done.expect_refused(&["CRTHREADS_STATS"]);
        done
    } else {
        let env = [("CRTHREADS_DIR", s(&dir))];
        let done = p.start_with("refused-limit", &["main"], &env, |cmd| limit_address_space(cmd, 60 << 20)).finish();
        done.expect_refused(&["ulimit -v"]);
        done
    };
    done.check(!exists(&dir), || {
        let listing: Vec<_> = std::fs::read_dir(&dir)
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        format!(
            "crthreads refused to start, yet left behind the checkpoint directory {} it created (holding {listing:?})",
            dir.display()
        )
    });
}

// ---------------------------------------------------------------------------------------------
// Two instances.

fn two_instances(link: Link) {
    let p = Program::build("hard_start", link, RUN_LIMIT);
    let dir = p.path("ckpt");
    let env = [("CRTHREADS_DIR", s(&dir))];

    let mut first = p.start("first", &["twice"], &env);
    if !first.wait_for(|out| out.contains("waiting pid=")) {
        first.collect().fail("the first instance exited before it reached main");
    }
    let pid = first.child.id();
    let second = p.start("second", &["main"], &env).finish();
    second.expect_refused(&[&format!("in use by process {pid}")]);
    if let Some(st) = first.child.try_wait().expect("poll the first instance") {
        first.collect().fail(&format!("the first instance ended ({st}) while the second was refused"));
    }
    let slots: Vec<_> = ["slot-0", "slot-1"].iter().filter(|n| exists(&dir.join(n))).collect();
    second.check(slots.is_empty(), || format!("slot files {slots:?} exist, yet no instance has checkpointed"));

    // The first goes on: it checkpoints and is killed.
    // SAFETY: kill(2) with a valid signal number on a child this test owns and has not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
    assert_eq!(rc, 0, "kill SIGUSR1: {}", std::io::Error::last_os_error());
    first.kill_when_ready();

    let third = p.start("third", &["twice-check"], &env).finish();
    third.expect_done();
    third.check(!exists(&dir), || format!("{} still exists after the restored run's exit(0)", dir.display()));
}

macro_rules! suite {
    ($($scenario:ident => $plan:expr;)*) => {$(
        mod $scenario {
            use super::*;

            #[test]
            fn preload() {
                $plan(Link::Preload)
            }

            #[test]
            fn shared() {
                $plan(Link::Shared)
            }

            #[test]
            fn static_archive() {
                $plan(Link::Static)
            }
        }
    )*};
}

suite! {
    children => super::children;
    background_child => super::background_child;
    std_fds_closed => |link| super::std_fds_closed(link, "auto");
    std_fds_closed_mprotect => |link| super::std_fds_closed(link, "mprotect");
    pthread_keys => super::pthread_keys;
    auto_garbage => super::auto_garbage;
    durability_any_case => super::durability_any_case;
    crattr_late => |link| super::crattr(link, "crattr", &[("CRTHREADS_AUTO", "0")]);
    crattr_auto => |link| super::crattr(link, "crattr-auto", &[]);
    fifo_slot => super::fifo_slot;
    fifo_stats => |link| super::fifo_stats(link, false);
    fifo_stats_with_reader => |link| super::fifo_stats(link, true);
    refused_stats_leaves_no_directory => |link| super::refused_start_leaves_no_directory(link, true);
    refused_limit_leaves_no_directory => |link| super::refused_start_leaves_no_directory(link, false);
    two_instances => super::two_instances;
}
