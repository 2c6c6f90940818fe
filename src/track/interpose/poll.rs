//! Waiting for descriptors: the kernel writes `revents`, the ready sets, the ready events and
//! (for `select`) the remaining time. The calls that take a signal mask for their duration get
//! it without SIGSEGV while the mprotect tracker runs (a handler that runs during the wait runs
//! under that mask, and its heap writes must fault into the tracker: `sys::signal`). glibc
//! copies the timeouts of `ppoll` and `pselect` before the call, so the kernel never writes
//! them.

use core::ffi::c_int;
use core::mem::MaybeUninit;

use super::signals::without_segv;
use super::{bytes, interpose, out, out_n, sys};

/// Bytes of an `fd_set` the kernel reads and writes for `nfds` descriptors (whole longs).
fn fd_set_bytes(nfds: c_int) -> usize {
    (nfds.max(0) as usize).div_ceil(64) * 8
}

/// Opens the three sets of `select`.
fn fd_sets(nfds: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set) {
    for s in [r, w, e] {
        bytes(s, fd_set_bytes(nfds));
    }
}

/// The kernel's `sigset_t` argument of `pselect6`: the mask and its size.
#[repr(C)]
struct MaskArg {
    mask: *const libc::sigset_t,
    size: usize,
}

interpose! {
    /// `poll(2)`: `revents` of each entry.
    fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int {
        prepare { out_n(fds, n as usize) }
        fallback { sys!(libc::SYS_poll, fds, n, timeout) as c_int }
    }

    /// `__poll_chk` (`_FORTIFY_SOURCE`).
    fn __poll_chk(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int, fdslen: usize) -> c_int {
        prepare { out_n(fds, (n as usize).min(fdslen / core::mem::size_of::<libc::pollfd>())) }
        fallback {
            if fdslen / core::mem::size_of::<libc::pollfd>() < n as usize {
                crate::sys::fatal("*** buffer overflow detected ***: poll would overrun its array");
            }
            sys!(libc::SYS_poll, fds, n, timeout) as c_int
        }
    }

    /// `ppoll(2)`.
    fn ppoll(
        fds: *mut libc::pollfd,
        n: libc::nfds_t,
        timeout: *const libc::timespec,
        mask: *const libc::sigset_t,
    ) -> c_int {
        prepare { out_n(fds, n as usize) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's mask, null or valid.
            let mask = unsafe { without_segv(mask, &mut copy) };
        }
        fallback {
            let t = (!timeout.is_null()).then(|| timeout.read());
            let tp = t.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
            sys!(libc::SYS_ppoll, fds, n, tp, mask, 8) as c_int
        }
    }

    /// `__ppoll_chk` (`_FORTIFY_SOURCE`).
    fn __ppoll_chk(
        fds: *mut libc::pollfd,
        n: libc::nfds_t,
        timeout: *const libc::timespec,
        mask: *const libc::sigset_t,
        fdslen: usize,
    ) -> c_int {
        prepare { out_n(fds, (n as usize).min(fdslen / core::mem::size_of::<libc::pollfd>())) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's mask, null or valid.
            let mask = unsafe { without_segv(mask, &mut copy) };
        }
        fallback {
            if fdslen / core::mem::size_of::<libc::pollfd>() < n as usize {
                crate::sys::fatal("*** buffer overflow detected ***: ppoll would overrun its array");
            }
            let t = (!timeout.is_null()).then(|| timeout.read());
            let tp = t.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
            sys!(libc::SYS_ppoll, fds, n, tp, mask, 8) as c_int
        }
    }

    /// `select(2)`: the three sets and the remaining time.
    fn select(
        nfds: c_int,
        r: *mut libc::fd_set,
        w: *mut libc::fd_set,
        e: *mut libc::fd_set,
        timeout: *mut libc::timeval,
    ) -> c_int {
        prepare {
            fd_sets(nfds, r, w, e);
            out(timeout)
        }
        fallback { sys!(libc::SYS_select, nfds, r, w, e, timeout) as c_int }
    }

    /// `pselect(2)`: the three sets.
    fn pselect(
        nfds: c_int,
        r: *mut libc::fd_set,
        w: *mut libc::fd_set,
        e: *mut libc::fd_set,
        timeout: *const libc::timespec,
        mask: *const libc::sigset_t,
    ) -> c_int {
        prepare { fd_sets(nfds, r, w, e) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's mask, null or valid.
            let mask = unsafe { without_segv(mask, &mut copy) };
        }
        fallback {
            let t = (!timeout.is_null()).then(|| timeout.read());
            let tp = t.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
            let m = MaskArg { mask, size: 8 };
            sys!(libc::SYS_pselect6, nfds, r, w, e, tp, &m as *const MaskArg) as c_int
        }
    }

    /// `epoll_wait(2)`: up to `max` events.
    fn epoll_wait(epfd: c_int, events: *mut libc::epoll_event, max: c_int, timeout: c_int) -> c_int {
        prepare { out_n(events, max.max(0) as usize) }
        fallback { sys!(libc::SYS_epoll_wait, epfd, events, max, timeout) as c_int }
    }

    /// `epoll_pwait(2)`.
    fn epoll_pwait(
        epfd: c_int,
        events: *mut libc::epoll_event,
        max: c_int,
        timeout: c_int,
        mask: *const libc::sigset_t,
    ) -> c_int {
        prepare { out_n(events, max.max(0) as usize) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's mask, null or valid.
            let mask = unsafe { without_segv(mask, &mut copy) };
        }
        fallback { sys!(libc::SYS_epoll_pwait, epfd, events, max, timeout, mask, 8) as c_int }
    }

    /// `epoll_pwait2(2)`.
    fn epoll_pwait2(
        epfd: c_int,
        events: *mut libc::epoll_event,
        max: c_int,
        timeout: *const libc::timespec,
        mask: *const libc::sigset_t,
    ) -> c_int {
        prepare { out_n(events, max.max(0) as usize) }
        rewrite {
            let mut copy = MaybeUninit::uninit();
            // SAFETY: the caller's mask, null or valid.
            let mask = unsafe { without_segv(mask, &mut copy) };
        }
        fallback { sys!(libc::SYS_epoll_pwait2, epfd, events, max, timeout, mask, 8) as c_int }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fd_sets_are_whole_longs() {
        assert_eq!(super::fd_set_bytes(0), 0);
        assert_eq!(super::fd_set_bytes(1), 8);
        assert_eq!(super::fd_set_bytes(64), 8);
        assert_eq!(super::fd_set_bytes(65), 16);
        assert_eq!(super::fd_set_bytes(1024), 128);
    }
}
