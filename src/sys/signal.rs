//! Signals for the write-fault tracker: owning SIGSEGV while the program believes it owns it.
//!
//! The mprotect tracker needs its SIGSEGV handler installed for as long as it runs, yet programs
//! install their own (crash reporters, language runtimes, Rust's stack-overflow detector). So
//! once [`take_over_segv`] has run, the program's SIGSEGV disposition is *virtual*: the
//! interposed `sigaction` family (`track::interpose::signals`) records what the program installs
//! here instead of in the kernel, and reports it back, as if crthreads were not there. The
//! tracker's handler calls [`chain_segv`] for every fault that is not a tracking fault, which
//! runs the program's disposition the way the kernel would have.
//!
//! ## Publication (no locks in the handler)
//!
//! The program's disposition lives in two slots and an index `cur` naming the current one.
//! Writers (the `sigaction` interposers) are serialised by a spin flag, taken with every
//! asynchronous signal blocked (so a handler cannot interrupt the holder on its own thread);
//! a writer fills the slot that is *not* current and then publishes it by storing `cur`. Each
//! slot is also a sequence lock (odd while written), so a reader that read `cur`, stalled while
//! two later writers went by, and so read a slot being rewritten, sees the sequence change and
//! reads again. Readers (the fault handler, queries) never wait for a writer: the slot they read
//! is never the one being written, except in that stalled case. Every record carries a
//! generation number; `SA_RESETHAND` is honoured without a writer: the first delivery raises
//! `reset_gen` to the record's generation (atomic max), which turns that record into `SIG_DFL`
//! for everyone, and a later record (a higher generation) is unaffected.
//!
//! Races accepted: a fault on one thread while another thread installs a new disposition runs
//! either the old or the new one (the kernel gives the same guarantee); two threads faulting at
//! once with an `SA_RESETHAND` handler run it once, and the other gets the default action (as
//! with the kernel); dispositions of other signals are scanned once at take-over, and a change
//! made concurrently by another thread at that instant may keep SIGSEGV in its mask. Fork
//! handlers (installed with the tracker) hold the spin flag across `fork`, so a child never
//! inherits it held; before the tracker starts, a `fork` racing another thread's
//! `sigaction(SIGSEGV)` could.
//!
//! ## How the program's disposition is run
//!
//! `SA_SIGINFO` selects the three- or one-argument call; the program's `sa_mask` is blocked
//! around the call (with `rt_sigprocmask`, restored after); `SA_RESETHAND` resets the recorded
//! disposition to `SIG_DFL` at the first delivery; `SIG_DFL` (and `SIG_IGN`, which the kernel
//! overrides for faults) resets the real disposition to the default and returns, so the faulting
//! instruction runs again and the process dies of SIGSEGV; a SIGSEGV sent with `kill` (si_code
//! <= 0) is re-sent after that reset, or dropped under `SIG_IGN`. Deviations, all forced by the
//! tracker: the handler runs with SIGSEGV unblocked (as if `SA_NODEFER`: the program's own heap
//! writes inside its handler must still fault into ours, so a genuine fault inside the handler
//! re-enters it where the kernel would have killed the process), and on the alternate signal
//! stack when the thread has one (as if `SA_ONSTACK`: ours needs it to run at all after a stack
//! overflow). SIGSEGV cannot be blocked while the tracker runs (a blocked SIGSEGV turns a
//! tracked write into a kill), so it is removed from the masks the program blocks and from
//! other handlers' `sa_mask`, and queries show it unblocked.
//!
//! The handler's path and the interposers' paths are async-signal-safe: no allocation, no locks
//! but the writers' spin flag, and raw system calls where a function of ours is interposed
//! (`sigprocmask`). [`take_over_segv`] runs once, at the tracker's start, and may allocate.
#![allow(unsafe_code)] // Signal dispositions, masks and calls into the program's handlers.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

use crate::error::Errno;

/// An `SA_SIGINFO` handler.
pub(crate) type Handler = extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void);

/// The type of `sigaction(2)`.
pub(crate) type SigactionFn = unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;

/// `SEGV_ACCERR`: the page is mapped but the access is not permitted.
pub(crate) const SEGV_ACCERR: c_int = 2;

