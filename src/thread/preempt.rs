//! Asynchronous preemption, and the external checkpoint request signal.
//!
//! A thread running the program's own code at lock depth 0 never reaches a safepoint by itself
//! if it computes without synchronising. While an attempt gathers, the coordinator sends such
//! threads [`preempt_signal`]; the handler parks the thread right there, *inside the handler*:
//! the signal frame, with every register of the interrupted code (the floating-point and vector
//! state included), lies on the thread's persistent stack above the parked context, so the
//! checkpoint copies it, and a restored thread resumes by returning from the handler:
//! `sigreturn` reloads every register (Go's runtime preempts the same way, `preempt.go`).
//!
//! The handler parks only where that is safe, and otherwise returns at once (the coordinator
//! signals again a little later):
//! - the thread runs on its persistent stack, at lock depth 0, not inside the runtime or the
//!   allocator (the thread-local `busy` and `held` counts are 0);
//! - the interrupted instruction lies in the main executable's own code: not in the C library,
//!   the dynamic loader, the vDSO or any other shared library (their state is not restored),
//!   and, where the executable has a symbol table, not in Rust's standard library, crthreads or
//!   the global allocator's entry points (they keep process-wide state, such as stdout's lock,
//!   that a restore does not bring back). A stripped Rust program is not preempted at all.
//!
//! The handler does not use the alternate signal stack (its frame must be on the persistent
//! stack), saves and restores `errno`, and after a restore points the frame's saved alternate
//! stack at the new OS thread's, which `sigreturn` installs.
//!
//! [`request_signal`] asks for a checkpoint under every policy (`kill -s RTMIN+9 <pid>`); its
//! handler only wakes the coordinator. With `CRTHREADS_ON_TERM=checkpoint`, SIGTERM gets a
//! handler too, which only marks the request as a termination ([`coord::term`]): the
//! coordinator ends the process once a checkpoint is committed. A program that installs its own
//! SIGTERM handler later (with `sigaction` or `signal`) replaces this one, so its handler wins.
#![allow(unsafe_code)] // Signal handlers and ucontext.

use core::ffi::c_void;
use core::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use super::native::{self, NATIVES, RUNNING, Request, Resume};
use super::{coord, table::Table};
use crate::sys::signal::{self, Handler};
use crate::sys::{thread as ost, tls};

static PREEMPT: AtomicI32 = AtomicI32::new(0);
static REQUEST: AtomicI32 = AtomicI32::new(0);

/// Code the handler may park in: `allow` minus `deny` (sorted, disjoint address ranges).
struct Code {
    allow: Vec<(usize, usize)>,
    deny: Vec<(usize, usize)>,
}

static CODE: OnceLock<Code> = OnceLock::new();

/// The signal that preempts a thread: `SIGRTMIN + 8`.
pub fn preempt_signal() -> i32 {
    signal::sigrtmin() + 8
}

/// The signal that asks a process for a checkpoint under any policy: `SIGRTMIN + 9`
/// (`kill -s RTMIN+9 <pid>`).
pub fn request_signal() -> i32 {
    signal::sigrtmin() + 9
}

/// Works out where the handler may park and installs both handlers (and the SIGTERM handler if
/// `on_term`).
pub(crate) fn install(on_term: bool) -> crate::error::Result<()> {
    let _ = CODE.get_or_init(code_ranges);
    let (p, r) = (preempt_signal(), request_signal());
    PREEMPT.store(p, Ordering::Relaxed);
    REQUEST.store(r, Ordering::Relaxed);
    signal::install_runtime_handler(p, on_preempt, false, 0)
        .map_err(|e| crate::error::Error::os("sigaction (preemption signal)", e))?;
    signal::install_runtime_handler(r, on_request, true, 0)
        .map_err(|e| crate::error::Error::os("sigaction (checkpoint request signal)", e))?;
    if on_term {
        signal::install_runtime_handler(libc::SIGTERM, on_term_signal, true, 0)
            .map_err(|e| crate::error::Error::os("sigaction (SIGTERM, CRTHREADS_ON_TERM=checkpoint)", e))?;
    }
    Ok(())
}

/// Whether `handler` is one of the handlers installed here (a restored process's dispositions
/// leave them to this process's own set-up).
pub(crate) fn is_runtime_handler(handler: usize) -> bool {
    let ours: [Handler; 3] = [on_request, on_preempt, on_term_signal];
    ours.iter().any(|&h| h as usize == handler)
}

/// The signals crthreads uses itself (its preemption and request signals, and SIGSEGV while the
/// write-fault tracker owns it): a restored signal mask never blocks them.
pub(crate) fn runtime_signals() -> u64 {
    let segv = if signal::segv_is_virtual() { signal::bit(libc::SIGSEGV) } else { 0 };
    signal::bit(preempt_signal()) | signal::bit(request_signal()) | segv
}

/// Unblocks the preemption signal on the calling OS thread (after a rollback abandoned a
/// handler frame, whose `sigreturn` would have unblocked it).
pub(crate) fn unblock() {
    let sig = PREEMPT.load(Ordering::Relaxed);
    if sig > 0 {
        signal::sigprocmask_raw(libc::SIG_UNBLOCK, signal::bit(sig));
    }
}

/// Whether the OS thread serving slot `i` is asleep in a system call (state `S` or `D`).
pub(crate) fn asleep_in_kernel(i: usize) -> bool {
    let tid = NATIVES[i].tid.load(Ordering::Relaxed);
    tid > 0 && ost::asleep_in_kernel(tid)
}

