//! The on-disk format of a checkpoint slot. Pure encoding and decoding: no I/O, no unsafe.
//!
//! A slot file is a sparse image of the region. Pages are grouped by 512 (2 MiB); each group
//! has a table chunk holding the crc32c and epoch of its pages:
//!
//! ```text
//! offset                     size               content
//! 0                          4096               header: the commit record (below)
//! META_OFF = 4096            <= META_MAX        meta: binary identity and load layout
//! SUMMARY_OFF = 65536        4 * max_groups     summary: crc32c of each group's table chunk
//! table_off(geometry)        4096 * max_groups  table chunk g: 512 entries {crc32c: u32, epoch: u32}
//! data_off(geometry)         4096 * pages       page p of the region at data_off + 4096 p
//! ```
//!
//! Tables and pages are kept apart so that the chunks a checkpoint rewrites are neighbours on
//! disk (few large writes), and runs of pages stay contiguous across group boundaries.
//!
//! Header (little-endian):
//!
//! ```text
//! 0    magic "CRTHRDS\0"     8     96   summary_crc u32
//! 8    version u32           4    100   meta_len u32
//! 12   header_len u32        4    104   meta_crc u32
//! 16   slot u32              4    108   durability u32
//! 20   state u32             4    112   time_ns u64 (wall clock at commit)
//! 24   seq u64               8    120   pages_written u64 (by this checkpoint)
//! 32   page_size u32         4    128   extents: MAX_EXTENTS x {first_page u64, npages u64}
//! 36   group_pages u32       4    256.. reserved, zero
//! 40   base u64              8    4092  header_crc u32 = crc32c(bytes 0..4092)
//! 48   capacity u64          8
//! 56   ngroups u32           4
//! 60   nextents u32          4
//! 64   series u128      16
//! 80   reserved (16 bytes)
//! ```
//!
//! The series is a random number drawn when a run starts a new chain of checkpoints (a fresh
//! start, or after the old chain was retired or its directory removed). Both slots of one
//! chain carry it; a slot of another series (another run's file copied in) is never merged
//! with this chain's.
//!
//! A table entry is `crc32c: u32` then `epoch: u31` and a `hole` bit: a hole is a page that
//! reads as zero (never touched, given back to the OS, or free memory whose contents nobody
//! may read); it is not stored in the file and restore leaves it as a zero page.
//!
//! Trust chain: the header crc covers the header; the header holds the summary's crc; the
//! summary holds each table chunk's crc; each table entry holds its page's crc. Restore checks
//! every link before it uses what the link vouches for, and never trusts a length or offset
//! read from disk without bounding it first.

use crate::config::{REGION_ALIGN, USER_TOP};
pub use crate::pages::{Extent, Extents, MAX_EXTENTS};

/// Page size of the format.
pub const PAGE: usize = 4096;
/// Slot file magic.
pub const MAGIC: [u8; 8] = *b"CRTHRDS\0";
/// Format version.
pub const VERSION: u32 = 2;
/// Header size.
pub const HEADER_LEN: usize = 4096;
/// Offset of the meta block.
pub const META_OFF: u64 = HEADER_LEN as u64;
/// Largest meta block.
pub const META_MAX: usize = 65536 - HEADER_LEN;
/// Offset of the summary.
pub const SUMMARY_OFF: u64 = 65536;
/// Pages per group.
pub const GROUP_PAGES: usize = 512;
/// Bytes of a table entry.
pub const ENTRY_LEN: usize = 8;
/// Header state: a checkpoint is being written into this slot; it holds nothing usable.
pub const STATE_WRITING: u32 = 1;
/// Header state: the slot holds a committed checkpoint.
pub const STATE_COMMITTED: u32 = 2;

const _: () = assert!(GROUP_PAGES * ENTRY_LEN == PAGE);
const _: () = assert!(128 + MAX_EXTENTS * 16 <= 4092);

