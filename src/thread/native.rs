//! The OS side of a persistent thread: an OS thread runs a persistent thread's code on the
//! thread's stack in the region (the *region side*), and comes back to its own stack (the
//! *native side*, volatile memory) whenever the persistent thread stops at a safepoint.
//!
//! ```text
//!   native side (OS thread's own stack)          region side (persistent stack)
//!   run(): loop {                                 ...program code...
//!       leave the safe state ───── switch ──────►   to_native(request) ─┐
//!       ◄──────────────────────── switch ──────── ◄─────────────────────┘
//!       SAFE: serve the request (wait on a futex,
//!       wait for a checkpoint, exit)
//!   }
//! ```
//!
//! While the region side is switched out its stack is frozen and its context saved in its
//! record: the thread is *safe*, and a checkpoint may copy it. [`leave_safe`] is the only way
//! back, and it waits while a checkpoint gathers or commits: the handshake with the gatherer
//! is in [`super::handshake`] (Dekker's, modelled by the loom tests).
//!
//! The region side runs on whichever OS thread resumes it: in a restored process, a new one.
//! So region-side code reads its per-thread state from thread-local memory after every switch,
//! never from a value computed before it.
#![allow(unsafe_code)] // Context switches, per-thread records in static memory.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};

use super::arch::{Context, switch};
use super::coord;
use super::table::{MAX_THREADS, Table};
use crate::sys::{futex, tls};

pub(crate) use super::handshake::{NONE, RUNNING, SAFE};
use coord::HS;

/// What the region side asks of the native side when it switches out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Request {
    /// Block while `*word == expected` (until woken or the wall-clock `deadline`).
    Wait { word: *const AtomicU32, expected: u32, deadline: Option<u64> },
    /// Stay parked until a checkpoint that includes this thread's current state has been
    /// attempted (every-release: the thread just released its last lock).
    Cover,
    /// A checkpoint is gathering: stay parked until it is over.
    Park,
    /// Roll every thread back to the last checkpoint (see [`crate::rollback`]).
    Rollback,
    /// Run this closure on the native side, the thread counting as parked meanwhile (see
    /// [`super::blocking`]). It lives in the region side's frame, which waits for the answer.
    Run { f: *mut (dyn FnMut() + 'static) },
    /// The thread's body returned: retire the OS thread.
    Exit,
}

/// How the native side answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// The wait ended (woken, or spuriously).
    Woken,
    /// The wait's deadline passed.
    TimedOut,
    /// The request was served by a checkpoint attempt (see [`coord::Outcome`]).
    Attempted,
    /// This is a restored process: the thread resumes where the checkpoint found it. Waits
    /// treat it as a spurious wake-up.
    Restored,
}

/// One OS thread's side of a persistent thread (slot `i` of the table serves slot `i` here).
pub(crate) struct Native {
    /// `NONE`, `SAFE` or `RUNNING`: read by the gatherer.
    pub(crate) state: AtomicU32,
    /// The OS thread's kernel id (for preemption signals).
    pub(crate) tid: AtomicI32,
    /// The native side's context while the region side runs.
    ctx: UnsafeCell<Context>,
    request: UnsafeCell<Request>,
    resume: UnsafeCell<Resume>,
    /// Which checkpoint attempt a `Cover` request waits for.
    pub(crate) cover: UnsafeCell<coord::Ticket>,
    /// The futex word the native side waits on for a `Wait` request (0: none), so that a
    /// rollback can wake it.
    pub(crate) waiting_on: AtomicUsize,
    /// The last rollback generation the native side noticed while serving a `Wait`.
    pub(crate) seen: AtomicU32,
    /// Set by a rollback (while every thread is parked) when the checkpoint holds no thread in
    /// this slot: the OS thread retires when it next leaves its safepoint.
    pub(crate) retire: AtomicBool,
    /// The rollback generation when the OS thread was asked for ([`mark_starting`]): a
    /// rollback before it got to run applies to it too.
    born: AtomicU32,
}

// SAFETY: the cells are only touched by the OS thread that serves the slot (both sides of a
// switch run on it); the atomics are shared with the gatherer.
unsafe impl Sync for Native {}

#[allow(clippy::declare_interior_mutable_const)] // a template for the static array only
const EMPTY: Native = Native {
    state: AtomicU32::new(NONE),
    tid: AtomicI32::new(0),
    ctx: UnsafeCell::new(Context { rsp: 0, canary: 0 }),
    request: UnsafeCell::new(Request::Exit),
    resume: UnsafeCell::new(Resume::Woken),
    cover: UnsafeCell::new(coord::Ticket::NONE),
    waiting_on: AtomicUsize::new(0),
    seen: AtomicU32::new(0),
    retire: AtomicBool::new(false),
    born: AtomicU32::new(0),
};

