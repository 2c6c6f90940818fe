//! `status` and `verify` on intact and damaged checkpoint directories, and the command line.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::common::TempDir;
use crate::{cli, created, flip, page_off, s, slot, stored_page};

// ---------------------------------------------------------------------------------------------
// Help and the command line.

pub fn help_and_command_line_mistakes() {
    let o = cli(&["--help"]);
    o.expect(0);
    for w in ["run", "checkpoint", "status", "verify", "clean", "  2    bad input", "  3    verify", "127 "] {
        assert!(o.stdout.contains(w), "--help lacks {w:?}: {o:?}");
    }
    let o = cli(&["verify", "--help"]);
    o.expect(0);
    assert!(o.stdout.starts_with("usage: crthreads verify [options] DIR"), "{o:?}");
    assert!(o.stdout.contains("  1    a checkpoint is usable, but a problem was found"), "{o:?}");
    assert!(o.stdout.contains("  2    bad input"), "{o:?}");
    let o = cli(&["frobnicate"]);
    o.expect(2);
    assert!(o.stderr.contains("unknown command `frobnicate`") && o.stderr.contains("checkpoint"), "{o:?}");
    let o = cli(&["status", "--jsn", "x"]);
    o.expect(2);
    assert_eq!(
        o.stderr.trim(),
        "crthreads status: unknown option --jsn; the options of status are --json, --quick, --progress, \
         --no-progress, --help (see crthreads status --help)"
    );
    let o = cli(&["status"]);
    o.expect(2);
    assert_eq!(o.stderr.trim(), "crthreads status: missing DIR (see crthreads status --help)");
    let o = cli(&["verify", "a", "b"]);
    o.expect(2);
    assert_eq!(o.stderr.trim(), "crthreads verify: unexpected argument `b` after DIR (see crthreads verify --help)");
    let o = cli(&["checkpoint", "--timeout", "soon", "1"]);
    o.expect(2);
    assert!(o.stderr.contains("--timeout needs a positive number of seconds, not `soon`"), "{o:?}");
    let o = cli(&["clean", "--force=yes", "d"]);
    o.expect(2);
    assert!(o.stderr.contains("option --force takes no value"), "{o:?}");
    let o = cli(&[] as &[&str]);
    o.expect(2);
    assert!(o.stderr.starts_with("crthreads: run programs that survive crashes"), "the usage on stderr: {o:?}");
}

// ---------------------------------------------------------------------------------------------
// status and verify.

pub fn status_and_verify_report_an_intact_checkpoint() {
    let (_t, dir) = created("cli-intact");
    let o = cli(&["verify", s(&dir)]);
    o.expect(0);
    let l = o.lines();
    assert!(
        l[0].starts_with("slot-0: checkpoint 3: valid (") && l[1].starts_with("slot-1: checkpoint 2: valid ("),
        "{o:?}"
    );
    assert_eq!(l[2], "usable: checkpoint 3 in slot-0, the newest");

    let o = cli(&["status", s(&dir)]);
    o.expect(0);
    let exe = std::env::current_exe().unwrap();
    assert!(o.stdout.contains("held by: no process (the program is not running)"), "{o:?}");
    assert!(o.stdout.contains("restore would use: slot-0, checkpoint 3"), "{o:?}");
    let row = |slot: &str| -> Vec<String> {
        let l = o.lines().into_iter().find(|l| l.starts_with(slot)).unwrap_or_else(|| panic!("no {slot} row: {o:?}"));
        assert!(l.contains(s(&exe)), "the row names the binary: {o:?}");
        l.split_whitespace().map(String::from).collect()
    };
    let (row0, row1) = (row("slot-0 "), row("slot-1 "));
    assert_eq!(&row0[..3], &["slot-0", "valid", "3"], "{o:?}");
    assert_eq!(&row1[..3], &["slot-1", "valid", "2"], "{o:?}");
    // SERIES, then COMMITTED (UTC) as a date and a time, then AGE: one series, seconds old.
    assert_eq!(row0[3], row1[3], "both slots of one run share a series: {o:?}");
    assert!(row0[4].len() == 10 && row0[5].len() == 8 && row0[7] == "s", "{o:?}");
    assert!(row0[6].parse::<u64>().is_ok_and(|a| a < 600), "{o:?}");

    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert_eq!((j.get("seq").u64(), j.get("slot").u64()), (Some(3), Some(0)));
    let series = j.get("slots").at(0).get("series").str().unwrap().to_string();
    assert_eq!(series.len(), 32);
    assert_eq!(j.get("slots").at(1).get("series").str(), Some(series.as_str()));
    assert!(series.starts_with(&row0[3]), "the table shows the series' first digits: {series} {o:?}");
    assert!(!j.get("fell_back").bool() && !j.get("held").bool() && j.get("holder").u64().is_none());
    let build_id = crthreads::identity::Identity::current().objects[0].build_id.clone();
    for (i, seq) in [(0, 3), (1, 2)] {
        let sl = j.get("slots").at(i);
        assert_eq!(sl.get("state").str(), Some("valid"));
        assert_eq!(sl.get("seq").u64(), Some(seq));
        assert_eq!(sl.get("threads").u64(), Some(0), "no persistent threads in this program");
        assert_eq!(sl.get("binary").get("path").str(), Some(s(&exe)));
        let hex: String = build_id.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sl.get("binary").get("build_id").str(), (!hex.is_empty()).then_some(hex.as_str()));
        let (live, stored) = (sl.get("live_bytes").u64().unwrap(), sl.get("stored_bytes").u64().unwrap());
        // The root vector alone is 80 KB of stored data; holes are not stored.
        assert!(stored >= 80_000 && stored <= live, "{sl:?}");
        assert_eq!(sl.get("file_bytes").u64(), Some(fs::metadata(slot(&dir, i)).unwrap().len()));
        assert!(sl.get("age_secs").u64().is_some_and(|a| a < 600), "{sl:?}");
        assert!(!sl.get("other_series").bool(), "{sl:?}");
    }
}

