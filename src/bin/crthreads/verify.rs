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
    summary: "check both checkpoints in DIR completely; the exit status says which is usable",
    about: "Checks both slot files of the checkpoint directory DIR link by link, as a restore does: the \
            header, the binary's identity block, the summary, every table chunk and every stored page \
            against its checksum. Nothing is restored, the files are only read, and the directory may be \
            in use by the running program. Prints one line per slot, then which checkpoint a restore \
            would use.",
    opts: &[
        PROGRESS_OPTS[0],
        PROGRESS_OPTS[1],
        Opt { name: "quiet", value: None, help: "print nothing on stdout: only the exit status tells" },
    ],
    exits: &[
        "0    the newest checkpoint is usable",
        "1    only the older checkpoint is usable (the newest is damaged, or a slot file is missing so the \
         newest cannot be told)",
        "2    no checkpoint is usable",
    ],
};

pub fn main(p: Parsed) -> Outcome {
    let dir = Path::new(&p.args[0]);
    let report = inspect("verify", dir, Show::from_args(&p), true)?;
    let (code, verdict) = verdict(&report);
    if !p.flag("quiet") {
        for s in &report.slots {
            println!("{}", slot_line(s));
        }
        println!("{verdict}");
    }
    Ok(code)
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
                exit::NO_INPUT,
                format!("{} does not exist (no checkpoint directory there)", dir.display()),
            ));
        }
        Err(crthreads::Error::Os { errno, .. }) if errno.0 == libc::ENOTDIR => {
            return Err(Failure::new(exit::NO_INPUT, format!("{} is not a directory", dir.display())));
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

/// The exit status and the closing line.
fn verdict(r: &Report) -> (u8, String) {
    let Some(s) = r.chosen else {
        let why = match (&r.error, &r.note) {
            (Some(e), _) => e.to_string().lines().next().unwrap_or_default().trim_end_matches(':').to_string(),
            (None, Some(n)) => n.clone(),
            (None, None) => format!("{} holds no checkpoint", r.dir.display()),
        };
        return (exit::NONE, format!("no usable checkpoint: {why}"));
    };
    let seq = r.chosen_header().map_or(0, |h| h.seq);
    let other = 1 - s;
    if r.fell_back {
        let newer = match (&r.slots[other].header, &r.slots[other].state) {
            (Some(h), _) => format!("checkpoint {} in slot-{other} is damaged", h.seq),
            (None, _) => format!("slot-{other} is damaged and may have held a newer one"),
        };
        return (exit::OLDER, format!("only the older checkpoint is usable: checkpoint {seq} in slot-{s} ({newer})"));
    }
    if r.slots[other].state == SlotState::Missing && seq >= 2 {
        return (
            exit::OLDER,
            format!(
                "usable: checkpoint {seq} in slot-{s}, but slot-{other} is missing, so it may not be the newest \
                 checkpoint written"
            ),
        );
    }
    (exit::OK, format!("usable: checkpoint {seq} in slot-{s}, the newest"))
}
