//! The in-memory copy of one slot's page table: one packed [`Entry`] per region page, in a
//! lazily populated anonymous mapping laid out exactly as the table chunks are on disk.
#![allow(unsafe_code)] // Raw mapping of packed entries.

use super::format::{Entry, GROUP_PAGES, PAGE};
use crate::error::{Error, Result};
use crate::sys::mman;

/// One slot's page table.
pub(super) struct Table {
    ptr: *mut u64,
    len: usize,
}

// SAFETY: the table is plain memory owned by its Store; it is written only through `&mut`.
unsafe impl Send for Table {}
// SAFETY: shared access only reads (restore's reader threads check pages against it).
unsafe impl Sync for Table {}

const _: () = assert!(cfg!(target_endian = "little"));

impl Table {
    pub(super) fn new(pages: usize) -> Result<Table> {
        let bytes = (pages.next_multiple_of(GROUP_PAGES) * 8).max(PAGE);
        let p = mman::map_anon(bytes).map_err(|e| Error::os("mmap (page table)", e))?;
        Ok(Table { ptr: p.as_ptr().cast(), len: bytes / 8 })
    }
    pub(super) fn get(&self, p: u64) -> Entry {
        debug_assert!((p as usize) < self.len);
        // SAFETY: `p < len`, inside the mapping.
        Entry::unpack(unsafe { self.ptr.add(p as usize).read() })
    }
    pub(super) fn set(&mut self, p: u64, e: Entry) {
        debug_assert!((p as usize) < self.len);
        // SAFETY: `p < len`, inside the mapping, which `&mut self` owns.
        unsafe { self.ptr.add(p as usize).write(e.pack()) }
    }
    /// The 4 KiB table chunk of group `g`, as stored on disk (little-endian, as in memory).
    pub(super) fn chunk(&self, g: u64) -> &[u8] {
        self.chunks(g, g + 1)
    }
    /// The chunks of groups `g0..g1`, contiguous.
    pub(super) fn chunks(&self, g0: u64, g1: u64) -> &[u8] {
        let start = g0 as usize * GROUP_PAGES;
        assert!(g0 <= g1 && g1 as usize * GROUP_PAGES <= self.len);
        // SAFETY: the chunks lie inside the mapping (checked above); x86-64 is little-endian,
        // so the in-memory u64s are the on-disk bytes.
        unsafe { core::slice::from_raw_parts(self.ptr.add(start).cast::<u8>(), (g1 - g0) as usize * PAGE) }
    }
    pub(super) fn chunks_mut(&mut self, g0: u64, g1: u64) -> &mut [u8] {
        let start = g0 as usize * GROUP_PAGES;
        assert!(g0 <= g1 && g1 as usize * GROUP_PAGES <= self.len);
        // SAFETY: as in `chunks`, with `&mut self` for exclusivity.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.add(start).cast::<u8>(), (g1 - g0) as usize * PAGE) }
    }
    /// Empties the table by giving its pages back (they read as zero again), rather than
    /// writing zeros over what may be a large, mostly untouched mapping.
    pub(super) fn clear(&mut self) {
        // SAFETY: the whole mapping is ours and `&mut self` means nobody reads it now.
        if unsafe { mman::discard(self.ptr as usize, self.len * 8) }.is_err() {
            // SAFETY: as above.
            unsafe { core::ptr::write_bytes(self.ptr, 0, self.len) }
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: the mapping is owned by the table.
        unsafe { mman::unmap(self.ptr as usize, self.len * 8) };
    }
}