/// The OS sides of all slots (volatile: a restored process starts with none).
pub(crate) static NATIVES: [Native; MAX_THREADS] = [EMPTY; MAX_THREADS];

/// The slot of the persistent thread the calling OS thread serves, plus one (0: none).
fn current_slot() -> Option<usize> {
    tls::native().checked_sub(1)
}

/// The slot of the calling thread, if it is a persistent thread.
pub(crate) fn slot() -> Option<usize> {
    current_slot()
}

/// Switches to the native side with `req`, and returns its answer when the region side is
/// resumed. Only a persistent thread's region side calls this.
pub(crate) fn to_native(req: Request) -> Resume {
    let Some(i) = current_slot() else { crate::sys::fatal("to_native outside a persistent thread") };
    let table = coord::table();
    let n = &NATIVES[i];
    // SAFETY: this OS thread serves slot `i`; the native side reads the request after the
    // switch, on this same OS thread.
    unsafe { *n.request.get() = req };
    // Thread-local counts belong to the OS thread: after a restore they start at zero. The
    // busy count of this frame is carried over the switch.
    let busy = tls::busy();
    // SAFETY: the record is this thread's own; its context is saved here and the native
    // context was saved by the switch that resumed us (both on this OS thread).
    unsafe { switch(&raw mut (*table.rec_mut(i)).ctx, n.ctx.get()) };
    // Possibly another OS thread now (a restored process): look the slot up again.
    let i = current_slot().unwrap_or_else(|| crate::sys::fatal("resumed outside a persistent thread"));
    tls::set_busy(busy);
    // SAFETY: as above; the native side wrote the answer before switching back.
    unsafe { *NATIVES[i].resume.get() }
}

/// Blocks the native side until no checkpoint is under way, then marks the thread running
/// (the handshake in `handshake`).
fn leave_safe(n: &Native) {
    HS.leave_safe(&n.state);
}

/// Before an OS thread is created for slot `i`: the slot counts as served and safe from now
/// on (its region side is frozen at its first context until the OS thread runs it), so that
/// a rollback before the OS thread starts sees it and decides its fate, and neither a spawn
/// nor a rollback starts a second OS thread for the slot meanwhile.
pub(crate) fn mark_starting(i: usize) {
    let n = &NATIVES[i];
    n.born.store(coord::rollbacks(), Ordering::SeqCst);
    HS.enter_safe(&n.state);
}

/// The OS thread asked for by [`mark_starting`] could not be created.
pub(crate) fn unmark_starting(i: usize) {
    HS.retire(&NATIVES[i].state);
}

