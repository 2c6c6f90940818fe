//! The table of persistent threads, in the region (pages the heap keeps for it, see
//! `heap::meta::THREAD_PAGES`), so that a restore finds every thread that was alive.
//!
//! One [`ThreadRec`] per slot. Slot 0 is the program's main thread (started by
//! `crthreads::main`). A record's state:
//!
//! | state    | meaning                                                                 |
//! |----------|-------------------------------------------------------------------------|
//! | `FREE`   | unused                                                                  |
//! | `LIVE`   | created; its context (`ctx`) is where it runs next when it is parked    |
//! | `EXITED` | its closure returned; the result waits in the join packet (`packet`)    |
//!
//! Records change only from threads that are running (never during a checkpoint: see
//! `thread::native`), so a checkpoint always sees whole records. A thread's `ctx` is written by
//! the context switch of its own OS thread when it parks, while no checkpoint copies it.
//!
//! The thread id a program sees is virtual: slot and generation (bumped at each reuse of the
//! slot), the same before and after a restore.
#![allow(unsafe_code)] // Records in raw region memory.

use core::sync::atomic::{AtomicU32, Ordering};

use super::arch::Context;
use crate::heap::meta::{RegionLayout, THREAD_PAGES};
use crate::sync::RawLock;
use crate::sys::PAGE;

/// Unused slot.
pub(crate) const FREE: u32 = 0;
/// A created thread.
pub(crate) const LIVE: u32 = 1;
/// A thread whose closure returned.
pub(crate) const EXITED: u32 = 2;

/// Flag: nobody will join the thread (its handle was dropped).
pub(crate) const DETACHED: u32 = 1;
/// Flag: the program's main thread.
pub(crate) const MAIN: u32 = 2;
/// Flag: a C thread: `entry` is its start routine, `packet` its argument and then its result.
pub(crate) const C_ENTRY: u32 = 4;
/// Flag: a C thread someone is joining (a second joiner is refused).
pub(crate) const JOINING: u32 = 8;
/// Flag: a C thread that ended through `pthread_exit` (for the main thread: the process ends
/// when the last thread does).
pub(crate) const EXITED_EARLY: u32 = 16;

/// One persistent thread, as it lies in the region.
#[repr(C, align(128))]
pub(crate) struct ThreadRec {
    /// One of `FREE`, `LIVE`, `EXITED`.
    pub state: AtomicU32,
    /// Bumped each time the slot is reused.
    pub generation: AtomicU32,
    /// `DETACHED`, `MAIN`.
    pub flags: AtomicU32,
    /// Futex word joiners wait on: 0 while the thread runs, 1 once it exited.
    pub exited: AtomicU32,
    /// Where the thread resumes (valid while it is parked, and before it first runs).
    pub ctx: Context,
    /// The stack: an allocation of the persistent heap, its lowest page a guard.
    pub stack_base: u64,
    /// Bytes of the stack allocation, guard included.
    pub stack_len: u64,
    /// The thread's body: a `*mut Body` in the persistent heap, taken when it starts; for a C
    /// thread (`C_ENTRY`), its start routine.
    pub entry: u64,
    /// If the thread was parked by asynchronous preemption, the address of the signal frame's
    /// `ucontext_t` on its stack (a restore adjusts its alternate-stack fields); else 0.
    pub preempt_frame: u64,
    /// The thread's `errno` when it was preempted.
    pub errno: i32,
    /// Length of `name`.
    pub name_len: u32,
    /// The main thread's result packet (an `Arc` leaked into the persistent heap), for
    /// `crate::main` after a restore; 0 for other Rust threads. A C thread's argument until it
    /// starts, then its result once it exited.
    pub packet: u64,
    /// References to the record: the thread's own and its handle's; the last to go frees it.
    pub refs: AtomicU32,
    /// The name given with `Builder::name`, truncated.
    pub name: [u8; 28],
    /// A C thread's thread-specific data (`crate::posix::key`): a block of the persistent
    /// heap, or 0.
    pub specific: u64,
}

impl ThreadRec {
    /// The main thread's result packet address.
    pub(crate) fn packet_addr(&self) -> usize {
        self.packet as usize
    }
}

