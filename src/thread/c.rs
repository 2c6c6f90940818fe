//! Persistent threads for C programs: what `pthread_create`, `pthread_join` and friends of
//! crthreads' C library do, and the program's `main` as the main persistent thread.
//!
//! A C thread is a persistent thread like any other (same table, stacks, safepoints), but
//! nothing of it comes from Rust's global allocator, which in the C library is the volatile
//! one: its start routine and argument live in its record (`entry`, `packet`), and so does its
//! result once it ended (`packet`). A thread id (`pthread_t`) is the slot and the slot's
//! generation with the top bit set (`id_of`): the same before and after a restore, never
//! equal to a C library thread handle (an address below 2^47), and checked on every use, so a
//! stale id is `ESRCH`, not a crash.
//!
//! Joining and detaching follow glibc: a thread is joined or detached once (`EINVAL` after
//! that), joining oneself is `EDEADLK`. The record is freed when both the thread has ended and
//! its id was joined or detached (the record's two references).
//!
//! The main thread (`run_main`) returns `main`'s value; if it ended with `pthread_exit`, the
//! process lives on until the last other thread ended, and then exits with status 0 (as glibc).
#![allow(unsafe_code)] // Records in region memory, C function pointers.

use core::ffi::c_void;
use core::sync::atomic::Ordering;

use super::native::{self, Request, Resume};
use super::park::{self, Wake};
use super::table::{C_ENTRY, DETACHED, EXITED_EARLY, FREE, JOINING, LIVE, MAX_THREADS, Table};
use super::{Entry, coord};
use crate::error::Errno;

/// A C thread's start routine.
pub type StartFn = extern "C" fn(*mut c_void) -> *mut c_void;

/// The bit that marks a crthreads thread id.
const ID_TAG: u64 = 1 << 63;

/// The id (`pthread_t`) of the thread in `slot` at `generation`.
fn id_of(slot: usize, generation: u32) -> u64 {
    ID_TAG | (((generation & 0x7fff_ffff) as u64) << 32) | (slot as u64 + 1)
}

/// The slot of the live or exited thread `id`, or `ESRCH`.
fn lookup(id: u64) -> Result<usize, Errno> {
    if id & ID_TAG == 0 || !coord::active() {
        return Err(Errno(libc::ESRCH));
    }
    let slot = (id & 0xffff_ffff) as usize;
    if slot == 0 || slot > MAX_THREADS {
        return Err(Errno(libc::ESRCH));
    }
    let r = native::table().rec(slot - 1);
    let g = ((id >> 32) & 0x7fff_ffff) as u32;
    // Acquire: pairs with the Release that made the record live.
    if r.state.load(Ordering::Acquire) == FREE || r.generation.load(Ordering::Relaxed) & 0x7fff_ffff != g {
        return Err(Errno(libc::ESRCH));
    }
    Ok(slot - 1)
}

/// What runs when a C thread ends, before it is marked exited (the C runtime's thread-specific
/// data destructors), or 0.
static EXIT_HOOK: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Sets what runs when a C thread ends (see `exit`).
pub fn set_exit_hook(f: fn()) {
    EXIT_HOOK.store(f as usize, Ordering::Release);
}

/// What runs on the main thread's OS thread just before a restored main thread resumes (the
/// C runtime puts the checkpoint's signal mask back).
static RESUME_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what runs just before a restored main thread resumes (once).
pub fn set_resume_hook(f: fn()) {
    let _ = RESUME_HOOK.set(f);
}

/// Whether `id` names a crthreads thread (the C library's handles never have the tag).
pub fn is_ours(id: u64) -> bool {
    id & ID_TAG != 0
}

/// The calling thread's id, if it is a persistent thread.
pub fn current() -> Option<u64> {
    let slot = native::slot()?;
    Some(id_of(slot, native::table().rec(slot).generation.load(Ordering::Relaxed)))
}

/// Whether threads can be created (the coordinator runs: the program's main is a persistent
/// thread).
pub fn active() -> bool {
    coord::active()
}

