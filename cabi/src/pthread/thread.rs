//! Threads: create, join, detach, exit, self, equal, and thread attributes.

use core::ffi::{c_int, c_void};
use libc::{clockid_t, pthread_attr_t, pthread_t, size_t, timespec};

use super::{ours, rc};
use crthreads::posix::attr::Attr;
use crthreads::thread::c;

type Start = extern "C" fn(*mut c_void) -> *mut c_void;

mod real {
    use core::ffi::{c_int, c_void};
    use libc::{clockid_t, pthread_attr_t, pthread_t, size_t, timespec};
    type Start = extern "C" fn(*mut c_void) -> *mut c_void;
    crthreads::real_fn!(pub unsafe fn pthread_create(t: *mut pthread_t, a: *const pthread_attr_t, f: Start, arg: *mut c_void) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_join(t: pthread_t, r: *mut *mut c_void) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_tryjoin_np(t: pthread_t, r: *mut *mut c_void) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_timedjoin_np(t: pthread_t, r: *mut *mut c_void, ts: *const timespec) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_clockjoin_np(t: pthread_t, r: *mut *mut c_void, c: clockid_t, ts: *const timespec) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_detach(t: pthread_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_kill(t: pthread_t, sig: c_int) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_cancel(t: pthread_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_exit(r: *mut c_void) -> ());
    crthreads::real_fn!(pub unsafe fn pthread_self() -> pthread_t);
    crthreads::real_fn!(pub unsafe fn pthread_attr_init(a: *mut pthread_attr_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_destroy(a: *mut pthread_attr_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_setdetachstate(a: *mut pthread_attr_t, v: c_int) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_getdetachstate(a: *const pthread_attr_t, v: *mut c_int) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_setstacksize(a: *mut pthread_attr_t, v: size_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_getstacksize(a: *const pthread_attr_t, v: *mut size_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_setguardsize(a: *mut pthread_attr_t, v: size_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_getguardsize(a: *const pthread_attr_t, v: *mut size_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_attr_setstack(a: *mut pthread_attr_t, s: *mut c_void, n: size_t) -> c_int);
}

/// # Safety
/// As `pthread_create(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_create(
    t: *mut pthread_t,
    attr: *const pthread_attr_t,
    f: Start,
    arg: *mut c_void,
) -> c_int {
    if !ours() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::pthread_create(t, attr, f, arg) };
    }
    // SAFETY: a non-null attr was initialised by our pthread_attr_init.
    let a = if attr.is_null() { Attr::DEFAULT } else { unsafe { *(attr as *const Attr) } };
    match c::spawn(f, arg, Some(a.stack), a.detach == libc::PTHREAD_CREATE_DETACHED) {
        Ok(id) => {
            // SAFETY: `t` points at the caller's pthread_t.
            unsafe { *t = id };
            0
        }
        Err(e) => e.0,
    }
}

/// Stores a join result through `r` if it is not null.
fn joined(r: *mut *mut c_void, v: Result<*mut c_void, crthreads::Errno>) -> c_int {
    match v {
        Ok(p) => {
            if !r.is_null() {
                // SAFETY: a non-null `r` points at the caller's result pointer.
                unsafe { *r = p };
            }
            0
        }
        Err(e) => e.0,
    }
}

/// # Safety
/// As `pthread_join(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_join(t: pthread_t, r: *mut *mut c_void) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_join(t, r) };
    }
    joined(r, c::join(t, None, false))
}

/// # Safety
/// As `pthread_tryjoin_np(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_tryjoin_np(t: pthread_t, r: *mut *mut c_void) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_tryjoin_np(t, r) };
    }
    joined(r, c::join(t, None, true))
}

/// # Safety
/// As `pthread_clockjoin_np(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_clockjoin_np(
    t: pthread_t,
    r: *mut *mut c_void,
    clock: clockid_t,
    ts: *const timespec,
) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_clockjoin_np(t, r, clock, ts) };
    }
    if clock != libc::CLOCK_REALTIME && clock != libc::CLOCK_MONOTONIC {
        return libc::EINVAL;
    }
    let deadline = if ts.is_null() {
        Ok(None)
    } else {
        // SAFETY: a non-null `ts` points at the caller's timespec.
        crthreads::posix::deadline(unsafe { &*ts }, clock)
    };
    match deadline {
        Ok(d) => joined(r, c::join(t, d, false)),
        Err(e) => e.0,
    }
}