/// Sends the preemption signal to the OS thread serving slot `i`.
pub(crate) fn poke(i: usize) {
    let tid = NATIVES[i].tid.load(Ordering::Relaxed);
    let sig = PREEMPT.load(Ordering::Relaxed);
    if tid > 0 && sig > 0 {
        let _ = ost::signal_thread(tid, sig);
    }
}

extern "C" fn on_request(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let e = crate::sys::errno();
    coord::request();
    crate::sys::set_errno(e);
}

extern "C" fn on_term_signal(_sig: libc::c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let e = crate::sys::errno();
    coord::term();
    crate::sys::set_errno(e);
}

extern "C" fn on_preempt(_sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(i) = native::slot() else { return };
    if NATIVES[i].state.load(Ordering::SeqCst) != RUNNING || coord::phase() != coord::GATHERING {
        return;
    }
    if tls::depth() != 0 || tls::busy() != 0 || tls::held() != 0 || tls::no_alloc() {
        return;
    }
    let uc = ctx as *mut libc::ucontext_t;
    // SAFETY: the kernel passes the interrupted context of this handler.
    let pc = unsafe { (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] } as usize;
    if !preemptible(pc) {
        return;
    }
    let table: Table = coord::table();
    let rec = table.rec(i);
    // SAFETY: the record is this thread's own.
    let (lo, len) = unsafe { ((*table.rec_mut(i)).stack_base as usize, (*table.rec_mut(i)).stack_len as usize) };
    let here = &rec as *const _ as usize;
    if !(lo..lo + len).contains(&here) {
        return; // on the native side (finishing an exit), not on the persistent stack
    }
    // SAFETY: the record is this thread's own; the fields are read back after the switch.
    unsafe {
        let r = &mut *table.rec_mut(i);
        r.errno = crate::sys::errno();
        r.preempt_frame = uc as u64;
    }
    tls::busy_add(1);
    let resumed = native::to_native(Request::Park);
    tls::busy_add(-1);
    // Possibly a new process and a new OS thread now.
    let table = coord::table();
    let i = native::slot().unwrap_or_else(|| crate::sys::fatal("preempted thread resumed outside its OS thread"));
    // SAFETY: as above.
    unsafe {
        let r = &mut *table.rec_mut(i);
        r.preempt_frame = 0;
        if resumed == Resume::Restored {
            // `sigreturn` installs the alternate stack saved in the frame: the old process's.
            (*uc).uc_stack = ost::altstack();
        }
        crate::sys::set_errno(r.errno);
    }
}

/// Whether the handler may park a thread interrupted at `pc`.
pub(crate) fn preemptible(pc: usize) -> bool {
    let Some(c) = CODE.get() else { return false };
    let inside = |v: &[(usize, usize)]| {
        let k = v.partition_point(|&(a, _)| a <= pc);
        k > 0 && pc < v[k - 1].1
    };
    inside(&c.allow) && !inside(&c.deny)
}

/// The executable's own code, minus the runtime's functions (the standard library, crthreads,
/// the allocator shims and the crates they use: see `symbols`); nothing if it has no symbol
/// table and is a Rust program.
fn code_ranges() -> Code {
    let (bias, allow) = executable_segments();
    let (deny, symbols, rust) = denied_functions(bias);
    if !symbols && rust {
        return Code { allow: Vec::new(), deny: Vec::new() };
    }
    Code { allow, deny }
}

/// The main executable's load bias and executable segments.
fn executable_segments() -> (usize, Vec<(usize, usize)>) {
    struct Out {
        bias: usize,
        segs: Vec<(usize, usize)>,
        done: bool,
    }
    unsafe extern "C" fn each(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info; `data` is our `Out`.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Out)) };
        if out.done {
            return 0;
        }
        out.done = true; // the first object is the main program
        out.bias = info.dlpi_addr as usize;
        for k in 0..info.dlpi_phnum as usize {
            // SAFETY: dlpi_phdr points at dlpi_phnum program headers.
            let ph = unsafe { &*info.dlpi_phdr.add(k) };
            if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0 {
                let a = info.dlpi_addr as usize + ph.p_vaddr as usize;
                out.segs.push((a, a + ph.p_memsz as usize));
            }
        }
        0
    }
    let mut out = Out { bias: 0, segs: Vec::new(), done: false };
    // SAFETY: the callback matches dl_iterate_phdr's contract and only touches `out`.
    unsafe { libc::dl_iterate_phdr(Some(each), (&mut out as *mut Out).cast()) };
    out.segs.sort_unstable();
    (out.bias, out.segs)
}

/// Address ranges of the executable's functions that must not be preempted, whether it has a
/// symbol table at all, and whether it looks like a Rust program.
fn denied_functions(bias: usize) -> (Vec<(usize, usize)>, bool, bool) {
    let Ok(img) = std::fs::read("/proc/self/exe") else { return (Vec::new(), false, true) };
    let mut deny = Vec::new();
    let mut rust = false;
    let Some(syms) = crate::sys::elf::function_symbols(&img) else { return (deny, false, true) };
    for (name, value, size) in syms {
        let n = name.as_bytes();
        rust |= super::symbols::is_rust(n);
        if size > 0 && super::symbols::is_runtime(n) {
            deny.push((bias + value as usize, bias + (value + size) as usize));
        }
    }
    deny.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(deny.len());
    for (a, b) in deny {
        match merged.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    (merged, true, rust)
}
