//! End-to-end crash tests of the C seed interface (`checkpoint_restore.h`): the programs in
//! `tests/c/seed_*.c` run against the built library, are killed with SIGKILL by this driver, and
//! are run again with the same command, in each of the three link modes.
//!
//! | link mode | how the program is built                                   | how it gets crthreads             |
//! |-----------|------------------------------------------------------------|-----------------------------------|
//! | `preload` | plain C; the crthreads functions are weak symbols          | `LD_PRELOAD=libcrthreads.so`      |
//! | `shared`  | `-L<lib> -Wl,-rpath,<lib> -lcrthreads`                     | `libcrthreads.so` as a dependency |
//! | `static`  | `-Wl,-Bstatic -lcrthreads -Wl,-Bdynamic` + its native libs | `libcrthreads.a` linked in        |
//!
//! The scenarios (each C file's opening comment lists the checks the program makes itself):
//! - `counter`, `counter_sync`: `seed_counter.c`, a computation whose state (a growing array, a
//!   linked list of malloc'd nodes with strdup'd labels, an accumulator) hangs off the persistent
//!   root, checkpointing every 20 steps. One uninterrupted run gives the reference result; then the
//!   program is killed with SIGKILL at random moments (after a random number of new checkpoints and a
//!   random delay, so kills land anywhere, inside `checkpoint()` included) and restarted with the
//!   same command until it completes. Every restarted run must report `restore() == 1` and resume
//!   exactly at the last checkpoint the killed run reported (or at the next one, if the kill came
//!   between a commit and its message); the program checks its whole structure at every start; the
//!   final result must equal the reference; the checkpoint directory must exist after each kill and
//!   be gone after the final clean exit. `counter_sync` does the same under
//!   `CRTHREADS_DURABILITY=sync`.
//! - `crinit`: `seed_crinit.c`. `crinit(NULL)` returns 0 fresh and 1 restored; another dir,
//!   base or capacity than the library started with fails with EBUSY and a message naming the
//!   setting; bad attr values fail with EINVAL; attr.stats receives a JSON line per checkpoint;
//!   attr.keep = CR_KEEP keeps the checkpoint after exit(0) and CR_REMOVE removes it even under
//!   `CRTHREADS_KEEP=1`. Under `CRTHREADS_AUTO=0`, `crinit` with attr.dir initialises in that
//!   directory (not `CRTHREADS_DIR`), blocks malloc'd before it stay usable, and the next run
//!   restores from it.
//! - `unwritable_dir`: `CRTHREADS_DIR` under a regular file. The program must start, each
//!   `checkpoint()` returns -1 with errno ENOTDIR or EEXIST (what the OS says about such a
//!   path) and a message, and the program finishes normally.
//! - `checkpoint_retry`: a checkpoint fails (-1, errno set, a message naming the directory)
//!   because the directory cannot be created; once the obstacle is removed the next checkpoint
//!   succeeds and, after a SIGKILL, the restored heap holds data written only before the failed
//!   checkpoint as well as after it.
//! - `root_and_crmalloc`: `crthreads_root_get` with another size gives NULL / EINVAL and leaves
//!   the root alone; `crmalloc`, `crrealloc` and `crfree` work like the malloc family on the
//!   same heap; a crmalloc'd list survives a SIGKILL and the root is at the same address after
//!   the restore.
//! - `read_mprotect`, `read_uffd`: `seed_readio.c` under `CRTHREADS_TRACKER=mprotect` and
//!   `uffd`: right after checkpoints (heap pages write-protected), read, pread, readv, preadv,
//!   recv, recvfrom, recvmsg, fread, fgets, fgetc, fscanf and getline fill heap buffers
//!   without EFAULT and with the right bytes, and after a SIGKILL the restored heap holds what
//!   they wrote.
//! - `setvbuf_mprotect`, `setvbuf_uffd`: the same for a stream opened after a checkpoint whose
//!   `setvbuf` buffer is a heap block allocated before it (libc fills it with its own `read`).
//!
//! Every child runs with a fresh temporary `CRTHREADS_DIR`, without the inherited `CRTHREADS_*`,
//! `LD_PRELOAD` and `LD_LIBRARY_PATH`, with re-execution left on (restores need the same
//! layout), and is killed and reported if it runs longer than [`RUN_LIMIT`]. On a failure the
//! driver prints the program's stderr and stdout and keeps its temporary directory.
//! `CRTHREADS_TEST_SEED` replays the random kill moments of an earlier run (the seed is printed).
//! `CC` chooses the C compiler (default `cc`).
//!
//! The library is not built here: `make lib` builds it first. The driver looks in
//! `$CRTHREADS_LIB_DIR`, else in `<target dir>/release` (see `common/mod.rs`).

