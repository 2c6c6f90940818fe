//! The malloc family, as glibc's manual ("Replacing malloc") lists it.

use core::ffi::c_void;

use crthreads::heap;
use crthreads::sys::{PAGE, set_errno};
use libc::{EINVAL, ENOMEM};

fn nomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(ENOMEM);
    }
    p.cast()
}

/// `malloc(3)`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    nomem(heap::malloc(size))
}

/// `free(3)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: C's contract: `p` is null or a live block from this allocator.
    unsafe { heap::free(p.cast()) }
}

/// `calloc(3)`: fails with ENOMEM if `n * size` overflows.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => nomem(heap::alloc(total, 16, true)),
        None => nomem(core::ptr::null_mut()),
    }
}

/// `realloc(3)`, with glibc's conventions: `realloc(NULL, n)` is `malloc(n)`, `realloc(p, 0)`
/// frees `p` and returns NULL; on failure `p` is untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if !p.is_null() && size == 0 {
        // SAFETY: C's contract: `p` is live.
        unsafe { heap::free(p.cast()) };
        return core::ptr::null_mut();
    }
    // SAFETY: C's contract: `p` is null or live, allocated with alignment 16 or more.
    nomem(unsafe { heap::realloc(p.cast(), size, 16) })
}

/// `reallocarray(3)`: `realloc(p, n * size)`, failing with ENOMEM on overflow.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded.
        Some(total) => unsafe { realloc(p, total) },
        None => nomem(core::ptr::null_mut()),
    }
}

/// `posix_memalign(3)`: EINVAL unless `align` is a power of two multiple of `sizeof(void *)`;
/// `*out` is left untouched on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> libc::c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return EINVAL;
    }
    let p = heap::alloc(size, align, false);
    if p.is_null() {
        return ENOMEM;
    }
    // SAFETY: C's contract: `out` is a valid pointer.
    unsafe { *out = p.cast() };
    0
}

/// `aligned_alloc(3)`: EINVAL unless `align` is a power of two.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(EINVAL);
        return core::ptr::null_mut();
    }
    nomem(heap::alloc(size, align, false))
}

/// `memalign(3)`: like glibc, rounds an alignment that is not a power of two up to one.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.max(1).checked_next_power_of_two() {
        Some(a) => nomem(heap::alloc(size, a, false)),
        None => {
            set_errno(EINVAL);
            core::ptr::null_mut()
        }
    }
}

/// `valloc(3)`: page-aligned.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    nomem(heap::alloc(size, PAGE, false))
}

/// `pvalloc(3)`: page-aligned, size rounded up to whole pages (one page for 0).
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match size.max(1).checked_next_multiple_of(PAGE) {
        Some(n) => nomem(heap::alloc(n, PAGE, false)),
        None => nomem(core::ptr::null_mut()),
    }
}

/// `malloc_usable_size(3)`: 0 for NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: C's contract: `p` is a live block from this allocator.
    unsafe { heap::usable_size(p.cast()) }
}
