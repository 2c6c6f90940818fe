//! Model test of the persistent heap's allocator (`crthreads::heap`).
//!
//! Random sequences of `alloc`/`realloc`/`free` (tiny, small, large, huge (5-25 MiB, which
//! the page heap keeps resident for reuse when freed, within its bound) and power-of-two
//! sizes; power-of-two alignments from 1 byte to 2 MiB; zeroed and plain) run against a
//! reference model, in two modes:
//!
//! - **single-threaded**: one thread runs the whole sequence; after every step the heap's own
//!   [`check_invariants`] walk must pass and its [`HeapReport`] must agree with the model;
//! - **multi-threaded**: 2–4 threads each run their own operation list concurrently, round by
//!   round; blocks move between threads (handed over through channels during a round, and
//!   redistributed between rounds), so blocks are often freed by a thread that did not allocate
//!   them. After each round (threads joined) the walk and the report are checked.
//!
//! Postconditions of every operation: the block is in the persistent region, aligned as asked,
//! `usable_size >= size`, its usable range overlaps no other live block's (a shared interval
//! map), a zeroed block reads as zero, and contents are preserved: every block's whole usable
//! range holds a pattern derived from its id, checked before `realloc` and `free` (so a block
//! handed out twice, or a `usable_size` that claims a neighbour's bytes, corrupts a pattern),
//! and `realloc` keeps the first `min(old size, new size)` bytes. Requests larger than the
//! region (some overflowing when rounded up) return null, and a failed `realloc` leaves its
//! block as it was.
//!
//! Report checks (against a baseline taken before the case, so that one failed case cannot
//! make later ones fail): small objects held by the program (`used - cached`) per class equal
//! the model's blocks grouped by usable size (classes and their sizes increase together), large
//! runs and their pages equal the model's large blocks (size > 32 KiB or alignment > 4 KiB),
//! and after everything is freed and the threads have exited (giving their caches back, with
//! their objects, to whichever thread claims them next) nothing is held but what caches keep:
//! every small object handed out sits in a cache, and large runs are back to the baseline.
//!
//! One runtime serves the whole binary (`crthreads::init` once); the tests take a lock because
//! the invariant walk needs a heap that no other thread is using. `PROPTEST_CASES` raises the
//! number of cases. A failure may leave the heap corrupt, so by default later cases are skipped
//! and the first failure is reported unshrunk; `HEAP_MODEL_SHRINK=1` shrinks it (see
//! [`FAILED`]). Regressions are kept in `tests/proptest-regressions/heap_model_*.txt`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, mpsc};

use crthreads::heap::{self, HeapReport, check_invariants};
use crthreads::{Config, Start};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as PtConfig, FileFailurePersistence, TestCaseError};

const PAGE: usize = 4096;
/// Requests above this size are served by page runs (`heap::size_class::SMALL_MAX`).
const SMALL_MAX: usize = 32 << 10;
/// Region size of the test runtime (address space; only touched pages cost memory).
const CAPACITY: usize = 1 << 30;

// ---------------------------------------------------------------------------------------------
// The runtime and the lock that keeps the tests of this binary apart.

fn heap_for_test() -> MutexGuard<'static, ()> {
    static INIT: OnceLock<()> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    INIT.get_or_init(|| {
        // No checkpoint is ever taken, so the directory is never created.
        let dir = std::env::temp_dir().join(format!("crt-heap-model-{}", std::process::id()));
        let start = crthreads::init(Config::default().dir(dir).reexec(false).capacity(CAPACITY))
            .expect("crthreads::init for the heap model");
        assert_eq!(start, Start::Fresh, "a fresh directory must give a fresh heap");
    });
    guard
}

