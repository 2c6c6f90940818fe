//! Unit tests of the page heap on private heaps: each test formats its own region (never made
//! live), so runs land where the test expects and no other test's blocks interfere.
//!
//! What they show: a freed run keeps its pages resident and is handed out again without being
//! faulted in afresh; the retained count is exact and stays within its limit under random
//! operations; trimming gives back as little as it can; `for_each_free_run` reports exactly
//! the free runs; ZEROED is exact (flagged runs read as zero, reused ones are cleared by
//! `calloc`'s path).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;
use crate::heap::check::{HeapReport, check_locked};
use crate::heap::large_alloc;
use crate::region::Region;

/// Address space of each test region (only touched pages cost memory).
const CAPACITY: usize = 4 << 30;

/// A formatted heap in a region of its own.
struct TestHeap {
    _region: Region,
    ctx: Ctx,
}

impl TestHeap {
    fn new() -> TestHeap {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = 0x3800_0000_0000 + NEXT.fetch_add(1, Ordering::Relaxed) * 2 * CAPACITY;
        let region = Region::reserve(base, CAPACITY).expect("reserve a test region");
        // Residency is checked per 4 KiB page: keep transparent huge pages out.
        crate::sys::mman::no_huge_pages(base, CAPACITY);
        let layout = crate::heap::meta::RegionLayout::new(region.base(), region.len());
        // SAFETY: the region was just mapped, zeroed and is used by nothing else.
        unsafe { crate::heap::format(&layout) };
        let ctx = Ctx::from_layout(&layout);
        TestHeap { _region: region, ctx }
    }

    /// Runs `f` under the page-heap lock.
    fn locked<R>(&self, f: impl FnOnce(&Ctx) -> R) -> R {
        // SAFETY: the header is mapped while the region lives.
        unsafe { (*self.ctx.hdr()).pages.lock.with(|| f(&self.ctx)) }
    }

    /// A large run of `n` pages aligned to `align` pages: (first page, reads as zero).
    fn alloc(&self, n: u32, align: u32) -> Option<(u32, bool)> {
        self.locked(|c| {
            // SAFETY: lock held; the run becomes a large run owned by the test.
            unsafe { c.alloc_run(n, align) }.inspect(|&(pg, _)| c.set_large(pg, n))
        })
    }

    /// Frees the large run headed at `pg`.
    fn free(&self, pg: u32) {
        self.locked(|c| {
            // SAFETY: lock held; `pg` heads a large run the test owns and no longer uses.
            unsafe { c.free_run(pg, (*c.pe(pg)).npages) }
        })
    }

    fn check(&self) -> HeapReport {
        // SAFETY: no other thread knows this heap.
        unsafe { check_locked(&self.ctx) }.unwrap_or_else(|e| panic!("heap invariants: {e}"))
    }

    fn free_runs(&self, min: u32) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        // SAFETY: lock held; the callback only pushes to a Vec of the test's (global) allocator.
        self.locked(|c| unsafe { c.for_each_free_run(min, |pg, n| v.push((pg as usize, n as usize))) });
        v.sort_unstable();
        v
    }

    fn addr(&self, pg: u32) -> *mut u8 {
        self.ctx.page_addr(pg) as *mut u8
    }

    /// Resident pages among `pg..pg+n`.
    fn resident(&self, pg: u32, n: u32) -> usize {
        let mut v = vec![0u8; n as usize];
        crate::sys::mman::residency(self.ctx.page_addr(pg), n as usize * PAGE, &mut v).expect("mincore");
        v.iter().filter(|&&b| b & 1 != 0).count()
    }

    /// The first byte of page `pg`.
    fn byte(&self, pg: u32) -> u8 {
        // SAFETY: heap pages are mapped; free pages may be read by the test (nothing writes
        // them meanwhile).
        unsafe { self.addr(pg).read_volatile() }
    }

    fn set_byte(&self, pg: u32, b: u8) {
        // SAFETY: the page belongs to a run the test owns.
        unsafe { self.addr(pg).write_volatile(b) }
    }

    fn fill(&self, pg: u32, n: u32, b: u8) {
        // SAFETY: `pg..pg+n` is a run the test owns.
        unsafe { core::ptr::write_bytes(self.addr(pg), b, n as usize * PAGE) }
    }
}

