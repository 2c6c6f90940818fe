//! `crthreads verify DIR`: checks both slots completely, as a restore would and through the same
//! code (`crthreads::store::verify`), without restoring anything, and says by its exit status
//! which checkpoint is usable.

use std::path::Path;

use crthreads::store::verify::{self, Report, SlotReport, SlotState};

use super::args::{Opt, Parsed, Spec};
use super::out::{PROGRESS_OPTS, Progress, Show};
use super::{Failure, Outcome, exit};

pub const SPEC: Spec = Spec {
    name: "verify",
    args: "DIR",
    program: false,
    summary: "check both checkpoints in DIR completely; a nonzero exit status names what is wrong",
    about: "Checks both slot files of the checkpoint directory DIR link by link, as a restore does: the \
            header, the binary's identity block, the summary, every table chunk and every stored page \
            against its checksum, and that both slots belong to one checkpoint series. Nothing is restored, \
            the files are only read, and the directory may be in use by the running program. Prints one line \
            per slot, then which checkpoint a restore would use; each problem found is also named on stderr.\n\n\
            A slot whose checkpoint was being written when the program was killed (interrupted) is no \
            problem: that is what a crash during a checkpoint leaves, and a restore uses the other slot.",
    opts: &[
        PROGRESS_OPTS[0],
        PROGRESS_OPTS[1],
        Opt { name: "quiet", value: None, help: "print nothing on stdout: the exit status and stderr tell" },
    ],
    exits: &[
        "0    the newest checkpoint is usable and nothing is wrong",
        "1    a checkpoint is usable, but a problem was found: a damaged slot (then perhaps only the older \
         checkpoint is usable), a slot of another checkpoint series, or a missing slot that may have held \
         the newest checkpoint",
        "3    no checkpoint is usable",
    ],
};

pub fn main(p: Parsed) -> Outcome {
    let dir = Path::new(&p.args[0]);
    let report = inspect("verify", dir, Show::from_args(&p), true)?;
    let v = verdict(&report);
    if !p.flag("quiet") {
        for s in &report.slots {
            println!("{}", slot_line(s));
        }
        println!("{}", v.line);
    }
    for problem in &v.problems {
        eprintln!("crthreads verify: {problem}");
    }
    Ok(v.code)
}

/// Verifies `dir` (pages too with `pages`), with progress on stderr for `cmd`.
pub fn inspect(cmd: &str, dir: &Path, show: Show, pages: bool) -> Result<Report, Failure> {
    let progress = [0, 1].map(|s| Progress::new(show, format!("crthreads {cmd}: slot-{s}")));
    let on_progress = |s: usize, done: u64, total: u64| progress[s].pages(done, total);
    let (first, n) = crthreads::thread::ImageThreads::table_pages();
    let opts = verify::Options { pages, extract: Some((first, n)), progress: Some(&on_progress) };
    let report = match verify::verify(dir, &opts) {
        Ok(r) => r,
        Err(crthreads::Error::Os { errno, .. }) if errno == crthreads::Errno::NOENT => {
            return Err(Failure::new(
                exit::BAD_INPUT,
                format!("{} does not exist (no checkpoint directory there)", dir.display()),
            ));
        }
        Err(crthreads::Error::Os { errno, .. }) if errno.0 == libc::ENOTDIR => {
            return Err(Failure::new(exit::BAD_INPUT, format!("{} is not a directory", dir.display())));
        }
        Err(e) => return Err(e.into()),
    };
    for (s, pr) in progress.iter().enumerate() {
        if report.slots[s].pages_checked {
            pr.finish("checked");
        }
    }
    Ok(report)
}

/// One line about a slot: `slot-0: checkpoint 3: valid (...)`.
fn slot_line(s: &SlotReport) -> String {
    let name = format!("slot-{}", s.slot);
    match &s.state {
        SlotState::Missing => format!("{name}: missing"),
        SlotState::Interrupted { seq } => {
            format!("{name}: interrupted: checkpoint {seq} was being written and never committed (holds nothing)")
        }
        SlotState::Invalid { reason } => match s.header {
            Some(h) => format!("{name}: checkpoint {}: invalid: {reason}", h.seq),
            None => format!("{name}: invalid: {reason}"),
        },
        SlotState::Valid => {
            let h = s.header.expect("a valid slot has a header");
            let holes = s.holes.unwrap_or(0);
            let series = if s.other_series { "; of another checkpoint series, which a restore ignores" } else { "" };
            format!(
                "{name}: checkpoint {}: valid ({} pages: {} stored and checked, {holes} holes{series})",
                h.seq,
                s.live_pages,
                s.live_pages - holes
            )
        }
    }
}

/// What verification concludes.
struct Verdict {
    /// The exit status.
    code: u8,
    /// The closing line: which checkpoint a restore would use.
    line: String,
    /// Each problem found, naming the file.
    problems: Vec<String>,
}

/// The verdict on a report: a restore's choice, and every problem found on the way.
fn verdict(r: &Report) -> Verdict {
    let mut problems = Vec::new();
    for s in &r.slots {
        if let SlotState::Invalid { reason } = &s.state {
            problems.push(match s.header {
                Some(h) => format!("{}: checkpoint {} is damaged: {reason}", s.path.display(), h.seq),
                None => format!("{} is damaged: {reason}", s.path.display()),
            });
        }
    }
    let Some(s) = r.chosen else {
        let why = match (&r.error, &r.note) {
            (Some(e), _) => e.to_string().lines().next().unwrap_or_default().trim_end_matches(':').to_string(),
            (None, Some(n)) => n.clone(),
            (None, None) => format!("{} holds no checkpoint", r.dir.display()),
        };
        problems.push(format!("no usable checkpoint: {why}"));
        return Verdict { code: exit::NONE, line: format!("no usable checkpoint: {why}"), problems };
    };
    let seq = r.chosen_header().map_or(0, |h| h.seq);
    let other = &r.slots[1 - s];
    let mut buts = Vec::new();
    if other.other_series {
        problems.push(format!(
            "{} and slot-{s} belong to different checkpoint series (one of them is a file of another run): a \
             restore uses checkpoint {seq} in slot-{s}, the newest, and ignores slot-{}",
            other.path.display(),
            other.slot
        ));
        buts.push(format!("slot-{} belongs to another checkpoint series", other.slot));
    }
    if other.state == SlotState::Missing && seq >= 2 {
        problems.push(format!(
            "{} is missing (deleted?): checkpoint {seq} in slot-{s} may not be the newest checkpoint written",
            other.path.display()
        ));
        buts.push(format!("slot-{} is missing, so it may not be the newest checkpoint written", other.slot));
    }
    let line = if r.fell_back {
        let newer = match &other.header {
            Some(h) => format!("checkpoint {} in slot-{} is damaged", h.seq, other.slot),
            None => format!("slot-{} is damaged and may have held a newer one", other.slot),
        };
        format!("only the older checkpoint is usable: checkpoint {seq} in slot-{s} ({newer})")
    } else {
        if matches!(other.state, SlotState::Invalid { .. }) {
            buts.push(format!("slot-{} is damaged", other.slot));
        }
        match buts.is_empty() {
            true => format!("usable: checkpoint {seq} in slot-{s}, the newest"),
            false => format!("usable: checkpoint {seq} in slot-{s}, but {}", buts.join(", and ")),
        }
    };
    let code = if problems.is_empty() { exit::OK } else { exit::PROBLEM };
    Verdict { code, line, problems }
}
