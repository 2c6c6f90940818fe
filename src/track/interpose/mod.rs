//! Interposed libc functions: the kernel's writes into caller memory, and SIGSEGV.
//!
//! With the mprotect tracker, the region's pages are read-only after each checkpoint. A program
//! writing one faults into the tracker's handler, but a *system call* writing one fails with
//! EFAULT, and no signal is raised. So every libc function whose system call writes into memory
//! the caller passes is defined here under its own name, ahead of libc's: the wrapper opens the
//! pages of each out-parameter, with its real size, for the kernel's write (recording them
//! dirty, [`prepare_kernel_write`]) and then calls the next definition, libc's. The families:
//!
//! | file         | functions                                                                    |
//! |--------------|------------------------------------------------------------------------------|
//! | `io.rs`      | read family (and `_chk`), pipes, randomness, SysV and POSIX message queues,  |
//! |              | `splice`/`sendfile`/`copy_file_range` offsets, `process_vm_readv`; stdio     |
//! |              | (`fread`, the `setvbuf` family: buffers libc fills with its internal `read`) |
//! | `sockets.rs` | `recv` family, `recvmmsg`, `accept`, socket names and options, `socketpair`; |
//! |              | `poll`, `ppoll`, `select`, `pselect`, the `epoll_wait` family                |
//! | `ctl.rs`     | `ioctl` (size from the request number, or a table), `fcntl`, `prctl`, ttys   |
//! | `fs.rs`      | stat family, `statx`, `statfs`/`statvfs`, `getcwd`, `readlink`, xattrs,      |
//! |              | directory streams and `getdents64`                                           |
//! | `proc.rs`    | `wait` family, `uname`, `sysinfo`, `times`, rusage, limits, ids, affinity;   |
//! |              | clocks, sleeps (remaining time), interval and POSIX timers, `adjtimex`       |
//! | `signals.rs` | `sigaction` and every libc call that installs a handler; masks; `sigwait*`   |
//!
//! ## Rules every wrapper follows
//!
//! - Without the mprotect tracker, a wrapper loads its cached next definition ([`Real`]) and
//!   the tracker's flag (`mprotect::active`, a relaxed load) and jumps to the definition: a
//!   tail call, no register saved. Everything else (preparing, the first lookup, fallbacks)
//!   is in an out-of-line cold function.
//! - With it, the out-parameters are opened before the call. Opening reads the caller's
//!   descriptors (lengths, `iovec` arrays, `msghdr`s) the way the kernel will, so an invalid
//!   descriptor pointer faults in the wrapper where the kernel would have returned EFAULT.
//! - errno is the real function's: preparing never changes it, and the first call's lookup of
//!   the next definition (`dlsym`) restores it.
//! - No allocation, no locks (the signal wrappers' spin flag aside, see `sys::signal`); every
//!   wrapper is as async-signal-safe as the function it wraps.
//! - The next definition is found with `dlsym(RTLD_NEXT, name)`. In a static executable there is
//!   none (and `dlsym` is not even tried): a wrapper that is a plain system call falls back to
//!   the raw call; one that is not (stdio, directory streams, POSIX timers) stops the program
//!   with a message saying that crthreads needs a dynamically linked program.
//! - Variadic functions (`ioctl`, `fcntl`, `prctl`) are defined with their fixed arguments
//!   plus the variadic ones as plain integer arguments: on x86-64 the variadic ones travel in
//!   the same registers. They are forwarded through a variadic function pointer.
//! - The exports are unversioned, so they also take calls bound to a versioned libc symbol
//!   (`stat@GLIBC_2.33`, `__xstat@GLIBC_2.2.5` from binaries built before glibc 2.33), and on
//!   x86-64 the `64` names are the same functions as the plain ones.
//!
//! ## Not covered (the program must keep such memory out of write-protected pages, or use
//! another tracker)
//!
//! - Raw `syscall(2)`: its arguments have no known meaning.
//! - `ioctl`s whose request number does not encode a read size and that are not in the legacy
//!   table, and `ioctl`s whose argument points at further buffers (DRM, V4L2, `SIOCGIFCONF`'s
//!   buffer is the one handled).
//! - io_uring and Linux native aio: the kernel writes completions and buffers later, from
//!   another context, with no libc call to hook.
//! - Writes libc makes with internal calls no symbol lookup sees: POSIX aio's helper threads,
//!   directory streams that `nftw`/`fts` keep open while the program's callback checkpoints, and
//!   libc-internal `DIR`s in general (stdio buffers are handled by pinning, see
//!   `mprotect::collect`).
//! - Futex words the kernel writes (priority-inheritance and robust mutexes), `semctl`
//!   (variadic `semun` with arrays), `ptrace`, and the obsolete `sigvec`, `sigstack`,
//!   `__sigpause`.
//! - A call in progress across a checkpoint: a thread blocked in a wrapped call (a `read` on a
//!   pipe) while another thread's checkpoint re-protects its buffer gets EFAULT when the kernel
//!   finally writes. Nothing prevents that today when another thread checkpoints; a checkpoint
//!   that stops threads only at safepoints outside libc would.
//! - Memory the kernel writes without a system call of the program's: signal frames on a stack
//!   that lives in the region (persistent threads' stacks must stay writable), the robust-list
//!   and `CLONE_CHILD_CLEARTID` words.
#![allow(unsafe_code)] // FFI exports.