/// Each file of `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(std::ffi::OsString, u64, std::time::SystemTime)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (e.file_name(), m.len(), m.modified().unwrap())
        })
        .collect();
    v.sort();
    v
}

pub fn a_damaged_newest_slot_leaves_only_the_older_usable() {
    // A flipped bit in a stored page.
    let (_t, dir) = created("cli-page");
    let p = stored_page(&dir, 0, false);
    flip(&dir, 0, page_off(p) + 100);
    fs::remove_file(dir.join("crthreads.lock")).unwrap();
    let before = snapshot(&dir);
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
    assert_eq!(
        o.stderr.trim(),
        format!("crthreads verify: {}: checkpoint 3 is damaged: page {p} checksum mismatch", slot(&dir, 0).display())
    );
    let l = o.lines();
    assert_eq!(l[0], format!("slot-0: checkpoint 3: invalid: page {p} checksum mismatch"));
    assert!(l[1].starts_with("slot-1: checkpoint 2: valid ("), "{o:?}");
    assert_eq!(l[2], "only the older checkpoint is usable: checkpoint 2 in slot-1 (checkpoint 3 in slot-0 is damaged)");
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert_eq!((j.get("seq").u64(), j.get("slot").u64()), (Some(2), Some(1)), "{j:?}");
    assert!(j.get("fell_back").bool());
    let s0 = j.get("slots").at(0);
    assert_eq!((s0.get("state").str(), s0.get("seq").u64()), (Some("invalid"), Some(3)));
    assert_eq!(s0.get("reason").str(), Some(format!("page {p} checksum mismatch").as_str()));
    // --quick reads no page: it cannot see the damage, and says so.
    let j = cli(&["status", "--json", "--quick", s(&dir)]).expect(0).json();
    assert_eq!(j.get("seq").u64(), Some(3));
    assert!(!j.get("pages_checked").bool());
    let o = cli(&["status", "--quick", s(&dir)]);
    assert!(o.expect(0).stdout.contains("--quick: the stored pages were not read"), "{o:?}");
    // Read-only: no file was written, and no lock file was made.
    assert_eq!(snapshot(&dir), before, "verify and status changed the directory");

    // A flipped bit in the header (the sequence number).
    let (_t, dir) = created("cli-header");
    flip(&dir, 0, 24);
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
    assert_eq!(o.lines()[0], "slot-0: invalid: header checksum mismatch (torn or corrupted commit record)");
    assert_eq!(
        o.lines()[2],
        "only the older checkpoint is usable: checkpoint 2 in slot-1 (slot-0 is damaged and may have held a newer one)"
    );

    // Truncated in the middle of its last stored page.
    let (_t, dir) = created("cli-truncated");
    let p = stored_page(&dir, 0, true);
    OpenOptions::new().write(true).open(slot(&dir, 0)).unwrap().set_len(page_off(p) + 100).unwrap();
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
    assert_eq!(o.lines()[0], format!("slot-0: checkpoint 3: invalid: truncated: page {p} is missing"));
}

pub fn a_damaged_older_slot_keeps_the_newest_usable() {
    let (_t, dir) = created("cli-older");
    let p = stored_page(&dir, 1, false);
    flip(&dir, 1, page_off(p) + 7);
    let o = cli(&["verify", s(&dir)]);
    // The newest checkpoint restores, but the damage is named: the exit status is not 0.
    o.expect(1);
    assert_eq!(o.lines()[1], format!("slot-1: checkpoint 2: invalid: page {p} checksum mismatch"));
    assert_eq!(o.lines()[2], "usable: checkpoint 3 in slot-0, but slot-1 is damaged");
    assert_eq!(
        o.stderr.trim(),
        format!("crthreads verify: {}: checkpoint 2 is damaged: page {p} checksum mismatch", slot(&dir, 1).display())
    );
}