/// `SA_RESTORER`: glibc sets it (with its own restorer) on every disposition it installs.
pub(crate) const SA_RESTORER: c_int = 0x0400_0000;

/// glibc's internal signals (`SIGCANCEL`, `SIGSETXID`), whose dispositions are glibc's own.
pub(crate) const GLIBC_INTERNAL: [c_int; 2] = [32, 33];

/// The kernel's signal mask bit of `sig`.
#[inline]
pub(crate) const fn bit(sig: c_int) -> u64 {
    1u64 << ((sig - 1) as u32 & 63)
}

/// The signals a fault raises synchronously: never blocked by the writers' critical section (a
/// blocked synchronous signal kills), and none can be raised by the section itself.
const SYNCHRONOUS: u64 =
    bit(libc::SIGSEGV) | bit(libc::SIGBUS) | bit(libc::SIGILL) | bit(libc::SIGFPE) | bit(libc::SIGTRAP);

unsafe extern "C" {
    /// glibc's `sigaction` under its other exported name (also in the static libc), which no
    /// code of ours interposes.
    fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
}

/// The `sigaction` that comes after ours (`dlsym(RTLD_NEXT)`: libc's, or another interposer's),
/// or glibc's `__sigaction` when there is none (a static executable). Cached; no allocation
/// after the first call; errno is left as it was.
pub(crate) fn next_sigaction() -> SigactionFn {
    static NEXT: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
    let mut p = NEXT.load(Ordering::Relaxed);
    if p.is_null() {
        let e = super::errno();
        p = if super::elf::is_static_executable() {
            core::ptr::null_mut()
        } else {
            super::proc::next_symbol(c"sigaction")
        };
        if p.is_null() {
            p = __sigaction as SigactionFn as *mut c_void;
        }
        super::set_errno(e);
        NEXT.store(p, Ordering::Relaxed);
    }
    // SAFETY: `p` is a `sigaction` of libc's exact signature (found by name, or glibc's own).
    unsafe { core::mem::transmute::<*mut c_void, SigactionFn>(p) }
}

/// The first word of a `sigset_t`: the kernel's whole mask on x86-64 (`_NSIG` is 64).
#[inline]
pub(crate) fn mask_word(s: &libc::sigset_t) -> u64 {
    // SAFETY: a sigset_t is at least 8 bytes of plain data, suitably aligned.
    unsafe { (s as *const libc::sigset_t).cast::<u64>().read() }
}

/// A `sigset_t` holding the kernel mask `w`.
#[inline]
pub(crate) fn sigset_of(w: u64) -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is the empty set.
    let mut s: libc::sigset_t = unsafe { core::mem::zeroed() };
    // SAFETY: as in `mask_word`.
    unsafe { (&mut s as *mut libc::sigset_t).cast::<u64>().write(w) };
    s
}

/// `rt_sigprocmask(how, set)` on the calling thread with a raw system call (our
/// `pthread_sigmask` is interposed); returns the previous mask. Async-signal-safe.
pub(crate) fn sigprocmask_raw(how: c_int, set: u64) -> u64 {
    let mut old = 0u64;
    // SAFETY: both pointers are valid 8-byte kernel sigsets; the call only changes this
    // thread's mask. It cannot fail with a valid `how`.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, how, &set as *const u64, &mut old as *mut u64, 8usize) };
    old
}

/// One published copy of the program's SIGSEGV disposition.
struct Slot {
    /// Even when stable, odd while a writer fills the slot.
    seq: AtomicU64,
    generation: AtomicU64,
    handler: AtomicUsize,
    flags: AtomicU64,
    mask: AtomicU64,
    restorer: AtomicUsize,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            seq: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            handler: AtomicUsize::new(libc::SIG_DFL),
            flags: AtomicU64::new(0),
            mask: AtomicU64::new(0),
            restorer: AtomicUsize::new(0),
        }
    }
}

/// The program's SIGSEGV disposition while ours is installed (see the module docs).
struct Virtual {
    slots: [Slot; 2],
    cur: AtomicUsize,
    /// Serialises writers.
    lock: AtomicBool,
    /// Our handler is installed and the program's disposition is virtual.
    active: AtomicBool,
    /// Generation of the last record issued (written under `lock`).
    last_gen: AtomicU64,
    /// The highest generation whose `SA_RESETHAND` delivery has happened.
    reset_gen: AtomicU64,
    /// Our handler (never reported, never chained to).
    ours: AtomicUsize,
    /// The restorer glibc installs with every disposition (reported back with the program's).
    restorer: AtomicUsize,
}

