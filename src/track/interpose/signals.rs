//! Signals: the program's SIGSEGV disposition, signal masks, and the calls that write signal
//! sets, siginfo and stacks.
//!
//! While the mprotect tracker runs, the tracker's SIGSEGV handler must stay installed and
//! SIGSEGV must stay unblocked (`sys::signal` explains why and how). So every function glibc
//! exports that installs a handler is interposed: `sigaction`, `signal`, `ssignal`,
//! `bsd_signal`, `sysv_signal`, `__sysv_signal`, `sigset`, `sigignore` and `siginterrupt` (glibc
//! implements the others with an internal `sigaction` no symbol lookup sees). For SIGSEGV they
//! record the program's disposition in `sys::signal` instead of the kernel and report it back;
//! for other signals they forward, without SIGSEGV in the handler's `sa_mask`. The mask calls
//! (`sigprocmask`, `pthread_sigmask`, `sigblock`, `sigsetmask`, `sighold`, `sigsuspend`) never
//! block SIGSEGV. Without the mprotect tracker every function forwards untouched. glibc's
//! `__sigaction` is not interposed: it is the real `sigaction` crthreads itself uses.

use core::ffi::c_int;
use core::mem::MaybeUninit;

use super::{Real, interpose, out, sys};
use crate::sys::signal::{self as sig, bit};

/// `set` without SIGSEGV (through `copy`) while SIGSEGV is virtual; `set` itself otherwise.
/// One relaxed load when the tracker is not running.
///
/// # Safety
/// `set` is null or a valid signal set.
pub(crate) unsafe fn without_segv(
    set: *const libc::sigset_t,
    copy: &mut MaybeUninit<libc::sigset_t>,
) -> *const libc::sigset_t {
    // SAFETY: a non-null set is valid (caller's contract).
    if set.is_null() || !sig::segv_is_virtual() || sig::mask_word(unsafe { &*set }) & bit(libc::SIGSEGV) == 0 {
        return set;
    }
    // SAFETY: as above.
    let mut s = unsafe { set.read() };
    // SAFETY: a valid set and a valid signal number.
    unsafe { libc::sigdelset(&mut s, libc::SIGSEGV) };
    copy.write(s)
}

/// `how`'s set without SIGSEGV when it would block it (`SIG_BLOCK`, `SIG_SETMASK`).
///
/// # Safety
/// As for [`without_segv`].
unsafe fn mask_arg(
    how: c_int,
    set: *const libc::sigset_t,
    copy: &mut MaybeUninit<libc::sigset_t>,
) -> *const libc::sigset_t {
    // SAFETY: forwarded.
    if how == libc::SIG_UNBLOCK { set } else { unsafe { without_segv(set, copy) } }
}

/// `sigaction(2)`: SIGSEGV's disposition is the program's record while the mprotect tracker
/// runs; other handlers lose SIGSEGV from their `sa_mask`.
///
/// # Safety
/// The C contract of `sigaction`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(signum: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if signum == libc::SIGSEGV {
        // SAFETY: the caller's pointers, null or valid.
        return unsafe { sig::segv_sigaction(act, old) };
    }
    let mut copy: libc::sigaction;
    let mut act = act;
    // SAFETY: a non-null `act` is valid (caller's contract).
    if !act.is_null() && sig::segv_is_virtual() && sig::mask_word(unsafe { &(*act).sa_mask }) & bit(libc::SIGSEGV) != 0
    {
        // SAFETY: as above.
        copy = unsafe { act.read() };
        // SAFETY: a valid set and signal number.
        unsafe { libc::sigdelset(&mut copy.sa_mask, libc::SIGSEGV) };
        act = &copy;
    }
    // SAFETY: forwarded with valid pointers.
    unsafe { sig::next_sigaction()(signum, act, old) }
}

