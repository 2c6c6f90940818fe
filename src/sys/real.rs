//! The C library's own definitions of functions that crthreads' C library also exports (the
//! pthread family, `__libc_start_main`), for the runtime's own use and for forwarding.
//!
//! Inside `libcrthreads.so` a call to `pthread_attr_init` binds to the first definition in the
//! process's lookup order, which is our own export once we have one: the runtime would call
//! itself. [`lookup`] finds the definition *after* the calling object (`dlsym(RTLD_NEXT)`),
//! which is the C library's whether crthreads is a preloaded library, a dependency or linked
//! into the executable, and falls back to the global lookup for a Rust program (where crthreads
//! exports none of these). Each name is looked up once and cached in the caller's `static`.
#![allow(unsafe_code)] // dlsym, and function pointers made from its answer.

use core::ffi::{CStr, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

/// The C library's definition of `name`, cached in `cache`; null if there is none.
pub fn lookup(cache: &AtomicPtr<c_void>, name: &CStr) -> *mut c_void {
    let mut p = cache.load(Ordering::Relaxed);
    if p.is_null() {
        p = super::proc::next_symbol(name);
        if p.is_null() {
            // SAFETY: RTLD_DEFAULT is a valid pseudo-handle and the name is NUL-terminated.
            p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        }
        cache.store(p, Ordering::Relaxed);
    }
    p
}

/// Declares `unsafe fn $name(args) -> ret` calling the C library's definition of `$name` (or of
/// `$sym` with `fn $name = $sym(...)`), found by [`lookup`]; a missing definition ends the
/// process with a message.
#[macro_export]
#[doc(hidden)]
macro_rules! real_fn {
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {
        $crate::real_fn!($(#[$m])* $vis unsafe fn $name = $name($($arg: $ty),*) -> $ret);
    };
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident = $sym:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty) => {
        $(#[$m])*
        /// # Safety
        /// As for the C function of the same name.
        #[allow(clippy::missing_safety_doc)]
        $vis unsafe fn $name($($arg: $ty),*) -> $ret {
            static P: core::sync::atomic::AtomicPtr<core::ffi::c_void> =
                core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());
            let name = concat!(stringify!($sym), "\0");
            let c = core::ffi::CStr::from_bytes_with_nul(name.as_bytes()).expect("a NUL-terminated name");
            let p = $crate::sys::real::lookup(&P, c);
            if p.is_null() {
                $crate::sys::fatal(concat!("crthreads: the C library has no ", stringify!($sym)));
            }
            // SAFETY: `p` is the C library's definition of this function, of this signature.
            let f = unsafe { core::mem::transmute::<*mut core::ffi::c_void, unsafe extern "C" fn($($ty),*) -> $ret>(p) };
            // SAFETY: the caller upholds the C function's contract.
            unsafe { f($($arg),*) }
        }
    };
}

real_fn!(pub(crate) unsafe fn pthread_attr_init(a: *mut libc::pthread_attr_t) -> libc::c_int);
real_fn!(pub(crate) unsafe fn pthread_attr_destroy(a: *mut libc::pthread_attr_t) -> libc::c_int);
real_fn!(pub(crate) unsafe fn pthread_attr_setdetachstate(a: *mut libc::pthread_attr_t, s: libc::c_int) -> libc::c_int);
real_fn!(pub(crate) unsafe fn pthread_attr_setstacksize(a: *mut libc::pthread_attr_t, s: libc::size_t) -> libc::c_int);
