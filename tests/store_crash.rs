//! Crash tests of the checkpoint store against a model, with real processes and real kills.
//!
//! A *work* child (this binary, role `work`) initialises crthreads in a checkpoint directory,
//! takes a persistent root holding a buffer of P pages (a `Vec<u8>` in the persistent heap) and
//! a few *blobs* (zeroed `Vec<u8>`s of 1 byte to 2 MiB, allocated and freed as it goes, so the
//! heap's live extent grows and shrinks and freed large blocks go back to the OS when the heap
//! keeps more free memory than its limit), and then, for
//! each checkpoint number k after the one it restored, applies *segment k* and takes checkpoint
//! k. A segment is a list of page writes, `read()`/`pread()`s from a data file straight into
//! the buffer, and blob allocations, writes and frees, derived from (seed, k) alone, so the
//! parent can compute the content each checkpoint must hold: image(k) = image(k-1) + segment k.
//! Every fresh blob must read as zero (after a restore too: the heap's knowledge of which pages
//! are zero must match the restored memory). After each checkpoint returns, the child appends
//! `committed <k>` to a log, then `live <k> <pages>` (the checkpoint's live pages).
//!
//! Half the segments (chosen from (seed, k) too) are *threaded*: the work child applies them
//! with T worker threads (T from the scenario, 1 to 4, spawned for the segment and started
//! together at a barrier), while its main thread applies the blob operations. The buffer
//! operations are cut at page boundaries and page p of the buffer belongs to worker p % T, so
//! no two threads write the same page, each page sees its writes in the segment's order, and
//! the result is the model's whatever T and the interleaving; the workers' shares include
//! `read()`/`pread()`s, each worker through its own file handle. So the trackers see first
//! writes to protected pages, and the mprotect tracker's read interposition runs, in several
//! threads at once. The segment's checkpoint is taken after every worker is joined (nothing
//! else writes the heap during it), and the child logs `threads <k> <T> <shares> <reads>`
//! before it; the parent checks that every committed threaded segment was applied by T threads.
//!
//! The child is crashed in two ways:
//! - a failpoint (`CRTHREADS_FAILPOINT=<stage>@<k>`, feature `crthreads/failpoints`) kills it
//!   at a stage of checkpoint k: after `before-payload`, `mid-payload` and `before-commit`
//!   checkpoint k-1 must be restored, after `after-commit` and `mirror` checkpoint k (`mirror`
//!   happens only at the first checkpoint of a fresh store; elsewhere the run must finish);
//! - SIGKILL from the parent at a random instant after the log reached a chosen line: the
//!   restored checkpoint must be the last one logged (L) or the next (the log line is written
//!   after the commit), and never beyond the run's last checkpoint.
//!
//! After each crash a *verify* child restores (it must report `Fresh` exactly when no
//! checkpoint was committed, otherwise `Restored { seq }` as expected), checks that the root's
//! own counter equals `seq`, and dumps the buffer and the blobs, which must equal image(seq)
//! byte for byte. The next work child resumes from that checkpoint, so later crashes test
//! restores of stores that were themselves restored (the incremental double buffering after a
//! restore).
//!
//! Every scenario runs under a durability (`process` or `sync`) and a dirty-page tracker (`auto`,
//! which is userfaultfd where the kernel has it, `mprotect`, or `full`); in half of the random
//! scenarios each run switches to the next tracker and the other durability. With an incremental
//! tracker, a slot left two checkpoints behind, or behind by a restore, must be brought up to
//! date by the next checkpoint into it; a missed page shows as a byte that differs from the
//! model. With `mprotect`, the `read()`s into the buffer also test that the kernel's writes into
//! protected pages are handled, and the threaded segments that its SIGSEGV handler and read
//! interposition record every page whatever thread wrote it. Scenarios come from proptest
//! (`PROPTEST_CASES` raises the count; regressions go to
//! `tests/proptest-regressions/store_crash_*.txt`); `failpoint_at_every_stage` is a fixed sweep
//! of every stage at checkpoints 1 and 3 in both durabilities, and `regrowth_after_a_restore` a
//! fixed case of a store restored after its live pages shrank, which then grow again.
//! `page_shares_match_the_model` checks the test's own splitting of threaded segments. Without
//! the `failpoints` feature the failpoint tests report that they are skipped and the random
//! kills still run.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::{Rng, TempDir, child, killed, role, run_tests, wait_or_kill};
use crthreads::failpoint::{self, STAGES};
use crthreads::{Config, Durability, Start, TrackerKind};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, FileFailurePersistence, TestCaseError, TestRunner};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const PAGE: usize = 4096;
const CAPACITY: usize = 64 << 20;
/// Size of the file that `read()` copies from.
const DATA_LEN: usize = 64 << 10;
/// The longest a child may take before it is killed and reported as hung.
const CHILD_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The workload, shared by the children (on the persistent buffer) and the parent (on its model).

#[derive(Clone, Copy, Debug)]
enum SegOp {
    /// `buf[off + i] = val + i * step` for `i < len`.
    Write { off: usize, len: usize, val: u8, step: u8 },
    /// Copies `len` bytes at `foff` of the data file into `buf[off..]` with `read()` after a
    /// seek, or with `pread()`.
    Read { off: usize, len: usize, foff: u64, pread: bool },
    /// Allocates a zeroed blob of `len` bytes (dropping the oldest if there are [`MAX_BLOBS`]),
    /// checks that it reads as zero, and writes its first 4 KiB. Blobs make the heap's live
    /// extent grow and shrink, and freed ones are given back to the OS when the heap keeps more
    /// free memory than its limit.
    Blob { len: usize, val: u8, step: u8 },
    /// Frees blob `pick % count`, if any.
    DropBlob { pick: u64 },
    /// Writes a window of blob `pick % count`, if any: from `at % len`, `1 + wlen % (rest,
    /// at most 64 KiB)` bytes.
    BlobWrite { pick: u64, at: u64, wlen: u64, val: u8, step: u8 },
}

/// The most blobs kept at once.
const MAX_BLOBS: usize = 8;

/// The operations between checkpoints k-1 and k, and whether worker threads apply them.
struct Segment {
    /// Whether the segment is *threaded*: its buffer operations are split at page boundaries
    /// and applied by the work child's worker threads (page p of the buffer by worker p % T),
    /// while the main thread applies the blob operations.
    threaded: bool,
    ops: Vec<SegOp>,
}

