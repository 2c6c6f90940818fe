//! Compile-time checks that every export has exactly the C signature libc declares.

use core::ffi::c_void;
use libc::{c_int, size_t};

macro_rules! same_signature {
    ($ours:path, $theirs:path, $ty:ty) => {
        const _: [$ty; 2] = [$ours, $theirs];
    };
}

same_signature!(crate::malloc::malloc, libc::malloc, unsafe extern "C" fn(size_t) -> *mut c_void);
same_signature!(crate::malloc::free, libc::free, unsafe extern "C" fn(*mut c_void));
same_signature!(crate::malloc::calloc, libc::calloc, unsafe extern "C" fn(size_t, size_t) -> *mut c_void);
same_signature!(crate::malloc::realloc, libc::realloc, unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void);
same_signature!(
    crate::malloc::reallocarray,
    libc::reallocarray,
    unsafe extern "C" fn(*mut c_void, size_t, size_t) -> *mut c_void
);
same_signature!(
    crate::malloc::posix_memalign,
    libc::posix_memalign,
    unsafe extern "C" fn(*mut *mut c_void, size_t, size_t) -> c_int
);
same_signature!(crate::malloc::aligned_alloc, libc::aligned_alloc, unsafe extern "C" fn(size_t, size_t) -> *mut c_void);
same_signature!(crate::malloc::memalign, libc::memalign, unsafe extern "C" fn(size_t, size_t) -> *mut c_void);
// Not in the libc crate; signatures as <malloc.h> declares them.
const _: unsafe extern "C" fn(size_t) -> *mut c_void = crate::malloc::valloc;
const _: unsafe extern "C" fn(size_t) -> *mut c_void = crate::malloc::pvalloc;
same_signature!(
    crate::malloc::malloc_usable_size,
    libc::malloc_usable_size,
    unsafe extern "C" fn(*mut c_void) -> size_t
);