mod check;
pub mod ctl;
pub mod fs;
pub mod io;
pub mod proc;
pub mod signals;
pub mod sockets;

use core::ffi::{CStr, c_int, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};

pub use super::mprotect::prepare_kernel_write;

/// Marks a function found missing (a static executable), so the lookup is not repeated.
const MISSING: *mut c_void = core::ptr::dangling_mut::<c_void>();

/// The next definition of an interposed function, found on first use and cached.
pub struct Real {
    slot: AtomicPtr<c_void>,
    name: &'static CStr,
}

impl Real {
    /// The next definition of the C function `name`.
    pub const fn new(name: &'static CStr) -> Real {
        Real { slot: AtomicPtr::new(core::ptr::null_mut()), name }
    }

    /// The function's address if it was found already. One relaxed load.
    #[inline(always)]
    pub fn found(&self) -> Option<*mut c_void> {
        let p = self.slot.load(Ordering::Relaxed);
        (!p.is_null() && p != MISSING).then_some(p)
    }

    /// The function's address, or `None` when there is no next definition (a static
    /// executable). One relaxed load once found.
    #[inline(always)]
    pub fn get(&self) -> Option<*mut c_void> {
        let p = self.slot.load(Ordering::Relaxed);
        if p.is_null() {
            return self.resolve();
        }
        (p != MISSING).then_some(p)
    }

    #[cold]
    #[inline(never)]
    fn resolve(&self) -> Option<*mut c_void> {
        let errno = crate::sys::errno();
        let p = if crate::sys::elf::is_static_executable() {
            core::ptr::null_mut()
        } else {
            crate::sys::proc::next_symbol(self.name)
        };
        crate::sys::set_errno(errno);
        self.slot.store(if p.is_null() { MISSING } else { p }, Ordering::Relaxed);
        (!p.is_null()).then_some(p)
    }
}

/// The name of a function as a C string, from its identifier.
macro_rules! c_name {
    ($name:ident) => {
        match core::ffi::CStr::from_bytes_with_nul(concat!(stringify!($name), "\0").as_bytes()) {
            Ok(c) => c,
            Err(_) => panic!("a function name is a C string"),
        }
    };
}
pub(crate) use c_name;

