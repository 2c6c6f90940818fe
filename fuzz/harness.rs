//! The checks behind the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (under libFuzzer) and
//! by `tests/fuzz_replay.rs` (which replays the committed corpus on stable Rust). Both include
//! this file with `#[path = ...] mod harness;`, so the interpretation of an input exists once.
//!
//! # `store_decode`: arbitrary bytes as a checkpoint slot image
//!
//! The input is decoded as slot 0 and as slot 1 with [`format::decode_header`] and
//! [`format::verify_image`], then *resealed*: every checksum in the trust chain is recomputed
//! (page crcs into the table, table-chunk crcs into the summary, the summary's and the meta
//! block's crcs and the header crc into the header), so that mutations of the fields behind the
//! checksums reach the validation code too. Properties checked, besides "never panics":
//! - `verify_image` fails exactly when `decode_header` fails, with the same message, and
//!   otherwise reports the decoded header, the meta block and one page per live extent page;
//! - a decoded header re-encodes to bytes that decode to the same header, and is refused as
//!   the other slot with a message naming the swap;
//! - a resealed image whose header decodes is accepted by `verify_image` if and only if every
//!   byte it refers to is present; otherwise the error says what is truncated;
//! - [`format::decode_summary`] accepts exactly the bytes whose crc matches, and
//!   [`Identity::decode`] output re-encodes to an identity that decodes to itself and can be
//!   compared with this process's identity in both directions.
//!
//! # `heap_ops`: allocator operation sequences against a shadow model
//!
//! The input is a sequence of operations, each a tag byte followed by its operands (an input
//! that ends inside an operation ends the sequence):
//!
//! ```text
//! tag % 8   operation   operands
//! 0, 1      alloc       size (3 bytes), align (1 byte)
//! 2         alloc zeroed (calloc-style): size (3 bytes), align (1 byte)
//! 3, 4      free        block index (2 bytes, modulo the live blocks)
//! 5, 6      realloc     block index (2 bytes), new size (3 bytes); alignment kept
//! 7         check       none: heap::check_invariants and the model's counts (the first
//!                       MAX_CHECKS of an input; later ones are skipped, a check walks the heap)
//! size:  selector s, then v = u16 little-endian; s % 8 in 0..=2: v % 256, 3..=4: v,
//!        5..=6: v * 16 (to 1 MiB), 7: v * 64 (to 4 MiB)
//! align: 1 << (a % 22) (1 byte to 2 MiB)
//! ```
//!
//! Every block is filled with its own non-zero byte over its usable size (for blocks larger
//! than [`FULL_FILL_MAX`], only their first and last [`WINDOW`] bytes: touching every page of
//! multi-megabyte blocks would make fresh-page faults the whole cost of an input), and the fill
//! is checked before the block is freed or moved and after a realloc. Zeroed blocks are first
//! checked for zeros over their whole size. A new block must be non-null, aligned, inside the
//! region, at least as large as asked, and overlap no live block. Requests that would push the
//! live total over [`LIVE_BUDGET`] are skipped, so a null return is always a bug. At the end of
//! each input every block is freed, and the heap must pass `check_invariants` with no large
//! run and no small object outstanding outside the thread caches.
#![allow(dead_code)] // Each fuzz target uses one half of this file.
#![allow(unsafe_code)] // Writes and reads the blocks the allocator hands out.

use std::collections::BTreeMap;
use std::sync::{Once, OnceLock};

use crthreads::heap;
use crthreads::identity::Identity;
use crthreads::store::format::{
    self, ENTRY_LEN, Entry, GROUP_PAGES, Geometry, HEADER_LEN, Header, META_OFF, PAGE, SUMMARY_OFF,
};

// =============================================================================================
// store_decode

/// Offset of the header crc.
const HEADER_CRC_OFF: usize = HEADER_LEN - 4;

