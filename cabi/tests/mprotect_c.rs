//! C programs under the mprotect tracker (`CRTHREADS_TRACKER=mprotect`), in the three link
//! modes (see `c_suite.rs`): the kernel's writes into write-protected heap pages, and the
//! program's own SIGSEGV handling.
//!
//! - `calls`: `tests/c/mprotect_calls.c`. The first run makes some sixty system calls, each
//!   writing into its own write-protected heap page (its opening comment lists them), checks
//!   each result, prints every page, checkpoints and kills itself with SIGKILL; the next run
//!   restores and prints the pages again, which must be identical: the kernel's writes were
//!   recorded dirty.
//! - `segv_chain`: `tests/c/mprotect_segv.c chain`: handlers installed after start-up with
//!   `sigaction`, `signal` and `sigset` get the program's genuine faults (with the right
//!   `si_addr`, their `sa_mask`, `SA_RESETHAND`) and never its tracked heap writes; queries
//!   report the program's handler; threads that block every signal still write the heap.
//! - `segv_exit`, `segv_default`, `segv_ignore`, `segv_restored`, `segv_kill`: a genuine fault
//!   under a handler that exits with 42 ends the program with 42; with no handler, with
//!   `SIG_IGN`, or after the handler was replaced by `SIG_DFL`, it dies of SIGSEGV, after
//!   its heap writes worked; `kill(getpid(), SIGSEGV)` with no handler kills it too.
//!
//! - `static_executable`: `tests/c/static_exe.c`, linked with `-static` (libc and
//!   `libcrthreads.a`), run with `CRTHREADS_AUTO=0`: the interposed functions that are a
//!   system call fall back to it (read, stat, getcwd, pipe, waitpid, sigaction, ...), and
//!   `fread`, which is not, stops the program with a message naming it and asking for a
//!   dynamically linked program. Skipped, with a message, where the system cannot link
//!   statically.
//!
//! Every run gets a fresh temporary `CRTHREADS_DIR`. The library is not built here: `make lib`
//! builds it first (see `common/mod.rs`).

mod common;

use common::{Done, Link, Program, s};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn run(p: &Program, label: &str, args: &[&str]) -> Done {
    let dir = p.path(&format!("ckpt-{label}"));
    p.start(label, args, &[("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_TRACKER", "mprotect")]).finish()
}

fn calls(link: Link) {
    let p = Program::build("mprotect_calls", link, RUN_LIMIT);
    let fix = p.path("fix");
    std::fs::create_dir_all(fix.join("d")).unwrap();
    std::fs::write(fix.join("data"), vec![b'x'; 12345]).unwrap();
    std::os::unix::fs::symlink("data", fix.join("link")).unwrap();
    std::fs::write(fix.join("d/alpha"), b"a").unwrap();
    std::fs::write(fix.join("d/beta"), b"b").unwrap();
    let dir = p.path("ckpt");
    let env = [("CRTHREADS_DIR", s(&dir)), ("CRTHREADS_TRACKER", "mprotect")];
    let first = p.start("first", &["first", s(&fix)], &env).finish();
    first.check(first.status.signal() == Some(libc::SIGKILL), || "the first run should kill itself".into());
    let pages: Vec<&str> = first.stdout.lines().collect();
    first.check(pages.len() > 50, || "the first run printed too few pages".into());
    let check = p.start("check", &["check", s(&fix)], &env).finish();
    check.check(check.status.success(), || "the restored run failed".into());
    let restored: Vec<&str> = check.stdout.lines().collect();
    check.check(restored.len() == pages.len() + 1 && restored.last() == Some(&"done"), || {
        format!("expected {} page lines and \"done\"", pages.len())
    });
    for (w, r) in pages.iter().zip(&restored) {
        check.check(w == r, || {
            format!("a page the kernel wrote is not in the checkpoint:\nwritten:  {w}\nrestored: {r}")
        });
    }
}

