//! The volatile allocator: memory that is not checkpointed.
//!
//! It serves every allocation made before the persistent heap is live (ld.so and libc allocate
//! before `main` and before any constructor), the runtime's own bookkeeping, and, in a C
//! program, the runtime's Rust code. Its blocks are outside the region, so a restore, which
//! overwrites the region, never touches them; `free` tells the two apart by address.
//!
//! Blocks carry a 16-byte header just below the returned pointer: the block's class (or, for
//! blocks mapped on their own, their mapping length with `BIG` set) and the distance back to
//! the block's start. Small blocks are powers of two from 32 bytes to 64 KiB, carved from 1 MiB
//! chunks and recycled through per-class free lists; larger ones get their own mapping.
//! One lock guards it all: this allocator is not on any hot path.

use core::ptr::null_mut;

use crate::sync::RawLock;
use crate::sys::{PAGE, mman};

const MIN_SHIFT: usize = 5;
const MAX_SHIFT: usize = 16;
const CHUNK: usize = 1 << 20;
const HEADER: usize = 16;
/// Header flag: the block is a mapping of its own.
const BIG: usize = 1 << 63;

struct State {
    cur: usize,
    end: usize,
    free: [usize; MAX_SHIFT + 1],
}

struct Arena {
    lock: RawLock,
    state: core::cell::UnsafeCell<State>,
}

// SAFETY: `state` is only accessed with `lock` held.
unsafe impl Sync for Arena {}

static V: Arena = Arena {
    lock: RawLock::new(),
    state: core::cell::UnsafeCell::new(State { cur: 0, end: 0, free: [0; MAX_SHIFT + 1] }),
};

/// Takes the allocator's lock (around `fork`).
pub(crate) fn lock() {
    V.lock.lock();
}

/// Releases what [`lock`] took.
pub(crate) fn unlock() {
    // SAFETY: paired with `lock` by the fork handlers, in the thread (or its forked copy) that
    // took it.
    unsafe { V.lock.unlock() }
}

/// Allocations made inside a no-allocation window (see [`crate::sys::tls::set_no_alloc`]): a
/// bug, counted so that tests can assert there are none.
static FORBIDDEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many allocations were made inside no-allocation windows so far.
pub fn forbidden_allocations() -> u64 {
    FORBIDDEN.load(core::sync::atomic::Ordering::Relaxed)
}

/// Allocates `size` bytes aligned to `align` (a power of two). Null when out of memory.
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if crate::sys::tls::no_alloc() {
        FORBIDDEN.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        if cfg!(debug_assertions) {
            crate::sys::fatal("allocation inside the checkpoint's stop window (a fork could deadlock on it)");
        }
    }
    let align = align.max(16);
    let Some(need) = size.checked_add(align).and_then(|n| n.checked_add(HEADER)) else {
        return null_mut();
    };
    if need > (1 << MAX_SHIFT) {
        return alloc_big(need, align);
    }
    let shift = need.next_power_of_two().trailing_zeros().max(MIN_SHIFT as u32) as usize;
    let start = V.lock.with(|| {
        // SAFETY: the lock is held.
        let st = unsafe { &mut *V.state.get() };
        let head = st.free[shift];
        if head != 0 {
            // SAFETY: free blocks hold the address of the next free block in their first word.
            st.free[shift] = unsafe { *(head as *const usize) };
            return head;
        }
        let bytes = 1usize << shift;
        if st.end - st.cur < bytes {
            match mman::map_anon(CHUNK) {
                Ok(p) => {
                    st.cur = p.as_ptr() as usize;
                    st.end = st.cur + CHUNK;
                }
                Err(_) => return 0,
            }
        }
        let b = st.cur;
        st.cur += bytes;
        b
    });
    if start == 0 {
        return null_mut();
    }
    // SAFETY: `start..start+2^shift` is a block of ours with room for header, padding and size.
    unsafe { finish(start, shift, align) }
}

/// Places the header and returns the aligned user pointer inside the block at `start`.
unsafe fn finish(start: usize, word: usize, align: usize) -> *mut u8 {
    let p = (start + HEADER).next_multiple_of(align);
    // SAFETY: `p - HEADER >= start`, inside the caller's block.
    unsafe {
        let h = (p - HEADER) as *mut usize;
        h.write(word);
        h.add(1).write(p - start);
    }
    p as *mut u8
}