/// Records in the table.
pub(crate) const MAX_THREADS: usize = THREAD_PAGES * PAGE / core::mem::size_of::<ThreadRec>();

const _: () = assert!(core::mem::size_of::<ThreadRec>() == 128);
const _: () = assert!(core::mem::offset_of!(ThreadRec, state) == 0);

/// Where the table lies in every region: its first page (a region page index) and its length in
/// pages. It follows the heap header and the thread caches, whatever the region's size.
pub(crate) fn image_pages() -> (u64, u64) {
    (RegionLayout::new(0, 0).threads_start as u64, THREAD_PAGES as u64)
}

/// Counts the live and the exited records in the bytes of a table as a checkpoint holds it
/// (read from a slot file, not mapped): each record's state is its first little-endian `u32`.
pub(crate) fn count_image(bytes: &[u8]) -> (usize, usize) {
    let mut counts = (0, 0);
    for rec in bytes.chunks_exact(core::mem::size_of::<ThreadRec>()) {
        match u32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]) {
            LIVE => counts.0 += 1,
            EXITED => counts.1 += 1,
            _ => {}
        }
    }
    counts
}
const _: () = assert!(MAX_THREADS >= 1024);

/// Serialises slot allocation within this process (records are in the region; the lock is not).
static ALLOC: RawLock = RawLock::new();

/// The table of a region.
#[derive(Clone, Copy)]
pub(crate) struct Table {
    base: usize,
}

impl Table {
    /// The table in the region laid out as `l`.
    pub(crate) fn new(l: &RegionLayout) -> Table {
        Table { base: l.page_addr(l.threads_start) }
    }

    /// The table at `base` (the address `new` finds).
    pub(crate) fn at(base: usize) -> Table {
        Table { base }
    }

    /// The table's address.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Record `i`.
    pub(crate) fn rec(&self, i: usize) -> &'static ThreadRec {
        assert!(i < MAX_THREADS);
        // SAFETY: the table's pages lie in the region, which stays mapped for the process's life;
        // records are only changed through atomics or by their owner (see the module docs).
        unsafe { &*((self.base + i * core::mem::size_of::<ThreadRec>()) as *const ThreadRec) }
    }

    /// A mutable view of record `i`, for the fields that are not atomics.
    ///
    /// # Safety
    /// The caller owns the record's non-atomic fields now: it allocated the slot, or it is the
    /// record's thread, or the thread is parked and no checkpoint runs.
    pub(crate) unsafe fn rec_mut(&self, i: usize) -> *mut ThreadRec {
        self.rec(i) as *const ThreadRec as *mut ThreadRec
    }

    /// Takes a free slot (slot 0 only for the main thread) for which `usable` holds (the
    /// caller's test that no OS thread still serves it) and marks it live. Returns the slot and
    /// its new generation, or `None` if every slot is taken.
    pub(crate) fn alloc(&self, main: bool, usable: impl Fn(usize) -> bool) -> Option<(usize, u32)> {
        ALLOC.with(|| {
            let range = if main { 0..1 } else { 1..MAX_THREADS };
            for i in range {
                let r = self.rec(i);
                if r.state.load(Ordering::Relaxed) == FREE && usable(i) {
                    let g = r.generation.load(Ordering::Relaxed).wrapping_add(1);
                    r.generation.store(g, Ordering::Relaxed);
                    r.flags.store(if main { MAIN } else { 0 }, Ordering::Relaxed);
                    r.exited.store(0, Ordering::Relaxed);
                    // Release: the record's fields are set before anyone sees it live.
                    r.state.store(LIVE, Ordering::Release);
                    return Some((i, g));
                }
            }
            None
        })
    }

    /// Gives slot `i` back.
    pub(crate) fn free(&self, i: usize) {
        // Release: whatever was read from the record happened before it is reused.
        self.rec(i).state.store(FREE, Ordering::Release);
    }

    /// The slots of every live thread.
    pub(crate) fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_THREADS).filter(|&i| self.rec(i).state.load(Ordering::Acquire) == LIVE)
    }
}