mod common;

use common::rng::Rng;
use common::{Done, Link, Program, Run, s};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// `seed_counter TOTAL EVERY PAUSE_US`: 1200 steps, a checkpoint every 20, 200 µs per step.
const COUNTER_ARGS: [&str; 3] = ["1200", "20", "200"];
const COUNTER_EVERY: u64 = 20;
const COUNTER_CHECKPOINTS: u64 = 1200 / COUNTER_EVERY;

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
                // It may have printed the awaited line just before exiting.
                return ready(&self.stdout());
            }
            if self.started.elapsed() > self.limit {
                let _ = self.child.kill();
                self.collect().fail(&format!("hung: killed after {:?} while waiting for its output", self.limit));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends SIGKILL (a real kill -9) and reaps the program.
    fn kill9(mut self) -> Done {
        let _ = self.child.kill();
        self.collect()
    }

    /// Waits for the program's "READY" line (printed once it has checkpointed and waits to be
    /// killed), then kills it with SIGKILL. Fails if it exits by itself.
    #[track_caller]
    fn kill_when_ready(mut self) -> Done {
        let ready = self.wait_for(|out| out.lines().any(|l| l == "READY"));
        let done = self.kill9();
        if !ready || !done.killed() {
            done.fail("should have printed READY and waited to be killed");
        }
        done
    }
}

impl Done {
    /// Whether SIGKILL ended it.
    fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }

    /// Requires exit status 0 and the final "done" line.
    #[track_caller]
    fn expect_success(&self) -> &Done {
        self.check(self.status.success(), || "failed: expected exit status 0".into());
        self.check(self.stdout.lines().any(|l| l == "done"), || "exited 0 without printing \"done\"".into());
        self
    }

    /// The value of the first stdout line starting with `prefix`.
    #[track_caller]
    fn line(&self, prefix: &str) -> &str {
        match self.stdout.lines().find_map(|l| l.strip_prefix(prefix)) {
            Some(v) => v,
            None => self.fail(&format!("printed no line starting with {prefix:?}")),
        }
    }

    /// The errno values of the failed checkpoints ("checkpoint-errno N TEXT" lines).
    fn checkpoint_errnos(&self) -> Vec<i32> {
        let parse = |l: &str| l.split_whitespace().next().and_then(|n| n.parse().ok());
        self.stdout.lines().filter_map(|l| l.strip_prefix("checkpoint-errno ")).filter_map(parse).collect()
    }
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

// ---------------------------------------------------------------------------------------------
// counter: random SIGKILLs until the computation completes.

/// The `N` of every "checkpoint N" line.
fn checkpoints(stdout: &str) -> Vec<u64> {
    stdout.lines().filter_map(|l| l.strip_prefix("checkpoint ")).filter_map(|n| n.parse().ok()).collect()
}

/// `(restored, next)` from the "start restored=R next=N" line.
fn start_line(d: &Done) -> (u32, u64) {
    let rest = d.line("start ");
    let field = |name: &str| -> Option<u64> {
        rest.split_whitespace().find_map(|kv| kv.strip_prefix(name)).and_then(|v| v.parse().ok())
    };
    match (field("restored="), field("next=")) {
        (Some(r), Some(n)) => (r as u32, n),
        _ => d.fail(&format!("malformed start line {rest:?}")),
    }
}

fn results(stdout: &str) -> Vec<&str> {
    stdout.lines().filter(|l| l.starts_with("result ")).collect()
}