/// Installs `handler` for `signum` with `flags` and `mask` through [`sigaction`]; returns the
/// old handler, or `SIG_ERR`.
fn install(signum: c_int, handler: libc::sighandler_t, flags: c_int, mask: u64) -> libc::sighandler_t {
    // SAFETY: an all-zero sigaction is valid.
    let (mut act, mut old): (libc::sigaction, libc::sigaction) = unsafe { core::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    act.sa_mask = sig::sigset_of(mask);
    // SAFETY: valid structs.
    if unsafe { sigaction(signum, &act, &mut old) } < 0 { libc::SIG_ERR } else { old.sa_sigaction }
}

/// The current handler of `signum`, or `SIG_ERR`.
fn query(signum: c_int) -> Result<libc::sigaction, c_int> {
    // SAFETY: an all-zero sigaction is valid; a query through our sigaction.
    let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
    // SAFETY: a query into a valid struct.
    if unsafe { sigaction(signum, core::ptr::null(), &mut old) } < 0 { Err(-1) } else { Ok(old) }
}

/// Whether a handler-installing call for `signum` is answered here rather than by libc: SIGSEGV
/// under the mprotect tracker, or no libc function to forward to (a static executable).
fn emulate(signum: c_int, real: &Real) -> Option<*mut core::ffi::c_void> {
    if signum == libc::SIGSEGV && sig::segv_is_virtual() { None } else { real.get() }
}

/// Checks a signal number and handler the way glibc's `signal` does.
fn valid(signum: c_int, handler: libc::sighandler_t) -> bool {
    if handler == libc::SIG_ERR || !(1..=64).contains(&signum) {
        crate::sys::set_errno(libc::EINVAL);
        return false;
    }
    true
}

/// Defines a `signal`-shaped export whose emulation installs with `flags` and `mask`.
macro_rules! signal_like {
    ($(#[$doc:meta])* $name:ident, |$s:ident| flags: $flags:expr, mask: $mask:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The C contract of the function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($s: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
            static REAL: Real = Real::new(super::c_name!($name));
            match emulate($s, &REAL) {
                // SAFETY: libc's function of this signature.
                Some(f) => unsafe {
                    core::mem::transmute::<*mut core::ffi::c_void, unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t>(f)($s, handler)
                },
                None if !valid($s, handler) => libc::SIG_ERR,
                None => install($s, handler, $flags, $mask),
            }
        }
    };
}

signal_like!(
    /// `signal(3)`: BSD semantics (`SA_RESTART`, the signal blocked in its handler).
    signal, |s| flags: libc::SA_RESTART, mask: bit(s)
);
signal_like!(
    /// `ssignal(3)`: another name of `signal`.
    ssignal, |s| flags: libc::SA_RESTART, mask: bit(s)
);
signal_like!(
    /// `bsd_signal(3)`: another name of `signal`.
    bsd_signal, |s| flags: libc::SA_RESTART, mask: bit(s)
);
signal_like!(
    /// `sysv_signal(3)`: System V semantics (reset on delivery, not blocked in its handler).
    sysv_signal, |s| flags: libc::SA_RESETHAND | libc::SA_NODEFER, mask: 0
);
signal_like!(
    /// `__sysv_signal`: what `signal` becomes in a program built with `_XOPEN_SOURCE` rules.
    __sysv_signal, |s| flags: libc::SA_RESETHAND | libc::SA_NODEFER, mask: 0
);

/// `SIG_HOLD`.
const SIG_HOLD: libc::sighandler_t = 2;

/// `sigset(3)`: installs `disp` (unblocking the signal), or with `SIG_HOLD` blocks it, which
/// SIGSEGV never is under the mprotect tracker.
///
/// # Safety
/// The C contract of `sigset`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigset(signum: c_int, disp: libc::sighandler_t) -> libc::sighandler_t {
    static REAL: Real = Real::new(c"sigset");
    match emulate(signum, &REAL) {
        // SAFETY: libc's sigset.
        Some(f) => unsafe {
            core::mem::transmute::<
                *mut core::ffi::c_void,
                unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t,
            >(f)(signum, disp)
        },
        None if !valid(signum, disp) => libc::SIG_ERR,
        None if disp == SIG_HOLD => {
            if signum != libc::SIGSEGV || !sig::segv_is_virtual() {
                let old = sig::sigprocmask_raw(libc::SIG_BLOCK, bit(signum));
                if old & bit(signum) != 0 {
                    return SIG_HOLD;
                }
            }
            query(signum).map_or(libc::SIG_ERR, |a| a.sa_sigaction)
        }
        None => {
            let old = install(signum, disp, 0, 0);
            if old == libc::SIG_ERR {
                return old;
            }
            let mask = sig::sigprocmask_raw(libc::SIG_UNBLOCK, bit(signum));
            if mask & bit(signum) != 0 { SIG_HOLD } else { old }
        }
    }
}

/// `sigignore(3)`.
///
/// # Safety
/// The C contract of `sigignore`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigignore(signum: c_int) -> c_int {
    static REAL: Real = Real::new(c"sigignore");
    match emulate(signum, &REAL) {
        // SAFETY: libc's sigignore.
        Some(f) => unsafe {
            core::mem::transmute::<*mut core::ffi::c_void, unsafe extern "C" fn(c_int) -> c_int>(f)(signum)
        },
        None => {
            if install(signum, libc::SIG_IGN, 0, 0) == libc::SIG_ERR {
                -1
            } else {
                0
            }
        }
    }
}

/// `siginterrupt(3)`: whether the signal interrupts system calls (clears or sets
/// `SA_RESTART`).
///
/// # Safety
/// The C contract of `siginterrupt`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn siginterrupt(signum: c_int, interrupt: c_int) -> c_int {
    static REAL: Real = Real::new(c"siginterrupt");
    match emulate(signum, &REAL) {
        // SAFETY: libc's siginterrupt.
        Some(f) => unsafe {
            core::mem::transmute::<*mut core::ffi::c_void, unsafe extern "C" fn(c_int, c_int) -> c_int>(f)(
                signum, interrupt,
            )
        },
        None => {
            let Ok(mut a) = query(signum) else { return -1 };
            if interrupt != 0 {
                a.sa_flags &= !libc::SA_RESTART;
            } else {
                a.sa_flags |= libc::SA_RESTART;
            }
            // SAFETY: a valid struct.
            unsafe { sigaction(signum, &a, core::ptr::null_mut()) }
        }
    }
}