/// Segment k, derived from (seed, k) alone (not from the thread count, so the model is the
/// same whatever the scenario's threads). Half the segments are threaded; those are longer (4
/// to 32 operations, so that every worker gets pages to write).
fn segment(seed: u64, k: u64, pages: usize) -> Segment {
    let mut r = Rng(seed ^ k.wrapping_mul(0xA24B_AED4_963E_E407));
    let total = (pages * PAGE) as u64;
    let threaded = r.below(2) == 0;
    let n = if threaded { 4 + r.below(29) } else { r.below(13) };
    let ops = (0..n)
        .map(|_| match r.below(13) {
            // A small write inside one page.
            0..=4 => {
                let off = r.below(pages as u64) * PAGE as u64 + r.below(PAGE as u64);
                let len = 1 + r.below(512.min(total - off));
                SegOp::Write { off: off as usize, len: len as usize, val: r.next() as u8, step: r.next() as u8 }
            }
            // A write over up to 64 pages.
            5..=6 => {
                let off = r.below(total);
                let len = 1 + r.below((64 * PAGE as u64).min(total - off));
                SegOp::Write { off: off as usize, len: len as usize, val: r.next() as u8, step: r.next() as u8 }
            }
            7..=8 => {
                let off = r.below(total);
                let len = 1 + r.below((16 << 10).min(total - off));
                let foff = r.below(DATA_LEN as u64 - len + 1);
                SegOp::Read { off: off as usize, len: len as usize, foff, pread: r.next() & 1 == 0 }
            }
            9 => {
                let len = if r.below(2) == 0 { 1 + r.below(32 << 10) } else { (32 << 10) + r.below(2 << 20) };
                SegOp::Blob { len: len as usize, val: r.next() as u8, step: r.next() as u8 }
            }
            10 => SegOp::DropBlob { pick: r.next() },
            _ => SegOp::BlobWrite {
                pick: r.next(),
                at: r.next(),
                wlen: r.next(),
                val: r.next() as u8,
                step: r.next() as u8,
            },
        })
        .collect();
    Segment { threaded, ops }
}

/// Splits the buffer operations of `ops` (`Write` and `Read`; the others are skipped) at the
/// page boundaries of a buffer whose first byte lies `lead` bytes into its page. Returns, in
/// order, `(piece, op)`: piece i is the part of the buffer in its i-th page, and `op` is
/// relative to that piece, with the values and file offset of its share. Applying the shares of
/// each piece in order gives the same bytes as applying `ops`.
fn split_by_page(ops: &[SegOp], lead: usize) -> Vec<(usize, SegOp)> {
    let mut out = Vec::new();
    for &op in ops {
        let (SegOp::Write { off, len, .. } | SegOp::Read { off, len, .. }) = op else { continue };
        let mut o = off;
        while o < off + len {
            let piece = (lead + o) / PAGE;
            let start = (piece * PAGE).saturating_sub(lead);
            let end = ((piece + 1) * PAGE - lead).min(off + len);
            let (i, n) = (o - off, end - o);
            let share = match op {
                SegOp::Write { val, step, .. } => {
                    SegOp::Write { off: o - start, len: n, val: val.wrapping_add((i as u8).wrapping_mul(step)), step }
                }
                SegOp::Read { foff, pread, .. } => SegOp::Read { off: o - start, len: n, foff: foff + i as u64, pread },
                _ => unreachable!("only buffer operations are split"),
            };
            out.push((piece, share));
            o = end;
        }
    }
    out
}

/// The buffer cut at page boundaries: piece i is the part of `buf` in its i-th page.
fn page_pieces(buf: &mut [u8]) -> Vec<&mut [u8]> {
    let head = ((PAGE - buf.as_ptr() as usize % PAGE) % PAGE).min(buf.len());
    let (head, rest) = buf.split_at_mut(head);
    let mut pieces = Vec::new();
    if !head.is_empty() {
        pieces.push(head);
    }
    pieces.extend(rest.chunks_mut(PAGE));
    pieces
}

/// Contents of the data file.
fn data_bytes(seed: u64) -> Vec<u8> {
    let mut r = Rng(seed ^ 0x5EED_DA7A);
    (0..DATA_LEN / 8).flat_map(|_| r.next().to_le_bytes()).collect()
}

fn write_op(buf: &mut [u8], off: usize, len: usize, val: u8, step: u8) {
    for (i, b) in buf[off..off + len].iter_mut().enumerate() {
        *b = val.wrapping_add((i as u8).wrapping_mul(step));
    }
}

/// Fills a slice from the data file: `(destination, file offset, use pread)`.
type ReadFn<'a> = dyn FnMut(&mut [u8], u64, bool) -> std::io::Result<()> + 'a;

/// What the workload changes: the page buffer and the blobs. The children keep it in the
/// persistent heap (in their root), the parent in its model.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Content {
    buf: Vec<u8>,
    blobs: Vec<Vec<u8>>,
}

impl Content {
    fn new(pages: usize) -> Content {
        Content { buf: vec![0; pages * PAGE], blobs: Vec::new() }
    }

    /// Applies `op`; `read(dst, file offset, pread)` fills `dst` from the data file.
    fn apply(&mut self, op: SegOp, read: &mut ReadFn<'_>) -> Result<(), String> {
        match op {
            SegOp::Write { .. } | SegOp::Read { .. } => apply_buf_op(&mut self.buf, op, read),
            _ => apply_blob_op(&mut self.blobs, op),
        }
    }

