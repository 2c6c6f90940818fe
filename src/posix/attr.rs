//! Thread attributes (`pthread_attr_t`, 56 bytes in glibc's headers): detach state, stack size
//! and guard size. A caller-supplied stack is refused (a persistent thread's stack must lie in
//! the persistent heap), and so are scheduling scope `PROCESS` (as glibc does).

use crate::error::Errno;

/// The smallest stack a thread may ask for (glibc's `PTHREAD_STACK_MIN`).
pub const STACK_MIN: usize = 16384;
/// The default stack size (glibc's default under the usual 8 MiB `RLIMIT_STACK`).
pub const STACK_DEFAULT: usize = 8 << 20;

/// `pthread_attr_t` as crthreads lays it out.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Attr {
    /// `PTHREAD_CREATE_JOINABLE` or `PTHREAD_CREATE_DETACHED`.
    pub detach: i32,
    /// `PTHREAD_SCOPE_SYSTEM`.
    pub scope: i32,
    /// Stack size in bytes.
    pub stack: usize,
    /// Guard size in bytes (recorded; every persistent stack has one guard page).
    pub guard: usize,
    _rest: [u64; 4],
}

const _: () = assert!(core::mem::size_of::<Attr>() == 56);

impl Attr {
    /// The defaults of `pthread_attr_init`.
    pub const DEFAULT: Attr = Attr {
        detach: libc::PTHREAD_CREATE_JOINABLE,
        scope: 0,
        stack: STACK_DEFAULT,
        guard: crate::sys::PAGE,
        _rest: [0; 4],
    };

    /// Sets the detach state (`EINVAL` for anything but the two states).
    pub fn set_detach(&mut self, v: i32) -> Result<(), Errno> {
        if v != libc::PTHREAD_CREATE_JOINABLE && v != libc::PTHREAD_CREATE_DETACHED {
            return Err(Errno(libc::EINVAL));
        }
        self.detach = v;
        Ok(())
    }

    /// Sets the stack size (`EINVAL` below [`STACK_MIN`]).
    pub fn set_stack(&mut self, v: usize) -> Result<(), Errno> {
        if v < STACK_MIN {
            return Err(Errno(libc::EINVAL));
        }
        self.stack = v;
        Ok(())
    }

    /// Sets the scope (`ENOTSUP` for `PTHREAD_SCOPE_PROCESS`, `EINVAL` for others).
    pub fn set_scope(&mut self, v: i32) -> Result<(), Errno> {
        match v {
            0 => Ok(()),
            1 => Err(Errno(libc::ENOTSUP)),
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// A caller-supplied stack: refused (`ENOTSUP`), with a message.
    pub fn set_own_stack(&mut self) -> Result<(), Errno> {
        super::unsupported("a thread stack supplied by the caller (pthread_attr_setstack)");
        Err(Errno(libc::ENOTSUP))
    }
}