/// Runs every store-decoding check on `data` (see the module docs). Panics on a violation.
pub fn store_decode(data: &[u8]) {
    for slot in 0..2 {
        check_image(data, slot);
        if let Some(img) = reseal(data, slot) {
            check_image(&img, slot);
            check_resealed(&img, slot);
        }
    }
    check_summary_bytes(data);
    check_identity(data);
    if let Some(meta) = data.get(META_OFF as usize..) {
        check_identity(&meta[..meta.len().min(format::META_MAX)]);
    }
}

fn check_image(data: &[u8], slot: u32) {
    let header = format::decode_header(data, slot);
    let image = format::verify_image(data, slot);
    match (&header, &image) {
        (Err(h), Err(i)) => assert_eq!(h, i, "verify_image's header error differs from decode_header's"),
        (Err(h), Ok(_)) => panic!("verify_image accepted an image whose header decode_header rejects: {h}"),
        (Ok(_), Err(_)) => {}
        (Ok(h), Ok(r)) => {
            assert_eq!(&r.header, h, "verify_image's header differs from decode_header's");
            assert_eq!(r.meta.len(), h.meta_len as usize, "meta block length");
            let live: u64 = h.extents.iter().map(|e| e.npages).sum();
            assert_eq!(r.pages, live, "pages checked by verify_image vs live pages of the extents");
            check_identity(&r.meta);
        }
    }
    if let Ok(h) = &header {
        check_header(h, slot);
        let other = format::decode_header(data, 1 - slot).expect_err("a header was accepted as both slots");
        assert!(other.contains("swapped"), "wrong-slot error does not name the swap: {other}");
    }
}

/// Invariants of every header `decode_header` accepts.
fn check_header(h: &Header, slot: u32) {
    assert_eq!(h.slot, slot);
    assert_eq!(h.state, format::STATE_COMMITTED, "only committed headers decode");
    assert!(h.seq != 0 && h.meta_len as usize <= format::META_MAX && h.durability <= 1, "{h:?}");
    assert!(h.extents.len() <= format::MAX_EXTENTS, "{h:?}");
    let pages = Geometry::new(h.capacity).capacity_pages;
    let mut prev_end = 0;
    for e in &h.extents {
        assert!(e.first >= prev_end && e.end() <= pages, "extent {e:?} out of order or outside the region");
        prev_end = e.end();
    }
    assert_eq!(u64::from(h.ngroups), format::groups_for(&h.extents), "{h:?}");
    let again = format::encode_header(h);
    assert_eq!(format::decode_header(&again[..], slot).as_ref(), Ok(h), "header does not round-trip");
}

/// `data` with every checksum of the trust chain recomputed for `slot`, as far as the bytes
/// they cover are present. `None` if `data` cannot hold a header.
fn reseal(data: &[u8], slot: u32) -> Option<Vec<u8>> {
    if data.len() < HEADER_LEN {
        return None;
    }
    let mut img = data.to_vec();
    seal_header_bytes(&mut img);
    let Ok(mut h) = format::decode_header(&img, slot) else { return Some(img) };
    let geo = Geometry::new(h.capacity);
    let len = img.len() as u64;
    let fits = |off: u64, n: u64| off.checked_add(n).is_some_and(|end| end <= len);
    // Page crcs into the table chunks, keeping each entry's epoch and leaving holes alone.
    for e in &h.extents {
        let mut p = e.first;
        while p < e.end() && fits(geo.page_off(p), PAGE as u64) {
            let chunk = geo.chunk_off(p / GROUP_PAGES as u64) as usize;
            let at = chunk + (p % GROUP_PAGES as u64) as usize * ENTRY_LEN;
            let page = geo.page_off(p) as usize;
            let old = Entry::unpack(u64::from_le_bytes(img[at..at + 8].try_into().expect("8 bytes")));
            if !old.hole {
                let crc = crc32c::crc32c(&img[page..page + PAGE]);
                img[at..at + 8].copy_from_slice(&Entry { crc, ..old }.pack().to_le_bytes());
            }
            p += 1;
        }
    }
    // Chunk crcs into the summary, then the summary's crc.
    let n = h.ngroups as u64;
    if fits(SUMMARY_OFF, n * 4) {
        let mut summary = Vec::with_capacity(n as usize);
        for g in 0..n {
            let at = SUMMARY_OFF as usize + g as usize * 4;
            let stored = u32::from_le_bytes(img[at..at + 4].try_into().expect("4 bytes"));
            let chunk = geo.chunk_off(g);
            let crc = if fits(chunk, PAGE as u64) { crc32c::crc32c(&img[chunk as usize..][..PAGE]) } else { stored };
            img[at..at + 4].copy_from_slice(&crc.to_le_bytes());
            summary.push(crc);
        }
        h.summary_crc = format::summary_crc(&summary);
    }
    if fits(META_OFF, u64::from(h.meta_len)) {
        h.meta_crc = crc32c::crc32c(&img[META_OFF as usize..][..h.meta_len as usize]);
    }
    img[..HEADER_LEN].copy_from_slice(&format::encode_header(&h)[..]);
    let back = format::decode_header(&img, slot);
    assert_eq!(back.as_ref(), Ok(&h), "a resealed header no longer decodes");
    Some(img)
}

