//! A small block of thread-local memory, reached with the initial-exec TLS model.
//!
//! The allocator reads its thread cache pointer on every `malloc` and `free`. In a shared
//! library Rust's `thread_local!` uses the general-dynamic model, a call to `__tls_get_addr` per
//! access (measured: a third of the instructions of a malloc/free pair in the C library). A
//! variable in `.tbss` addressed through its `@gottpoff` GOT entry is one load from the GOT and
//! one add of the thread pointer, in an executable and in a library alike. The price is the
//! `STATIC_TLS` flag on the library: it can be preloaded or linked, but `dlopen` may fail to fit
//! it later (crthreads must be present from the program's start anyway).
//!
//! The block starts zeroed in every thread. Its layout:
//!
//! ```text
//! 0..28   the allocator's thread state (heap::cache::ThreadState)
//! 28      u16  runtime locks held (held / held_add)
//! 30      u16  inside a no-allocation window (set_no_alloc / no_alloc)
//! 32      u32  crthreads locks held: the lock depth (depth / set_depth)
//! 36      u32  inside the runtime or the allocator: asynchronous preemption waits (busy)
//! 40      u64  the persistent thread this OS thread runs, if any (thread::native)
//! 48..64  unused
//! ```
#![allow(unsafe_code)] // Inline assembly.

/// Bytes in the block.
pub(crate) const BLOCK: usize = 64;

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("crthreads supports x86-64 Linux only");

core::arch::global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".balign 16",
    // Global (the accessor is inlined into other crates' code) but hidden (not exported).
    ".globl crthreads_thread_block",
    ".hidden crthreads_thread_block",
    ".type crthreads_thread_block, @object",
    ".size crthreads_thread_block, 64",
    "crthreads_thread_block:",
    ".zero 64",
    ".popsection",
);

/// The calling thread's block (16-byte aligned, [`BLOCK`] bytes, zeroed at thread start).
#[inline(always)]
pub(crate) fn block() -> *mut u8 {
    let p: usize;
    // SAFETY: reads the GOT entry holding the block's offset from the thread pointer, and the
    // thread pointer (`%fs:0` holds its own address in the x86-64 TLS ABI); writes only `p`.
    unsafe {
        core::arch::asm!(
            "mov {p}, qword ptr [rip + crthreads_thread_block@GOTTPOFF]",
            "add {p}, qword ptr fs:[0]",
            p = out(reg) p,
            options(pure, readonly, nostack),
        );
    }
    p as *mut u8
}

/// Offset in the block of the count of runtime locks ([`crate::sync::RawLock`]) the thread
/// holds (a u16); the allocator's thread state lies below it.
pub(crate) const HELD_OFF: usize = 28;
/// Offset of the flag that marks the thread as inside a window where it must not allocate
/// (a u16).
const NO_ALLOC_OFF: usize = 30;

/// Adds `d` to the calling thread's count of runtime locks held.
#[inline(always)]
pub(crate) fn held_add(d: i16) {
    // SAFETY: the block is this thread's and BLOCK bytes long; the u16 at HELD_OFF is reserved
    // for this counter and only this thread touches it.
    unsafe {
        let p = block().add(HELD_OFF) as *mut u16;
        p.write(p.read().wrapping_add_signed(d));
    }
}

/// How many runtime locks the calling thread holds: more than zero means it is inside the
/// allocator or a checkpoint (or a signal handler interrupted it there).
#[inline]
pub(crate) fn held() -> u16 {
    // SAFETY: as in `held_add`.
    unsafe { (block().add(HELD_OFF) as *const u16).read() }
}

/// Marks (or unmarks) the calling thread as inside a window where allocating is a bug (the
/// checkpoint's stop-to-resume window): the allocators count what happens there.
pub(crate) fn set_no_alloc(on: bool) {
    // SAFETY: as in `held_add`, for the u16 at NO_ALLOC_OFF.
    unsafe { (block().add(NO_ALLOC_OFF) as *mut u16).write(on as u16) }
}

