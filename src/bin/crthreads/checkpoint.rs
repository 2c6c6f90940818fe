//! `crthreads checkpoint DIR|PID`: asks a running program for a checkpoint and waits until one
//! newer than the last is committed, then prints its sequence number.
//!
//! The request is the signal `SIGRTMIN+9`, which a program running persistent threads handles
//! under every policy: a Rust program started through `crthreads::main`, and a C program whose
//! `main` crthreads runs as a persistent thread (relinked with `-lcrthreads` or started under
//! `crthreads run`, unless it uses the seed interface and restarts through its own `main`).
//! The runtime installs the handler when it starts its threads, before the program's `main`
//! runs, so a handler for it together with the lock of a checkpoint directory is the mark of a
//! process that takes requests (a program that installs its own handler for `SIGRTMIN+9`
//! replaces crthreads' and gets the requests itself). The signal's default action kills a process, so it is sent only to a process that
//! has a handler installed for it (`SigCgt` in `/proc/PID/status`) and holds a checkpoint
//! directory's lock; anything else (a seed-interface C program, a Rust program without
//! persistent threads, a process that is not crthreads') is refused with the reason.
//!
//! The program's directory is the one whose lock file it has open (`/proc/PID/fd`), or, given a
//! directory, the lock's holder is the program (`F_GETLK`). Before sending, the newest committed
//! checkpoint's sequence number is read from the slot headers; the command then polls the
//! headers until a newer one (or one of a new series) is committed. An attempt the program
//! abandons (its threads could not be gathered in time) is not retried by the program, so the
//! request is sent again every few seconds until the timeout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crthreads::store::file::Dir;
use crthreads::store::newest_header;

use super::args::{self, Opt, Parsed, Spec};
use super::out::{PROGRESS_OPTS, Progress, Show};
use super::procfs::{Proc, looks_like_pid};
use super::{Failure, Outcome, exit};

pub const SPEC: Spec = Spec {
    name: "checkpoint",
    args: "DIR|PID",
    program: false,
    summary: "ask a running program for a checkpoint; print its sequence number once committed",
    about: "Asks the running program that holds the checkpoint directory DIR, or the process PID, for a \
            checkpoint (the signal SIGRTMIN+9), waits until a checkpoint newer than the last one is committed, \
            and prints its sequence number. An argument made only of digits is a PID (write ./123 for a \
            directory named 123).\n\n\
            Programs running persistent threads take these requests under every checkpoint policy: Rust \
            programs started through crthreads::main, and C programs relinked with -lcrthreads or started \
            under `crthreads run` (unless they use the seed interface, crinit/checkpoint/restore, and \
            checkpoint themselves). The signal is never sent to a process that does not handle it.",
    opts: &[
        Opt { name: "timeout", value: Some("SECS"), help: "give up after SECS seconds (default 60)" },
        PROGRESS_OPTS[0],
        PROGRESS_OPTS[1],
    ],
    exits: &[
        "0    a checkpoint was committed; its sequence number is printed",
        "69   the process does not take checkpoint requests (not a crthreads program running persistent threads: \
         a C program using the seed interface, a Rust program without crthreads::main, another program), or it \
         exited",
        "75   no checkpoint was committed before the timeout",
    ],
};

/// How often the slot headers are read while waiting.
const POLL: Duration = Duration::from_millis(5);
/// How long to wait for a commit before sending the request again.
const RESEND: Duration = Duration::from_secs(3);