    /// Writes the form the verify child dumps: the buffer, the blob count, then each blob's
    /// length and bytes (lengths and counts as little-endian u64).
    fn dump(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.buf)?;
        w.write_all(&(self.blobs.len() as u64).to_le_bytes())?;
        for b in &self.blobs {
            w.write_all(&(b.len() as u64).to_le_bytes())?;
            w.write_all(b)?;
        }
        w.flush()
    }

    /// Reads what [`Content::dump`] wrote; `None` if it is malformed.
    fn decode(mut d: &[u8], pages: usize) -> Option<Content> {
        fn take<'a>(d: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (a, b) = (d.get(..n)?, d.get(n..)?);
            *d = b;
            Some(a)
        }
        fn num(d: &mut &[u8]) -> Option<usize> {
            Some(u64::from_le_bytes(take(d, 8)?.try_into().ok()?) as usize)
        }
        let buf = take(&mut d, pages * PAGE)?.to_vec();
        let n = num(&mut d)?;
        let mut blobs = Vec::new();
        for _ in 0..n.min(1 << 16) {
            let len = num(&mut d)?;
            blobs.push(take(&mut d, len)?.to_vec());
        }
        (d.is_empty() && blobs.len() == n).then_some(Content { buf, blobs })
    }

    /// How `got` differs from `self` (the model), if it does.
    fn diff(&self, got: &Content) -> Option<String> {
        if self.buf != got.buf {
            return Some(format!("buffer: {}", diff(&self.buf, &got.buf)));
        }
        if self.blobs.len() != got.blobs.len() {
            let lens = |c: &Content| c.blobs.iter().map(Vec::len).collect::<Vec<_>>();
            return Some(format!("blobs of {:?} bytes restored, the model has {:?}", lens(got), lens(self)));
        }
        let (i, (w, g)) = self.blobs.iter().zip(&got.blobs).enumerate().find(|(_, (w, g))| w != g)?;
        Some(format!("blob {i}: {}", diff(w, g)))
    }
}

/// Applies a buffer operation (`Write` or `Read`) to `buf`.
fn apply_buf_op(buf: &mut [u8], op: SegOp, read: &mut ReadFn<'_>) -> Result<(), String> {
    match op {
        SegOp::Write { off, len, val, step } => write_op(buf, off, len, val, step),
        SegOp::Read { off, len, foff, pread } => {
            read(&mut buf[off..off + len], foff, pread).map_err(|e| format!("read into the buffer: {e}"))?
        }
        _ => unreachable!("not a buffer operation: {op:?}"),
    }
    Ok(())
}

/// Applies a blob operation (`Blob`, `DropBlob` or `BlobWrite`) to `blobs`.
fn apply_blob_op(blobs: &mut Vec<Vec<u8>>, op: SegOp) -> Result<(), String> {
    match op {
        SegOp::Blob { len, val, step } => {
            if blobs.len() >= MAX_BLOBS {
                blobs.remove(0);
            }
            let mut b = vec![0u8; len];
            if let Some(i) = first_nonzero(&b) {
                return Err(format!("a fresh zeroed allocation of {len} bytes reads {:#04x} at byte {i}", b[i]));
            }
            write_op(&mut b, 0, len.min(PAGE), val, step);
            blobs.push(b);
        }
        SegOp::DropBlob { pick } => {
            if !blobs.is_empty() {
                let i = (pick % blobs.len() as u64) as usize;
                blobs.swap_remove(i);
            }
        }
        SegOp::BlobWrite { pick, at, wlen, val, step } => {
            if !blobs.is_empty() {
                let i = (pick % blobs.len() as u64) as usize;
                let b = &mut blobs[i];
                let off = (at % b.len() as u64) as usize;
                let len = 1 + (wlen % (b.len() - off).min(64 << 10) as u64) as usize;
                write_op(b, off, len, val, step);
            }
        }
        SegOp::Write { .. } | SegOp::Read { .. } => unreachable!("not a blob operation: {op:?}"),
    }
    Ok(())
}

fn first_nonzero(b: &[u8]) -> Option<usize> {
    static ZERO: [u8; PAGE] = [0; PAGE];
    let chunk = b.chunks(PAGE).position(|c| c != &ZERO[..c.len()])?;
    let c = &b[chunk * PAGE..];
    c.iter().position(|&x| x != 0).map(|i| chunk * PAGE + i)
}

/// The parent's model: the content after checkpoint k, by replaying segments 1..=k (cached
/// forward).
struct Model {
    seed: u64,
    pages: usize,
    data: Vec<u8>,
    at: u64,
    content: Content,
}

impl Model {
    fn new(seed: u64, pages: usize) -> Model {
        Model { seed, pages, data: data_bytes(seed), at: 0, content: Content::new(pages) }
    }

    fn at(&mut self, k: u64) -> &Content {
        if k < self.at {
            self.at = 0;
            self.content = Content::new(self.pages);
        }
        let data = &self.data;
        let mut read = |dst: &mut [u8], foff: u64, _| {
            dst.copy_from_slice(&data[foff as usize..foff as usize + dst.len()]);
            Ok(())
        };
        while self.at < k {
            self.at += 1;
            for op in segment(self.seed, self.at, self.pages).ops {
                self.content.apply(op, &mut read).expect("the model's own operations cannot fail");
            }
        }
        &self.content
    }
}

// ---------------------------------------------------------------------------------------------
// The children.

/// The persistent root of the children.
struct State {
    /// Segments applied to `content`: equals the number of the checkpoint that holds this state.
    applied: u64,
    content: Content,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| die(2, &format!("{name} is not set")))
}

fn env_num(name: &str) -> u64 {
    env(name).parse().unwrap_or_else(|_| die(2, &format!("{name} is not a number")))
}

fn die(code: i32, msg: &str) -> ! {
    eprintln!("store_crash child: {msg}");
    std::process::exit(code)
}

/// Initialises crthreads as every child does and takes the root. Returns the restored seq.
///
/// Re-execution stays on (the default): a restore needs the executable where the checkpoint
/// had it, so each child re-executes itself once with address-space randomisation off.
fn child_init() -> (u64, crthreads::Root<State>) {
    let pages = env_num("CRT_PAGES") as usize;
    let cfg = Config::from_env()
        .unwrap_or_else(|e| die(2, &format!("config: {e}")))
        .dir(env("CRT_DIR"))
        .capacity(CAPACITY)
        .keep(true);
    let s = match crthreads::init(cfg) {
        Ok(Start::Fresh) => 0,
        Ok(Start::Restored { seq }) => seq,
        Ok(Start::Plain) => die(2, "init: unexpectedly plain"),
        Err(e) => die(2, &format!("init: {e}")),
    };
    println!("start {s}");
    // SAFETY: the root owns only Vecs allocated after init by the global allocator, which is
    // crthreads' persistent heap; the type is the same in every child of this binary.
    let root = unsafe { crthreads::root(|| State { applied: 0, content: Content::new(pages) }) }
        .unwrap_or_else(|e| die(2, &format!("root: {e}")));
    (s, root)
}