/// (a) On the old heap every freed run of 1 MiB or more was given back, so its pages were no
/// longer resident after `free` and came back as fresh zero pages.
#[test]
fn a_freed_large_run_stays_resident_and_is_handed_out_again() {
    // At the top of the heap and in its middle (a guard run after it).
    for guard in [false, true] {
        let h = TestHeap::new();
        let n = 1024; // 4 MiB
        let (pg, zeroed) = h.alloc(n, 1).unwrap();
        assert!(zeroed, "a run from untouched memory reads as zero");
        if guard {
            h.alloc(1, 1).unwrap();
        }
        for cycle in 0..5u8 {
            let fill = 0xA0 | cycle;
            h.fill(pg, n, fill);
            h.free(pg);
            let rep = h.check();
            assert_eq!(rep.free_runs, vec![(pg as usize, n as usize, n as usize)], "guard {guard}, cycle {cycle}");
            assert_eq!(rep.retained_pages, n as usize);
            assert_eq!(h.resident(pg, n), n as usize, "guard {guard}, cycle {cycle}: freed pages were given back");
            let (again, zeroed) = h.alloc(n, 1).unwrap();
            assert_eq!(again, pg, "the retained run is handed out again");
            assert!(!zeroed, "a retained run must not be reported as zeroed");
            assert_eq!(h.resident(pg, n), n as usize);
            assert!((0..n).all(|i| h.byte(pg + i) == fill), "the reused run was not given back and kept its bytes");
        }
    }
}

/// (d) `calloc`'s path (`large_alloc` with `zero`) on a reused run: the run is the one just
/// freed, still holding the old bytes, and what `calloc` returns reads as zero.
#[test]
fn calloc_of_a_retained_run_returns_zeros() {
    let h = TestHeap::new();
    let size = (5 << 20) + 123;
    let p = large_alloc(&h.ctx, size, 16, false);
    assert!(!p.is_null());
    // SAFETY: `p` is a live block of `size` bytes in the test heap.
    unsafe { core::ptr::write_bytes(p, 0x5A, size) };
    h.free(h.ctx.page_of(p as usize));
    let n = size.div_ceil(PAGE) as u32;
    let pg = h.ctx.page_of(p as usize);
    assert_eq!(h.resident(pg, n), n as usize);
    assert_eq!(h.byte(pg + n - 1), 0x5A, "freed pages keep their bytes until reused");
    let q = large_alloc(&h.ctx, size, 16, true);
    assert_eq!(q, p, "the retained run is reused");
    // SAFETY: `q` is a live block of `size` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(q, size) };
    assert!(bytes.iter().all(|&b| b == 0), "calloc of a reused run returned non-zero bytes");
}

/// Beyond the limit, a run at `top` gives back only the excess (and the slack), from its end;
/// a run in the middle gives back all its pages and becomes ZEROED, and reads as zero when
/// handed out.
#[test]
fn trimming_gives_back_the_excess_and_flags_what_it_gave_back() {
    let h = TestHeap::new();
    let big = RETAIN_MIN_PAGES + 4000;
    // At the top: only the 4000 pages above the limit (and the slack) go, from the end; top
    // comes down.
    let (pg, _) = h.alloc(big, 1).unwrap();
    h.set_byte(pg, 1);
    h.set_byte(pg + big - 1, 2);
    h.free(pg);
    let rep = h.check();
    let kept = RETAIN_MIN_PAGES - TRIM_SLACK;
    assert_eq!(rep.top_pages, (pg + kept) as usize, "top lowered by the excess (and the slack) only");
    assert_eq!(rep.free_runs, vec![(pg as usize, kept as usize, kept as usize)]);
    assert_eq!(rep.retained_pages, kept as usize);
    assert_eq!(h.byte(pg), 1, "the kept part keeps its pages");
    assert_eq!(h.resident(pg, 1), 1);

    // In the middle (a guard after it): the whole run goes and is flagged.
    let h = TestHeap::new();
    let (pg, _) = h.alloc(big, 1).unwrap();
    let (guard, _) = h.alloc(1, 1).unwrap();
    h.set_byte(pg, 1);
    h.set_byte(pg + big - 1, 2);
    h.free(pg);
    let rep = h.check();
    assert_eq!(rep.free_runs, vec![(pg as usize, big as usize, 0)]);
    assert_eq!(rep.retained_pages, 0);
    assert_eq!(h.resident(pg, big), 0, "a ZEROED run holds no pages");
    // Handed out again in part, the piece reads as zero; freed again, the run counts only the
    // piece's page as retained, not the whole run.
    let (small, zeroed) = h.alloc(1, 1).unwrap();
    assert!(zeroed && small == pg);
    assert_eq!(h.byte(small), 0);
    h.set_byte(small, 7);
    h.free(small);
    let rep = h.check();
    assert_eq!(rep.free_runs, vec![(pg as usize, big as usize, 1)]);
    assert_eq!(rep.retained_pages, 1);
    assert_eq!(h.byte(small), 7, "the piece keeps its page");
    // Handed out whole, it is not reported as zeroed (one of its pages is not).
    assert_eq!(h.alloc(big, 1), Some((pg, false)));
    assert!(guard > pg);
}