fn config(default_cases: u32, name: &'static str) -> PtConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    let file = match name {
        "single" => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/heap_model_single.txt"),
        _ => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/heap_model_threads.txt"),
    };
    PtConfig { cases, failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))), ..PtConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Operations.

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align: usize,
        zero: bool,
    },
    /// Resizes one of this thread's blocks (keeping its alignment).
    Realloc {
        pick: Index,
        size: usize,
    },
    Free {
        pick: Index,
    },
    /// A request larger than the region: must return null and change nothing.
    AllocTooBig {
        size: usize,
        align: usize,
        zero: bool,
    },
    /// Resizing a block beyond the region: must return null and leave the block as it was.
    ReallocTooBig {
        pick: Index,
        size: usize,
    },
    /// Multi-threaded mode: hands one of this thread's blocks to the next thread.
    Give {
        pick: Index,
    },
    /// Multi-threaded mode: adopts the blocks other threads handed to this one.
    Take,
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        30 => 0usize..64,
        35 => 64usize..=SMALL_MAX,
        8 => SMALL_MAX + 1..=(4 << 20),
        3 => (5usize << 20)..=(25 << 20),
        12 => (0u32..=22).prop_map(|k| 1usize << k),
        5 => prop::sample::select(vec![PAGE - 1, PAGE + 1, 2 * PAGE + 1, SMALL_MAX - 1, SMALL_MAX + 1, (1 << 20) + 1]),
    ]
}

fn align() -> impl Strategy<Value = usize> {
    prop_oneof![
        50 => (0u32..=4).prop_map(|k| 1usize << k),
        40 => (5u32..=16).prop_map(|k| 1usize << k),
        5 => (17u32..=21).prop_map(|k| 1usize << k),
    ]
}

/// Sizes no heap in a region of [`CAPACITY`] bytes can serve (some overflow when rounded).
fn too_big() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![CAPACITY, CAPACITY + 1, 1 << 40, isize::MAX as usize, usize::MAX - PAGE, usize::MAX])
}