/// Role `work`: applies segments s+1..=CRT_UPTO, each followed by its checkpoint.
fn work() {
    let (seed, pages, upto) = (env_num("CRT_SEED"), env_num("CRT_PAGES") as usize, env_num("CRT_UPTO"));
    let (s, mut st) = child_init();
    if st.applied != s || st.content.buf.len() != pages * PAGE {
        die(
            3,
            &format!(
                "restored seq {s}, but the root says {} segments applied, {} bytes",
                st.applied,
                st.content.buf.len()
            ),
        );
    }
    let threads = env_num("CRT_THREADS") as usize;
    if !(1..=4).contains(&threads) {
        die(2, &format!("CRT_THREADS is {threads}, not 1 to 4"));
    }
    // One data file handle per worker: `read()` after a seek needs a file offset of its own.
    let mut files: Vec<File> = (0..threads)
        .map(|_| File::open(env("CRT_DATA")).unwrap_or_else(|e| die(2, &format!("data file: {e}"))))
        .collect();
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(env("CRT_LOG"))
        .unwrap_or_else(|e| die(2, &format!("log: {e}")));
    let mut log_line = |line: String| log.write_all(line.as_bytes()).unwrap_or_else(|e| die(2, &format!("log: {e}")));
    for k in s + 1..=upto {
        let seg = segment(seed, k, pages);
        if seg.threaded {
            let (shares, reads) = apply_threaded(&mut st.content, &seg.ops, &mut files)
                .unwrap_or_else(|e| die(6, &format!("segment {k} (threaded): {e}")));
            log_line(format!("threads {k} {threads} {shares} {reads}\n"));
        } else {
            let f = &mut files[0];
            for op in seg.ops {
                st.content
                    .apply(op, &mut |dst, foff, pread| read_data(f, dst, foff, pread))
                    .unwrap_or_else(|e| die(6, &format!("segment {k}, {op:?}: {e}")));
            }
        }
        st.applied = k;
        // Every worker is joined: no other thread writes the heap during the checkpoint.
        let live = match crthreads::checkpoint() {
            Ok(stats) if stats.seq == k => stats.pages_scanned,
            Ok(stats) => die(4, &format!("checkpoint {k} committed as seq {}", stats.seq)),
            Err(e) => die(5, &format!("checkpoint {k}: {e}")),
        };
        log_line(format!("committed {k}\nlive {k} {live}\n"));
    }
}

/// Fills `dst` from the data file at `foff`, with `pread()` or with a seek and `read()`.
fn read_data(f: &mut File, dst: &mut [u8], foff: u64, pread: bool) -> std::io::Result<()> {
    if pread { f.read_exact_at(dst, foff) } else { f.seek(SeekFrom::Start(foff)).and_then(|_| f.read_exact(dst)) }
}

/// Applies a threaded segment with one worker thread per file of `files` (T of them): the
/// segment's buffer operations are split at page boundaries ([`split_by_page`]) and worker t
/// applies, in order, the shares of the pieces i with i % T == t, reading through its own file
/// handle; so no two threads write the same page, and each page sees its writes in the order
/// of the segment. The workers start together at a barrier, with this thread, which meanwhile
/// applies the blob operations in order (they touch only the blobs, so the result is the same
/// as applying the segment in order). Returns the shares applied and how many were reads, after
/// joining every worker: a joined thread has finished, exit hooks included (the heap gives the
/// thread's cache back in one), so nothing else writes the heap when this returns.
fn apply_threaded(content: &mut Content, ops: &[SegOp], files: &mut [File]) -> Result<(usize, usize), String> {
    let t = files.len();
    let Content { buf, blobs } = content;
    let mut plans: Vec<Vec<(usize, SegOp)>> = (0..t).map(|_| Vec::new()).collect();
    for (piece, op) in split_by_page(ops, buf.as_ptr() as usize % PAGE) {
        plans[piece % t].push((piece / t, op));
    }
    let mut pieces: Vec<Vec<&mut [u8]>> = (0..t).map(|_| Vec::new()).collect();
    for (i, p) in page_pieces(buf).into_iter().enumerate() {
        pieces[i % t].push(p);
    }
    let start = Barrier::new(t + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = plans
            .into_iter()
            .zip(pieces)
            .zip(files.iter_mut())
            .enumerate()
            .map(|(w, ((plan, mut mine), f))| {
                let start = &start;
                s.spawn(move || -> Result<(usize, usize), String> {
                    start.wait();
                    let mut reads = 0;
                    for &(local, op) in &plan {
                        reads += usize::from(matches!(op, SegOp::Read { .. }));
                        apply_buf_op(mine[local], op, &mut |dst, foff, pread| read_data(f, dst, foff, pread))
                            .map_err(|e| format!("worker {w} of {t}, page share {op:?}: {e}"))?;
                    }
                    Ok((plan.len(), reads))
                })
            })
            .collect();
        start.wait();
        let mut err = ops
            .iter()
            .filter(|op| !matches!(op, SegOp::Write { .. } | SegOp::Read { .. }))
            .try_for_each(|&op| apply_blob_op(blobs, op).map_err(|e| format!("{op:?}: {e}")))
            .err();
        let mut done = (0, 0);
        for h in workers {
            match h.join() {
                Ok(Ok((n, r))) => done = (done.0 + n, done.1 + r),
                Ok(Err(e)) => err = err.or(Some(e)),
                Err(_) => err = err.or(Some("a worker thread panicked".to_string())),
            }
        }
        err.map_or(Ok(done), Err)
    })
}

/// Role `verify`: restores, reports, dumps the content to CRT_IMAGE. Takes no checkpoint.
fn verify() {
    let (_, st) = child_init();
    println!("applied {}", st.applied);
    File::create(env("CRT_IMAGE"))
        .and_then(|mut f| st.content.dump(&mut f))
        .unwrap_or_else(|e| die(2, &format!("image: {e}")));
}

// ---------------------------------------------------------------------------------------------
// The parent: scenarios, expectations, verification.