/// Whether the calling thread is inside a no-allocation window.
#[inline]
pub(crate) fn no_alloc() -> bool {
    // SAFETY: as in `set_no_alloc`.
    unsafe { (block().add(NO_ALLOC_OFF) as *const u16).read() != 0 }
}

const _: () = assert!(NO_ALLOC_OFF + 2 <= BLOCK && HELD_OFF + 2 <= NO_ALLOC_OFF && HELD_OFF % 2 == 0);

const DEPTH_OFF: usize = 32;
const BUSY_OFF: usize = 36;
const NATIVE_OFF: usize = 40;
const _: () = assert!(NO_ALLOC_OFF + 2 <= DEPTH_OFF && BUSY_OFF == DEPTH_OFF + 4 && NATIVE_OFF + 8 <= BLOCK);

/// The calling thread's lock depth: crthreads locks it holds.
#[inline(always)]
pub(crate) fn depth() -> u32 {
    // SAFETY: the u32 at DEPTH_OFF of this thread's block is reserved for the depth.
    unsafe { (block().add(DEPTH_OFF) as *const u32).read() }
}

/// Sets the calling thread's lock depth.
#[inline(always)]
pub(crate) fn set_depth(d: u32) {
    // SAFETY: as in `depth`; only this thread touches it.
    unsafe { (block().add(DEPTH_OFF) as *mut u32).write(d) }
}

/// Adds `d` to the calling thread's busy count (inside the runtime or the allocator, where
/// asynchronous preemption must wait). Signal handlers read it.
#[inline(always)]
pub(crate) fn busy_add(d: i32) {
    // SAFETY: the u32 at BUSY_OFF of this thread's block is reserved for the busy count. A
    // volatile access: the thread's own signal handler reads it between any two instructions.
    unsafe {
        let p = block().add(BUSY_OFF) as *mut u32;
        // The count must be raised before the work it guards and lowered after it, as the
        // thread's own signal handler sees them: no compiler reordering across it.
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        p.write_volatile(p.read_volatile().wrapping_add_signed(d));
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
}

/// Sets the calling thread's busy count.
#[inline(always)]
pub(crate) fn set_busy(v: u32) {
    // SAFETY: as in `busy_add`.
    unsafe { (block().add(BUSY_OFF) as *mut u32).write_volatile(v) }
}

/// The calling thread's busy count.
#[inline(always)]
pub(crate) fn busy() -> u32 {
    // SAFETY: as in `busy_add`.
    unsafe { (block().add(BUSY_OFF) as *const u32).read_volatile() }
}

/// The per-thread word the thread runtime keeps (a pointer to its per-OS-thread record).
#[inline(always)]
pub(crate) fn native() -> usize {
    // SAFETY: the u64 at NATIVE_OFF of this thread's block is reserved for the thread runtime.
    unsafe { (block().add(NATIVE_OFF) as *const usize).read() }
}

/// Sets the thread runtime's per-thread word.
#[inline(always)]
pub(crate) fn set_native(v: usize) {
    // SAFETY: as in `native`; only this thread touches it.
    unsafe { (block().add(NATIVE_OFF) as *mut usize).write(v) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_thread_has_its_own_zeroed_block() {
        let mine = super::block() as usize;
        assert_eq!(mine % 16, 0);
        // SAFETY: the block is ours and BLOCK bytes long.
        unsafe { (super::block() as *mut u64).write(7) };
        let other = std::thread::spawn(|| {
            // SAFETY: as above, in the new thread.
            (super::block() as usize, unsafe { (super::block() as *const u64).read() })
        })
        .join()
        .unwrap();
        assert_ne!(other.0, mine);
        assert_eq!(other.1, 0, "a new thread's block starts zeroed");
        // SAFETY: ours.
        assert_eq!(unsafe { (super::block() as *const u64).read() }, 7);
    }
}