pub fn main(p: Parsed) -> Outcome {
    let target = Path::new(&p.args[0]);
    let timeout = match p.value("timeout") {
        Some(v) => args::seconds("timeout", v)?,
        None => Duration::from_secs(60),
    };
    let (proc, dir_path) = match looks_like_pid(target) {
        Some(pid) => by_pid(pid)?,
        None => by_dir(target)?,
    };
    let sig = crthreads::thread::request_signal();
    if !proc.catches(sig).map_err(|e| inspect_err(&proc, e))? {
        return Err(Failure::new(
            exit::UNAVAILABLE,
            format!(
                "process {} ({}) holds the checkpoint directory {} but does not handle checkpoint requests \
                 (SIGRTMIN+9): only programs running persistent threads (crthreads::main, or a C program whose main \
                 crthreads runs as a thread) take them; this one checkpoints when it calls checkpoint(). Nothing \
                 was sent",
                proc.pid(),
                proc.name(),
                dir_path.display()
            ),
        ));
    }
    let Some(dir) = Dir::open_existing(&dir_path)? else {
        return Err(Failure::new(exit::BAD_INPUT, format!("{} disappeared", dir_path.display())));
    };
    let before = newest_header(&dir);
    let newer = |d: &Dir| {
        newest_header(d).filter(|h| before.is_none_or(|b| h.seq > b.seq || h.series != b.series)).map(|h| h.seq)
    };
    send(&proc, sig)?;
    let progress = Progress::new(Show::from_args(&p), format!("crthreads checkpoint: process {}", proc.pid()));
    let what =
        format!("waiting for a checkpoint newer than {}", before.map_or("none".to_string(), |h| h.seq.to_string()));
    let start = Instant::now();
    let mut sent = Instant::now();
    loop {
        // The directory may be removed and recreated by the program: look it up again.
        let current = Dir::open_existing(&dir_path)?;
        if let Some(seq) = current.as_ref().and_then(newer) {
            progress.finish(&format!("checkpoint {seq} committed"));
            println!("{seq}");
            return Ok(exit::OK);
        }
        if !proc.running() {
            return Err(Failure::new(
                exit::UNAVAILABLE,
                format!("process {} exited before it committed a checkpoint", proc.pid()),
            ));
        }
        if start.elapsed() >= timeout {
            return Err(Failure::new(
                exit::TEMP,
                format!(
                    "no checkpoint was committed within {} s (process {} still runs: a thread that holds a \
                     crthreads lock while it waits outside crthreads delays checkpoints, and the program's \
                     stderr reports abandoned attempts); try again, or raise --timeout",
                    timeout.as_secs_f64(),
                    proc.pid()
                ),
            ));
        }
        if sent.elapsed() >= RESEND {
            send(&proc, sig)?;
            sent = Instant::now();
        }
        progress.waiting(&what);
        std::thread::sleep(POLL);
    }
}

/// The process and the checkpoint directory whose lock it holds.
fn by_pid(pid: u32) -> Result<(Proc, PathBuf), Failure> {
    let Some(proc) = Proc::open(pid).filter(Proc::running) else {
        return Err(Failure::new(exit::BAD_INPUT, format!("no running process has pid {pid}")));
    };
    let mut candidates = proc.lock_dirs().map_err(|e| inspect_err(&proc, e))?;
    if candidates.is_empty() {
        candidates.extend(proc.env_dir().ok());
    }
    // A directory that cannot be inspected (not private to this user) is reported as such.
    let mut refused = None;
    for dir in candidates {
        match Dir::open_existing(&dir).and_then(|d| d.map(|d| d.lock_holder()).transpose()) {
            Ok(Some(Some(holder))) if holder == pid => return Ok((proc, dir)),
            Ok(_) => {}
            Err(e) => refused = refused.or(Some(e)),
        }
    }
    if let Some(e) = refused {
        return Err(e.into());
    }
    Err(Failure::new(
        exit::UNAVAILABLE,
        format!(
            "process {pid} ({}) holds no crthreads checkpoint directory: it is not a crthreads program (or it \
             runs as a plain child of one). Nothing was sent",
            proc.name()
        ),
    ))
}

/// The process that holds `dir`.
fn by_dir(dir: &Path) -> Result<(Proc, PathBuf), Failure> {
    let Some(d) = Dir::open_existing(dir)? else {
        return Err(Failure::new(
            exit::BAD_INPUT,
            format!("{} does not exist (no checkpoint directory there)", dir.display()),
        ));
    };
    match d.lock_holder()? {
        None => Err(Failure::new(
            exit::UNAVAILABLE,
            format!("no running program holds {}: start the program, then ask again", dir.display()),
        )),
        Some(0) => Err(Failure::new(
            exit::UNAVAILABLE,
            format!("{} is held by a process in another PID namespace: give its pid as seen from here", dir.display()),
        )),
        Some(pid) => match Proc::open(pid) {
            Some(p) => Ok((p, dir.to_path_buf())),
            None => {
                Err(Failure::new(exit::UNAVAILABLE, format!("process {pid}, which holds {}, exited", dir.display())))
            }
        },
    }
}

fn send(proc: &Proc, sig: i32) -> Result<(), Failure> {
    crthreads::sys::proc::send_signal(proc.pid(), sig).map_err(|e| match e.0 {
        libc::EPERM => Failure::new(
            exit::PERM,
            format!("not allowed to signal process {}: run this as the user that runs it", proc.pid()),
        ),
        libc::ESRCH => Failure::new(exit::UNAVAILABLE, format!("process {} exited", proc.pid())),
        _ => Failure::new(exit::OS, format!("kill {}: {e}", proc.pid())),
    })
}

fn inspect_err(proc: &Proc, e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => Failure::new(
            exit::PERM,
            format!("cannot inspect process {} ({}): permission denied; run this as its user", proc.pid(), proc.name()),
        ),
        std::io::ErrorKind::NotFound => Failure::new(exit::UNAVAILABLE, format!("process {} exited", proc.pid())),
        _ => Failure::new(exit::OS, format!("cannot inspect process {}: {e}", proc.pid())),
    }
}