#[derive(Clone, Debug)]
enum Step {
    /// A run up to checkpoint `s + ahead + extra` with `CRTHREADS_FAILPOINT=<stage>@<s + ahead>`
    /// (`s`: the checkpoint the run starts from).
    Failpoint { stage: &'static str, ahead: u64, extra: u64 },
    /// A run up to checkpoint `s + upto`, SIGKILLed `delay_us` after it logged `s + after`.
    Kill { after: u64, delay_us: u64, upto: u64 },
    /// A run up to checkpoint `s + upto` that exits normally.
    Clean { upto: u64 },
}

#[derive(Clone, Debug)]
struct Scenario {
    seed: u64,
    pages: usize,
    durability: Durability,
    tracker: TrackerKind,
    /// Worker threads that apply a threaded segment (1 to 4).
    threads: usize,
    /// Whether each work run after the first switches to the next tracker and the other
    /// durability (a store must not depend on the settings of the run that wrote it).
    vary: bool,
    steps: Vec<Step>,
}

const TRACKERS: [TrackerKind; 3] = [TrackerKind::Auto, TrackerKind::Mprotect, TrackerKind::Full];

impl Scenario {
    /// Durability and tracker of work run `n` (0-based).
    fn settings(&self, n: usize) -> (Durability, TrackerKind) {
        if !self.vary {
            return (self.durability, self.tracker);
        }
        let t = TRACKERS.iter().position(|&t| t == self.tracker).unwrap_or(0);
        let d = if n % 2 == 0 {
            self.durability
        } else if self.durability == Durability::Sync {
            Durability::Process
        } else {
            Durability::Sync
        };
        (d, TRACKERS[(t + n) % TRACKERS.len()])
    }
}

/// One scenario's directory, model and progress.
struct Run<'a> {
    sc: &'a Scenario,
    tmp: TempDir,
    model: Model,
    /// The checkpoint the store holds (0: none).
    seq: u64,
    /// Children started so far (names their files).
    runs: usize,
    /// Work children started so far.
    work_runs: usize,
    /// What happened so far, for failure messages.
    history: Vec<String>,
    /// Live pages of each checkpoint (its tracker's `pages_scanned`), as the last run that
    /// committed it logged them.
    live: std::collections::BTreeMap<u64, u64>,
}

/// What a work run did.
struct Outcome {
    status: ExitStatus,
    /// Checkpoints this run logged.
    logged: Vec<u64>,
    /// The threaded segments this run applied (committed or not): `(k, threads)`.
    threaded: Vec<(u64, usize)>,
    stderr: String,
}

