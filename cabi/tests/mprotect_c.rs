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
//! Every run gets a fresh temporary `CRTHREADS_DIR`. The library is not built here: `make lib`
//! builds it first (see `common/mod.rs`).

mod common;

use common::{Done, Link, Program, s};
use std::os::unix::process::ExitStatusExt;
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