static SEGV: Virtual = Virtual {
    slots: [Slot::new(), Slot::new()],
    cur: AtomicUsize::new(0),
    lock: AtomicBool::new(false),
    active: AtomicBool::new(false),
    last_gen: AtomicU64::new(0),
    reset_gen: AtomicU64::new(0),
    ours: AtomicUsize::new(0),
    restorer: AtomicUsize::new(0),
};

/// A snapshot of the program's disposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Disposition {
    /// `sa_sigaction`: a function, `SIG_DFL` or `SIG_IGN`.
    pub handler: usize,
    /// `sa_flags`.
    pub flags: c_int,
    /// `sa_mask` (the kernel's word).
    pub mask: u64,
    /// `sa_restorer`.
    pub restorer: usize,
    generation: u64,
}

impl Disposition {
    fn of(a: &libc::sigaction) -> Disposition {
        Disposition {
            handler: a.sa_sigaction,
            flags: a.sa_flags,
            mask: mask_word(&a.sa_mask),
            restorer: a.sa_restorer.map_or(0, |f| f as usize),
            generation: 0,
        }
    }

    /// As a `sigaction` struct, the way the kernel reports it (without SIGKILL and SIGSTOP in
    /// the mask).
    fn to_sigaction(self) -> libc::sigaction {
        // SAFETY: an all-zero sigaction is valid (SIG_DFL, no flags, empty mask).
        let mut a: libc::sigaction = unsafe { core::mem::zeroed() };
        a.sa_sigaction = self.handler;
        a.sa_flags = self.flags;
        a.sa_mask = sigset_of(self.mask & !(bit(libc::SIGKILL) | bit(libc::SIGSTOP)));
        // SAFETY: a restorer is a function pointer glibc installed, or 0 (None).
        a.sa_restorer = unsafe { core::mem::transmute::<usize, Option<extern "C" fn()>>(self.restorer) };
        a
    }
}

/// Blocks every asynchronous signal and takes the writers' spin flag; returns the old mask.
fn lock() -> u64 {
    let old = sigprocmask_raw(libc::SIG_BLOCK, !SYNCHRONOUS);
    // Acquire: the previous writer's slot and `cur` stores are visible to this one.
    while SEGV.lock.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    old
}

/// Releases the spin flag and restores the mask `lock` returned.
fn unlock(old: u64) {
    // Release: pairs with the Acquire in `lock`.
    SEGV.lock.store(false, Ordering::Release);
    sigprocmask_raw(libc::SIG_SETMASK, old);
}

/// Runs `f` holding the writers' spin flag, with every asynchronous signal blocked.
fn with_lock<R>(f: impl FnOnce() -> R) -> R {
    let old = lock();
    let r = f();
    unlock(old);
    r
}

/// The mask saved by the fork handler that holds the spin flag across a `fork`.
static FORK_MASK: AtomicU64 = AtomicU64::new(0);

/// `fork` prepare handler: no other thread is inside a writer's critical section when the
/// child is made (the child would inherit a spin flag nobody releases).
extern "C" fn fork_prepare() {
    FORK_MASK.store(lock(), Ordering::Relaxed);
}

/// `fork` parent and child handler.
extern "C" fn fork_done() {
    unlock(FORK_MASK.load(Ordering::Relaxed));
}

/// Publishes `d` as the program's disposition, with a new generation. Call under `with_lock`.
fn publish(d: Disposition) {
    let generation = SEGV.last_gen.load(Ordering::Relaxed) + 1;
    SEGV.last_gen.store(generation, Ordering::Relaxed);
    let i = 1 - SEGV.cur.load(Ordering::Relaxed);
    let s = &SEGV.slots[i];
    let seq = s.seq.load(Ordering::Relaxed);
    s.seq.store(seq + 1, Ordering::Relaxed);
    // Release: a reader that sees any field below also sees the odd sequence number.
    fence(Ordering::Release);
    s.generation.store(generation, Ordering::Relaxed);
    s.handler.store(d.handler, Ordering::Relaxed);
    s.flags.store(d.flags as u32 as u64, Ordering::Relaxed);
    s.mask.store(d.mask, Ordering::Relaxed);
    s.restorer.store(d.restorer, Ordering::Relaxed);
    // Release: the fields are complete before the even sequence number and before `cur`.
    s.seq.store(seq + 2, Ordering::Release);
    SEGV.cur.store(i, Ordering::Release);
}