impl<'a> Run<'a> {
    fn new(sc: &'a Scenario) -> Run<'a> {
        let tmp = TempDir::new("store-crash");
        std::fs::write(tmp.join("data"), data_bytes(sc.seed)).expect("write the data file");
        Run {
            sc,
            tmp,
            model: Model::new(sc.seed, sc.pages),
            seq: 0,
            runs: 0,
            work_runs: 0,
            history: Vec::new(),
            live: Default::default(),
        }
    }

    fn err(&self, what: String) -> String {
        format!("{what}\n  history: {}", self.history.join("; "))
    }

    fn spawn_work(&mut self, upto: u64, failpoint: Option<String>) -> (Child, std::path::PathBuf, std::path::PathBuf) {
        self.runs += 1;
        let (durability, tracker) = self.sc.settings(self.work_runs);
        self.work_runs += 1;
        if let Some(h) = self.history.last_mut() {
            h.push_str(&format!(" ({durability:?}, {})", tracker.name()));
        }
        let log = self.tmp.join(&format!("log-{}", self.runs));
        let errf = self.tmp.join(&format!("work-{}.err", self.runs));
        let mut c = child("work");
        c.env("CRT_SEED", self.sc.seed.to_string())
            .env("CRT_PAGES", self.sc.pages.to_string())
            .env("CRT_DIR", self.tmp.join("ckpt"))
            .env("CRT_DATA", self.tmp.join("data"))
            .env("CRT_LOG", &log)
            .env("CRT_UPTO", upto.to_string())
            .env("CRT_THREADS", self.sc.threads.to_string())
            .env("CRTHREADS_DURABILITY", if durability == Durability::Sync { "sync" } else { "process" })
            .env("CRTHREADS_TRACKER", tracker.name())
            .stdout(Stdio::null())
            .stderr(File::create(&errf).expect("create the child's stderr file"));
        if let Some(f) = failpoint {
            c.env("CRTHREADS_FAILPOINT", f);
        }
        (c.spawn().expect("spawn a work child"), log, errf)
    }

    fn outcome(&mut self, status: ExitStatus, hung: bool, log: &Path, errf: &Path) -> Result<Outcome, String> {
        let stderr = std::fs::read_to_string(errf).unwrap_or_default();
        if hung {
            return Err(self.err(format!("a work child ran longer than {CHILD_LIMIT:?} (stderr: {stderr})")));
        }
        self.live.extend(read_numbers(log, "live ").into_iter().map(|v| (v[0], v[1])));
        let threaded: Vec<(u64, usize, usize, usize)> = read_numbers(log, "threads ")
            .into_iter()
            .map(|v| (v[0], v[1] as usize, v[2] as usize, v[3] as usize))
            .collect();
        tally(|t| {
            for &(_, n, shares, reads) in &threaded {
                t.threaded[n.clamp(1, 4) - 1] += 1;
                t.shares += shares;
                t.share_reads += reads;
            }
        });
        Ok(Outcome {
            status,
            logged: read_log(log),
            threaded: threaded.iter().map(|&(k, n, ..)| (k, n)).collect(),
            stderr,
        })
    }

    /// Runs a work child to its end (or its failpoint).
    fn work(&mut self, upto: u64, failpoint: Option<String>) -> Result<Outcome, String> {
        let (mut c, log, errf) = self.spawn_work(upto, failpoint);
        let (status, hung) = wait_or_kill(&mut c, CHILD_LIMIT);
        self.outcome(status, hung, &log, &errf)
    }

    /// Runs a work child and SIGKILLs it `delay` after its log reached `target` (or at once if
    /// it exits first).
    fn work_and_kill(&mut self, upto: u64, target: u64, delay: Duration) -> Result<Outcome, String> {
        let (mut c, log, errf) = self.spawn_work(upto, None);
        let t = Instant::now();
        loop {
            if c.try_wait().expect("try_wait").is_some() {
                break;
            }
            if read_log(&log).last().copied().unwrap_or(self.seq) >= target {
                std::thread::sleep(delay);
                let _ = c.kill();
                break;
            }
            if t.elapsed() > CHILD_LIMIT {
                let _ = c.kill();
                let status = c.wait().expect("wait");
                return self.outcome(status, true, &log, &errf);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let status = c.wait().expect("wait for the work child");
        self.outcome(status, false, &log, &errf)
    }

    /// Checks the log of a run that started from `s`: consecutive checkpoints from s+1, and
    /// each committed threaded segment applied by the scenario's number of threads.
    fn check_log(&self, o: &Outcome, s: u64) -> Result<u64, String> {
        let want: Vec<u64> = (s + 1..s + 1 + o.logged.len() as u64).collect();
        if o.logged != want {
            return Err(self.err(format!("a run from checkpoint {s} logged {:?}", o.logged)));
        }
        // A run that crashed may have applied the segment after its last committed one without
        // committing it: that segment's line may be there too, but no other.
        let last = o.logged.last().copied().unwrap_or(s);
        let threaded = |k: &u64| segment(self.sc.seed, *k, self.sc.pages).threaded;
        let want: Vec<(u64, usize)> = (s + 1..=last).filter(threaded).map(|k| (k, self.sc.threads)).collect();
        let mut or_next = want.clone();
        or_next.extend(Some(last + 1).filter(|k| !o.status.success() && threaded(k)).map(|k| (k, self.sc.threads)));
        if o.threaded != want && o.threaded != or_next {
            return Err(self.err(format!(
                "a run from checkpoint {s} that committed {:?} logged threaded segments {:?} (segment, threads), \
                 expected {want:?}",
                o.logged, o.threaded
            )));
        }
        Ok(o.logged.last().copied().unwrap_or(s))
    }

    /// Restores in a verify child and compares with the model. Returns the restored seq.
    fn verify(&mut self, expected: &[u64], why: &str) -> Result<u64, String> {
        self.runs += 1;
        let image = self.tmp.join(&format!("image-{}", self.runs));
        let out = self.tmp.join(&format!("verify-{}.out", self.runs));
        let errf = self.tmp.join(&format!("verify-{}.err", self.runs));
        let mut c = child("verify")
            .env("CRT_PAGES", self.sc.pages.to_string())
            .env("CRT_DIR", self.tmp.join("ckpt"))
            .env("CRT_IMAGE", &image)
            .env("CRTHREADS_TRACKER", self.sc.settings(self.work_runs).1.name())
            .stdout(File::create(&out).expect("create stdout file"))
            .stderr(File::create(&errf).expect("create stderr file"))
            .spawn()
            .expect("spawn a verify child");
        let (status, hung) = wait_or_kill(&mut c, CHILD_LIMIT);
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&errf).unwrap_or_default();
        if hung || !status.success() {
            return Err(self.err(format!(
                "{why}: the verify child failed ({status}{}): stdout: {stdout} stderr: {stderr}",
                if hung { ", hung" } else { "" }
            )));
        }
        let field = |name: &str| -> Option<u64> {
            stdout.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        };
        let (Some(seq), Some(applied)) = (field("start "), field("applied ")) else {
            return Err(self.err(format!("{why}: unreadable verify output: {stdout} / {stderr}")));
        };
        let start = if seq == 0 { "Fresh".to_string() } else { format!("Restored {{ seq: {seq} }}") };
        if !expected.contains(&seq) {
            return Err(self.err(format!(
                "{why}: the restore gave {start}, expected checkpoint {} (0 = Fresh); stderr: {stderr}",
                expected.iter().map(u64::to_string).collect::<Vec<_>>().join(" or ")
            )));
        }
        if applied != seq {
            return Err(self.err(format!("{why}: restored {start}, but the root's counter says {applied}")));
        }
        let got = std::fs::read(&image).map_err(|e| format!("read the image: {e}"))?;
        let Some(got) = Content::decode(&got, self.sc.pages) else {
            return Err(self.err(format!("{why}: the verify child's dump ({} bytes) is malformed", got.len())));
        };
        if let Some(d) = self.model.at(seq).diff(&got) {
            return Err(self.err(format!("{why}: restored {start}: {d}")));
        }
        let _ = std::fs::remove_file(&image);
        tally(|t| {
            t.verified += 1;
            t.fresh += usize::from(seq == 0);
        });
        self.history.push(format!("restored {seq}"));
        self.seq = seq;
        Ok(seq)
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        let s = self.seq;
        match *step {
            Step::Failpoint { stage, ahead, extra } => {
                let (k, upto) = (s + ahead, s + ahead + extra);
                let fp = format!("{stage}@{k}");
                self.history.push(format!("run {}..={upto} with {fp}", s + 1));
                let o = self.work(upto, Some(fp.clone()))?;
                let last = self.check_log(&o, s)?;
                // The mirror is written only by the first checkpoint of a fresh store.
                let fires = stage != "mirror" || (s == 0 && k == 1);
                if !fires {
                    if !o.status.success() || last != upto {
                        return Err(self.err(format!(
                            "with {fp} (no mirror to write) the run should finish at {upto}: {}, logged up to \
                             {last}; stderr: {}",
                            o.status, o.stderr
                        )));
                    }
                    tally(|t| t.not_fired += 1);
                    return self.verify(&[upto], &format!("after a clean run to {upto}")).map(drop);
                }
                if !killed(&o.status) || last != k - 1 {
                    return Err(self.err(format!(
                        "{fp} should kill the run during checkpoint {k}: {}, logged up to {last}; stderr: {}",
                        o.status, o.stderr
                    )));
                }
                tally(|t| t.fired[STAGES.iter().position(|&x| x == stage).unwrap_or(0)] += 1);
                let expect = if matches!(stage, "after-commit" | "mirror") { k } else { k - 1 };
                self.verify(&[expect], &format!("after a crash at {fp}")).map(drop)
            }
            Step::Kill { after, delay_us, upto } => {
                let upto = s + upto;
                let target = s + after.min(upto - s);
                self.history.push(format!("run {}..={upto}, kill {delay_us} µs after {target}", s + 1));
                let o = self.work_and_kill(upto, target, Duration::from_micros(delay_us))?;
                let last = self.check_log(&o, s)?;
                if o.status.success() {
                    if last != upto {
                        return Err(self.err(format!("a run to {upto} exited 0 after logging up to {last}")));
                    }
                    tally(|t| t.finished_first += 1);
                    return self.verify(&[upto], &format!("after a run to {upto} that finished first")).map(drop);
                }
                if !killed(&o.status) {
                    return Err(self.err(format!("the work child failed: {}; stderr: {}", o.status, o.stderr)));
                }
                let expect: Vec<u64> = [last, last + 1].into_iter().filter(|&q| q <= upto).collect();
                let seq = self.verify(&expect, &format!("after SIGKILL with checkpoint {last} logged"))?;
                tally(|t| if seq == last { t.killed_at_logged += 1 } else { t.killed_after_logged += 1 });
                Ok(())
            }
            Step::Clean { upto } => {
                let upto = s + upto;
                self.history.push(format!("run {}..={upto}", s + 1));
                let o = self.work(upto, None)?;
                let last = self.check_log(&o, s)?;
                if !o.status.success() || last != upto {
                    return Err(self.err(format!(
                        "a clean run to {upto}: {}, logged up to {last}; stderr: {}",
                        o.status, o.stderr
                    )));
                }
                self.verify(&[upto], &format!("after a clean run to {upto}")).map(drop)
            }
        }
    }
}

/// What the scenarios of a test exercised, printed after it (a test that never crashed a run
/// mid-way would pass without testing much).
#[derive(Default)]
struct Tally {
    /// Failpoint crashes, by stage.
    fired: [usize; STAGES.len()],
    /// Failpoint runs whose failpoint was never reached (a mirror that was not needed).
    not_fired: usize,
    /// SIGKILLs after which the last logged checkpoint was restored.
    killed_at_logged: usize,
    /// SIGKILLs after which the checkpoint after the last logged one was restored.
    killed_after_logged: usize,
    /// Kill runs that finished before the kill.
    finished_first: usize,
    /// Restores that found no checkpoint.
    fresh: usize,
    /// Verified restores.
    verified: usize,
    /// Threaded segments applied, by number of worker threads (1 to 4).
    threaded: [usize; 4],
    /// Page shares the worker threads applied, and how many of them were `read()`/`pread()`s.
    shares: usize,
    share_reads: usize,
}

static TALLY: std::sync::Mutex<Option<Tally>> = std::sync::Mutex::new(None);

fn tally(f: impl FnOnce(&mut Tally)) {
    f(TALLY.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Tally::default));
}

fn print_tally() {
    let t = TALLY.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_default();
    let fired: Vec<String> = STAGES.iter().zip(t.fired).map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "  {} restores verified ({} fresh); failpoint crashes: {}; failpoints not reached: {}; SIGKILLs restoring \
         the last logged checkpoint: {}, the next one: {}; runs that finished before the kill: {}; threaded segments \
         applied: {} (by 1/2/3/4 threads: {}), with {} page shares ({} reads)",
        t.verified,
        t.fresh,
        fired.join(", "),
        t.not_fired,
        t.killed_at_logged,
        t.killed_after_logged,
        t.finished_first,
        t.threaded.iter().sum::<usize>(),
        t.threaded.map(|n| n.to_string()).join("/"),
        t.shares,
        t.share_reads
    );
}