pub fn a_slot_of_another_series_is_named() {
    // Another run's slot-1 (checkpoint 2 of its own series) copied over this run's.
    let (_t, dir) = created("cli-series");
    let (_t2, other) = created("cli-series-other");
    fs::copy(slot(&other, 1), slot(&dir, 1)).unwrap();
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
    assert!(o.lines()[0].starts_with("slot-0: checkpoint 3: valid ("), "{o:?}");
    assert!(o.lines()[1].ends_with("; of another checkpoint series, which a restore ignores)"), "{o:?}");
    assert_eq!(o.lines()[2], "usable: checkpoint 3 in slot-0, but slot-1 belongs to another checkpoint series");
    assert_eq!(
        o.stderr.trim(),
        format!(
            "crthreads verify: {} and slot-0 belong to different checkpoint series (one of them is a file of another \
             run): a restore uses checkpoint 3 in slot-0, the newest, and ignores slot-1",
            slot(&dir, 1).display()
        )
    );
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    let (s0, s1) = (j.get("slots").at(0), j.get("slots").at(1));
    assert_ne!(s0.get("series").str(), s1.get("series").str(), "{j:?}");
    assert!(!s0.get("other_series").bool() && s1.get("other_series").bool(), "{j:?}");
    assert_eq!(j.get("seq").u64(), Some(3));
    let o = cli(&["status", s(&dir)]);
    assert!(
        o.expect(0).stdout.contains("slot-1: belongs to another checkpoint series (a file of another run)"),
        "{o:?}"
    );

    // Another run's newer checkpoint copied in: a restore takes it, and ignores this run's own.
    fs::copy(slot(&dir, 0), slot(&other, 0)).unwrap();
    let o = cli(&["verify", "--quiet", s(&other)]);
    o.expect(1);
    assert!(o.stdout.is_empty(), "{o:?}");
    let want =
        format!("crthreads verify: {} and slot-0 belong to different checkpoint series", slot(&other, 1).display());
    assert!(o.stderr.starts_with(&want), "{o:?}");
}

pub fn a_deleted_slot_means_the_newest_cannot_be_told() {
    let (_t, dir) = created("cli-deleted");
    fs::remove_file(slot(&dir, 0)).unwrap();
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
    assert!(o.stderr.contains(&format!("{} is missing (deleted?)", slot(&dir, 0).display())), "{o:?}");
    assert_eq!(o.lines()[0], "slot-0: missing");
    assert_eq!(
        o.lines()[2],
        "usable: checkpoint 2 in slot-1, but slot-0 is missing, so it may not be the newest checkpoint written"
    );
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert_eq!(j.get("seq").u64(), Some(2));
    assert!(!j.get("slots").at(0).get("exists").bool());
}

pub fn no_usable_checkpoint_is_exit_status_3() {
    let (_t, dir) = created("cli-none");
    flip(&dir, 0, page_off(stored_page(&dir, 0, false)) + 1);
    flip(&dir, 1, page_off(stored_page(&dir, 1, false)) + 1);
    let o = cli(&["verify", s(&dir)]);
    o.expect(3);
    assert_eq!(o.lines()[2], format!("no usable checkpoint: no valid checkpoint in {}", dir.display()));
    for sl in 0..2 {
        let damaged =
            format!("crthreads verify: {}: checkpoint {} is damaged: page ", slot(&dir, sl).display(), 3 - sl);
        assert!(o.stderr.lines().any(|l| l.starts_with(&damaged)), "{o:?}");
    }
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert!(j.get("seq").u64().is_none() && j.get("slot").u64().is_none(), "{j:?}");
    assert!(j.get("error").str().unwrap().starts_with("no valid checkpoint in"), "{j:?}");
    let o = cli(&["verify", "--quiet", s(&dir)]);
    assert!(o.expect(3).stdout.is_empty(), "{o:?}");

    let t = TempDir::new("cli-empty");
    let empty = t.join("ck");
    fs::DirBuilder::new().mode(0o700).create(&empty).unwrap();
    let o = cli(&["verify", s(&empty)]);
    o.expect(3);
    assert_eq!(
        o.lines(),
        [
            "slot-0: missing",
            "slot-1: missing",
            &format!("no usable checkpoint: {} holds no checkpoint", empty.display())
        ]
    );
    let o = cli(&["status", s(&t.join("nowhere"))]);
    o.expect(2);
    assert_eq!(
        o.stderr.trim(),
        format!("crthreads status: {} does not exist (no checkpoint directory there)", t.join("nowhere").display())
    );
}

pub fn verify_shows_progress_when_asked() {
    let (_t, dir) = created("cli-progress");
    let o = cli(&["verify", "--progress", s(&dir)]);
    o.expect(0);
    for sl in ["slot-0", "slot-1"] {
        let prefix = format!("crthreads verify: {sl}: ");
        assert!(o.stderr.lines().any(|l| l.starts_with(&prefix) && l.contains("% of ")), "{o:?}");
        assert!(o.stderr.lines().any(|l| l == format!("{prefix}checked")), "{o:?}");
    }
    let o = cli(&["verify", "--no-progress", s(&dir)]);
    assert!(o.expect(0).stderr.is_empty(), "{o:?}");
}