/// Recomputes the header crc over the header bytes as they are.
fn seal_header_bytes(img: &mut [u8]) {
    let crc = crc32c::crc32c(&img[..HEADER_CRC_OFF]);
    img[HEADER_CRC_OFF..HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

/// A resealed image is valid unless something it refers to is missing.
fn check_resealed(img: &[u8], slot: u32) {
    let Ok(h) = format::decode_header(img, slot) else { return };
    let geo = Geometry::new(h.capacity);
    let len = img.len() as u64;
    let fits = |off: u64, n: u64| off.checked_add(n).is_some_and(|end| end <= len);
    let mut complete = fits(META_OFF, u64::from(h.meta_len)) && fits(SUMMARY_OFF, u64::from(h.ngroups) * 4);
    // Every page needs its table chunk, and its bytes unless its entry is a hole. The walk stops
    // at the first missing byte, so it is bounded by the image's size.
    'pages: for e in &h.extents {
        for p in e.first..e.end() {
            let chunk = geo.chunk_off(p / GROUP_PAGES as u64);
            if !fits(chunk, PAGE as u64) {
                complete = false;
                break 'pages;
            }
            let at = chunk as usize + (p % GROUP_PAGES as u64) as usize * ENTRY_LEN;
            let entry = Entry::unpack(u64::from_le_bytes(img[at..at + 8].try_into().expect("8 bytes")));
            if !entry.hole && !fits(geo.page_off(p), PAGE as u64) {
                complete = false;
                break 'pages;
            }
        }
    }
    match format::verify_image(img, slot) {
        Ok(_) => assert!(complete, "verify_image accepted an image that lacks some of its bytes"),
        Err(e) => {
            assert!(!complete, "verify_image rejected a complete, resealed image: {e}");
            assert!(e.contains("truncated"), "an incomplete image is not reported as truncated: {e}");
        }
    }
}

/// The summary decoder on raw bytes: `ngroups` and `crc` from the first 8 bytes.
fn check_summary_bytes(data: &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<8>() else { return };
    let ngroups = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if let Ok(s) = format::decode_summary(rest, ngroups, crc) {
        assert_eq!(s.len(), ngroups as usize, "summary length");
        assert_eq!(format::summary_crc(&s), crc, "decode_summary accepted a summary whose crc differs");
        assert_eq!(format::encode_summary(&s), rest[..s.len() * 4], "summary does not re-encode to its bytes");
    }
    // The same bytes with their true crc decode; with any other crc they do not.
    let n = rest.len() / 4;
    let s: Vec<u32> = rest.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
    let good = format::summary_crc(&s);
    assert_eq!(format::decode_summary(rest, n as u32, good).as_ref(), Ok(&s), "a summary with its own crc");
    let bad = format::decode_summary(rest, n as u32, good ^ 1).expect_err("a summary with a wrong crc decoded");
    assert!(bad.contains("checksum"), "{bad}");
}

fn current_identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(Identity::current)
}