fn read_log(p: &Path) -> Vec<u64> {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    // A line is complete once its newline is there.
    s.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.trim().strip_prefix("committed ").and_then(|v| v.parse().ok()))
        .collect()
}

/// The complete lines of a log that start with `prefix` and go on with numbers: the
/// `threads <k> <threads> <shares> <reads>` lines (the threaded segments applied) and the
/// `live <k> <pages>` lines (the live pages of checkpoint k).
fn read_numbers(p: &Path, prefix: &str) -> Vec<Vec<u64>> {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    s.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| l.trim().strip_prefix(prefix)?.split(' ').map(|x| x.parse().ok()).collect::<Option<Vec<u64>>>())
        .filter(|v| v.len() == if prefix == "live " { 2 } else { 4 })
        .collect()
}

fn diff(want: &[u8], got: &[u8]) -> String {
    if want.len() != got.len() {
        return format!("the buffer has {} bytes, the model {}", got.len(), want.len());
    }
    let bad: Vec<usize> = (0..want.len()).filter(|&i| want[i] != got[i]).collect();
    let mut pages: Vec<usize> = bad.iter().map(|i| i / PAGE).collect();
    pages.dedup();
    let i = bad[0];
    format!(
        "{} bytes differ from the model, in pages {:?}{}; first at byte {i} (page {}, offset {}): expected {:#04x}, \
         restored {:#04x}",
        bad.len(),
        &pages[..pages.len().min(16)],
        if pages.len() > 16 { " ..." } else { "" },
        i / PAGE,
        i % PAGE,
        want[i],
        got[i]
    )
}

fn run_scenario(sc: Scenario) -> Result<(), TestCaseError> {
    let mut run = Run::new(&sc);
    for step in &sc.steps {
        run.step(step).map_err(|e| TestCaseError::fail(format!("{e}\n  scenario: {sc:?}")))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies and tests.

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![Just(Durability::Process), Just(Durability::Sync)]
}

fn tracker() -> impl Strategy<Value = TrackerKind> {
    prop_oneof![2 => Just(TrackerKind::Auto), 2 => Just(TrackerKind::Mprotect), 1 => Just(TrackerKind::Full)]
}

fn kill_step() -> impl Strategy<Value = Step> {
    let delay = prop_oneof![3 => 0u64..=2_000, 1 => 0u64..=20_000];
    (2u64..=12, any::<prop::sample::Index>(), delay).prop_map(|(upto, after, delay_us)| Step::Kill {
        after: after.index(upto as usize) as u64,
        delay_us,
        upto,
    })
}

fn failpoint_step() -> impl Strategy<Value = Step> {
    (prop::sample::select(STAGES.to_vec()), 1u64..=4, 0u64..=3).prop_map(|(stage, ahead, extra)| Step::Failpoint {
        stage,
        ahead,
        extra,
    })
}

fn scenario(steps: impl Strategy<Value = Step>) -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        64usize..=512,
        durability(),
        tracker(),
        1usize..=4,
        any::<bool>(),
        prop::collection::vec(steps, 1..=4),
    )
        .prop_map(|(seed, pages, durability, tracker, threads, vary, steps)| Scenario {
            seed,
            pages,
            durability,
            tracker,
            threads,
            vary,
            steps,
        })
}

fn proptest_config(default_cases: u32, file: &'static str) -> PtConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    PtConfig { cases, failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))), ..PtConfig::default() }
}