/// Runs the persistent thread in slot `i` on the calling OS thread until it exits, resuming it
/// with `first` (`Woken` for a new thread, `Restored` after a restore). A slot started by
/// `start_os_thread` was marked with [`mark_starting`]; the program's main thread (slot 0)
/// marks itself here.
pub(crate) fn run(i: usize, first: Resume) {
    let n = &NATIVES[i];
    // std's handle for this OS thread (its name, for panic messages) is created now, in
    // volatile memory: created later by the program's code it would live in the heap, and a
    // rollback could free it under std.
    crate::heap::internal(|| drop(std::thread::current()));
    tls::set_native(i + 1);
    n.tid.store(crate::sys::thread::gettid(), Ordering::Relaxed);
    // Tracking faults on heap pages are handled on this stack (a SIGSEGV handler must not run
    // on the region stack of a thread that may be checkpointed meanwhile).
    crate::sys::thread::ensure_altstack(64 << 10);
    // SAFETY: only this OS thread uses the cells of slot `i` from now on.
    unsafe { *n.resume.get() = first };
    // The rollback generation this thread's region side last ran in: for an OS thread started
    // by another, the one it was asked for in (a rollback meanwhile concerns it too).
    let mut generation = if n.state.load(Ordering::SeqCst) == NONE {
        let g = coord::rollbacks();
        HS.enter_safe(&n.state);
        g
    } else {
        n.born.load(Ordering::SeqCst)
    };
    if i == 0 {
        // The main thread (started last after a restore) is parked: checkpoints may begin.
        coord::ready();
    }
    let table = coord::table();
    loop {
        leave_safe(n);
        if coord::rollbacks() != generation {
            // Rolled back while parked: the region side to resume is the checkpoint's.
            crate::heap::forget_cache();
            if n.retire.swap(false, Ordering::SeqCst) {
                // The thread did not exist at the checkpoint (decided by the rollback): this OS
                // thread retires, its cache forgotten (the checkpoint's owner may hold it now).
                tls::set_native(0);
                HS.retire(&n.state);
                return;
            }
            // This OS thread may have parked inside the preemption handler, which is abandoned
            // now with the preemption signal still blocked.
            super::preempt::unblock();
            // SAFETY: only this OS thread uses slot `i`'s cells.
            unsafe { *n.resume.get() = Resume::Restored };
        }
        // SAFETY: the record's context is a saved (or initial) context on the thread's stack,
        // which only this OS thread resumes; the native context is saved into our own slot.
        unsafe { switch(n.ctx.get(), &raw const (*table.rec_mut(i)).ctx) };
        // The region side stopped: its stack is frozen now. No rollback can happen before
        // this thread is published safe, so the generation read here is the region side's.
        generation = coord::rollbacks();
        HS.enter_safe(&n.state);
        // SAFETY: written by the region side just before it switched out, on this OS thread.
        let req = unsafe { *n.request.get() };
        let answer = match req {
            Request::Wait { word, expected, deadline } => {
                n.waiting_on.store(word as usize, Ordering::SeqCst);
                // A rollback wakes this wait (it wakes the word until the change is seen).
                let r = if coord::rollbacks() != generation {
                    Resume::Woken
                } else {
                    // SAFETY: the region side's futex word stays valid while it waits on it.
                    let word = unsafe { &*word };
                    if futex::wait_until(word, expected, deadline) { Resume::Woken } else { Resume::TimedOut }
                };
                n.waiting_on.store(0, Ordering::SeqCst);
                let g = coord::rollbacks();
                if g != generation {
                    n.seen.store(g, Ordering::SeqCst);
                    coord::safe_changed();
                }
                r
            }
            Request::Cover | Request::Rollback => {
                // SAFETY: only this OS thread uses slot `i`'s cells.
                let t = unsafe { &mut *n.cover.get() };
                coord::wait_for_attempt(t, matches!(req, Request::Rollback));
                Resume::Attempted
            }
            Request::Park => Resume::Woken,
            Request::Run { f } => {
                // Allocations in it are volatile and frees take the heap's locks (which a
                // commit holds): it cannot change the heap's metadata under a checkpoint.
                // SAFETY: the closure lives in the parked region side's frame, which only
                // resumes after this answer; it catches its own panics.
                crate::heap::internal(|| unsafe { (*f)() });
                Resume::Woken
            }
            Request::Exit => {
                leave_safe(n);
                if coord::rollbacks() != generation {
                    // Rolled back before the exit took effect: the top of the loop decides.
                    continue;
                }
                if i == 0 {
                    // The main thread returns: the program is ending.
                    coord::stop();
                }
                super::finish(table, i);
                HS.retire(&n.state);
                tls::set_native(0);
                return;
            }
        };
        // SAFETY: read by the region side after the switch back, on this OS thread.
        unsafe { *n.resume.get() = answer };
    }
}

/// After a rollback (every thread parked): makes every native side serving a `Wait` notice
/// it, waking its word until it did. Natives parked elsewhere notice when they leave.
pub(crate) fn wake_waiters(generation: u32) {
    loop {
        let mut pending = false;
        for n in NATIVES.iter() {
            let w = n.waiting_on.load(Ordering::SeqCst);
            if n.state.load(Ordering::SeqCst) == SAFE && w != 0 && n.seen.load(Ordering::SeqCst) != generation {
                pending = true;
                // SAFETY: a futex word in the region (mapped for the process's lifetime); a
                // wake-up is harmless whatever the word holds now.
                futex::wake(unsafe { &*(w as *const AtomicU32) }, i32::MAX);
            }
        }
        if !pending {
            return;
        }
        coord::wait_safe_change(1_000_000);
    }
}

/// The table's slots whose OS thread is running region code (for the gatherer).
pub(crate) fn running() -> impl Iterator<Item = usize> {
    (0..MAX_THREADS).filter(|&i| NATIVES[i].state.load(Ordering::SeqCst) == RUNNING)
}

/// Whether every OS thread serving a persistent thread is at a safepoint.
pub(crate) fn all_safe() -> bool {
    HS.all_safe(NATIVES.iter().map(|n| &n.state))
}

/// How many persistent threads have an OS thread now.
pub(crate) fn count() -> usize {
    NATIVES.iter().filter(|n| n.state.load(Ordering::Relaxed) != NONE).count()
}

/// The table this process's threads live in, for modules that only have a slot.
pub(crate) fn table() -> Table {
    coord::table()
}