/// Runs seed_counter uninterrupted, then with `kills` SIGKILLs at random moments (see the
/// module docs), under `CRTHREADS_DURABILITY=durability`.
fn counter(link: Link, durability: &str, kills: u32) {
    let p = Program::build("seed_counter", link, RUN_LIMIT);
    let mut rng = Rng::new(&format!("seed_counter [{link}, {durability}]"));

    let dir = p.path("ckpt-reference");
    let reference =
        p.start("reference", &COUNTER_ARGS, &[("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_DURABILITY", durability)]);
    let reference = reference.finish();
    reference.expect_success();
    let start = start_line(&reference);
    reference.check(start == (0, 0), || format!("the first run should start fresh at step 0, got {start:?}"));
    let want = results(&reference.stdout);
    reference.check(want.len() == 4, || "the uninterrupted run printed no complete result".into());
    reference.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));

    let dir = p.path("ckpt-crash");
    let env = [("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_DURABILITY", durability)];
    // The last checkpoint the previous, killed, run reported.
    let mut last: Option<u64> = None;
    let mut killed = 0;
    for attempt in 0..=kills + 1 {
        let mut run = p.start(&format!("run-{attempt}"), &COUNTER_ARGS, &env);
        let done = if killed < kills {
            // Spread the kills over the whole computation: at most TOTAL / EVERY checkpoints.
            let new_checkpoints = 1 + rng.below(COUNTER_CHECKPOINTS / u64::from(kills + 1)) as usize;
            if run.wait_for(|out| checkpoints(out).len() >= new_checkpoints) {
                std::thread::sleep(Duration::from_micros(rng.below(6000)));
                run.kill9()
            } else {
                run.finish()
            }
        } else {
            run.finish()
        };

        if !done.killed() && !done.status.success() {
            done.fail("failed");
        }
        let (restored, next) = start_line(&done);
        match last {
            None => done.check(restored == 0 && next == 0, || {
                format!("no checkpoint existed: expected a fresh start at step 0, got restored={restored} next={next}")
            }),
            Some(l) => done.check(restored == 1 && (next == l || next == l + COUNTER_EVERY), || {
                format!(
                    "the previous run was killed after reporting checkpoint {l}: expected restore() == 1 and a \
                     resume at step {l} (or {}, if the kill hit between a commit and its message), got \
                     restored={restored} next={next}",
                    l + COUNTER_EVERY
                )
            }),
        }

        let reported = checkpoints(&done.stdout);
        eprintln!(
            "{}: started with restored={restored} next={next}, {} after reporting checkpoint {:?}",
            done.what,
            if done.killed() { "killed" } else { "exited" },
            reported.last()
        );
        if done.killed() {
            killed += 1;
            last = reported.last().copied();
            done.check(last.is_some(), || "killed after a checkpoint, yet it reported none".into());
            done.check(exists(&dir), || format!("the checkpoint directory {} is gone after a SIGKILL", dir.display()));
            continue;
        }
        done.expect_success();
        done.check(killed > 0, || "the program completed before the driver could kill it once".into());
        done.check(results(&done.stdout) == want, || {
            format!("after {killed} SIGKILLs the result differs from the uninterrupted run's:\n{}", want.join("\n"))
        });
        done.check(!exists(&dir), || {
            format!("the checkpoint directory {} still exists after the final exit(0)", dir.display())
        });
        return;
    }
    panic!("seed_counter [{link}] did not complete within {} runs", kills + 2);
}

// ---------------------------------------------------------------------------------------------
// crinit.

fn crinit(link: Link) {
    let p = Program::build("seed_crinit", link, RUN_LIMIT);

    // Initialised by the library from CRTHREADS_DIR.
    let dir = p.path("ckpt-auto");
    let other = p.path("other-dir");
    let stats = p.path("stats.jsonl");
    let env = [("CRTHREADS_DIR", s(&dir))];
    let first = p.start("auto-fresh", &["auto", "fresh", s(&other), s(&stats)], &env).kill_when_ready();
    let root = first.line("root ").to_string();
    first.check(exists(&dir), || format!("the checkpoint directory {} is missing after a checkpoint", dir.display()));
    let lines = std::fs::read_to_string(&stats).unwrap_or_default();
    first.check(lines.lines().count() == 1 && lines.starts_with('{') && lines.trim_end().ends_with('}'), || {
        format!(
            "crinit's attr.stats file {} should hold one JSON line for one checkpoint, holds {lines:?}",
            stats.display()
        )
    });

    let kept = p.start("auto-keep", &["auto", "restored", s(&other), "keep"], &env).finish();
    kept.expect_success();
    kept.check(kept.line("root ") == root, || format!("the root moved from {root} after the restore"));
    kept.check(exists(&dir), || {
        format!("crinit with keep = CR_KEEP, then exit(0): the checkpoint {} should remain", dir.display())
    });
    let env_keep = [("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_KEEP", "1")];
    let removed = p.start("auto-remove", &["auto", "restored", s(&other), "remove"], &env_keep).finish();
    removed.expect_success();
    removed.check(!exists(&dir), || {
        format!("crinit with keep = CR_REMOVE, then exit(0): {} should be gone despite CRTHREADS_KEEP=1", dir.display())
    });
    removed.check(!exists(&other), || format!("the refused directory {} was created", other.display()));

    // CRTHREADS_AUTO=0: crinit chooses the directory.
    let dir = p.path("ckpt-late");
    let unused = p.path("ckpt-env-unused");
    let env = [("CRTHREADS_DIR", s(&unused)), ("CRTHREADS_AUTO", "0")];
    let first = p.start("late-fresh", &["late", "fresh", s(&dir), s(&other)], &env).kill_when_ready();
    first.check(exists(&dir), || format!("crinit's attr.dir {} is missing after a checkpoint", dir.display()));
    let second = p.start("late-restored", &["late", "restored", s(&dir), s(&other)], &env).finish();
    second.expect_success();
    second.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
    second.check(!exists(&unused), || {
        format!("CRTHREADS_DIR {} was used although crinit named another", unused.display())
    });
}

