//! Signal handling for the write-fault tracker: install, chain, and read fault details.

use core::ffi::c_void;

use super::cvt;
use crate::error::Errno;

/// An `SA_SIGINFO` handler.
pub(crate) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void);

/// The previous disposition of a signal, kept to chain to it.
#[derive(Clone, Copy)]
pub(crate) struct OldAction(libc::sigaction);

/// Installs `h` for `sig` (with `SA_SIGINFO | SA_ONSTACK | SA_RESTART`) and returns the old
/// disposition.
pub(crate) fn install(sig: libc::c_int, h: Handler) -> Result<OldAction, Errno> {
    // SAFETY: all-zero sigaction structs are valid; `new` is fully initialised below.
    let mut new: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    new.sa_sigaction = h as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
    // SAFETY: sa_mask is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: both pointers are valid sigaction structs.
    cvt(unsafe { libc::sigaction(sig, &new, &mut old) } as libc::c_long)?;
    Ok(OldAction(old))
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
pub(crate) unsafe fn code(info: *const libc::siginfo_t) -> libc::c_int {
    // SAFETY: forwarded.
    unsafe { (*info).si_code }
}

/// `SEGV_ACCERR`: the page is mapped but the access is not permitted.
pub(crate) const SEGV_ACCERR: libc::c_int = 2;

/// Passes a signal on to the disposition that was installed before ours. For the default
/// action (or ignore, which the kernel overrides for faults), resets the signal to its default
/// and returns: the faulting instruction runs again and the process dies of the signal, as it
/// would have without us. Async-signal-safe.
///
/// # Safety
/// Must be called from a handler for `sig`, with that handler's arguments.
pub(crate) unsafe fn chain(old: &OldAction, sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let a = &old.0;
    if a.sa_sigaction == libc::SIG_DFL || a.sa_sigaction == libc::SIG_IGN {
        // SAFETY: an all-zero sigaction is SIG_DFL with no flags.
        let dfl: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: resetting a disposition is async-signal-safe; the pointer is valid.
        unsafe { libc::sigaction(sig, &dfl, core::ptr::null_mut()) };
        return;
    }
    if a.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: with SA_SIGINFO the stored value is a three-argument handler.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(a.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the stored value is a one-argument handler.
        let f: extern "C" fn(libc::c_int) =
            unsafe { core::mem::transmute::<usize, extern "C" fn(libc::c_int)>(a.sa_sigaction) };
        f(sig);
    }
}