/// Allocation takes a retained run over a ZEROED one that fits about as well, and the best
/// fit otherwise.
#[test]
fn allocation_prefers_a_retained_run_of_similar_fit() {
    let h = TestHeap::new();
    // A (1700 pages), B (2000) and C (14000), each followed by a used page. B and C freed
    // stay retained (16000 pages, under the 16384-page floor); freeing A then exceeds the
    // limit by 1316 pages, 1572 with the slack, and A is the shortest run that covers that:
    // it is given back.
    let mut runs = Vec::new();
    for n in [1700, 2000, 14_000] {
        runs.push(h.alloc(n, 1).unwrap().0);
        h.alloc(1, 1).unwrap();
    }
    let [a, b, c] = runs[..] else { unreachable!() };
    for pg in [b, c, a] {
        h.fill(pg, 1, 9);
        h.free(pg);
    }
    let rep = h.check();
    let runs: Vec<_> = rep.free_runs.iter().filter(|r| r.1 > 1).copied().collect();
    assert_eq!(runs, vec![(a as usize, 1700, 0), (b as usize, 2000, 2000), (c as usize, 14_000, 14_000)]);
    // 1600 pages: A fits best, B is longer by 300 pages, within a quarter of the request.
    assert_eq!(h.alloc(1600, 1), Some((b, false)));
    // 1000 pages: A fits best, and the next retained run (C) is far longer.
    assert_eq!(h.alloc(1000, 1), Some((a, true)));
}

/// (c) `for_each_free_run` against the walk of the page map, at bin boundaries.
#[test]
fn for_each_free_run_reports_exactly_the_free_runs() {
    let h = TestHeap::new();
    // Runs of 1, 2, 128, 129 and 3000 pages, each followed by a used page.
    let mut runs = Vec::new();
    for n in [1u32, 2, 128, 129, 3000, 1, 128] {
        let (pg, _) = h.alloc(n, 1).unwrap();
        h.alloc(1, 1).unwrap();
        runs.push(pg);
    }
    for pg in runs {
        h.free(pg);
    }
    let rep = h.check();
    assert_eq!(rep.free_runs.len(), 7);
    for min in [0, 1, 2, 3, 127, 128, 129, 130, 2999, 3000, 3001] {
        let want: Vec<(usize, usize)> =
            rep.free_runs.iter().filter(|r| r.1 >= min.max(1) as usize).map(|r| (r.0, r.1)).collect();
        assert_eq!(h.free_runs(min), want, "min_pages {min}");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Random operations: invariants, the retained bound, `for_each_free_run`, ZEROED.

#[derive(Clone, Debug)]
enum Op {
    Alloc { pages: u32, align_log: u32 },
    Free { pick: prop::sample::Index },
    Resize { pick: prop::sample::Index, pages: u32 },
}

fn pages() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 1u32..=16,
        3 => 17u32..=256,
        3 => 257u32..=4096,
        3 => 4097u32..=12_000,
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        5 => (pages(), prop_oneof![6 => Just(0u32), 1 => 1u32..=9]).prop_map(|(pages, align_log)| Op::Alloc { pages, align_log }),
        4 => any::<prop::sample::Index>().prop_map(|pick| Op::Free { pick }),
        1 => (any::<prop::sample::Index>(), pages()).prop_map(|(pick, pages)| Op::Resize { pick, pages }),
    ];
    prop::collection::vec(op, 1..80)
}