fn check_identity(b: &[u8]) {
    let Ok(id) = Identity::decode(b) else { return };
    // Comparing never panics, whichever side is the odd one.
    let _ = current_identity().mismatch(&id);
    let _ = id.mismatch(current_identity());
    let fits = |s: &str| s.len() <= u16::MAX as usize;
    if fits(&id.exe_path) && id.objects.iter().all(|o| fits(&o.name)) {
        assert_eq!(Identity::decode(&id.encode()).as_ref(), Ok(&id), "identity does not round-trip");
    }
}

// =============================================================================================
// heap_ops

/// Capacity of the region the heap harness initialises (address space; only touched pages
/// cost memory).
pub const HEAP_CAPACITY: usize = 4 << 30;
/// Most bytes the model keeps live at once (alignment slack of large alignments included).
pub const LIVE_BUDGET: usize = 64 << 20;
/// Most blocks the model keeps live at once.
pub const MAX_BLOCKS: usize = 8192;
/// Blocks up to this usable size are filled and checked whole.
pub const FULL_FILL_MAX: usize = 64 << 10;
/// Bytes filled and checked at each end of a larger block.
pub const WINDOW: usize = 16 << 10;
/// Most `check` operations run per input.
pub const MAX_CHECKS: u32 = 4;

/// Initialises crthreads once per process, in a fresh directory that no checkpoint is ever
/// written to, without re-executing the process.
pub fn init_heap() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let dir = std::env::temp_dir().join(format!("crthreads-heap-ops-{}", std::process::id()));
        let cfg = crthreads::Config::default().dir(dir).capacity(HEAP_CAPACITY).reexec(false);
        match crthreads::init(cfg) {
            Ok(crthreads::Start::Fresh) => {}
            other => panic!("crthreads::init for the heap harness: {other:?}"),
        }
    });
}

/// One decoded allocator operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `heap::alloc(size, align, zero)`.
    Alloc { size: usize, align: usize, zero: bool },
    /// `heap::free` of live block `index % live`.
    Free { index: usize },
    /// `heap::realloc` of live block `index % live` to `size`, alignment kept.
    Realloc { index: usize, size: usize },
    /// `heap::check_invariants` against the model.
    Check,
}

/// Decodes `data` into operations (see the module docs).
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut r = Reader(data);
    let mut ops = Vec::new();
    while let Some(op) = r.op() {
        ops.push(op);
    }
    ops
}

/// Reads operations off the front of the input; `None` once it is exhausted.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<usize> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]) as usize)
    }
    fn size(&mut self) -> Option<usize> {
        let s = self.u8()?;
        let v = self.u16()?;
        Some(match s % 8 {
            0..=2 => v % 256,
            3 | 4 => v,
            5 | 6 => v * 16,
            _ => v * 64,
        })
    }
    fn op(&mut self) -> Option<Op> {
        let tag = self.u8()?;
        Some(match tag % 8 {
            0..=2 => Op::Alloc { size: self.size()?, align: 1 << (self.u8()? % 22), zero: tag % 8 == 2 },
            3 | 4 => Op::Free { index: self.u16()? },
            5 | 6 => Op::Realloc { index: self.u16()?, size: self.size()? },
            _ => Op::Check,
        })
    }
}

