//! Sockets: received data, the peer's and our own addresses (with their lengths), options,
//! and the descriptors of `socketpair`.

use core::ffi::{c_int, c_uint, c_void};

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