/// # Safety
/// As `pthread_timedjoin_np(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_timedjoin_np(t: pthread_t, r: *mut *mut c_void, ts: *const timespec) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_timedjoin_np(t, r, ts) };
    }
    // SAFETY: the caller's arguments.
    unsafe { pthread_clockjoin_np(t, r, libc::CLOCK_REALTIME, ts) }
}

/// # Safety
/// As `pthread_detach(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_detach(t: pthread_t) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_detach(t) };
    }
    rc(c::detach(t))
}

/// # Safety
/// As `pthread_kill(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_kill(t: pthread_t, sig: c_int) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_kill(t, sig) };
    }
    rc(c::kill(t, sig))
}

/// # Safety
/// As `pthread_cancel(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_cancel(t: pthread_t) -> c_int {
    if !c::is_ours(t) {
        // SAFETY: a C library thread handle, passed on.
        return unsafe { real::pthread_cancel(t) };
    }
    rc(c::cancel(t))
}

/// # Safety
/// As `pthread_exit(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_exit(r: *mut c_void) -> ! {
    if c::current().is_some() {
        c::exit_early(r);
    }
    // SAFETY: a thread of the C library's, ending as it asks.
    unsafe { real::pthread_exit(r) };
    crthreads::sys::fatal("pthread_exit returned")
}

/// # Safety
/// Always safe to call (as `pthread_self(3)`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_self() -> pthread_t {
    match c::current() {
        Some(id) => id,
        // SAFETY: no preconditions.
        None => unsafe { real::pthread_self() },
    }
}

/// # Safety
/// Always safe to call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_equal(a: pthread_t, b: pthread_t) -> c_int {
    (a == b) as c_int
}

/// Our attr behind a C pointer.
///
/// # Safety
/// `a` points at a `pthread_attr_t` (56 bytes, the size of [`Attr`]).
unsafe fn attr<'a>(a: *const pthread_attr_t) -> &'a mut Attr {
    // SAFETY: the caller's contract; Attr has pthread_attr_t's size and no invalid bit patterns.
    unsafe { &mut *(a as *mut Attr) }
}

macro_rules! attr_fn {
    ($name:ident($a:ident: $aty:ty $(, $v:ident: $ty:ty)*) $body:block) => {
        /// # Safety
        /// As the C function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($a: $aty $(, $v: $ty)*) -> c_int {
            if !ours() {
                // SAFETY: the caller's arguments, passed on.
                return unsafe { real::$name($a $(, $v)*) };
            }
            // SAFETY: the caller passes an attr object.
            let $a = unsafe { attr($a) };
            $body
        }
    };
}

attr_fn!(pthread_attr_init(a: *mut pthread_attr_t) {
    *a = Attr::DEFAULT;
    0
});
attr_fn!(pthread_attr_destroy(a: *mut pthread_attr_t) {
    let _ = a;
    0
});
attr_fn!(pthread_attr_setdetachstate(a: *mut pthread_attr_t, v: c_int) { rc(a.set_detach(v)) });
attr_fn!(pthread_attr_getdetachstate(a: *const pthread_attr_t, v: *mut c_int) {
    // SAFETY: `v` is the caller's out-pointer.
    unsafe { *v = a.detach };
    0
});
attr_fn!(pthread_attr_setstacksize(a: *mut pthread_attr_t, v: size_t) { rc(a.set_stack(v)) });
attr_fn!(pthread_attr_getstacksize(a: *const pthread_attr_t, v: *mut size_t) {
    // SAFETY: `v` is the caller's out-pointer.
    unsafe { *v = a.stack };
    0
});
attr_fn!(pthread_attr_setguardsize(a: *mut pthread_attr_t, v: size_t) {
    a.guard = v;
    0
});
attr_fn!(pthread_attr_getguardsize(a: *const pthread_attr_t, v: *mut size_t) {
    // SAFETY: `v` is the caller's out-pointer.
    unsafe { *v = a.guard };
    0
});
attr_fn!(pthread_attr_setstack(a: *mut pthread_attr_t, s: *mut c_void, n: size_t) {
    let _ = (s, n);
    rc(a.set_own_stack())
});
