//! `status` and `verify` on intact and damaged checkpoint directories, and the command line.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::DirBuilderExt;

use crate::common::TempDir;
use crate::{cli, created, flip, page_off, s, slot, stored_page};

// ---------------------------------------------------------------------------------------------
// Help and the command line.

pub fn help_and_command_line_mistakes() {
    let o = cli(&["--help"]);
    o.expect(0);
    for w in ["run", "checkpoint", "status", "verify", "clean", "64 ", "75 ", "127 "] {
        assert!(o.stdout.contains(w), "--help lacks {w:?}: {o:?}");
    }
    let o = cli(&["verify", "--help"]);
    o.expect(0);
    assert!(o.stdout.starts_with("usage: crthreads verify [options] DIR"), "{o:?}");
    assert!(o.stdout.contains("  1    only the older checkpoint is usable"), "{o:?}");
    let o = cli(&["frobnicate"]);
    o.expect(64);
    assert!(o.stderr.contains("unknown command `frobnicate`") && o.stderr.contains("checkpoint"), "{o:?}");
    let o = cli(&["status", "--jsn", "x"]);
    o.expect(64);
    assert_eq!(
        o.stderr.trim(),
        "crthreads status: unknown option --jsn; the options of status are --json, --quick, --progress, \
         --no-progress, --help (see crthreads status --help)"
    );
    cli(&["status"]).expect(64);
    cli(&["verify", "a", "b"]).expect(64);
    let o = cli(&["checkpoint", "--timeout", "soon", "1"]);
    o.expect(64);
    assert!(o.stderr.contains("--timeout needs a positive number of seconds, not `soon`"), "{o:?}");
    cli(&[] as &[&str]).expect(64);
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
    let row0 = o.lines().into_iter().find(|l| l.starts_with("slot-0 ")).expect("a row for slot-0");
    let cells: Vec<&str> = row0.split_whitespace().collect();
    assert_eq!(&cells[..3], &["slot-0", "valid", "3"], "{o:?}");
    assert!(row0.contains(s(&exe)), "the row names the binary: {o:?}");

    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert_eq!((j.get("seq").u64(), j.get("slot").u64()), (Some(3), Some(0)));
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
    }
}

pub fn a_damaged_newest_slot_leaves_only_the_older_usable() {
    // A flipped bit in a stored page.
    let (_t, dir) = created("cli-page");
    let p = stored_page(&dir, 0, false);
    flip(&dir, 0, page_off(p) + 100);
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
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
    o.expect(0);
    assert_eq!(o.lines()[1], format!("slot-1: checkpoint 2: invalid: page {p} checksum mismatch"));
    assert_eq!(o.lines()[2], "usable: checkpoint 3 in slot-0, the newest");
}

pub fn a_deleted_slot_means_the_newest_cannot_be_told() {
    let (_t, dir) = created("cli-deleted");
    fs::remove_file(slot(&dir, 0)).unwrap();
    let o = cli(&["verify", s(&dir)]);
    o.expect(1);
    assert_eq!(o.lines()[0], "slot-0: missing");
    assert_eq!(
        o.lines()[2],
        "usable: checkpoint 2 in slot-1, but slot-0 is missing, so it may not be the newest checkpoint written"
    );
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert_eq!(j.get("seq").u64(), Some(2));
    assert!(!j.get("slots").at(0).get("exists").bool());
}

pub fn no_usable_checkpoint_is_exit_status_2() {
    let (_t, dir) = created("cli-none");
    flip(&dir, 0, page_off(stored_page(&dir, 0, false)) + 1);
    flip(&dir, 1, page_off(stored_page(&dir, 1, false)) + 1);
    let o = cli(&["verify", s(&dir)]);
    o.expect(2);
    assert_eq!(o.lines()[2], format!("no usable checkpoint: no valid checkpoint in {}", dir.display()));
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    assert!(j.get("seq").u64().is_none() && j.get("slot").u64().is_none(), "{j:?}");
    assert!(j.get("error").str().unwrap().starts_with("no valid checkpoint in"), "{j:?}");
    let o = cli(&["verify", "--quiet", s(&dir)]);
    assert!(o.expect(2).stdout.is_empty(), "{o:?}");

    let t = TempDir::new("cli-empty");
    let empty = t.join("ck");
    fs::DirBuilder::new().mode(0o700).create(&empty).unwrap();
    let o = cli(&["verify", s(&empty)]);
    o.expect(2);
    assert_eq!(
        o.lines(),
        [
            "slot-0: missing",
            "slot-1: missing",
            &format!("no usable checkpoint: {} holds no checkpoint", empty.display())
        ]
    );
    let o = cli(&["status", s(&t.join("nowhere"))]);
    o.expect(66);
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