/// Defines interposers. Each entry reads like the C function, followed by its blocks:
///
/// ```text
/// /// Doc line.
/// fn name(arg: Type, ...) -> Ret {
///     prepare { /* open the out-parameters (runs only under the mprotect tracker) */ }
///     rewrite { let arg = ...; }  // optional: statements that may shadow arguments
///     fallback { /* the raw system call, when libc's definition cannot be found */ }
/// }
/// ```
///
/// The blocks see the arguments and run in an `unsafe` context. The generated function is an
/// `unsafe extern "C"` export named `name` that forwards to the next definition.
macro_rules! interpose {
    ($(
        $(#[$attr:meta])*
        fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? {
            prepare $prep:block
            $(rewrite { $($rw:stmt;)* })?
            fallback $fb:block
        }
    )*) => {$(
        $(#[$attr])*
        ///
        /// # Safety
        /// The C contract of the function it wraps.
        #[unsafe(no_mangle)]
        #[allow(unused_unsafe)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) $(-> $ret)? {
            static REAL: $crate::track::interpose::Real =
                $crate::track::interpose::Real::new($crate::track::interpose::c_name!($name));
            type F = unsafe extern "C" fn($($ty),*) $(-> $ret)?;

            /// Everything but the plain forward: opening the out-parameters, the rewrites, the
            /// first lookup and the fallback. Out of line, so that the fast path is a tail call.
            ///
            /// # Safety
            /// The C contract of the wrapped function.
            #[cold]
            #[inline(never)]
            #[allow(unused_variables, unused_unsafe, clippy::too_many_arguments)]
            unsafe extern "C" fn slow($($arg: $ty),*) $(-> $ret)? {
                if $crate::track::mprotect::active() {
                    // SAFETY: the caller's arguments, valid as the function's C contract
                    // requires; preparing reads them and opens region pages, nothing else.
                    unsafe { $prep }
                }
                $($($rw)*)?
                match REAL.get() {
                    // SAFETY: the next definition of this very function, of this C signature.
                    Some(f) => unsafe { core::mem::transmute::<*mut core::ffi::c_void, F>(f)($($arg),*) },
                    // SAFETY: the fallback makes the function's system call with the caller's
                    // arguments (or stops the program).
                    None => unsafe { $fb },
                }
            }

            match REAL.found() {
                // SAFETY: the next definition of this very function, of this C signature; without
                // the tracker there is nothing to prepare or rewrite.
                Some(f) if !$crate::track::mprotect::active() => unsafe {
                    core::mem::transmute::<*mut core::ffi::c_void, F>(f)($($arg),*)
                },
                // SAFETY: forwarded with the caller's arguments.
                _ => unsafe { slow($($arg),*) },
            }
        }
    )*};
}
pub(crate) use interpose;

/// A raw system call (`syscall(2)`: -1 and errno on failure) with integer or pointer arguments.
macro_rules! sys {
    ($nr:expr $(, $a:expr)* $(,)?) => {
        libc::syscall($nr $(, $a as usize)*)
    };
}
pub(crate) use sys;

/// Stops the program: the function `name` has no next definition and no system call to fall
/// back to (a static executable).
macro_rules! no_fallback {
    ($name:ident) => {
        crate::sys::fatal(concat!(
            "cannot find libc's ",
            stringify!($name),
            "(), which crthreads interposes: crthreads needs a dynamically linked program"
        ))
    };
}
pub(crate) use no_fallback;

/// Opens `len` bytes at `p` for the kernel.
#[inline]
pub(crate) fn bytes<T>(p: *const T, len: usize) {
    prepare_kernel_write(p as usize, len);
}

/// Opens one `T` at `p` (nothing for null).
#[inline]
pub(crate) fn out<T>(p: *mut T) {
    prepare_kernel_write(p as usize, core::mem::size_of::<T>());
}

/// Opens `n` `T`s at `p` (nothing for null).
#[inline]
pub(crate) fn out_n<T>(p: *mut T, n: usize) {
    prepare_kernel_write(p as usize, core::mem::size_of::<T>().saturating_mul(n));
}

/// Opens the buffers of `n` iovecs.
///
/// # Safety
/// `iov` is null or points at `n` iovecs.
pub(crate) unsafe fn iov(iov: *const libc::iovec, n: usize) {
    if iov.is_null() {
        return;
    }
    for i in 0..n {
        // SAFETY: the caller passes the iovec array it gives the kernel.
        let v = unsafe { iov.add(i).read() };
        prepare_kernel_write(v.iov_base as usize, v.iov_len);
    }
}

/// Opens a socket address out-parameter: `*len` bytes at `addr`, and `len` itself.
///
/// # Safety
/// `addr` and `len` are null or valid, as the socket calls require.
pub(crate) unsafe fn sockaddr(addr: *mut libc::sockaddr, len: *mut libc::socklen_t) {
    if !addr.is_null() && !len.is_null() {
        // SAFETY: a non-null length points at the caller's length.
        bytes(addr, unsafe { len.read() } as usize);
    }
    out(len);
}

/// Opens everything `recvmsg` writes: the header, the data buffers, the name and the control
/// buffer.
///
/// # Safety
/// `m` is null or a valid `msghdr`.
pub(crate) unsafe fn msghdr(m: *mut libc::msghdr) {
    if m.is_null() {
        return;
    }
    out(m);
    // SAFETY: the caller passes a valid msghdr, as the kernel requires.
    let h = unsafe { m.read() };
    // SAFETY: its iovec array, as above.
    unsafe { iov(h.msg_iov, h.msg_iovlen) };
    bytes(h.msg_name, h.msg_namelen as usize);
    bytes(h.msg_control, h.msg_controllen);
}

/// `errno` set to `e`, and the C failure value `-1`.
#[inline]
pub(crate) fn fail(e: c_int) -> c_int {
    crate::sys::set_errno(e);
    -1
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_c_strings() {
        assert_eq!(c_name!(fstatat64), c"fstatat64");
    }

    #[test]
    fn a_missing_function_is_looked_up_once() {
        static R: super::Real = super::Real::new(c"crthreads_no_such_function");
        crate::sys::set_errno(1234);
        assert_eq!(R.get(), None);
        assert_eq!(crate::sys::errno(), 1234, "the lookup left errno alone");
        assert_eq!(R.slot.load(core::sync::atomic::Ordering::Relaxed), super::MISSING);
        static F: super::Real = super::Real::new(c"getpid");
        assert!(F.get().is_some());
    }
}