fn alloc_big(need: usize, align: usize) -> *mut u8 {
    let Some(len) = need.checked_next_multiple_of(PAGE) else { return null_mut() };
    match mman::map_anon(len) {
        // SAFETY: the new mapping has room for header, alignment padding and the size.
        Ok(m) => unsafe { finish(m.as_ptr() as usize, len | BIG, align) },
        Err(_) => null_mut(),
    }
}

/// Reads a block's header.
///
/// # Safety
/// `p` must have been returned by [`alloc`] and not freed.
unsafe fn header(p: *mut u8) -> (usize, usize) {
    // SAFETY: the caller guarantees the header below `p` is ours.
    unsafe {
        let h = (p as usize - HEADER) as *const usize;
        (h.read(), h.add(1).read())
    }
}

/// Frees a block.
///
/// # Safety
/// `p` must have been returned by [`alloc`] and not freed.
pub unsafe fn free(p: *mut u8) {
    // SAFETY: forwarded.
    let (word, back) = unsafe { header(p) };
    if word & BIG == 0 && (!(MIN_SHIFT..=MAX_SHIFT).contains(&word) || back >= 1 << word) {
        // Not a header this allocator wrote. The likely cause: a pointer kept across a restore
        // into memory allocated before crthreads started (say, a String captured by
        // `crthreads::main`'s closure); that memory belonged to the process that was killed.
        crate::sys::fatal(
            "free(): the block is not from this process's heap: memory allocated before crthreads started \
             is not saved, and a restored program must not keep pointers to it (create such values inside \
             crthreads::main)",
        );
    }
    let start = p as usize - back;
    if word & BIG != 0 {
        // SAFETY: big blocks are whole mappings of their own, now unused.
        unsafe { mman::unmap(start, word & !BIG) };
        return;
    }
    V.lock.with(|| {
        // SAFETY: the lock is held; the freed block stores the list link in its first word.
        unsafe {
            let st = &mut *V.state.get();
            *(start as *mut usize) = st.free[word];
            st.free[word] = start;
        }
    });
}

/// Usable bytes at `p`.
///
/// # Safety
/// `p` must have been returned by [`alloc`] and not freed.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: forwarded.
    let (word, back) = unsafe { header(p) };
    let len = if word & BIG != 0 { word & !BIG } else { 1 << word };
    len - back
}

/// The volatile allocator as a Rust global allocator: for the C library, whose own Rust code
/// must never allocate from the persistent heap it serves.
pub struct Volatile;

// SAFETY: blocks are at least `size` bytes, aligned as asked, valid until freed; no unwinding.
unsafe impl core::alloc::GlobalAlloc for Volatile {
    unsafe fn alloc(&self, l: core::alloc::Layout) -> *mut u8 {
        alloc(l.size(), l.align())
    }
    unsafe fn dealloc(&self, p: *mut u8, _l: core::alloc::Layout) {
        // Blocks may come from the persistent heap too (free dispatches by address).
        // SAFETY: GlobalAlloc's contract: `p` is live and was allocated here or by the heap.
        unsafe { super::free(p) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: core::alloc::Layout, new_size: usize) -> *mut u8 {
        let q = alloc(new_size, l.align());
        if !q.is_null() {
            // SAFETY: both blocks are live and at least min(old, new) bytes long.
            unsafe {
                core::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                super::free(p);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_usable_and_recycled() {
        let mut ptrs = Vec::new();
        for (i, &(size, align)) in [(1, 1), (100, 64), (5000, 4096), (70000, 16), (1 << 20, 1 << 16)].iter().enumerate()
        {
            let p = alloc(size, align);
            assert!(!p.is_null());
            assert_eq!(p as usize % align.max(16), 0);
            // SAFETY: just allocated.
            assert!(unsafe { usable_size(p) } >= size);
            // SAFETY: `size` bytes are ours.
            unsafe { core::ptr::write_bytes(p, i as u8, size) };
            ptrs.push(p);
        }
        for p in ptrs {
            // SAFETY: allocated above, freed once.
            unsafe { free(p) };
        }
        let a = alloc(40, 16);
        // SAFETY: allocated just above.
        unsafe { free(a) };
        assert_eq!(alloc(40, 16), a, "a freed block of the same class is reused");
    }
}
