//! The pthread and semaphore exports, each a translation to `crthreads::posix` and
//! `crthreads::thread::c`.
//!
//! While the program's `main` runs as a persistent thread (threads mode, see
//! `crthreads::posix::main`), every export is crthreads'. Otherwise (the program uses the
//! seed interface, `CRTHREADS_AUTO=0`, a child process, before `main`) each forwards to the C
//! library's own function, so such a program runs on glibc's threads as it always did. The
//! objects are laid out so that a lock word glibc initialised or left free is a free lock for
//! crthreads too.

pub(crate) mod key;
pub(crate) mod sync;
pub(crate) mod thread;

/// Whether the exports are crthreads' (threads mode) rather than the C library's.
#[inline]
pub(crate) fn ours() -> bool {
    crthreads::thread::c::active()
}

/// An error number for a C return value.
pub(crate) fn rc(r: Result<(), crthreads::Errno>) -> libc::c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.0,
    }
}