fn run_property(cfg: PtConfig, strategy: impl Strategy<Value = Scenario>) {
    let mut runner = TestRunner::new(cfg);
    let r = runner.run(&strategy, run_scenario);
    print_tally();
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// The page shares of segments, applied worker by worker (in reverse order of workers), give
/// the bytes of the segments applied in order: a check of the test's own splitting, for
/// buffers that start anywhere in a page and every thread count.
fn page_shares_match_the_model() {
    let pages = 64;
    let (mut segments, mut threaded) = (0, 0);
    for seed in 0..16u64 {
        let data = data_bytes(seed);
        let mut read = |dst: &mut [u8], foff: u64, _| {
            dst.copy_from_slice(&data[foff as usize..foff as usize + dst.len()]);
            Ok(())
        };
        for (i, lead) in [0, 1, 2048, PAGE - 1].into_iter().enumerate() {
            let t = 1 + (seed as usize + i) % 4;
            let mut want = vec![0u8; pages * PAGE];
            let mut under = vec![0u8; (pages + 2) * PAGE];
            let at = (PAGE - under.as_ptr() as usize % PAGE) % PAGE + lead;
            let got = &mut under[at..at + pages * PAGE];
            for k in 1..=3 {
                let seg = segment(seed, k, pages);
                segments += 1;
                threaded += usize::from(seg.threaded);
                let buf_ops = seg.ops.iter().filter(|op| matches!(op, SegOp::Write { .. } | SegOp::Read { .. }));
                for &op in buf_ops {
                    apply_buf_op(&mut want, op, &mut read).expect("the model's reads cannot fail");
                }
                let shares = split_by_page(&seg.ops, lead);
                let mut pieces = page_pieces(got);
                assert_eq!(pieces.len(), (lead + pages * PAGE).div_ceil(PAGE), "pieces of a buffer {lead} bytes in");
                for w in (0..t).rev() {
                    for &(piece, op) in shares.iter().filter(|(p, _)| p % t == w) {
                        apply_buf_op(pieces[piece], op, &mut read).expect("the model's reads cannot fail");
                    }
                }
                assert!(
                    want == got,
                    "seed {seed}, segment {k}, {t} threads, buffer {lead} bytes into its page: {}",
                    diff(&want, got)
                );
            }
        }
    }
    println!("  {threaded} of {segments} segments threaded");
}

/// Every stage at checkpoints 1 and 3, in both durabilities; then a second failpoint in the
/// resumed store and a clean run on top.
fn failpoint_at_every_stage() {
    if !failpoint::ENABLED {
        println!("  skipped: failpoints are not compiled in (build with --features crthreads/failpoints)");
        return;
    }
    for (d, durability) in [Durability::Process, Durability::Sync].into_iter().enumerate() {
        for (i, &stage) in STAGES.iter().enumerate() {
            let ahead = if stage == "mirror" || (i + d) % 2 == 0 { 1 } else { 3 };
            let next = STAGES[(i + 1) % STAGES.len()];
            let sc = Scenario {
                seed: 0xC0FFEE + (d * 16 + i) as u64,
                pages: 64 + 64 * i,
                durability,
                tracker: TRACKERS[(d + i) % 3],
                threads: 1 + (d + i) % 4,
                vary: false,
                steps: vec![
                    Step::Failpoint { stage, ahead, extra: 1 },
                    Step::Failpoint { stage: next, ahead: 2, extra: 1 },
                    Step::Clean { upto: 2 },
                ],
            };
            if let Err(e) = run_scenario(sc) {
                panic!("{e}");
            }
        }
    }
    print_tally();
}

/// A fixed case, under each tracker: checkpoint 7 of this seed has fewer live pages than
/// checkpoint 6 (1515 against 1661: the heap's top came down by 145 pages, and the page map's
/// live part by one page), and checkpoint 8, taken after a restore of 7, has more again (2014). The slot holding 6 still has old bytes in the pages 7
/// no longer covers, which are zero in the restored memory: checkpoint 8, written into that
/// slot, must bring them up to date, and its restore must give checkpoint 8 and the model's
/// image. The case checks that the live pages still shrink and grow so (a change of the
/// workload or of the heap's layout would need another seed).
fn regrowth_after_a_restore() {
    for tracker in TRACKERS {
        let sc = Scenario {
            seed: 13679457532755275413,
            pages: 64,
            durability: Durability::Process,
            tracker,
            threads: 1,
            vary: false,
            steps: vec![Step::Clean { upto: 7 }, Step::Clean { upto: 1 }],
        };
        let mut run = Run::new(&sc);
        for step in &sc.steps {
            if let Err(e) = run.step(step) {
                panic!("{e}\n  scenario: {sc:?}");
            }
        }
        let live: Vec<u64> = (6..=8).map(|k| run.live.get(&k).copied().unwrap_or(0)).collect();
        assert!(
            live[1] < live[0] && live[2] > live[1],
            "this case no longer shrinks at checkpoint 7 and grows at 8 (live pages of 6, 7, 8: {live:?}): the \
             workload or the heap changed, so it needs another seed"
        );
    }
    print_tally();
}

/// Random SIGKILLs (no failpoints needed).
fn random_kills() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/store_crash_kills.txt");
    let steps = prop_oneof![4 => kill_step(), 1 => (1u64..=3).prop_map(|upto| Step::Clean { upto })];
    run_property(proptest_config(96, file), scenario(steps));
}

/// Failpoints, kills and clean runs mixed.
fn mixed_crashes() {
    if !failpoint::ENABLED {
        println!("  skipped: failpoints are not compiled in (build with --features crthreads/failpoints)");
        return;
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/store_crash_mixed.txt");
    let steps = prop_oneof![
        4 => failpoint_step(),
        3 => kill_step(),
        1 => (1u64..=3).prop_map(|upto| Step::Clean { upto }),
    ];
    run_property(proptest_config(96, file), scenario(steps));
}

fn main() {
    match role().as_deref() {
        Some("work") => work(),
        Some("verify") => verify(),
        Some(other) => die(2, &format!("unknown role {other}")),
        None => run_tests(&[
            ("page_shares_match_the_model", page_shares_match_the_model),
            ("failpoint_at_every_stage", failpoint_at_every_stage),
            ("regrowth_after_a_restore", regrowth_after_a_restore),
            ("random_kills", random_kills),
            ("mixed_crashes", mixed_crashes),
        ]),
    }
}