/// Encodes operations in the format [`decode_ops`] reads (for building seed inputs).
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    fn size(out: &mut Vec<u8>, size: usize) {
        let (sel, v) = if size < 256 {
            (0, size)
        } else if size <= 0xffff {
            (3, size)
        } else if size & 0xf == 0 && size / 16 <= 0xffff {
            (5, size / 16)
        } else {
            (7, (size / 64).min(0xffff))
        };
        out.push(sel);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    }
    let mut out = Vec::new();
    for op in ops {
        match *op {
            Op::Alloc { size: s, align, zero } => {
                out.push(if zero { 2 } else { 0 });
                size(&mut out, s);
                out.push(align.trailing_zeros() as u8);
            }
            Op::Free { index } => {
                out.push(3);
                out.extend_from_slice(&(index as u16).to_le_bytes());
            }
            Op::Realloc { index, size: s } => {
                out.push(5);
                out.extend_from_slice(&(index as u16).to_le_bytes());
                size(&mut out, s);
            }
            Op::Check => out.push(7),
        }
    }
    out
}

/// A live block as the model knows it.
#[derive(Clone, Copy, Debug)]
struct Block {
    ptr: usize,
    size: usize,
    align: usize,
    usable: usize,
    fill: u8,
}

impl Block {
    /// The byte ranges `(offset, len)` of a block of `usable` bytes that hold its fill.
    fn windows(usable: usize) -> [(usize, usize); 2] {
        if usable <= FULL_FILL_MAX { [(0, usable), (usable, 0)] } else { [(0, WINDOW), (usable - WINDOW, WINDOW)] }
    }

    /// Fills the block's windows with its fill byte.
    fn fill(&self) {
        for (off, len) in Block::windows(self.usable) {
            // SAFETY: the window lies within the block's usable size, which no live block overlaps.
            unsafe { core::ptr::write_bytes((self.ptr + off) as *mut u8, self.fill, len) };
        }
    }

    /// Checks the block's windows, at `at` (where the block is now), up to `limit` bytes.
    fn check(&self, at: usize, limit: usize, what: &str) {
        for (off, len) in Block::windows(self.usable) {
            let len = len.min(limit.saturating_sub(off));
            check_bytes(at + off, len, self.fill, what);
        }
    }

    /// Bytes charged against [`LIVE_BUDGET`].
    fn cost(size: usize, align: usize) -> usize {
        size.max(1) + if align > PAGE { align } else { 0 }
    }
}

/// The shadow model: live blocks in allocation order, and their address ranges.
#[derive(Default)]
struct Model {
    blocks: Vec<Block>,
    /// Start -> end of every live block's usable range.
    ranges: BTreeMap<usize, usize>,
    live_bytes: usize,
    fills: u32,
    checks: u32,
}