/// The program's current disposition (lock-free; async-signal-safe).
fn current() -> Disposition {
    loop {
        // Acquire: pairs with the Release store of `cur` in `publish`.
        let s = &SEGV.slots[SEGV.cur.load(Ordering::Acquire)];
        // Acquire: pairs with the final Release store of `seq` in `publish`.
        let seq = s.seq.load(Ordering::Acquire);
        if seq % 2 == 0 {
            let mut d = Disposition {
                generation: s.generation.load(Ordering::Relaxed),
                handler: s.handler.load(Ordering::Relaxed),
                flags: s.flags.load(Ordering::Relaxed) as u32 as c_int,
                mask: s.mask.load(Ordering::Relaxed),
                restorer: s.restorer.load(Ordering::Relaxed),
            };
            // Acquire: the field loads above happen before the re-check below.
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == seq {
                if SEGV.reset_gen.load(Ordering::Acquire) >= d.generation && d.generation != 0 {
                    d.handler = libc::SIG_DFL;
                }
                return d;
            }
        }
        core::hint::spin_loop();
    }
}

/// Whether the program's SIGSEGV disposition is virtual (the mprotect tracker runs). One
/// relaxed load.
#[inline]
pub(crate) fn segv_is_virtual() -> bool {
    SEGV.active.load(Ordering::Relaxed)
}

/// Installs `h` as the real SIGSEGV handler (`SA_SIGINFO | SA_ONSTACK | SA_RESTART |
/// SA_NODEFER`, empty mask), keeps the disposition it replaces as the program's, and makes the
/// program's disposition virtual from now on. Also removes SIGSEGV from the `sa_mask` of the
/// handlers already installed for other signals (see the module docs).
pub(crate) fn take_over_segv(h: Handler) -> Result<(), Errno> {
    let sigaction = next_sigaction();
    let r = with_lock(|| {
        // SAFETY: all-zero sigaction structs are valid; `new` is fully set below.
        let (mut new, mut old, mut mine): (libc::sigaction, libc::sigaction, libc::sigaction) =
            unsafe { (core::mem::zeroed(), core::mem::zeroed(), core::mem::zeroed()) };
        new.sa_sigaction = h as usize;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART | libc::SA_NODEFER;
        // SAFETY: valid sigaction pointers; the old disposition is read back into `old`.
        if unsafe { sigaction(libc::SIGSEGV, &new, &mut old) } != 0 {
            return Err(Errno::last());
        }
        publish(Disposition::of(&old));
        // SAFETY: a query into a valid struct.
        unsafe { sigaction(libc::SIGSEGV, core::ptr::null(), &mut mine) };
        SEGV.ours.store(h as usize, Ordering::Relaxed);
        SEGV.restorer.store(mine.sa_restorer.map_or(0, |f| f as usize), Ordering::Relaxed);
        SEGV.active.store(true, Ordering::Release);
        Ok(())
    });
    if r.is_ok() {
        super::proc::at_fork(fork_prepare, fork_done, fork_done);
        for sig in 1..=64 {
            if sig != libc::SIGSEGV && sig != libc::SIGKILL && sig != libc::SIGSTOP && !GLIBC_INTERNAL.contains(&sig) {
                unmask_segv_in_handler(sigaction, sig);
            }
        }
    }
    r
}

/// Removes SIGSEGV from the `sa_mask` of the handler installed for `sig`, if any.
fn unmask_segv_in_handler(sigaction: SigactionFn, sig: c_int) {
    // SAFETY: an all-zero sigaction is valid.
    let mut a: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: a query into a valid struct.
    if unsafe { sigaction(sig, core::ptr::null(), &mut a) } != 0 {
        return;
    }
    let w = mask_word(&a.sa_mask);
    if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN && w & bit(libc::SIGSEGV) != 0 {
        a.sa_mask = sigset_of(w & !bit(libc::SIGSEGV));
        // SAFETY: reinstalls the same disposition with one signal less in its mask.
        unsafe { sigaction(sig, &a, core::ptr::null_mut()) };
    }
}

