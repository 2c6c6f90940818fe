//! `crthreads status DIR`: what a checkpoint directory holds, slot by slot, as a table or as one
//! JSON object (`--json`).
//!
//! Each slot is verified as `crthreads verify` does (pages included, unless `--quick`), so
//! "valid" means a restore could use it. The number of persistent threads is read from the
//! thread table inside the image (its pages checked like any other); a program that never
//! started persistent threads (`crthreads::main`) has none.

use std::path::Path;

use crthreads::identity::Identity;
use crthreads::store::file::Dir;
use crthreads::store::format::PAGE;
use crthreads::store::verify::{Report, SlotReport, SlotState};
use crthreads::thread::ImageThreads;

use super::args::{Opt, Parsed, Spec};
use super::out::{Json, PROGRESS_OPTS, Show, age, hex, human, now_ns, time};
use super::procfs::Proc;
use super::{Outcome, exit, verify};

pub const SPEC: Spec = Spec {
    name: "status",
    args: "DIR",
    program: false,
    summary: "show the checkpoints in DIR: sequence, series, age, size, threads, binary, holder",
    about: "Shows, for each slot of the checkpoint directory DIR: whether it holds a valid checkpoint (or why \
            not), its sequence number, its checkpoint series (the chain of checkpoints of one run; both slots \
            share it), when it was committed and how long ago, its size on disk and the live memory it holds, \
            its persistent threads, and the binary that wrote it; then which checkpoint a restore would use and \
            which process holds the directory (the pid of the running program). Every slot is checked as \
            `crthreads verify` does.\n\n\
            With --json, prints one JSON object: `seq` is the newest valid checkpoint's sequence number (null \
            if none), `slot` the slot a restore would use, `holder` the pid holding the directory, `slots` an \
            array with the details of both slots.",
    opts: &[
        Opt { name: "json", value: None, help: "print one JSON object instead of a table" },
        Opt { name: "quick", value: None, help: "do not read the stored pages (headers and tables only)" },
        PROGRESS_OPTS[0],
        PROGRESS_OPTS[1],
    ],
    exits: &["0    the report was printed (whatever the slots hold: `crthreads verify` gives a verdict)"],
};

pub fn main(p: Parsed) -> Outcome {
    let dir = Path::new(&p.args[0]);
    let quick = p.flag("quick");
    let report = verify::inspect("status", dir, Show::from_args(&p), !quick)?;
    let holder = Dir::open_existing(dir)?.map(|d| d.lock_holder()).transpose()?.flatten();
    if p.flag("json") {
        println!("{}", json(&report, holder, !quick).render());
    } else {
        print!("{}", table(&report, holder, quick));
    }
    Ok(exit::OK)
}

fn state_word(s: &SlotReport) -> &'static str {
    match s.state {
        SlotState::Missing => "missing",
        SlotState::Interrupted { .. } => "interrupted",
        SlotState::Invalid { .. } => "invalid",
        SlotState::Valid => "valid",
    }
}

fn threads(s: &SlotReport) -> Option<ImageThreads> {
    s.extract.as_deref().map(ImageThreads::count)
}

fn identity(s: &SlotReport) -> Option<Result<Identity, String>> {
    s.meta.as_deref().map(Identity::decode)
}

/// The first 8 hex digits of a series: enough to tell two apart at a glance (`--json` has all 32).
fn series_short(series: u128) -> String {
    format!("{:08x}", series >> 96)
}

fn holder_text(holder: Option<u32>) -> String {
    match holder {
        None => "no process (the program is not running)".into(),
        Some(0) => "a process in another PID namespace".into(),
        Some(pid) => match Proc::open(pid) {
            Some(p) => format!("process {pid} ({})", p.name()),
            None => format!("process {pid}"),
        },
    }
}