impl Model {
    fn next_fill(&mut self) -> u8 {
        self.fills = self.fills.wrapping_add(1);
        (self.fills % 255) as u8 + 1
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Alloc { size, align, zero } => self.alloc(size, align, zero),
            Op::Free { index } if !self.blocks.is_empty() => {
                let b = self.blocks.swap_remove(index % self.blocks.len());
                self.release(&b);
            }
            Op::Realloc { index, size } if !self.blocks.is_empty() => self.realloc(index % self.blocks.len(), size),
            Op::Free { .. } | Op::Realloc { .. } => {}
            Op::Check if self.checks < MAX_CHECKS => {
                self.checks += 1;
                self.check();
            }
            Op::Check => {}
        }
    }

    fn alloc(&mut self, size: usize, align: usize, zero: bool) {
        let cost = Block::cost(size, align);
        if self.blocks.len() >= MAX_BLOCKS || self.live_bytes + cost > LIVE_BUDGET {
            return;
        }
        let p = heap::alloc(size, align, zero);
        assert!(
            !p.is_null(),
            "alloc({size}, align {align}, zero {zero}) returned null with {} bytes live",
            self.live_bytes
        );
        if zero {
            check_bytes(p as usize, size, 0, "zeroed alloc");
        }
        let b = self.admit(p, size, align);
        self.live_bytes += cost;
        self.blocks.push(b);
    }

    fn realloc(&mut self, i: usize, size: usize) {
        let old = self.blocks[i];
        let (old_cost, new_cost) = (Block::cost(old.size, old.align), Block::cost(size, old.align));
        if self.live_bytes - old_cost + new_cost > LIVE_BUDGET {
            return;
        }
        old.check(old.ptr, old.usable, "block before realloc");
        self.ranges.remove(&old.ptr);
        // SAFETY: `old.ptr` is a live block of this allocator, allocated with `old.align`.
        let p = unsafe { heap::realloc(old.ptr as *mut u8, size, old.align) };
        assert!(!p.is_null(), "realloc({:#x} of {}, {size}, align {}) returned null", old.ptr, old.size, old.align);
        old.check(p as usize, old.size.min(size), "contents kept by realloc");
        self.blocks[i] = self.admit(p, size, old.align);
        self.live_bytes = self.live_bytes - old_cost + new_cost;
    }

    /// Checks a block just handed out, records its range, and fills it with a fresh byte.
    fn admit(&mut self, p: *mut u8, size: usize, align: usize) -> Block {
        let ptr = p as usize;
        assert!(heap::in_region(p), "block {ptr:#x} is outside the persistent region");
        assert_eq!(ptr % align, 0, "block {ptr:#x} of {size} bytes is not aligned to {align}");
        // SAFETY: `p` is a live block of this allocator.
        let usable = unsafe { heap::usable_size(p) };
        assert!(usable >= size, "usable size {usable} of {ptr:#x} is below the {size} bytes asked for");
        let end = ptr + usable.max(1);
        // Live ranges are disjoint, so the one starting last before `end` ends last among them.
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= ptr, "block {ptr:#x}..{end:#x} overlaps live block {s:#x}..{e:#x}");
        }
        self.ranges.insert(ptr, end);
        let b = Block { ptr, size, align, usable, fill: self.next_fill() };
        b.fill();
        b
    }

    fn release(&mut self, b: &Block) {
        b.check(b.ptr, b.usable, "block before free");
        self.ranges.remove(&b.ptr);
        // SAFETY: `b.ptr` is a live block of this allocator, freed once (it left the model).
        unsafe { heap::free(b.ptr as *mut u8) };
        self.live_bytes -= Block::cost(b.size, b.align);
    }

    /// The heap's invariants hold, and it counts as many blocks handed out as the model holds.
    fn check(&self) {
        let rep = heap::check_invariants().unwrap_or_else(|e| panic!("heap invariant violated: {e}"));
        let mut small = 0;
        for (c, (u, k)) in rep.used.iter().zip(&rep.cached).enumerate() {
            small += u.checked_sub(*k).unwrap_or_else(|| panic!("class {c}: {k} objects cached but {u} handed out"));
        }
        assert_eq!(
            small + rep.large_runs,
            self.blocks.len(),
            "blocks outstanding in the heap ({small} small, {} large) vs live in the model",
            rep.large_runs
        );
    }

    fn free_all(&mut self) {
        while let Some(b) = self.blocks.pop() {
            self.release(&b);
        }
    }
}

/// Checks that the `n` bytes at `addr` all equal `want`.
fn check_bytes(addr: usize, n: usize, want: u8, what: &str) {
    // SAFETY: callers pass a live block and at most its usable size.
    let s = unsafe { core::slice::from_raw_parts(addr as *const u8, n) };
    // Slice equality on bytes is a memcmp, fast even in unoptimised test builds.
    let pattern = [want; PAGE];
    for (k, chunk) in s.chunks(PAGE).enumerate() {
        if chunk != &pattern[..chunk.len()] {
            let i = k * PAGE + chunk.iter().position(|&x| x != want).expect("a byte differs");
            panic!("{what}: byte {i} of {addr:#x} (length {n}) is {:#04x}, expected {want:#04x}", s[i]);
        }
    }
}

/// Runs the operations of `data` against the model, then frees everything and checks the heap
/// is empty (see the module docs). Panics on a violation.
pub fn heap_ops(data: &[u8]) {
    init_heap();
    let mut m = Model::default();
    for op in decode_ops(data) {
        m.apply(op);
    }
    m.free_all();
    m.check();
}
