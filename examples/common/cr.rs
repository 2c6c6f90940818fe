//! The crthreads instantiation of the examples: persistent threads and checkpoint-aware locks,
//! and the `main` every example shares.
//!
//! [`main`] parses the command line, then runs the algorithm as the program's main persistent
//! thread through `crthreads::main`. A fresh run calls the algorithm; a run that finds a
//! checkpoint in `CRTHREADS_DIR` resumes every thread of it where the checkpoint stopped it and
//! never calls the algorithm again. That run says so on stderr twice: `restored checkpoint <n>`
//! as soon as the heap is back, and `resuming at iteration <i> of <n>` at its first `iter` line
//! (or at the end, if the checkpoint was taken after the last one).
//!
//! A checkpoint is tied to the arguments of the run that wrote it: the arguments live with the
//! run's state ([`Progress::args`]), and a resumed run whose command line differs stops with an
//! error (status 2) at its first progress report, before printing anything on stdout, and
//! keeps the checkpoint.

use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::{Example, Progress};

/// The crthreads runtime.
pub struct Cr;

runtime_over_std_api!(
    Cr,
    crthreads::thread,
    crthreads::sync,
    fn before_progress(p: &Progress, unit: u64) {
        resumed_note(p, unit);
    }
);

/// The checkpoint this process was restored from, until a progress report said so (volatile:
/// every process starts with 0).
static RESTORED: AtomicU64 = AtomicU64::new(0);
/// This process's program name and arguments ([`Example::describe`]), set before crthreads
/// starts: the arguments a restored run's state is compared with.
static INVOCATION: OnceLock<(&'static str, String)> = OnceLock::new();

/// Runs after a restore, before any restored thread resumes.
fn on_restore(seq: u64) {
    RESTORED.store(seq, Ordering::Relaxed);
    let name = INVOCATION.get().map_or("example", |i| i.0);
    eprintln!("{name}: restored checkpoint {seq}");
}

/// The first progress report after a restore: checks that the run resumed is this command's,
/// and says where it resumes.
fn resumed_note(p: &Progress, unit: u64) {
    if RESTORED.swap(0, Ordering::Relaxed) == 0 {
        return;
    }
    check_args(p);
    eprintln!("{}: resuming at iteration {unit} of {}", p.name, p.units);
}

/// Ends the program (status 2, the checkpoint kept) if the restored run had other arguments.
fn check_args(p: &Progress) {
    let Some((_, now)) = INVOCATION.get() else { return };
    if *now != p.args {
        let dir = crthreads::config().map(|c| c.get_dir().display().to_string()).unwrap_or_default();
        eprintln!(
            "{}: the checkpoint in {dir} was taken with `{}`, not `{now}`: run with the same arguments, or remove \
             the directory to start over",
            p.name, p.args
        );
        std::process::exit(2);
    }
}

/// The `main` of an example: parses the command line, runs `E` on persistent threads (or
/// resumes it), and prints its result.
pub fn main<E: Example>() -> ExitCode {
    let ex = match crate::common::parse_cli::<E>(std::env::args().skip(1).collect()) {
        Ok(ex) => ex,
        Err(code) => return code,
    };
    let _ = INVOCATION.set((E::NAME, ex.describe()));
    if let Err(e) = crthreads::hooks::after_restore(on_restore) {
        eprintln!("{}: {e}", E::NAME);
        return ExitCode::FAILURE;
    }
    let r = crthreads::main(move || {
        let progress = Progress::of(&ex);
        let sum = ex.run::<Cr>(&progress);
        (sum, progress)
    });
    match r {
        Ok((sum, progress)) => {
            // Restored after the last progress report: nothing said where the run resumed yet.
            resumed_note(&progress, progress.units);
            crate::common::print_result(sum);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: cannot run on persistent threads: {e}", E::NAME);
            ExitCode::FAILURE
        }
    }
}