/// Creates a thread running `start(arg)` with a stack of at least `stack` bytes (the default
/// if `None`), detached if `detached`. Returns its id. `EAGAIN` if there are too many threads
/// or no memory for the stack.
pub fn spawn(start: StartFn, arg: *mut c_void, stack: Option<usize>, detached: bool) -> Result<u64, Errno> {
    if !coord::active() {
        return Err(Errno(libc::EAGAIN));
    }
    let (slot, generation) =
        super::create(Entry::C { start, arg: arg as usize }, stack, None, false).map_err(|_| Errno(libc::EAGAIN))?;
    let table = native::table();
    if detached {
        table.rec(slot).flags.fetch_or(DETACHED, Ordering::Relaxed);
        super::release_ref(&table, slot);
    }
    if super::start_os_thread(slot, Resume::Woken).is_err() {
        // Never ran: undo the record (the thread's reference and, unless detached, the id's).
        if !detached {
            super::release_ref(&table, slot);
        }
        // SAFETY: the thread never ran; its stack and record are ours alone.
        let (base, len) =
            unsafe { ((*table.rec_mut(slot)).stack_base as usize, (*table.rec_mut(slot)).stack_len as usize) };
        super::guard(base, len, false);
        // SAFETY: allocated by `create` from the persistent heap, unused.
        unsafe { crate::heap::free(base as *mut u8) };
        super::release_ref(&table, slot);
        return Err(Errno(libc::EAGAIN));
    }
    Ok(id_of(slot, generation))
}

/// Where a C thread starts, on its persistent stack.
pub(crate) fn entry(slot: usize) -> ! {
    let table = native::table();
    // SAFETY: the record's start routine and argument were set by `create`; read once, here.
    let (start, arg) = unsafe {
        let r = &mut *table.rec_mut(slot);
        let s = core::mem::transmute::<usize, StartFn>(r.entry as usize);
        r.entry = 0;
        (s, r.packet as usize as *mut c_void)
    };
    let ret = start(arg);
    exit(ret)
}

/// Ends the calling persistent thread with result `ret` (`pthread_exit`, or its start routine
/// returned), after running its thread-specific data destructors (not for `main` returning).
/// Must be called on a persistent thread.
pub fn exit(ret: *mut c_void) -> ! {
    let slot =
        native::slot().unwrap_or_else(|| crate::sys::fatal("crthreads: exit of a thread that is not persistent"));
    let table = native::table();
    // `main` returning ends the process: no destructors then (as glibc).
    if slot != 0 || table.rec(0).flags.load(Ordering::Relaxed) & EXITED_EARLY != 0 {
        let hook = EXIT_HOOK.load(Ordering::Acquire);
        if hook != 0 {
            // SAFETY: set by `set_exit_hook` from a `fn()`.
            unsafe { core::mem::transmute::<usize, fn()>(hook)() };
        }
    }
    // Destructors may have parked the thread: after a restore it runs on another OS thread.
    let slot =
        native::slot().unwrap_or_else(|| crate::sys::fatal("crthreads: exit of a thread that is not persistent"));
    // SAFETY: the record's non-atomic fields are this thread's own while it runs.
    unsafe { (*table.rec_mut(slot)).packet = ret as usize as u64 };
    loop {
        // After a restore taken right here the request is made again (on the new OS thread).
        let _ = native::to_native(Request::Exit);
    }
}

/// `pthread_exit`: as [`exit`], and for the main thread, the process ends only once every
/// other thread has.
pub fn exit_early(ret: *mut c_void) -> ! {
    if let Some(slot) = native::slot() {
        native::table().rec(slot).flags.fetch_or(EXITED_EARLY, Ordering::Relaxed);
    }
    exit(ret)
}