fn segv_chain(link: Link) {
    let p = Program::build("mprotect_segv", link, RUN_LIMIT);
    let d = run(&p, "chain", &["chain"]);
    d.check(d.status.success() && d.stdout.contains("done"), || "expected exit 0 and \"done\"".into());
}

/// Runs `mode` and requires death by SIGSEGV after the heap writes (or exit status 42 for
/// `exit`).
fn segv_dies(mode: &'static str) -> impl Fn(Link) {
    move |link| {
        let p = Program::build("mprotect_segv", link, RUN_LIMIT);
        let d = run(&p, mode, &[mode]);
        d.check(d.stdout.contains("heap writes ok"), || "the heap writes after the checkpoint failed".into());
        if mode == "exit" {
            d.check(d.status.code() == Some(42), || "expected the program's handler to exit with 42".into());
        } else {
            d.check(d.status.signal() == Some(libc::SIGSEGV), || "expected death by SIGSEGV".into());
        }
    }
}

macro_rules! suite {
    ($($name:ident => $plan:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn preload() {
                ($plan)(Link::Preload)
            }

            #[test]
            fn shared() {
                ($plan)(Link::Shared)
            }

            #[test]
            fn static_archive() {
                ($plan)(Link::Static)
            }
        }
    )*};
}

suite! {
    calls => calls;
    segv_chain => segv_chain;
    segv_exit => segv_dies("exit");
    segv_default => segv_dies("default");
    segv_ignore => segv_dies("ignore");
    segv_restored => segv_dies("restored");
    segv_kill => segv_dies("kill");
}

/// The directory holding `libcrthreads.a` (as `common` finds it).
fn lib_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CRTHREADS_LIB_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).and_then(Path::parent).expect("<target dir>/<profile>/deps").join("release")
}

#[test]
fn static_executable() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("crthreads-mprotect_c-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("static_exe");
    let archive = lib_dir().join("libcrthreads.a");
    assert!(archive.is_file(), "{} is missing: run `make lib` first", archive.display());
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let build = Command::new(&cc)
        .current_dir(manifest.join("tests/c"))
        .args(["-std=c11", "-O2", "-g", "-fno-builtin", "-Wall", "-Wextra", "-pthread", "-static", "-I"])
        .arg(manifest.join("include"))
        .arg("static_exe.c")
        .arg("-o")
        .arg(&exe)
        .arg(&archive)
        .args(["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"])
        .output()
        .unwrap();
    if !build.status.success() {
        eprintln!(
            "note: this system cannot link a static C program with libcrthreads.a; not checked:\n{}",
            String::from_utf8_lossy(&build.stderr)
        );
        return;
    }
    let data = dir.join("data");
    std::fs::write(&data, "hello world").unwrap();
    let start = |mode: &str, auto: &str| -> Output {
        let mut c = Command::new(&exe);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CRTHREADS_") || k == "LD_PRELOAD" {
                c.env_remove(k);
            }
        }
        c.args([mode, s(&data)]).env("CRTHREADS_AUTO", auto).current_dir(&dir).stdin(Stdio::null());
        c.output().unwrap()
    };
    let run = |mode: &str| start(mode, "0");
    // Started the usual way, crthreads refuses the program at once, saying why and what to do.
    let refused = start("calls", "1");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "a static program under crthreads: {err}");
    assert!(
        err.contains("cannot start: a statically linked program is not available")
            && err.contains("link the program dynamically"),
        "{err}"
    );
    assert!(!dir.join("static_exe.crthreads").exists(), "refused before claiming a checkpoint directory");
    let calls = run("calls");
    let (out, err) = (String::from_utf8_lossy(&calls.stdout), String::from_utf8_lossy(&calls.stderr));
    assert!(calls.status.success() && out.contains("done"), "static_exe calls: {:?}\n{err}{out}", calls.status);
    let fread = run("fread");
    let err = String::from_utf8_lossy(&fread.stderr);
    assert_eq!(fread.status.signal(), Some(libc::SIGABRT), "static_exe fread: {:?}\n{err}", fread.status);
    assert!(err.contains("fread()") && err.contains("dynamically linked"), "static_exe fread: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
