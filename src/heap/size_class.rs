//! Size classes for small objects, computed at compile time.
//!
//! Sizes are multiples of 16 with at most 12.5% internal waste above 128 bytes (four classes per
//! doubling), up to [`SMALL_MAX`]. Every power of two from 16 to `SMALL_MAX` is a class, and a
//! span starts on a page boundary, so an object of class `c` is aligned to the largest power of
//! two dividing `size(c)` (capped at the page size). That is how alignment requests up to a page
//! are served from small classes.
//!
//! Class 0 means "not a small object" in the page map; real classes are `1..NCLASSES`.
#![allow(unsafe_code)] // Unchecked table lookups on the allocation fast path.

use crate::sys::PAGE;

/// Largest size served from size classes; bigger requests get whole page runs.
pub const SMALL_MAX: usize = 32 << 10;

const fn build_sizes() -> [u32; 41] {
    let mut s = [0u32; 41];
    let mut i = 1;
    let mut size = 16u32;
    // 16..=128 step 16.
    while size <= 128 {
        s[i] = size;
        i += 1;
        size += 16;
    }
    // Then four classes per doubling up to SMALL_MAX.
    let mut base = 128u32;
    while base < SMALL_MAX as u32 {
        let step = base / 4;
        let mut k = 1;
        while k <= 4 {
            s[i] = base + step * k;
            i += 1;
            k += 1;
        }
        base *= 2;
    }
    s
}

/// Object size of each class (index 0 unused).
pub const SIZES: [u32; 41] = build_sizes();
/// Number of class slots, class 0 included.
pub const NCLASSES: usize = SIZES.len();

const _: () = assert!(SIZES[NCLASSES - 1] as usize == SMALL_MAX);

const fn build_span_pages() -> [u8; NCLASSES] {
    let mut out = [0u8; NCLASSES];
    let mut c = 1;
    while c < NCLASSES {
        let size = SIZES[c] as usize;
        // At least 8 objects (4 for the largest classes), waste at most 1/8 of the span.
        let min_objs = if size > 8192 { 4 } else { 8 };
        let mut n = 1;
        loop {
            let bytes = n * PAGE;
            let objs = bytes / size;
            if objs >= min_objs && (bytes - objs * size) * 8 <= bytes {
                break;
            }
            n += 1;
        }
        assert!(n <= 64);
        out[c] = n as u8;
        c += 1;
    }
    out
}

/// Pages per span of each class.
pub const SPAN_PAGES: [u8; NCLASSES] = build_span_pages();

/// Objects per span of class `c`.
#[inline]
pub const fn objects_per_span(c: usize) -> u32 {
    ((SPAN_PAGES[c] as usize * PAGE) / SIZES[c] as usize) as u32
}

const fn compute_batch(c: usize) -> u32 {
    if c == 0 {
        return 0;
    }
    let b = (16 << 10) / SIZES[c];
    if b < 2 {
        2
    } else if b > 64 {
        64
    } else {
        b
    }
}

const fn build_batches() -> [u32; NCLASSES] {
    let mut t = [0u32; NCLASSES];
    let mut c = 0;
    while c < NCLASSES {
        t[c] = compute_batch(c);
        c += 1;
    }
    t
}

/// Objects moved between a thread cache and the central list at once, by class (a table: the
/// free fast path must not divide).
static BATCH: [u32; NCLASSES] = build_batches();

/// How many objects move between a thread cache and the central list at once.
#[inline(always)]
pub fn batch(c: usize) -> u32 {
    BATCH[c]
}

/// The most objects a thread cache keeps of class `c` before returning a batch.
///
/// # Safety
/// `c < NCLASSES` (every class the allocator stores is).
#[inline(always)]
pub unsafe fn cache_max(c: usize) -> u32 {
    debug_assert!(c < NCLASSES);
    // SAFETY: the caller guarantees the index is in range.
    unsafe { *BATCH.get_unchecked(c) * 2 }
}

const fn build_lookup() -> [u8; SMALL_MAX / 16 + 1] {
    let mut t = [0u8; SMALL_MAX / 16 + 1];
    let mut i = 0;
    let mut c = 1;
    while i < t.len() {
        let size = if i == 0 { 1 } else { i * 16 };
        while (SIZES[c] as usize) < size {
            c += 1;
        }
        t[i] = c as u8;
        i += 1;
    }
    t
}

/// Class by size in 16-byte steps: one load, no branch (2 KiB, stays in L1).
static LOOKUP: [u8; SMALL_MAX / 16 + 1] = build_lookup();

/// The class for `size` bytes (`0..=SMALL_MAX`), alignment 16.
#[inline(always)]
pub fn class_of(size: usize) -> usize {
    debug_assert!(size <= SMALL_MAX);
    // SAFETY: callers pass size <= SMALL_MAX, so the index is at most SMALL_MAX / 16.
    unsafe { *LOOKUP.get_unchecked((size + 15) >> 4) as usize }
}

/// The class for `size` bytes aligned to `align` (a power of two), or `None` if the request
/// must be served by page runs.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    if align <= 16 {
        return if size <= SMALL_MAX { Some(class_of(size.max(1))) } else { None };
    }
    if align > PAGE {
        return None;
    }
    // Round up to a multiple of `align`, then find the first class that is a multiple of it.
    let size = size.max(1).checked_add(align - 1)? & !(align - 1);
    if size > SMALL_MAX {
        return None;
    }
    let mut c = class_of(size);
    while c < NCLASSES {
        if SIZES[c] as usize % align == 0 {
            return Some(c);
        }
        c += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_increasing_multiples_of_16() {
        for c in 1..NCLASSES {
            assert_eq!(SIZES[c] % 16, 0);
            if c > 1 {
                assert!(SIZES[c] > SIZES[c - 1]);
            }
        }
    }

    #[test]
    fn every_power_of_two_is_a_class() {
        let mut p = 16;
        while p <= SMALL_MAX {
            assert!(SIZES.contains(&(p as u32)), "{p}");
            p *= 2;
        }
    }

    #[test]
    fn class_of_is_the_smallest_fitting_class() {
        for size in 1..=SMALL_MAX {
            let c = class_of(size);
            assert!(SIZES[c] as usize >= size);
            assert!(c == 1 || (SIZES[c - 1] as usize) < size, "size {size} class {c}");
        }
    }

    #[test]
    fn waste_is_bounded() {
        for c in 1..NCLASSES {
            let bytes = SPAN_PAGES[c] as usize * PAGE;
            let used = objects_per_span(c) as usize * SIZES[c] as usize;
            assert!((bytes - used) * 8 <= bytes, "class {c}");
            assert!(objects_per_span(c) >= 4);
        }
    }

    #[test]
    fn aligned_classes_honour_alignment() {
        for align in [16usize, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
            for size in [1usize, 7, 16, 100, 1000, 4096, 5000, 20000] {
                if let Some(c) = class_for(size, align) {
                    assert!(SIZES[c] as usize >= size);
                    assert_eq!(SIZES[c] as usize % align, 0, "size {size} align {align}");
                }
            }
        }
        assert_eq!(class_for(10, 8192), None);
        assert_eq!(class_for(SMALL_MAX + 1, 8), None);
    }
}
