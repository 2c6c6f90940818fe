//! Thread-specific data: crthreads' keys (`crthreads::posix::key`) in threads mode; keys the C
//! library made (small numbers) keep going to it.

use core::ffi::{c_int, c_void};
use libc::pthread_key_t;

use super::{ours, rc};
use crthreads::posix::key;

mod real {
    use core::ffi::{c_int, c_void};
    use libc::pthread_key_t;
    crthreads::real_fn!(pub unsafe fn pthread_key_create(k: *mut pthread_key_t, d: Option<unsafe extern "C" fn(*mut c_void)>) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_key_delete(k: pthread_key_t) -> c_int);
    crthreads::real_fn!(pub unsafe fn pthread_getspecific(k: pthread_key_t) -> *mut c_void);
    crthreads::real_fn!(pub unsafe fn pthread_setspecific(k: pthread_key_t, v: *const c_void) -> c_int);
}

/// # Safety
/// As `pthread_key_create(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_key_create(
    k: *mut pthread_key_t,
    d: Option<unsafe extern "C" fn(*mut c_void)>,
) -> c_int {
    if !ours() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::pthread_key_create(k, d) };
    }
    match key::create(d) {
        Ok(n) => {
            // SAFETY: the caller's out-pointer.
            unsafe { *k = n };
            0
        }
        Err(e) => e.0,
    }
}

/// # Safety
/// As `pthread_key_delete(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_key_delete(k: pthread_key_t) -> c_int {
    if !key::is_ours(k) {
        // SAFETY: a key of the C library's.
        return unsafe { real::pthread_key_delete(k) };
    }
    rc(key::delete(k))
}

/// # Safety
/// As `pthread_getspecific(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_getspecific(k: pthread_key_t) -> *mut c_void {
    if !key::is_ours(k) {
        // SAFETY: a key of the C library's.
        return unsafe { real::pthread_getspecific(k) };
    }
    key::get(k) as *mut c_void
}

/// # Safety
/// As `pthread_setspecific(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_setspecific(k: pthread_key_t, v: *const c_void) -> c_int {
    if !key::is_ours(k) {
        // SAFETY: a key of the C library's.
        return unsafe { real::pthread_setspecific(k, v) };
    }
    rc(key::set(k, v as usize))
}