// ---------------------------------------------------------------------------------------------
// Failing checkpoints, the root's size, crmalloc.

fn unwritable_dir(link: Link) {
    let p = Program::build("seed_fail", link, RUN_LIMIT);
    let blocker = p.path("blocker");
    std::fs::write(&blocker, "a regular file").expect("create the blocking file");
    let dir = blocker.join("ckpt");
    let done = p.start("unwritable", &["unwritable"], &[("CRTHREADS_DIR", s(&dir))]).finish();
    // The directory is claimed when the program starts: a directory that cannot exist stops the
    // program at once, with the reason, instead of letting it run for hours without a checkpoint.
    done.check(done.status.code() == Some(1), || "the program should be stopped before main with status 1".into());
    done.check(
        done.stderr.contains("crthreads: cannot start: mkdir")
            && done.stderr.contains(s(&dir))
            && done.stderr.contains("Not a directory")
            && done.stderr.contains("CRTHREADS_DIR"),
        || "the message should name the directory, the OS's reason and the setting to change".into(),
    );
    done.check(blocker.is_file(), || format!("{} is no longer a regular file", blocker.display()));
}

fn checkpoint_retry(link: Link) {
    let p = Program::build("seed_fail", link, RUN_LIMIT);
    let dir = p.path("ckpt-retry");
    let env = [("CRTHREADS_DIR", s(&dir))];
    let first = p.start("recover", &["recover"], &env).kill_when_ready();
    first.check(exists(&dir.join("slot-0")), || {
        format!("{} has no slot file after the successful checkpoint", dir.display())
    });
    let errnos = first.checkpoint_errnos();
    first.check(errnos == [libc::EISDIR], || {
        format!("expected one checkpoint failing with EISDIR ({}), saw {errnos:?}", libc::EISDIR)
    });
    let second = p.start("recovered", &["recovered"], &env).finish();
    second.expect_success();
    second.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
}

fn root_and_crmalloc(link: Link) {
    let p = Program::build("seed_fail", link, RUN_LIMIT);
    let dir = p.path("ckpt-api");
    let env = [("CRTHREADS_DIR", s(&dir))];
    let first = p.start("api", &["api"], &env).kill_when_ready();
    let root = first.line("root ").to_string();
    let second = p.start("api-check", &["api-check"], &env).finish();
    second.expect_success();
    second.check(second.line("root ") == root, || format!("the root moved from {root} after the restore"));
    second.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
}

// ---------------------------------------------------------------------------------------------
// The read family and stdio into write-protected heap pages.

/// seed_readio's `first` (or `setvbuf`) mode under `tracker`, killed once it is READY, then its
/// check mode on the restored heap.
fn read_family(link: Link, tracker: &str, first: &str) {
    let p = Program::build("seed_readio", link, RUN_LIMIT);
    let data = p.path("data.txt");
    let dir = p.path(&format!("ckpt-{first}"));
    let env = [("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_TRACKER", tracker)];
    p.start(&format!("{first}-{tracker}"), &[first, s(&data)], &env).kill_when_ready();
    let check = format!("{}check", if first == "first" { "" } else { "setvbuf-" });
    let done = p.start(&format!("{check}-{tracker}"), &[&check, s(&data)], &env).finish();
    done.expect_success();
    done.check(!exists(&dir), || format!("{} still exists after exit(0)", dir.display()));
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
    counter => |link| super::counter(link, "process", 5);
    counter_sync => |link| super::counter(link, "sync", 3);
    crinit => super::crinit;
    unwritable_dir => super::unwritable_dir;
    checkpoint_retry => super::checkpoint_retry;
    root_and_crmalloc => super::root_and_crmalloc;
    read_mprotect => |link| super::read_family(link, "mprotect", "first");
    read_uffd => |link| super::read_family(link, "uffd", "first");
    setvbuf_mprotect => |link| super::read_family(link, "mprotect", "setvbuf");
    setvbuf_uffd => |link| super::read_family(link, "uffd", "setvbuf");
}