/// `sigaction(SIGSEGV, act, old)` for the interposer: while the disposition is virtual, records
/// `act` and reports the program's previous one; otherwise forwards to `sigaction` (serialised
/// with [`take_over_segv`]). Returns what `sigaction` returns; errno is set only on failure.
///
/// # Safety
/// `act` and `old` are null or valid, as `sigaction(2)` requires.
pub(crate) unsafe fn segv_sigaction(act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    // Copies first: the caller's structs may sit in write-protected heap pages, and the
    // critical section must not fault.
    // SAFETY: a non-null `act` is valid (caller's contract).
    let new = (!act.is_null()).then(|| unsafe { act.read() });
    // SAFETY: an all-zero sigaction is valid.
    let mut prev: libc::sigaction = unsafe { core::mem::zeroed() };
    let r = with_lock(|| {
        if !segv_is_virtual() {
            let p = new.as_ref().map_or(core::ptr::null(), |a| a as *const libc::sigaction);
            // SAFETY: valid pointers; forwarded.
            let r = unsafe { next_sigaction()(libc::SIGSEGV, p, &mut prev) };
            return if r == 0 { Ok(()) } else { Err(Errno::last()) };
        }
        prev = current().to_sigaction();
        if let Some(a) = new {
            let mut d = Disposition::of(&a);
            d.flags |= SA_RESTORER;
            d.restorer = SEGV.restorer.load(Ordering::Relaxed);
            publish(d);
        }
        Ok(())
    });
    match r {
        Ok(()) => {
            if !old.is_null() {
                // SAFETY: a non-null `old` is valid (caller's contract); written outside the
                // critical section, where a tracked write may fault.
                unsafe { old.write(prev) };
            }
            0
        }
        Err(e) => {
            super::set_errno(e.0);
            -1
        }
    }
}

/// The faulting address of a SIGSEGV.
///
/// # Safety
/// `info` must be the siginfo passed to a SIGSEGV handler.
#[inline]
pub(crate) unsafe fn fault_addr(info: *const libc::siginfo_t) -> usize {
    // SAFETY: for SIGSEGV, si_addr is valid (forwarded from the caller).
    unsafe { (*info).si_addr() as usize }
}

/// The `si_code` of a signal.
///
/// # Safety
/// `info` must be the siginfo passed to a handler.
#[inline]
pub(crate) unsafe fn code(info: *const libc::siginfo_t) -> c_int {
    // SAFETY: forwarded.
    unsafe { (*info).si_code }
}

/// Resets `sig` to its default action in the kernel. Async-signal-safe.
fn reset_to_default(sig: c_int) {
    // SAFETY: an all-zero sigaction is SIG_DFL with no flags.
    let dfl: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: resetting a disposition is async-signal-safe; the pointer is valid.
    unsafe { next_sigaction()(sig, &dfl, core::ptr::null_mut()) };
}