/// Waits for thread `id` to end and returns its result: `try_only` does not wait (`EBUSY`),
/// `deadline` (wall-clock ns) bounds the wait (`ETIMEDOUT`). A blocking wait is a safepoint.
pub fn join(id: u64, deadline: Option<u64>, try_only: bool) -> Result<*mut c_void, Errno> {
    let slot = lookup(id)?;
    if native::slot() == Some(slot) {
        return Err(Errno(libc::EDEADLK));
    }
    let table = native::table();
    let r = table.rec(slot);
    if r.flags.load(Ordering::Relaxed) & DETACHED != 0 || r.flags.fetch_or(JOINING, Ordering::AcqRel) & JOINING != 0 {
        return Err(Errno(libc::EINVAL));
    }
    // Acquire: pairs with the Release in `finish`, so the thread's result is visible.
    while r.exited.load(Ordering::Acquire) == 0 {
        let timed_out = try_only || park::wait(&r.exited, 0, deadline) == Wake::TimedOut;
        if timed_out && r.exited.load(Ordering::Acquire) == 0 {
            r.flags.fetch_and(!JOINING, Ordering::Relaxed);
            return Err(Errno(if try_only { libc::EBUSY } else { libc::ETIMEDOUT }));
        }
    }
    // SAFETY: the thread exited; its result stays in the record until the last reference goes,
    // which is ours.
    let ret = unsafe { (*table.rec_mut(slot)).packet } as usize as *mut c_void;
    super::release_ref(&table, slot);
    Ok(ret)
}

/// Sends signal `sig` to thread `id` (0: only checks that it exists), through the OS thread
/// that serves it now.
pub fn kill(id: u64, sig: i32) -> Result<(), Errno> {
    let slot = lookup(id)?;
    let tid = native::NATIVES[slot].tid.load(Ordering::Relaxed);
    if sig == 0 || tid <= 0 {
        return Ok(());
    }
    crate::sys::thread::signal_thread(tid, sig)
}

/// Cancels thread `id`: not supported (`ENOTSUP`, with a message).
pub fn cancel(id: u64) -> Result<(), Errno> {
    lookup(id)?;
    crate::sys::warn("cancelling a thread (pthread_cancel) is not supported by crthreads");
    Err(Errno(libc::ENOTSUP))
}

/// Detaches thread `id`: nobody will join it; its record goes when it ends.
pub fn detach(id: u64) -> Result<(), Errno> {
    let slot = lookup(id)?;
    let table = native::table();
    let r = table.rec(slot);
    if r.flags.load(Ordering::Relaxed) & JOINING != 0 || r.flags.fetch_or(DETACHED, Ordering::AcqRel) & DETACHED != 0 {
        return Err(Errno(libc::EINVAL));
    }
    super::release_ref(&table, slot);
    Ok(())
}

/// Runs `start(arg)` as the program's main persistent thread, or, after a restore, resumes
/// every thread of the checkpoint (the main one on the calling OS thread). Returns the main
/// thread's result as an exit status.
pub(crate) fn run_main(table_base: usize, restored: bool, start: StartFn, arg: *mut c_void) -> i32 {
    super::quiet();
    let table = Table::at(table_base);
    let resume = restored
        && table.rec(0).state.load(Ordering::Acquire) == LIVE
        && table.rec(0).flags.load(Ordering::Relaxed) & C_ENTRY != 0;
    if resume {
        super::resume_live(&table);
        // After the other threads got their OS threads (which inherit this one's mask).
        if let Some(f) = RESUME_HOOK.get() {
            f();
        }
    } else {
        super::create(Entry::C { start, arg: arg as usize }, Some(8 << 20), Some("main"), true).unwrap_or_else(|e| {
            crate::sys::fatal(&format!("cannot create the main persistent thread: {e}"));
        });
    }
    native::run(0, if resume { Resume::Restored } else { Resume::Woken });
    let r = table.rec(0);
    // SAFETY: the main thread exited: its result is written and nothing else writes it.
    let ret = unsafe { (*table.rec_mut(0)).packet } as usize as isize as i32;
    let early = r.flags.load(Ordering::Relaxed) & EXITED_EARLY != 0;
    // The id's reference stays: another thread may still join the main thread.
    if !early {
        return ret;
    }
    // pthread_exit from main: the process ends with the last thread.
    loop {
        let Some(i) = table.live().next() else { return 0 };
        let w = &table.rec(i).exited;
        // Acquire: the thread's end is seen with everything it did.
        // (`finish` marks the record exited before it sets the word, so a woken wait finds
        // the slot no longer live.)
        if w.load(Ordering::Acquire) == 0 {
            crate::sys::futex::wait_until(w, 0, None);
        }
    }
}