/// `sighold(3)`: SIGSEGV is not blocked under the mprotect tracker.
///
/// # Safety
/// The C contract of `sighold`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sighold(signum: c_int) -> c_int {
    static REAL: Real = Real::new(c"sighold");
    match emulate(signum, &REAL) {
        // SAFETY: libc's sighold.
        Some(f) => unsafe {
            core::mem::transmute::<*mut core::ffi::c_void, unsafe extern "C" fn(c_int) -> c_int>(f)(signum)
        },
        None if signum == libc::SIGSEGV && sig::segv_is_virtual() => 0,
        None => {
            sig::sigprocmask_raw(libc::SIG_BLOCK, bit(signum));
            0
        }
    }
}

interpose! {
    /// `sigprocmask(2)`: the old set; SIGSEGV is never blocked under the mprotect tracker.
    fn sigprocmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
        prepare { out(old) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's set, null or valid.
            let set = unsafe { mask_arg(how, set, &mut copy) };
        }
        fallback { sys!(libc::SYS_rt_sigprocmask, how, set, old, 8) as c_int }
    }

    /// `pthread_sigmask(3)`: as `sigprocmask`, returning the error number.
    fn pthread_sigmask(how: c_int, set: *const libc::sigset_t, old: *mut libc::sigset_t) -> c_int {
        prepare { out(old) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's set, null or valid.
            let set = unsafe { mask_arg(how, set, &mut copy) };
        }
        fallback {
            let errno = crate::sys::errno();
            let r = if sys!(libc::SYS_rt_sigprocmask, how, set, old, 8) < 0 { crate::sys::errno() } else { 0 };
            crate::sys::set_errno(errno);
            r
        }
    }

    /// `sigblock(3)`: the BSD mask of signals 1 to 32.
    fn sigblock(mask: c_int) -> c_int {
        prepare {}
        rewrite {
            let mask = if sig::segv_is_virtual() { mask & !(bit(libc::SIGSEGV) as c_int) } else { mask };
        }
        fallback { sig::sigprocmask_raw(libc::SIG_BLOCK, mask as u32 as u64) as c_int }
    }

    /// `sigsetmask(3)`.
    fn sigsetmask(mask: c_int) -> c_int {
        prepare {}
        rewrite {
            let mask = if sig::segv_is_virtual() { mask & !(bit(libc::SIGSEGV) as c_int) } else { mask };
        }
        fallback { sig::sigprocmask_raw(libc::SIG_SETMASK, mask as u32 as u64) as c_int }
    }

    /// `sigsuspend(2)`: waits under a mask that never blocks SIGSEGV under the mprotect
    /// tracker (the handler that ends the wait runs under it).
    fn sigsuspend(mask: *const libc::sigset_t) -> c_int {
        prepare {}
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's mask, null or valid.
            let mask = unsafe { without_segv(mask, &mut copy) };
        }
        fallback { sys!(libc::SYS_rt_sigsuspend, mask, 8) as c_int }
    }

    /// `sigpending(2)`.
    fn sigpending(set: *mut libc::sigset_t) -> c_int {
        prepare { out(set) }
        fallback { sys!(libc::SYS_rt_sigpending, set, 8) as c_int }
    }

    /// `sigwaitinfo(2)`: the siginfo.
    fn sigwaitinfo(set: *const libc::sigset_t, info: *mut libc::siginfo_t) -> c_int {
        prepare { out(info) }
        fallback { sys!(libc::SYS_rt_sigtimedwait, set, info, 0, 8) as c_int }
    }

    /// `sigtimedwait(2)`.
    fn sigtimedwait(set: *const libc::sigset_t, info: *mut libc::siginfo_t, timeout: *const libc::timespec) -> c_int {
        prepare { out(info) }
        fallback { sys!(libc::SYS_rt_sigtimedwait, set, info, timeout, 8) as c_int }
    }

    /// `sigwait(3)`: the signal number; returns the error number.
    fn sigwait(set: *const libc::sigset_t, signum: *mut c_int) -> c_int {
        prepare { out(signum) }
        fallback {
            let errno = crate::sys::errno();
            let r = loop {
                let r = sys!(libc::SYS_rt_sigtimedwait, set, 0, 0, 8);
                if r >= 0 || crate::sys::errno() != libc::EINTR {
                    break r;
                }
            };
            let e = if r < 0 { crate::sys::errno() } else { 0 };
            if r >= 0 {
                signum.write(r as c_int);
            }
            crate::sys::set_errno(errno);
            e
        }
    }

    /// `sigaltstack(2)`: the old stack.
    fn sigaltstack(ss: *const libc::stack_t, old: *mut libc::stack_t) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_sigaltstack, ss, old) as c_int }
    }
}