/// Runs the program's SIGSEGV disposition for a fault that is not a tracking fault, as the
/// kernel would have (see the module docs). Async-signal-safe.
///
/// # Safety
/// Must be called from the SIGSEGV handler installed by [`take_over_segv`], with its arguments.
pub(crate) unsafe fn chain_segv(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let d = current();
    // SAFETY: our caller's siginfo.
    let sent = unsafe { code(info) } <= 0;
    let mut h = d.handler;
    if h == SEGV.ours.load(Ordering::Relaxed) {
        h = libc::SIG_DFL;
    }
    if h != libc::SIG_DFL && h != libc::SIG_IGN && d.flags & libc::SA_RESETHAND != 0 {
        // The kernel resets on entry to the handler: the first delivery does, once.
        // AcqRel: orders this delivery with another thread's for the same record.
        if SEGV.reset_gen.fetch_max(d.generation, Ordering::AcqRel) >= d.generation {
            h = libc::SIG_DFL;
        }
    }
    if h == libc::SIG_IGN && sent {
        return;
    }
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        reset_to_default(sig);
        if sent {
            // SAFETY: re-sends the signal to this thread; raw calls, async-signal-safe. With
            // the default action now in place (and SIGSEGV unblocked) it ends the process.
            unsafe {
                let pid = libc::syscall(libc::SYS_getpid);
                let tid = libc::syscall(libc::SYS_gettid);
                libc::syscall(libc::SYS_tgkill, pid, tid, sig);
            }
        }
        return;
    }
    let block = d.mask & !bit(libc::SIGSEGV);
    let old = (block != 0).then(|| sigprocmask_raw(libc::SIG_BLOCK, block));
    if d.flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the program gave a three-argument handler.
        let f = unsafe { core::mem::transmute::<usize, Handler>(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the program gave a one-argument handler.
        let f = unsafe { core::mem::transmute::<usize, extern "C" fn(c_int)>(h) };
        f(sig);
    }
    if let Some(m) = old {
        sigprocmask_raw(libc::SIG_SETMASK, m);
    }
}

/// Installs `h` for `sig` with `SA_SIGINFO | SA_RESTART` (and `SA_ONSTACK` if `onstack`),
/// blocking the signals of `mask` while it runs. For the runtime's own signals (preemption, the
/// external checkpoint request), which the program does not use.
pub(crate) fn install_runtime_handler(sig: c_int, h: Handler, onstack: bool, mask: u64) -> Result<(), Errno> {
    // SAFETY: an all-zero sigaction is valid; the fields set below complete it.
    let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
    act.sa_sigaction = h as usize;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | if onstack { libc::SA_ONSTACK } else { 0 };
    act.sa_mask = sigset_of(mask);
    // SAFETY: `act` is a complete disposition for `sig`; no old one is asked for.
    let r = unsafe { next_sigaction()(sig, &act, core::ptr::null_mut()) };
    if r == 0 { Ok(()) } else { Err(Errno::last()) }
}

/// Ends the process with `sig`'s default action, as if `sig` had been delivered with no handler
/// installed: resets its disposition to `SIG_DFL`, unblocks it on the calling thread and sends
/// it to that thread. Raw system calls only (async-signal-safe); if the process is still alive
/// after that (the default action of `sig` is not to end it), exits with status `128 + sig`.
pub(crate) fn die_of(sig: c_int) -> ! {
    reset_to_default(sig);
    sigprocmask_raw(libc::SIG_UNBLOCK, bit(sig));
    // SAFETY: raw calls with plain integer arguments: the signal to this very thread, then (if
    // the process survives it) the end of every thread.
    unsafe {
        let pid = libc::syscall(libc::SYS_getpid);
        let tid = libc::syscall(libc::SYS_gettid);
        libc::syscall(libc::SYS_tgkill, pid, tid, sig);
        libc::syscall(libc::SYS_exit_group, 128 + sig);
    }
    unreachable!("exit_group returned")
}

/// The lowest real-time signal the program may use (glibc keeps the first two for itself).
pub(crate) fn sigrtmin() -> c_int {
    libc::SIGRTMIN()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_words_round_trip() {
        let s = sigset_of(bit(libc::SIGSEGV) | bit(libc::SIGUSR1) | bit(64));
        assert_eq!(mask_word(&s), bit(libc::SIGSEGV) | bit(libc::SIGUSR1) | 1 << 63);
        // SAFETY: plain libc set operations on a valid set.
        unsafe {
            assert_eq!(libc::sigismember(&s, libc::SIGSEGV), 1);
            assert_eq!(libc::sigismember(&s, libc::SIGUSR1), 1);
            assert_eq!(libc::sigismember(&s, libc::SIGUSR2), 0);
        }
    }

    #[test]
    fn the_raw_mask_call_blocks_and_restores() {
        let old = sigprocmask_raw(libc::SIG_BLOCK, bit(libc::SIGUSR2));
        let now = sigprocmask_raw(libc::SIG_SETMASK, old);
        assert_eq!(now & bit(libc::SIGUSR2), bit(libc::SIGUSR2));
        assert_eq!(sigprocmask_raw(libc::SIG_BLOCK, 0), old);
    }
}
