//! Sockets and readiness: received data, the peer's and our own addresses (with their
//! lengths), options, the descriptors of `socketpair`; and waiting for descriptors, where the
//! kernel writes `revents`, the ready sets, the ready events and (for `select`) the remaining
//! time.
//!
//! The waits that take a signal mask for their duration get it without SIGSEGV while the
//! mprotect tracker runs (a handler that runs during the wait runs under that mask, and its
//! heap writes must fault into the tracker: `sys::signal`). glibc copies the timeouts of
//! `ppoll` and `pselect` before the call, so the kernel never writes them.

use core::ffi::{c_int, c_uint, c_void};
use core::mem::MaybeUninit;

use super::signals::without_segv;
use super::{bytes, interpose, msghdr, out, out_n, sockaddr, sys};

/// Opens everything `recvmmsg` writes: each header's buffers and its `msg_len`, and the
/// remaining time.
///
/// # Safety
/// `v` is null or points at `n` valid `mmsghdr`s.
unsafe fn mmsghdrs(v: *mut libc::mmsghdr, n: usize) {
    if v.is_null() {
        return;
    }
    out_n(v, n);
    for i in 0..n {
        // SAFETY: the caller's array of `n` headers; each `msg_hdr` is valid.
        unsafe { msghdr(core::ptr::addr_of_mut!((*v.add(i)).msg_hdr)) };
    }
}

interpose! {
    /// `recv(2)`.
    fn recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize {
        prepare { bytes(buf, n) }
        fallback { sys!(libc::SYS_recvfrom, fd, buf, n, flags, 0, 0) as isize }
    }

    /// `__recv_chk` (`_FORTIFY_SOURCE`).
    fn __recv_chk(fd: c_int, buf: *mut c_void, n: usize, buflen: usize, flags: c_int) -> isize {
        prepare { bytes(buf, n.min(buflen)) }
        fallback {
            if n > buflen {
                crate::sys::fatal("*** buffer overflow detected ***: recv would overrun its buffer");
            }
            sys!(libc::SYS_recvfrom, fd, buf, n, flags, 0, 0) as isize
        }
    }

    /// `recvfrom(2)`: the data and the source address.
    fn recvfrom(
        fd: c_int,
        buf: *mut c_void,
        n: usize,
        flags: c_int,
        addr: *mut libc::sockaddr,
        addrlen: *mut libc::socklen_t,
    ) -> isize {
        prepare {
            bytes(buf, n);
            sockaddr(addr, addrlen)
        }
        fallback { sys!(libc::SYS_recvfrom, fd, buf, n, flags, addr, addrlen) as isize }
    }

    /// `__recvfrom_chk` (`_FORTIFY_SOURCE`).
    fn __recvfrom_chk(
        fd: c_int,
        buf: *mut c_void,
        n: usize,
        buflen: usize,
        flags: c_int,
        addr: *mut libc::sockaddr,
        addrlen: *mut libc::socklen_t,
    ) -> isize {
        prepare {
            bytes(buf, n.min(buflen));
            sockaddr(addr, addrlen)
        }
        fallback {
            if n > buflen {
                crate::sys::fatal("*** buffer overflow detected ***: recvfrom would overrun its buffer");
            }
            sys!(libc::SYS_recvfrom, fd, buf, n, flags, addr, addrlen) as isize
        }
    }

    /// `recvmsg(2)`: the data buffers, the name, the control buffer and the header itself.
    fn recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize {
        prepare { msghdr(msg) }
        fallback { sys!(libc::SYS_recvmsg, fd, msg, flags) as isize }
    }

    /// `recvmmsg(2)`: every message, and the remaining time.
    fn recvmmsg(fd: c_int, v: *mut libc::mmsghdr, n: c_uint, flags: c_int, timeout: *mut libc::timespec) -> c_int {
        prepare {
            mmsghdrs(v, n as usize);
            out(timeout)
        }
        fallback { sys!(libc::SYS_recvmmsg, fd, v, n, flags, timeout) as c_int }
    }

    /// `accept(2)`: the peer's address.
    fn accept(fd: c_int, addr: *mut libc::sockaddr, addrlen: *mut libc::socklen_t) -> c_int {
        prepare { sockaddr(addr, addrlen) }
        fallback { sys!(libc::SYS_accept4, fd, addr, addrlen, 0) as c_int }
    }

    /// `accept4(2)`.
    fn accept4(fd: c_int, addr: *mut libc::sockaddr, addrlen: *mut libc::socklen_t, flags: c_int) -> c_int {
        prepare { sockaddr(addr, addrlen) }
        fallback { sys!(libc::SYS_accept4, fd, addr, addrlen, flags) as c_int }
    }

    /// `getsockname(2)`.
    fn getsockname(fd: c_int, addr: *mut libc::sockaddr, addrlen: *mut libc::socklen_t) -> c_int {
        prepare { sockaddr(addr, addrlen) }
        fallback { sys!(libc::SYS_getsockname, fd, addr, addrlen) as c_int }
    }

    /// `getpeername(2)`.
    fn getpeername(fd: c_int, addr: *mut libc::sockaddr, addrlen: *mut libc::socklen_t) -> c_int {
        prepare { sockaddr(addr, addrlen) }
        fallback { sys!(libc::SYS_getpeername, fd, addr, addrlen) as c_int }
    }

    /// `getsockopt(2)`: `*optlen` bytes of value, and the length.
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, optlen: *mut libc::socklen_t) -> c_int {
        prepare { sockaddr(value.cast(), optlen) }
        fallback { sys!(libc::SYS_getsockopt, fd, level, name, value, optlen) as c_int }
    }

    /// `socketpair(2)`: the two descriptors.
    fn socketpair(domain: c_int, ty: c_int, protocol: c_int, fds: *mut c_int) -> c_int {
        prepare { out_n(fds, 2) }
        fallback { sys!(libc::SYS_socketpair, domain, ty, protocol, fds) as c_int }
    }
}

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