/// Byte offsets of the header fields.
mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = MAGIC + 8;
    pub const HEADER_LEN: usize = VERSION + 4;
    pub const SLOT: usize = HEADER_LEN + 4;
    pub const STATE: usize = SLOT + 4;
    pub const SEQ: usize = STATE + 4;
    pub const PAGE_SIZE: usize = SEQ + 8;
    pub const GROUP_PAGES: usize = PAGE_SIZE + 4;
    pub const BASE: usize = GROUP_PAGES + 4;
    pub const CAPACITY: usize = BASE + 8;
    pub const NGROUPS: usize = CAPACITY + 8;
    pub const NEXTENTS: usize = NGROUPS + 4;
    pub const SERIES: usize = 64;
    pub const SUMMARY_CRC: usize = 96;
    pub const META_LEN: usize = SUMMARY_CRC + 4;
    pub const META_CRC: usize = META_LEN + 4;
    pub const DURABILITY: usize = META_CRC + 4;
    pub const TIME_NS: usize = DURABILITY + 4;
    pub const PAGES_WRITTEN: usize = TIME_NS + 8;
    pub const EXTENTS: usize = PAGES_WRITTEN + 8;
    pub const CRC: usize = 4092;
    const _: () = assert!(NEXTENTS + 4 <= SERIES && SERIES + 16 <= SUMMARY_CRC && EXTENTS == 128);
}

/// A decoded header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Slot number (0 or 1).
    pub slot: u32,
    /// [`STATE_WRITING`] or [`STATE_COMMITTED`].
    pub state: u32,
    /// Checkpoint sequence number.
    pub seq: u64,
    /// The checkpoint series both slots of one chain share.
    pub series: u128,
    /// Region base address.
    pub base: u64,
    /// Region length in bytes.
    pub capacity: u64,
    /// Groups covered by the summary.
    pub ngroups: u32,
    /// Live page runs.
    pub extents: Extents,
    /// crc32c of the summary bytes.
    pub summary_crc: u32,
    /// Length of the meta block.
    pub meta_len: u32,
    /// crc32c of the meta block.
    pub meta_crc: u32,
    /// 0: process, 1: sync.
    pub durability: u32,
    /// Wall-clock time of the commit, ns since the epoch.
    pub time_ns: u64,
    /// Pages this checkpoint wrote.
    pub pages_written: u64,
}

impl Header {
    /// The header that marks slot `slot` as being written by checkpoint `seq`: it vouches for
    /// nothing, so a crash before the commit leaves the slot plainly invalid.
    pub fn writing(slot: u32, seq: u64, series: u128, base: u64, capacity: u64) -> Header {
        Header {
            slot,
            state: STATE_WRITING,
            seq,
            series,
            base,
            capacity,
            ngroups: 0,
            extents: Extents::new(),
            summary_crc: 0,
            meta_len: 0,
            meta_crc: 0,
            durability: 0,
            time_ns: 0,
            pages_written: 0,
        }
    }
}

/// Where things are in a slot file for a region of a given capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Pages in the region.
    pub capacity_pages: u64,
}

impl Geometry {
    /// Geometry of a region of `capacity` bytes.
    pub fn new(capacity: u64) -> Geometry {
        Geometry { capacity_pages: capacity / PAGE as u64 }
    }
    /// Groups needed to cover the whole region.
    pub fn max_groups(&self) -> u64 {
        self.capacity_pages.div_ceil(GROUP_PAGES as u64)
    }
    /// Offset of the table area.
    pub fn table_off(&self) -> u64 {
        SUMMARY_OFF + (self.max_groups() * 4).next_multiple_of(PAGE as u64)
    }
    /// Offset of group `g`'s table chunk.
    pub fn chunk_off(&self, g: u64) -> u64 {
        self.table_off() + g * PAGE as u64
    }
    /// Offset of the data area.
    pub fn data_off(&self) -> u64 {
        self.chunk_off(self.max_groups())
    }
    /// Offset of region page `p`.
    pub fn page_off(&self, p: u64) -> u64 {
        self.data_off() + p * PAGE as u64
    }
}

