//! The persistent region: one private anonymous mapping at a fixed address.
//!
//! [`Region`] owns the mapping (dropping it unmaps). It is reserved with `MAP_FIXED_NOREPLACE`,
//! so it never clobbers an existing mapping; an occupied range is reported with the mapping
//! that occupies it. The mapping is `MAP_NORESERVE`: capacity is address space, and only pages
//! that are touched cost memory. Restore reads checkpointed pages into it with `pread` rather
//! than mapping slot files, because a private file mapping is not a snapshot (pages not yet
//! copied would see the slot being rewritten by a later checkpoint).
#![allow(unsafe_code)] // Owns a raw mapping.

use crate::error::{Errno, Error, Result};
use crate::sys::{PAGE, mman};

/// The fixed-address persistent mapping.
#[derive(Debug)]
pub struct Region {
    base: usize,
    len: usize,
}

impl Region {
    /// Maps `capacity` bytes at exactly `base`.
    pub fn reserve(base: usize, capacity: usize) -> Result<Region> {
        if base % PAGE != 0 || capacity % PAGE != 0 || capacity == 0 {
            return Err(Error::Config {
                var: "CRTHREADS_BASE",
                value: format!("{base:#x}+{capacity}"),
                expected: "page-aligned base and capacity".into(),
            });
        }
        match mman::map_fixed_noreplace(base, capacity) {
            Ok(()) => Ok(Region { base, len: capacity }),
            Err(Errno::EXIST) => {
                Err(Error::AddressInUse { base, len: capacity, conflict: describe_conflict(base, capacity) })
            }
            Err(e) => Err(Error::os("mmap (persistent region)", e)),
        }
    }

    /// First byte.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never: capacity is at least one page).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.len / PAGE
    }

    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// Address of page `p`.
    pub fn page_addr(&self, p: usize) -> usize {
        debug_assert!(p < self.pages());
        self.base + p * PAGE
    }

    /// Replaces every page with a fresh zero page (used before retrying a failed restore).
    ///
    /// # Safety
    /// Nothing may hold references into the region.
    pub unsafe fn clear(&self) -> Result<()> {
        // SAFETY: forwarded; the mapping is ours.
        unsafe { mman::remap_zero(self.base, self.len) }.map_err(|e| Error::os("mmap (clear region)", e))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the region owns its mapping; whoever drops it is done with its memory.
        unsafe { mman::unmap(self.base, self.len) };
    }
}

/// The first mapping of `/proc/self/maps` that overlaps `base..base+len`.
fn describe_conflict(base: usize, len: usize) -> String {
    let maps = crate::sys::fs::read_small_file(std::path::Path::new("/proc/self/maps")).unwrap_or_default();
    let maps = String::from_utf8_lossy(&maps);
    for line in maps.lines() {
        let Some(range) = line.split_whitespace().next() else { continue };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        if a < base + len && b > base {
            return line.split_whitespace().collect::<Vec<_>>().join(" ");
        }
    }
    "a mapping that has since gone away".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_refuses_an_occupied_range_and_names_it() {
        let a = Region::reserve(0x3000_0000_0000, 32 << 20).unwrap();
        let e = Region::reserve(0x3000_0000_0000 + (16 << 20), 32 << 20).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::AddressInUse { .. }), "{msg}");
        assert!(msg.contains("300000000000") && msg.contains("CRTHREADS_BASE"), "{msg}");
        drop(a);
        // Once released, the range is free again.
        drop(Region::reserve(0x3000_0000_0000, 32 << 20).unwrap());
    }
}
