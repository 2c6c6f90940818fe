//! With `CRTHREADS_STATS`, the K-means demo's checkpoints after the first write far fewer pages
//! than the first: only what an iteration changes (assignments, centroids, a few metadata
//! pages), not the points. Checked for both write trackers, against the `full` baseline, which
//! rewrites every live page each time.
//!
//! kmeans runs on [`THREADS`] worker threads. A checkpoint taken while they end (the last
//! releases of the model's lock come as the workers leave) also records the stacks of those
//! that ended: a freed stack's pages are given back and count as changed. Such a checkpoint
//! (fewer threads parked than the workers and the main thread) may write that much more per
//! ended worker, and no more.

mod common;

use std::process::Command;

use common::{TempDir, example_bin};

/// kmeans's worker threads.
const THREADS: u64 = 4;
/// The pages of a worker's stack: crthreads' default thread stack and its guard page.
const STACK_PAGES: u64 = crthreads::thread::DEFAULT_STACK as u64 / 4096 + 1;

/// The fields of one statistics line this test reads.
#[derive(Debug)]
struct Line {
    seq: u64,
    pages_scanned: u64,
    dirty_pages: u64,
    pages_written: u64,
    holes: u64,
    bytes_written: u64,
    threads_parked: u64,
}

fn num(line: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("{key} missing in {line}")) + pat.len();
    line[at..].chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap()
}

fn run(tracker: &str) -> Vec<Line> {
    let t = TempDir::new("kstats");
    let stats = t.join("stats.jsonl");
    let out = Command::new(example_bin("kmeans"))
        .args(["--points", "20000", "--k", "8", "--iters", "8", "--dim", "16", "--seed", "3"])
        .args(["--threads", &THREADS.to_string()])
        .env("CRTHREADS_DIR", t.join("ckpt"))
        .env("CRTHREADS_STATS", &stats)
        .env("CRTHREADS_TRACKER", tracker)
        .output()
        .unwrap();
    assert!(out.status.success(), "[{tracker}] {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&stats).unwrap();
    let lines: Vec<Line> = text
        .lines()
        .map(|l| {
            assert!(l.starts_with('{') && l.ends_with('}'), "one JSON object per line: {l}");
            assert!(l.contains(&format!("\"tracker\":\"{tracker}\"")), "{l}");
            for k in ["duration_us", "\"stop\":", "\"scan\":", "\"copy\":", "\"sync\":", "\"commit\":"] {
                assert!(l.contains(k), "{k} missing in {l}");
            }
            Line {
                seq: num(l, "seq"),
                pages_scanned: num(l, "pages_scanned"),
                dirty_pages: num(l, "dirty_pages"),
                pages_written: num(l, "pages_written"),
                holes: num(l, "holes"),
                bytes_written: num(l, "bytes_written"),
                threads_parked: num(l, "threads_parked"),
            }
        })
        .collect();
    assert!(lines.len() >= 8, "[{tracker}] one line per checkpoint: {text}");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.seq, i as u64 + 1, "[{tracker}] sequence numbers");
        // Holes (pages never touched, such as the unused thread table) are recorded, not written.
        assert!(l.holes <= l.pages_written, "[{tracker}] {l:?}");
        assert!(l.bytes_written >= (l.pages_written - l.holes) * 4096, "[{tracker}] {l:?}");
    }
    lines
}

#[test]
fn checkpoints_after_the_first_write_only_what_an_iteration_changes() {
    for tracker in ["uffd", "mprotect"] {
        let lines = run(tracker);
        let first = &lines[0];
        // The first checkpoint writes every live page, into both slots.
        assert!(first.pages_written >= first.pages_scanned, "[{tracker}] first: {first:?}");
        for l in &lines[1..] {
            assert!(l.dirty_pages > 0, "[{tracker}] an iteration writes something: {l:?}");
            assert!(l.threads_parked <= THREADS + 1, "[{tracker}] more threads than kmeans has: {l:?}");
            let ended = THREADS + 1 - l.threads_parked;
            let iteration = l.pages_written.saturating_sub(ended * STACK_PAGES);
            assert!(
                iteration * 4 < l.pages_scanned,
                "[{tracker}] checkpoint {} wrote {} of {} live pages ({ended} workers ended): not incremental",
                l.seq,
                l.pages_written,
                l.pages_scanned
            );
            assert!(iteration * 8 < first.pages_written, "[{tracker}] {l:?} vs first {first:?}");
        }
    }
}

#[test]
fn the_full_baseline_rewrites_everything() {
    let lines = run("full");
    for l in &lines[1..] {
        assert_eq!(l.pages_written, l.pages_scanned, "full writes every live page: {l:?}");
    }
}