/// Groups needed to cover `extents`.
pub fn groups_for(extents: &[Extent]) -> u64 {
    extents.iter().filter(|e| e.npages > 0).map(|e| e.end()).max().unwrap_or(0).div_ceil(GROUP_PAGES as u64)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encodes a header, crc included.
pub fn encode_header(h: &Header) -> Box<[u8; HEADER_LEN]> {
    let mut b = Box::new([0u8; HEADER_LEN]);
    encode_header_into(h, &mut b);
    b
}

/// Encodes a header into `b`, crc included, without allocating.
pub fn encode_header_into(h: &Header, b: &mut [u8; HEADER_LEN]) {
    b.fill(0);
    b[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC);
    put32(&mut b[..], off::VERSION, VERSION);
    put32(&mut b[..], off::HEADER_LEN, HEADER_LEN as u32);
    put32(&mut b[..], off::SLOT, h.slot);
    put32(&mut b[..], off::STATE, h.state);
    put64(&mut b[..], off::SEQ, h.seq);
    b[off::SERIES..off::SERIES + 16].copy_from_slice(&h.series.to_le_bytes());
    put32(&mut b[..], off::PAGE_SIZE, PAGE as u32);
    put32(&mut b[..], off::GROUP_PAGES, GROUP_PAGES as u32);
    put64(&mut b[..], off::BASE, h.base);
    put64(&mut b[..], off::CAPACITY, h.capacity);
    put32(&mut b[..], off::NGROUPS, h.ngroups);
    put32(&mut b[..], off::NEXTENTS, h.extents.len() as u32);
    put32(&mut b[..], off::SUMMARY_CRC, h.summary_crc);
    put32(&mut b[..], off::META_LEN, h.meta_len);
    put32(&mut b[..], off::META_CRC, h.meta_crc);
    put32(&mut b[..], off::DURABILITY, h.durability);
    put64(&mut b[..], off::TIME_NS, h.time_ns);
    put64(&mut b[..], off::PAGES_WRITTEN, h.pages_written);
    for (i, e) in h.extents.iter().enumerate() {
        put64(&mut b[..], off::EXTENTS + i * 16, e.first);
        put64(&mut b[..], off::EXTENTS + i * 16 + 8, e.npages);
    }
    let crc = crc32c::crc32c(&b[..off::CRC]);
    put32(&mut b[..], off::CRC, crc);
}

/// Decodes and validates a header read from slot file `slot`. Every field is checked before
/// it is returned; the error says which one failed.
pub fn decode_header(b: &[u8], slot: u32) -> Result<Header, String> {
    if b.len() < HEADER_LEN {
        return Err(format!("header truncated: {} of {HEADER_LEN} bytes", b.len()));
    }
    if b[..8] != MAGIC {
        return Err("not a crthreads checkpoint (bad magic)".into());
    }
    let crc = crc32c::crc32c(&b[..off::CRC]);
    if crc != get32(b, off::CRC) {
        return Err("header checksum mismatch (torn or corrupted commit record)".into());
    }
    let version = get32(b, off::VERSION);
    if version != VERSION {
        return Err(format!("format version {version}, this build reads version {VERSION}"));
    }
    if get32(b, off::HEADER_LEN) != HEADER_LEN as u32
        || get32(b, off::PAGE_SIZE) != PAGE as u32
        || get32(b, off::GROUP_PAGES) != GROUP_PAGES as u32
    {
        return Err("header geometry (header, page or group size) is not this format's".into());
    }
    let h = Header {
        slot: get32(b, off::SLOT),
        state: get32(b, off::STATE),
        seq: get64(b, off::SEQ),
        series: u128::from_le_bytes(b[off::SERIES..off::SERIES + 16].try_into().expect("16 bytes")),
        base: get64(b, off::BASE),
        capacity: get64(b, off::CAPACITY),
        ngroups: get32(b, off::NGROUPS),
        extents: Extents::new(),
        summary_crc: get32(b, off::SUMMARY_CRC),
        meta_len: get32(b, off::META_LEN),
        meta_crc: get32(b, off::META_CRC),
        durability: get32(b, off::DURABILITY),
        time_ns: get64(b, off::TIME_NS),
        pages_written: get64(b, off::PAGES_WRITTEN),
    };
    if h.slot != slot {
        return Err(format!(
            "holds the header of slot {} (slot files swapped or copied: if they were swapped, renaming \
             them back recovers the checkpoint)",
            h.slot
        ));
    }
    match h.state {
        STATE_COMMITTED => {}
        STATE_WRITING => return Err(format!("checkpoint {} was being written and never committed", h.seq)),
        s => return Err(format!("unknown state {s}")),
    }
    if h.seq == 0 {
        return Err("sequence number 0".into());
    }
    if h.base == 0 || h.base % REGION_ALIGN as u64 != 0 || h.capacity == 0 || h.capacity % REGION_ALIGN as u64 != 0 {
        return Err(format!("region {:#x}+{:#x} is not 2 MiB aligned", h.base, h.capacity));
    }
    if h.base.checked_add(h.capacity).is_none_or(|e| e > USER_TOP as u64) {
        return Err(format!("region {:#x}+{:#x} is outside user space", h.base, h.capacity));
    }
    if h.meta_len as usize > META_MAX {
        return Err(format!("meta length {} exceeds {META_MAX}", h.meta_len));
    }
    if h.durability > 1 {
        return Err(format!("unknown durability {}", h.durability));
    }
    let n = get32(b, off::NEXTENTS) as usize;
    if n > MAX_EXTENTS {
        return Err(format!("{n} extents (at most {MAX_EXTENTS})"));
    }
    let geo = Geometry::new(h.capacity);
    let mut extents = Extents::new();
    let mut prev_end = 0u64;
    for i in 0..n {
        let e = Extent { first: get64(b, off::EXTENTS + i * 16), npages: get64(b, off::EXTENTS + i * 16 + 8) };
        let end = e.first.checked_add(e.npages).ok_or("extent overflows")?;
        if end > geo.capacity_pages || e.first < prev_end {
            return Err(format!("extent {i} ({}+{}) is out of order or outside the region", e.first, e.npages));
        }
        prev_end = end;
        extents.push(e);
    }
    if u64::from(h.ngroups) != groups_for(&extents) {
        return Err(format!("{} groups recorded, extents need {}", h.ngroups, groups_for(&extents)));
    }
    Ok(Header { extents, ..h })
}

/// crc32c of the summary bytes.
pub fn summary_crc(summary: &[u32]) -> u32 {
    let mut crc = 0;
    for chunk in summary.chunks(256) {
        let mut buf = [0u8; 1024];
        for (i, v) in chunk.iter().enumerate() {
            buf[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        crc = crc32c::crc32c_append(crc, &buf[..chunk.len() * 4]);
    }
    crc
}

/// Encodes summary entries.
pub fn encode_summary(summary: &[u32]) -> Vec<u8> {
    summary.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes summary bytes and checks them against the header's crc.
pub fn decode_summary(b: &[u8], ngroups: u32, crc: u32) -> Result<Vec<u32>, String> {
    let need = ngroups as usize * 4;
    if b.len() < need {
        return Err(format!("summary truncated: {} of {need} bytes", b.len()));
    }
    let s: Vec<u32> = b[..need].chunks_exact(4).map(|c| get32(c, 0)).collect();
    if summary_crc(&s) != crc {
        return Err("summary checksum mismatch".into());
    }
    Ok(s)
}

/// A table entry: the crc32c of a page and the sequence number (low 31 bits) of the
/// checkpoint that wrote it into this slot, or a hole (a page that reads as zero and is not
/// stored). The all-zero entry means "never written".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// crc32c of the page (0 for a hole).
    pub crc: u32,
    /// Low 31 bits of the writing checkpoint's sequence number.
    pub epoch: u32,
    /// The page reads as zero and is not stored.
    pub hole: bool,
}

/// The bits of a sequence number an entry keeps.
pub const EPOCH_MASK: u32 = 0x7fff_ffff;

impl Entry {
    /// A stored page with checksum `crc`, written by checkpoint `seq`.
    pub fn page(crc: u32, seq: u64) -> Entry {
        Entry { crc, epoch: seq as u32 & EPOCH_MASK, hole: false }
    }
    /// A hole recorded by checkpoint `seq`.
    pub fn hole(seq: u64) -> Entry {
        Entry { crc: 0, epoch: seq as u32 & EPOCH_MASK, hole: true }
    }
    /// Packs into the 8-byte on-disk form (which is also the in-memory form).
    pub fn pack(self) -> u64 {
        u64::from(self.crc) | (u64::from(self.epoch & EPOCH_MASK) << 32) | (u64::from(self.hole) << 63)
    }
    /// Unpacks.
    pub fn unpack(v: u64) -> Entry {
        Entry { crc: v as u32, epoch: (v >> 32) as u32 & EPOCH_MASK, hole: v >> 63 != 0 }
    }
    /// Whether the entry was written by checkpoint `seq` (compared on the kept bits).
    pub fn written_by(self, seq: u64) -> bool {
        self.epoch == seq as u32 & EPOCH_MASK && self != Entry::default()
    }
    /// Whether a page with this entry was written after checkpoint `seq` (wrapping compare on
    /// 31 bits; an entry too old to compare counts as newer, which only costs a spare write).
    pub fn newer_than(self, seq: u64) -> bool {
        let d = self.epoch.wrapping_sub(seq as u32) & EPOCH_MASK;
        d != 0 && d <= 0x4000_0000
    }
}

/// crc32c of a 4 KiB page.
#[inline]
pub fn page_crc(page: &[u8]) -> u32 {
    crc32c::crc32c(page)
}

/// Everything [`verify_image`] found in a whole slot image held in memory.
#[derive(Debug)]
pub struct ImageReport {
    /// The header.
    pub header: Header,
    /// The meta block.
    pub meta: Vec<u8>,
    /// Live pages checked.
    pub pages: u64,
}

/// Validates a complete slot image held in memory, link by link, as restore does: header,
/// meta, summary, table chunks, then every live page. Never panics on any input.
pub fn verify_image(img: &[u8], slot: u32) -> Result<ImageReport, String> {
    let header = decode_header(img, slot)?;
    let geo = Geometry::new(header.capacity);
    let meta = slice(img, META_OFF, header.meta_len as u64).ok_or("meta block truncated")?;
    if crc32c::crc32c(meta) != header.meta_crc {
        return Err("meta checksum mismatch".into());
    }
    let sum_bytes = slice(img, SUMMARY_OFF, u64::from(header.ngroups) * 4).ok_or("summary truncated")?;
    let summary = decode_summary(sum_bytes, header.ngroups, header.summary_crc)?;
    let mut pages = 0;
    for e in &header.extents {
        let mut p = e.first;
        while p < e.end() {
            let g = p / GROUP_PAGES as u64;
            let chunk =
                slice(img, geo.chunk_off(g), PAGE as u64).ok_or_else(|| format!("table chunk {g} truncated"))?;
            if crc32c::crc32c(chunk) != summary[g as usize] {
                return Err(format!("table chunk {g} checksum mismatch"));
            }
            let group_end = ((g + 1) * GROUP_PAGES as u64).min(e.end());
            while p < group_end {
                let i = (p % GROUP_PAGES as u64) as usize;
                let entry = Entry::unpack(get64(chunk, i * ENTRY_LEN));
                if !entry.hole {
                    let page = slice(img, geo.page_off(p), PAGE as u64).ok_or_else(|| format!("page {p} truncated"))?;
                    if page_crc(page) != entry.crc {
                        return Err(format!("page {p} checksum mismatch"));
                    }
                }
                pages += 1;
                p += 1;
            }
        }
    }
    Ok(ImageReport { header, meta: meta.to_vec(), pages })
}

fn slice(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            slot: 1,
            state: STATE_COMMITTED,
            seq: 42,
            series: 0x1234_5678_9abc_def0_0fed_cba9_8765_4321,
            base: 0x2000_0000_0000,
            capacity: 1 << 30,
            ngroups: 3,
            extents: Extents::from(&[Extent { first: 0, npages: 65 }, Extent { first: 1000, npages: 100 }][..]),
            summary_crc: 7,
            meta_len: 100,
            meta_crc: 9,
            durability: 1,
            time_ns: 123,
            pages_written: 89,
        }
    }

    #[test]
    fn header_round_trips() {
        let h = sample();
        assert_eq!(decode_header(&encode_header(&h)[..], 1).unwrap(), h);
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let b = encode_header(&sample());
        assert!(decode_header(&b[..], 1).is_ok());
        for byte in 0..HEADER_LEN {
            for bit in 0..8 {
                let mut c = b.clone();
                c[byte] ^= 1 << bit;
                assert!(decode_header(&c[..], 1).is_err(), "flip at {byte}:{bit} went unnoticed");
            }
        }
    }

    #[test]
    fn wrong_slot_writing_state_and_bad_fields_are_named() {
        let h = sample();
        assert!(decode_header(&encode_header(&h)[..], 0).unwrap_err().contains("swapped"));
        let w = Header { state: STATE_WRITING, ..h };
        assert!(decode_header(&encode_header(&w)[..], 1).unwrap_err().contains("never committed"));
        let g = Header { ngroups: 9, ..h };
        assert!(decode_header(&encode_header(&g)[..], 1).unwrap_err().contains("groups"));
        let x = Header { extents: Extents::from(&[Extent { first: u64::MAX - 1, npages: 5 }][..]), ..h };
        assert!(decode_header(&encode_header(&x)[..], 1).is_err());
    }

    #[test]
    fn epochs_compare_with_wrapping() {
        let e = |seq: u64| Entry::page(0, seq);
        assert!(e(5).newer_than(4));
        assert!(!e(4).newer_than(4));
        assert!(!e(3).newer_than(4));
        assert!(e(2).newer_than(EPOCH_MASK as u64));
        assert!(!e(EPOCH_MASK as u64).newer_than(1u64 << 31));
        assert!(Entry::hole(9).newer_than(8) && !Entry::hole(8).newer_than(9));
    }

    #[test]
    fn entries_pack_holes_apart_from_pages() {
        for e in [Entry::page(0xdead_beef, 7), Entry::hole(7), Entry::page(1, (1 << 31) + 3), Entry::default()] {
            assert_eq!(Entry::unpack(e.pack()), e);
        }
        assert_ne!(Entry::hole(7).pack(), Entry::page(0, 7).pack());
        assert!(Entry::hole(7).written_by(7) && !Entry::default().written_by(0));
    }

    #[test]
    fn geometry_keeps_chunks_and_pages_contiguous_and_apart() {
        let g = Geometry::new(1 << 30);
        assert_eq!(g.max_groups(), 512);
        assert_eq!(g.table_off(), SUMMARY_OFF + 4096);
        assert_eq!(g.chunk_off(1) - g.chunk_off(0), 4096);
        assert_eq!(g.data_off(), g.chunk_off(511) + 4096);
        assert_eq!(g.page_off(512) - g.page_off(511), 4096);
    }
}