/// Live pages above which the test frees instead of allocating (the region holds four times
/// as many).
const LIVE_BUDGET: u64 = 150_000;

fn run_ops(ops: &[Op]) -> Result<(), TestCaseError> {
    let h = TestHeap::new();
    let mut live: Vec<(u32, u32)> = Vec::new();
    // Pages the test wrote a non-zero byte to: those inside ZEROED runs must read zero.
    let mut marked: BTreeSet<u32> = BTreeSet::new();
    for (step, op) in ops.iter().enumerate() {
        let live_pages: u64 = live.iter().map(|r| r.1 as u64).sum();
        // Over the budget, an allocation frees the oldest block instead.
        let over = matches!(op, Op::Alloc { pages, .. } if live_pages + (*pages as u64) >= LIVE_BUDGET);
        match op {
            Op::Alloc { .. } if over => {
                let (pg, _) = live.remove(0);
                h.free(pg);
            }
            Op::Alloc { pages, align_log } => {
                let align = 1u32 << align_log;
                let (pg, zeroed) = h.alloc(*pages, align).expect("the region has room");
                prop_assert_eq!(h.ctx.page_addr(pg) % (align as usize * PAGE), 0, "misaligned run");
                if zeroed {
                    for &m in marked.range(pg..pg + pages) {
                        prop_assert_eq!(
                            h.byte(m),
                            0,
                            "step {}: run at {} reported zeroed, page {} is not",
                            step,
                            pg,
                            m
                        );
                    }
                }
                for m in [pg, pg + pages / 2, pg + pages - 1] {
                    h.set_byte(m, 0xC3);
                    marked.insert(m);
                }
                live.push((pg, *pages));
            }
            Op::Free { pick } if !live.is_empty() => {
                let (pg, _) = live.swap_remove(pick.index(live.len()));
                h.free(pg);
            }
            Op::Resize { pick, pages } if !live.is_empty() => {
                let i = pick.index(live.len());
                let (pg, n) = live[i];
                let new_n = *pages;
                let done = h.locked(|c| {
                    // SAFETY: lock held; `pg..pg+n` is a large run the test owns.
                    unsafe {
                        if new_n < n {
                            c.shrink_run(pg, n, new_n);
                            c.set_large(pg, new_n);
                            true
                        } else if new_n > n && live_pages + ((new_n - n) as u64) < LIVE_BUDGET {
                            let grown = c.grow_run(pg, n, new_n).is_some();
                            if grown {
                                c.set_large(pg, new_n);
                            }
                            grown
                        } else {
                            false
                        }
                    }
                });
                if done {
                    live[i].1 = new_n;
                }
            }
            _ => {}
        }
        let rep = unsafe_check(&h).map_err(|e| TestCaseError::fail(format!("after step {step} ({op:?}): {e}")))?;
        prop_assert!(rep.retained_pages <= rep.retain_limit);
        prop_assert_eq!(rep.large_pages, live.iter().map(|r| r.1 as usize).sum::<usize>());
        let want: Vec<(usize, usize)> = rep.free_runs.iter().map(|r| (r.0, r.1)).collect();
        prop_assert_eq!(h.free_runs(1), want, "step {}: for_each_free_run disagrees with the page map", step);
        // `kept` bounds the pages that may be resident: pages still holding the test's byte
        // certainly are (a page given back reads as zero). A ZEROED run has none.
        for &(s, n, kept) in &rep.free_runs {
            let holding = marked.range(s as u32..(s + n) as u32).filter(|&&m| h.byte(m) != 0).count();
            prop_assert!(
                holding <= kept,
                "step {}: free run at {} ({} pages) keeps {} pages, but {} hold data",
                step,
                s,
                n,
                kept,
                holding
            );
        }
    }
    Ok(())
}

fn unsafe_check(h: &TestHeap) -> Result<HeapReport, String> {
    // SAFETY: no other thread knows this heap.
    unsafe { check_locked(&h.ctx) }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn retained_pages_stay_within_the_limit(ops in ops()) {
        run_ops(&ops)?;
    }
}