fn op(threads: bool) -> BoxedStrategy<Op> {
    let alloc =
        (size(), align(), prop::bool::weighted(0.3)).prop_map(|(size, align, zero)| Op::Alloc { size, align, zero });
    let realloc = (any::<Index>(), size()).prop_map(|(pick, size)| Op::Realloc { pick, size });
    let free = any::<Index>().prop_map(|pick| Op::Free { pick });
    let alloc_too_big =
        (too_big(), align(), any::<bool>()).prop_map(|(size, align, zero)| Op::AllocTooBig { size, align, zero });
    let realloc_too_big = (any::<Index>(), too_big()).prop_map(|(pick, size)| Op::ReallocTooBig { pick, size });
    if threads {
        let give = any::<Index>().prop_map(|pick| Op::Give { pick });
        prop_oneof![
            45 => alloc,
            15 => realloc,
            25 => free,
            8 => give,
            7 => Just(Op::Take),
            1 => alloc_too_big,
            1 => realloc_too_big,
        ]
        .boxed()
    } else {
        prop_oneof![45 => alloc, 20 => realloc, 30 => free, 2 => alloc_too_big, 2 => realloc_too_big].boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// The model: live blocks, their patterns, and the interval map shared by all threads.

#[derive(Debug)]
struct Block {
    id: u64,
    addr: usize,
    size: usize,
    align: usize,
    usable: usize,
}

impl Block {
    /// Whether the allocator must serve this block from page runs rather than size classes.
    fn large(&self) -> bool {
        self.size > SMALL_MAX || self.align > PAGE
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 4 KiB of block `id`'s pattern: a 256-byte sequence derived from the id, repeated. Byte `i`
/// of the block is `template[i % 4096]`.
fn template(id: u64) -> Vec<u8> {
    let mut t = vec![0u8; PAGE];
    for w in 0..32 {
        t[w * 8..w * 8 + 8].copy_from_slice(&splitmix(id.wrapping_mul(64).wrapping_add(w as u64)).to_le_bytes());
    }
    for k in 1..16 {
        t.copy_within(0..256, k * 256);
    }
    t
}

fn bytes<'a>(addr: usize, len: usize) -> &'a [u8] {
    // SAFETY: every caller passes a range inside a live block this thread owns (the test's
    // ownership discipline: a block belongs to exactly one thread at a time).
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
}

fn fill(b: &Block) {
    let t = template(b.id);
    let mut off = 0;
    while off < b.usable {
        let n = PAGE.min(b.usable - off);
        // SAFETY: `off..off+n` lies inside the block's usable range, which this thread owns.
        unsafe { std::ptr::copy_nonoverlapping(t.as_ptr(), (b.addr + off) as *mut u8, n) };
        off += n;
    }
}

/// Checks that the first `len` bytes of `b` hold its pattern.
fn check_pattern(b: &Block, len: usize, when: &str) -> Result<(), String> {
    let t = template(b.id);
    let mut off = 0;
    while off < len {
        let n = PAGE.min(len - off);
        let got = bytes(b.addr + off, n);
        if got != &t[..n] {
            let i = (0..n).find(|&i| got[i] != t[i]).unwrap_or(0);
            return Err(format!(
                "{when}: block {} ({} bytes, align {}, usable {}, at {:#x}) lost its contents: byte {} is {:#04x}, \
                 expected {:#04x}",
                b.id,
                b.size,
                b.align,
                b.usable,
                b.addr,
                off + i,
                got[i],
                t[i]
            ));
        }
        off += n;
    }
    Ok(())
}

fn check_zero(b: &Block) -> Result<(), String> {
    static ZERO: [u8; PAGE] = [0; PAGE];
    let mut off = 0;
    while off < b.size {
        let n = PAGE.min(b.size - off);
        let got = bytes(b.addr + off, n);
        if got != &ZERO[..n] {
            let i = (0..n).find(|&i| got[i] != 0).unwrap_or(0);
            return Err(format!(
                "zeroed alloc of {} bytes (align {}) at {:#x}: byte {} is {:#04x}",
                b.size,
                b.align,
                b.addr,
                off + i,
                got[i]
            ));
        }
        off += n;
    }
    Ok(())
}

/// Usable ranges of all live blocks: start -> (end, id). Shared by the threads of a case.
#[derive(Default)]
struct Live(Mutex<BTreeMap<usize, (usize, u64)>>);

impl Live {
    fn insert(&self, b: &Block) -> Result<(), String> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let end = b.addr + b.usable;
        if let Some((&s, &(e, id))) = m.range(..end).next_back() {
            if e > b.addr {
                return Err(format!(
                    "block {} at {:#x}..{end:#x} ({} bytes, align {}) overlaps live block {id} at {s:#x}..{e:#x}",
                    b.id, b.addr, b.size, b.align
                ));
            }
        }
        m.insert(b.addr, (end, b.id));
        Ok(())
    }

    fn remove(&self, b: &Block) -> Result<(), String> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m.remove(&b.addr) {
            Some((_, id)) if id == b.id => Ok(()),
            other => Err(format!("model error: block {} at {:#x} not in the live map ({other:?})", b.id, b.addr)),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Checks a block the allocator just returned (fresh, or moved/resized by realloc).
fn accept(live: &Live, id: u64, p: *mut u8, size: usize, align: usize, what: &str) -> Result<Block, String> {
    if p.is_null() {
        return Err(format!("{what}({size}, align {align}) returned null with {CAPACITY} bytes of region"));
    }
    if !heap::in_region(p) {
        return Err(format!("{what}({size}, align {align}) returned {p:p}, outside the persistent region"));
    }
    if p as usize % align != 0 {
        return Err(format!("{what}({size}, align {align}) returned {p:p}, misaligned"));
    }
    // SAFETY: `p` is a live block just returned by the allocator.
    let usable = unsafe { heap::usable_size(p) };
    if usable < size {
        return Err(format!("{what}({size}, align {align}) at {p:p}: usable_size {usable} < {size}"));
    }
    let b = Block { id, addr: p as usize, size, align, usable };
    live.insert(&b)?;
    Ok(b)
}

fn do_alloc(live: &Live, size: usize, align: usize, zero: bool) -> Result<Block, String> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let p = heap::alloc(size, align, zero);
    let b = accept(live, id, p, size, align, if zero { "alloc_zeroed" } else { "alloc" })?;
    if zero {
        check_zero(&b)?;
    }
    fill(&b);
    Ok(b)
}

fn do_realloc(live: &Live, b: Block, size: usize) -> Result<Block, String> {
    check_pattern(&b, b.usable, "before realloc")?;
    live.remove(&b)?;
    // SAFETY: `b` is a live block of this thread, allocated with alignment `b.align`.
    let q = unsafe { heap::realloc(b.addr as *mut u8, size, b.align) };
    let nb = accept(live, b.id, q, size, b.align, "realloc")?;
    check_pattern(&nb, b.size.min(size), &format!("realloc from {} bytes", b.size))
        .map_err(|e| format!("{e} (the block was at {:#x})", b.addr))?;
    fill(&nb);
    Ok(nb)
}

fn do_free(live: &Live, b: Block) -> Result<(), String> {
    check_pattern(&b, b.usable, "before free")?;
    live.remove(&b)?;
    // SAFETY: `b` is a live block of this thread; it is forgotten by the model here.
    unsafe { heap::free(b.addr as *mut u8) };
    Ok(())
}

/// Runs one thread's operations on its blocks `mine`. `give`/`take` connect it to its
/// neighbours in multi-threaded mode.
fn run_ops(
    live: &Live,
    mine: &mut Vec<Block>,
    ops: &[Op],
    give: Option<&mpsc::Sender<Block>>,
    take: Option<&mpsc::Receiver<Block>>,
    mut after_step: impl FnMut(&[Block], usize) -> Result<(), String>,
) -> Result<(), String> {
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Alloc { size, align, zero } => mine.push(do_alloc(live, *size, *align, *zero)?),
            Op::Realloc { pick, size } if !mine.is_empty() => {
                let i = pick.index(mine.len());
                let b = mine.swap_remove(i);
                mine.push(do_realloc(live, b, *size)?);
            }
            Op::AllocTooBig { size, align, zero } => {
                let p = heap::alloc(*size, *align, *zero);
                if !p.is_null() {
                    return Err(format!("alloc({size}, align {align}, zero {zero}) returned {p:p}, not null"));
                }
            }
            Op::ReallocTooBig { pick, size } if !mine.is_empty() => {
                let b = &mine[pick.index(mine.len())];
                // SAFETY: `b` is a live block of this thread, allocated with alignment `b.align`.
                let q = unsafe { heap::realloc(b.addr as *mut u8, *size, b.align) };
                if !q.is_null() {
                    return Err(format!("realloc of block {} to {size} bytes returned {q:p}, not null", b.id));
                }
                // The block must be untouched: still live (its pattern is checked when it is
                // resized or freed) and of the same usable size.
                // SAFETY: as above; a failed realloc leaves the block live.
                let usable = unsafe { heap::usable_size(b.addr as *mut u8) };
                if usable != b.usable {
                    return Err(format!(
                        "a failed realloc changed block {}'s usable size {} to {usable}",
                        b.id, b.usable
                    ));
                }
                check_pattern(b, b.usable, "after a failed realloc")?;
            }
            Op::Free { pick } if !mine.is_empty() => {
                let i = pick.index(mine.len());
                do_free(live, mine.swap_remove(i))?;
            }
            Op::Give { pick } if !mine.is_empty() => {
                let i = pick.index(mine.len());
                let b = mine.swap_remove(i);
                match give {
                    // If the next thread already stopped (on a failure of its own, which it
                    // reports), the block stays here.
                    Some(tx) => {
                        if let Err(mpsc::SendError(b)) = tx.send(b) {
                            mine.push(b);
                        }
                    }
                    None => mine.push(b),
                }
            }
            Op::Take => {
                if let Some(rx) = take {
                    mine.extend(rx.try_iter());
                }
            }
            _ => {}
        }
        after_step(mine, step)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Comparing the heap's report with the model.

fn held(r: &HeapReport) -> Vec<i64> {
    r.used.iter().zip(&r.cached).map(|(&u, &c)| u as i64 - c as i64).collect()
}

/// The report's counts must match the live blocks of the model, relative to `base`.
fn compare(rep: &HeapReport, base: &HeapReport, blocks: &[&Block]) -> Result<(), String> {
    let (held_now, held_base) = (held(rep), held(base));
    if let Some(c) = (0..held_now.len()).find(|&c| held_now[c] < 0) {
        return Err(format!("class {c}: more objects cached ({}) than handed out ({})", rep.cached[c], rep.used[c]));
    }
    let by_class: Vec<i64> = held_now.iter().zip(&held_base).map(|(n, b)| n - b).filter(|&d| d != 0).collect();
    let mut by_size: BTreeMap<usize, i64> = BTreeMap::new();
    let (mut large_runs, mut large_pages) = (0usize, 0usize);
    for b in blocks {
        if b.large() {
            large_runs += 1;
            large_pages += b.usable / PAGE;
        } else {
            *by_size.entry(b.usable).or_default() += 1;
        }
    }
    if by_class != by_size.values().copied().collect::<Vec<_>>() {
        return Err(format!(
            "small objects held by the program: heap has {by_class:?} (non-empty classes, in class order), the \
             model has {by_size:?} (usable size -> count); report {rep:?}, baseline {base:?}"
        ));
    }
    let runs = rep.large_runs as i64 - base.large_runs as i64;
    let pages = rep.large_pages as i64 - base.large_pages as i64;
    if (runs, pages) != (large_runs as i64, large_pages as i64) {
        return Err(format!(
            "large allocations: the heap has {runs} runs / {pages} pages more than the baseline, the model \
             {large_runs} / {large_pages}"
        ));
    }
    Ok(())
}

/// After every block is freed and every worker thread has exited: nothing is held but what
/// thread caches keep. An exiting thread gives its cache back with its objects (a single store,
/// safe against a concurrent checkpoint; the next thread adopts them), so every small object
/// still handed out must sit in a cache, and large allocations are back to the baseline.
fn check_back_to_baseline(base: &HeapReport) -> Result<(), String> {
    let rep = check_invariants().map_err(|e| format!("after freeing everything: invariants: {e}"))?;
    let same = rep.used == rep.cached && rep.large_runs == base.large_runs && rep.large_pages == base.large_pages;
    if !same {
        return Err(format!(
            "after freeing everything (threads exited, caches given back) some memory is still held:\n \
             now      {rep:?}\n baseline {base:?}"
        ));
    }
    Ok(())
}

/// Set once a case has failed. The heap may then be corrupt (a block handed out twice, a free
/// list overwritten), so later cases could fail for reasons of the earlier case's making: they
/// are skipped, and proptest reports the first failure as it happened, unshrunk. With
/// `HEAP_MODEL_SHRINK=1`, later cases still run (and shrink the failure) as long as the heap's
/// invariant walk passes before they start; use it for failures that do not corrupt the heap.
static FAILED: AtomicBool = AtomicBool::new(false);
/// Set when a case was skipped; a test that skipped a case and did not fail still fails.
static SKIPPED: AtomicBool = AtomicBool::new(false);

/// Runs the property `f` over `strategy` with proptest.
fn run_property<S: Strategy>(cfg: PtConfig, strategy: S, f: fn(S::Value) -> Result<(), TestCaseError>) {
    let _g = heap_for_test();
    SKIPPED.store(false, Ordering::Relaxed);
    let mut runner = proptest::test_runner::TestRunner::new(cfg);
    if let Err(e) = runner.run(&strategy, |v| case(v, f)) {
        panic!("{e}");
    }
    assert!(!SKIPPED.load(Ordering::Relaxed), "cases were skipped: an earlier test of this binary failed");
}

/// The report at the start of a case, or `None` if the case must be skipped (see [`FAILED`]).
fn baseline() -> Result<Option<HeapReport>, TestCaseError> {
    let shrink = std::env::var_os("HEAP_MODEL_SHRINK").is_some_and(|v| v == "1");
    if FAILED.load(Ordering::Relaxed) && !shrink {
        SKIPPED.store(true, Ordering::Relaxed);
        return Ok(None);
    }
    match check_invariants() {
        Ok(r) => Ok(Some(r)),
        Err(e) if FAILED.load(Ordering::Relaxed) => {
            if !SKIPPED.swap(true, Ordering::Relaxed) {
                eprintln!("heap_model: skipping cases: an earlier failure left the heap broken ({e})");
            }
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("before the case (no case failed yet): {e}"))),
    }
}

/// Runs a case, remembering whether it failed.
fn case<T>(input: T, f: impl FnOnce(T) -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    let r = f(input);
    if r.is_err() {
        FAILED.store(true, Ordering::Relaxed);
    }
    r
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, String>>) -> Result<T, String> {
    h.join().unwrap_or_else(|_| Err("a worker thread panicked".into()))
}

// ---------------------------------------------------------------------------------------------
// Single-threaded mode.

fn single(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let Some(base) = baseline()? else { return Ok(()) };
    let live = Live::default();
    let r = std::thread::scope(|s| {
        join(s.spawn(|| {
            let mut mine = Vec::new();
            run_ops(&live, &mut mine, &ops, None, None, |mine, step| {
                let rep = check_invariants().map_err(|e| format!("after step {step} ({:?}): {e}", ops[step]))?;
                compare(&rep, &base, &mine.iter().collect::<Vec<_>>())
                    .map_err(|e| format!("after step {step} ({:?}): {e}", ops[step]))
            })?;
            for b in mine.drain(..) {
                do_free(&live, b)?;
            }
            // Everything freed, the thread still alive: what is left is in this thread's cache.
            let rep = check_invariants().map_err(|e| format!("after freeing everything: {e}"))?;
            compare(&rep, &base, &[]).map_err(|e| format!("after freeing everything (cache not yet given back): {e}"))
        }))
    });
    r.map_err(TestCaseError::fail)?;
    check_back_to_baseline(&base).map_err(TestCaseError::fail)
}

#[test]
fn single_threaded_model() {
    run_property(config(256, "single"), prop::collection::vec(op(false), 1..160), single);
}

// ---------------------------------------------------------------------------------------------
// Multi-threaded mode.

#[derive(Clone, Debug)]
struct Round {
    /// One operation list per thread.
    ops: Vec<Vec<Op>>,
    /// Redistributes the surviving blocks among the threads after the round.
    shuffle: u64,
}

fn rounds() -> impl Strategy<Value = Vec<Round>> {
    (2usize..=4).prop_flat_map(|n| {
        let round = (prop::collection::vec(prop::collection::vec(op(true), 0..40), n), any::<u64>())
            .prop_map(|(ops, shuffle)| Round { ops, shuffle });
        prop::collection::vec(round, 1..6)
    })
}

/// What a thread gives back at the end of a round: its blocks, and its channel, which may hold
/// blocks handed to it that it did not take.
type ThreadEnd = (Vec<Block>, mpsc::Receiver<Block>);

fn threaded(rounds: Vec<Round>) -> Result<(), TestCaseError> {
    let fail = |e: String| TestCaseError::fail(e);
    let Some(base) = baseline()? else { return Ok(()) };
    let live = Live::default();
    let n = rounds[0].ops.len();
    let mut owned: Vec<Vec<Block>> = (0..n).map(|_| Vec::new()).collect();
    for (ri, round) in rounds.iter().enumerate() {
        let chans: Vec<(mpsc::Sender<Block>, mpsc::Receiver<Block>)> = (0..n).map(|_| mpsc::channel()).collect();
        let (txs, rxs): (Vec<_>, Vec<_>) = chans.into_iter().unzip();
        let results: Vec<Result<ThreadEnd, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = owned
                .drain(..)
                .zip(rxs)
                .enumerate()
                .map(|(t, (mut mine, rx))| {
                    let tx = txs[(t + 1) % n].clone();
                    let (live, ops) = (&live, &round.ops[t]);
                    s.spawn(move || {
                        run_ops(live, &mut mine, ops, Some(&tx), Some(&rx), |_, _| Ok(()))
                            .map_err(|e| format!("round {ri}, thread {t}: {e}"))?;
                        Ok((mine, rx))
                    })
                })
                .collect();
            handles.into_iter().map(join).collect()
        });
        drop(txs);
        let mut pool = Vec::new();
        let mut errors = Vec::new();
        for r in results {
            match r {
                Ok((mine, rx)) => {
                    pool.extend(mine);
                    pool.extend(rx.try_iter());
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(fail(errors.join("\n")));
        }
        let rep = check_invariants().map_err(|e| fail(format!("after round {ri}: {e}")))?;
        compare(&rep, &base, &pool.iter().collect::<Vec<_>>()).map_err(|e| fail(format!("after round {ri}: {e}")))?;
        // Hand every block to a thread chosen by the round's shuffle: most change hands.
        owned = (0..n).map(|_| Vec::new()).collect();
        pool.sort_by_key(|b| b.id);
        for b in pool {
            owned[(splitmix(b.id ^ round.shuffle) % n as u64) as usize].push(b);
        }
    }
    // Every thread frees what it holds, concurrently.
    let r: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = owned
            .drain(..)
            .map(|mine| {
                let live = &live;
                s.spawn(move || mine.into_iter().try_for_each(|b| do_free(live, b)))
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    r.into_iter().collect::<Result<(), String>>().map_err(fail)?;
    check_back_to_baseline(&base).map_err(fail)
}

#[test]
fn multi_threaded_model() {
    run_property(config(128, "threads"), rounds(), threaded);
}

// ---------------------------------------------------------------------------------------------
// Large blocks are reused resident.

/// Resident pages of `addr..addr+len` (`mincore`).
fn resident_pages(addr: usize, len: usize) -> usize {
    let mut v = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: mincore writes one byte per page of the range into `v`, which is long enough.
    let r = unsafe { libc::mincore(addr as *mut libc::c_void, len, v.as_mut_ptr()) };
    assert_eq!(r, 0, "mincore: {}", std::io::Error::last_os_error());
    v.iter().filter(|&&b| b & 1 != 0).count()
}

/// Through `malloc`/`free`/`calloc`: a freed 16 MiB block keeps its pages (it used to be given
/// back to the OS on every free), and `calloc` hands out zeros even when it reuses such a run.
/// A live, untouched ballast block raises the heap's retain limit (twice the memory in use)
/// above anything this region can hold, so that whatever earlier tests left retained, nothing
/// is given back here.
#[test]
fn freed_large_blocks_stay_resident_and_calloc_clears_them() {
    let _g = heap_for_test();
    let ballast = heap::malloc(CAPACITY / 2);
    assert!(!ballast.is_null());
    let size = 16 << 20;
    for round in 0..4u8 {
        let p = heap::malloc(size);
        assert!(!p.is_null());
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { std::ptr::write_bytes(p, 0x5A ^ round, size) };
        // SAFETY: `p` is live and forgotten here.
        unsafe { heap::free(p) };
        assert_eq!(resident_pages(p as usize, size), size / PAGE, "round {round}: a freed block was given back");
        let rep = check_invariants().expect("invariants");
        assert!(rep.retained_pages >= size / PAGE && rep.retained_pages <= rep.retain_limit, "{rep:?}");
        let q = heap::alloc(size, 16, true);
        assert!(!q.is_null());
        // SAFETY: `q` is a live block of `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(q, size) };
        assert!(bytes.iter().all(|&b| b == 0), "round {round}: calloc returned non-zero bytes");
        // SAFETY: `q` is live and forgotten here.
        unsafe { heap::free(q) };
    }
    // SAFETY: the ballast is live and forgotten here.
    unsafe { heap::free(ballast) };
}
