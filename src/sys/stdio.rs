//! glibc's list of open `FILE`s, walked to find stdio buffers (which the kernel fills with
//! `read(2)` from inside libc, where no interposed symbol sees it).
//!
//! Uses glibc's exported `_IO_list_all`, `_IO_list_lock` and `_IO_list_unlock`, and the public
//! layout of `struct _IO_FILE` (`<bits/types/struct_FILE.h>`), which is part of glibc's ABI.

use core::ffi::c_void;

unsafe extern "C" {
    static _IO_list_all: *mut c_void;
    fn _IO_list_lock();
    fn _IO_list_unlock();
}

const BUF_BASE: usize = 56;
const BUF_END: usize = 64;
const CHAIN: usize = 104;

/// Calls `f(start, end)` for the buffer of every open `FILE` that has one, holding glibc's list
/// lock. No allocation. Must not be called while a thread that may hold the list lock is
/// stopped.
pub(crate) fn for_each_buffer(mut f: impl FnMut(usize, usize)) {
    // SAFETY: the list lock makes the chain stable; each FILE in it is a live struct _IO_FILE
    // whose buffer and chain fields sit at the documented offsets.
    unsafe {
        _IO_list_lock();
        let mut fp = core::ptr::addr_of!(_IO_list_all).read_volatile() as usize;
        let mut guard = 0;
        while fp != 0 && guard < 1_000_000 {
            let base = ((fp + BUF_BASE) as *const usize).read();
            let end = ((fp + BUF_END) as *const usize).read();
            if base != 0 && end > base {
                f(base, end);
            }
            fp = ((fp + CHAIN) as *const usize).read();
            guard += 1;
        }
        _IO_list_unlock();
    }
}

/// The buffer of `fp`, if it has one.
///
/// # Safety
/// `fp` must be a valid open `FILE *`.
pub(crate) unsafe fn buffer(fp: *const c_void) -> Option<(usize, usize)> {
    // SAFETY: forwarded; the fields are at the documented offsets.
    let (base, end) = unsafe {
        (((fp as usize + BUF_BASE) as *const usize).read(), ((fp as usize + BUF_END) as *const usize).read())
    };
    (base != 0 && end > base).then_some((base, end))
}