fn table(r: &Report, holder: Option<u32>, quick: bool) -> String {
    let mut out = format!("checkpoint directory: {}\nheld by: {}\n", r.dir.display(), holder_text(holder));
    out.push_str(&match (r.chosen, r.chosen_header(), &r.error, &r.note) {
        (Some(s), Some(h), _, _) if r.fell_back => {
            format!("restore would use: slot-{s}, checkpoint {} (older: the newer one is damaged)\n", h.seq)
        }
        (Some(s), Some(h), _, _) => format!("restore would use: slot-{s}, checkpoint {}\n", h.seq),
        (_, _, Some(e), _) => {
            format!("restore would fail: {}\n", e.to_string().lines().next().unwrap_or_default().trim_end_matches(':'))
        }
        (_, _, None, Some(n)) => format!("restore would start fresh: {n}\n"),
        _ => "restore would start fresh: no checkpoint\n".into(),
    });
    let now = now_ns();
    let mut rows = vec![
        ["SLOT", "STATE", "SEQ", "SERIES", "COMMITTED (UTC)", "AGE", "DISK", "LIVE", "THREADS", "BINARY"]
            .map(String::from),
    ];
    for s in &r.slots {
        let h = s.header.as_ref();
        let binary = match identity(s) {
            Some(Ok(id)) => {
                let build = id.objects.first().map(|o| hex(&o.build_id)).filter(|b| !b.is_empty());
                match build {
                    Some(b) => format!("{} (build-id {})", id.exe_path, &b[..b.len().min(16)]),
                    None => id.exe_path,
                }
            }
            Some(Err(why)) => format!("unreadable ({why})"),
            None => "-".into(),
        };
        rows.push([
            format!("slot-{}", s.slot),
            state_word(s).into(),
            h.map_or("-".into(), |h| h.seq.to_string()),
            h.map_or("-".into(), |h| series_short(h.series)),
            h.map_or("-".into(), |h| time(h.time_ns).trim_end_matches(" UTC").to_string()),
            h.map_or("-".into(), |h| age(h.time_ns, now)),
            s.file.map_or("-".into(), |f| human(f.disk_bytes)),
            h.map_or("-".into(), |_| human(s.live_pages * PAGE as u64)),
            threads(s).map_or("-".into(), |t| t.live.to_string()),
            binary,
        ]);
    }
    let last = rows[0].len() - 1;
    let widths: Vec<usize> = (0..last).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    out.push('\n');
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == last {
                line.push_str(cell);
            } else if c == 2 {
                line.push_str(&format!("{cell:>w$}  ", w = widths[c]));
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    for s in &r.slots {
        match &s.state {
            SlotState::Invalid { reason } => out.push_str(&format!("slot-{}: {reason}\n", s.slot)),
            SlotState::Interrupted { seq } => out.push_str(&format!(
                "slot-{}: checkpoint {seq} was being written and never committed (killed while writing, or \
                 being written now)\n",
                s.slot
            )),
            _ if s.other_series => out.push_str(&format!(
                "slot-{}: belongs to another checkpoint series (a file of another run): a restore ignores it\n",
                s.slot
            )),
            _ => {}
        }
    }
    if quick {
        out.push_str("(--quick: the stored pages were not read; `crthreads verify` checks them)\n");
    }
    out
}

fn json(r: &Report, holder: Option<u32>, pages: bool) -> Json {
    let slots = r.slots.iter().map(slot_json).collect();
    Json::Obj(vec![
        ("dir", Json::Str(r.dir.to_string_lossy().into_owned())),
        ("seq", Json::opt_num(r.chosen_header().map(|h| h.seq))),
        ("slot", Json::opt_num(r.chosen.map(|s| s as u64))),
        ("fell_back", Json::Bool(r.fell_back)),
        ("holder", Json::opt_num(holder.filter(|&p| p != 0).map(u64::from))),
        ("held", Json::Bool(holder.is_some())),
        ("pages_checked", Json::Bool(pages)),
        ("slots", Json::Arr(slots)),
        ("warnings", Json::Arr(r.warnings.iter().map(|w| Json::Str(w.clone())).collect())),
        ("error", Json::opt_str(r.error.as_ref().map(|e| e.to_string()))),
        ("note", Json::opt_str(r.note.clone())),
    ])
}

fn slot_json(s: &SlotReport) -> Json {
    let h = s.header.as_ref();
    let reason = match &s.state {
        SlotState::Invalid { reason } => Some(reason.clone()),
        SlotState::Interrupted { seq } => Some(format!("checkpoint {seq} was being written and never committed")),
        _ => None,
    };
    let binary = match identity(s) {
        Some(Ok(id)) => {
            let build = id.objects.first().map(|o| hex(&o.build_id)).filter(|b| !b.is_empty());
            Json::Obj(vec![
                ("path", Json::Str(id.exe_path.clone())),
                ("build_id", Json::opt_str(build)),
                ("size", Json::Num(id.exe_size)),
                ("mtime_ns", Json::Int(id.exe_mtime_ns)),
            ])
        }
        _ => Json::Null,
    };
    let t = threads(s);
    Json::Obj(vec![
        ("slot", Json::Num(s.slot as u64)),
        ("file", Json::Str(s.path.to_string_lossy().into_owned())),
        ("exists", Json::Bool(s.file.is_some())),
        ("state", Json::Str(state_word(s).into())),
        ("valid", Json::Bool(s.state == SlotState::Valid)),
        ("reason", Json::opt_str(reason)),
        ("seq", Json::opt_num(h.map(|h| h.seq))),
        (
            "interrupted_seq",
            Json::opt_num(match s.state {
                SlotState::Interrupted { seq } => Some(seq),
                _ => None,
            }),
        ),
        ("series", Json::opt_str(h.map(|h| format!("{:032x}", h.series)))),
        ("other_series", Json::Bool(s.other_series)),
        ("time_ns", Json::opt_num(h.map(|h| h.time_ns))),
        ("time", Json::opt_str(h.map(|h| time(h.time_ns)))),
        ("age_secs", Json::opt_num(h.map(|h| now_ns().saturating_sub(h.time_ns) / 1_000_000_000))),
        ("file_bytes", Json::opt_num(s.file.map(|f| f.len))),
        ("disk_bytes", Json::opt_num(s.file.map(|f| f.disk_bytes))),
        ("modified_ns", s.file.map_or(Json::Null, |f| Json::Int(f.mtime_ns))),
        ("live_bytes", Json::opt_num(h.map(|_| s.live_pages * PAGE as u64))),
        ("stored_bytes", Json::opt_num(s.holes.map(|holes| (s.live_pages - holes) * PAGE as u64))),
        ("holes", Json::opt_num(s.holes)),
        ("pages_written", Json::opt_num(h.map(|h| h.pages_written))),
        ("pages_checked", Json::Bool(s.pages_checked)),
        ("durability", Json::opt_str(h.map(|h| if h.durability == 1 { "sync" } else { "process" }))),
        ("region_base", Json::opt_str(h.map(|h| format!("{:#x}", h.base)))),
        ("region_bytes", Json::opt_num(h.map(|h| h.capacity))),
        ("threads", Json::opt_num(t.map(|t| t.live as u64))),
        ("exited_threads", Json::opt_num(t.map(|t| t.exited as u64))),
        ("binary", binary),
    ])
}
