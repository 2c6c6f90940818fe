//! The process and its children: the `wait` family (status, rusage, siginfo), `uname`,
//! `sysinfo`, `times`, `getrusage`, resource limits, ids and groups, CPU affinity and
//! scheduling parameters, `getcpu`, `mincore`, `capget`, and thread names.

use core::ffi::{c_char, c_int, c_uchar, c_uint};

use super::{bytes, interpose, no_fallback, out, out_n, sys};

/// Any child, for the fallbacks of `wait` and `wait3` (through `wait4`).
const ANY: libc::pid_t = -1;

interpose! {
    /// `wait(2)`: the status.
    fn wait(status: *mut c_int) -> libc::pid_t {
        prepare { out(status) }
        fallback { sys!(libc::SYS_wait4, ANY, status, 0, 0) as libc::pid_t }
    }

    /// `waitpid(2)`.
    fn waitpid(pid: libc::pid_t, status: *mut c_int, options: c_int) -> libc::pid_t {
        prepare { out(status) }
        fallback { sys!(libc::SYS_wait4, pid, status, options, 0) as libc::pid_t }
    }

    /// `wait3(2)`: the status and the child's resource usage.
    fn wait3(status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> libc::pid_t {
        prepare {
            out(status);
            out(usage)
        }
        fallback { sys!(libc::SYS_wait4, ANY, status, options, usage) as libc::pid_t }
    }

    /// `wait4(2)`.
    fn wait4(pid: libc::pid_t, status: *mut c_int, options: c_int, usage: *mut libc::rusage) -> libc::pid_t {
        prepare {
            out(status);
            out(usage)
        }
        fallback { sys!(libc::SYS_wait4, pid, status, options, usage) as libc::pid_t }
    }

    /// `waitid(2)`: the child's siginfo.
    fn waitid(idtype: libc::idtype_t, id: libc::id_t, info: *mut libc::siginfo_t, options: c_int) -> c_int {
        prepare { out(info) }
        fallback { sys!(libc::SYS_waitid, idtype, id, info, options, 0) as c_int }
    }

    /// `uname(2)`.
    fn uname(buf: *mut libc::utsname) -> c_int {
        prepare { out(buf) }
        fallback { sys!(libc::SYS_uname, buf) as c_int }
    }

    /// `sysinfo(2)`.
    fn sysinfo(info: *mut libc::sysinfo) -> c_int {
        prepare { out(info) }
        fallback { sys!(libc::SYS_sysinfo, info) as c_int }
    }

    /// `times(2)`.
    fn times(buf: *mut libc::tms) -> libc::clock_t {
        prepare { out(buf) }
        fallback { sys!(libc::SYS_times, buf) as libc::clock_t }
    }

    /// `getrusage(2)`.
    fn getrusage(who: c_int, usage: *mut libc::rusage) -> c_int {
        prepare { out(usage) }
        fallback { sys!(libc::SYS_getrusage, who, usage) as c_int }
    }

    /// `getrlimit(2)`.
    fn getrlimit(resource: c_int, rlim: *mut libc::rlimit) -> c_int {
        prepare { out(rlim) }
        fallback { sys!(libc::SYS_prlimit64, 0, resource, 0, rlim) as c_int }
    }

    /// `getrlimit64(2)`.
    fn getrlimit64(resource: c_int, rlim: *mut libc::rlimit64) -> c_int {
        prepare { out(rlim) }
        fallback { sys!(libc::SYS_prlimit64, 0, resource, 0, rlim) as c_int }
    }

    /// `prlimit(2)`: the old limit.
    fn prlimit(pid: libc::pid_t, resource: c_int, new: *const libc::rlimit, old: *mut libc::rlimit) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_prlimit64, pid, resource, new, old) as c_int }
    }

    /// `prlimit64(2)`.
    fn prlimit64(pid: libc::pid_t, resource: c_int, new: *const libc::rlimit64, old: *mut libc::rlimit64) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_prlimit64, pid, resource, new, old) as c_int }
    }

    /// `getgroups(2)`: up to `size` group ids.
    fn getgroups(size: c_int, list: *mut libc::gid_t) -> c_int {
        prepare { out_n(list, size.max(0) as usize) }
        fallback { sys!(libc::SYS_getgroups, size, list) as c_int }
    }

    /// `__getgroups_chk` (`_FORTIFY_SOURCE`).
    fn __getgroups_chk(size: c_int, list: *mut libc::gid_t, listlen: usize) -> c_int {
        prepare { bytes(list, (size.max(0) as usize * 4).min(listlen)) }
        fallback {
            if size.max(0) as usize * 4 > listlen {
                crate::sys::fatal("*** buffer overflow detected ***: getgroups would overrun its array");
            }
            sys!(libc::SYS_getgroups, size, list) as c_int
        }
    }

    /// `getresuid(2)`.
    fn getresuid(r: *mut libc::uid_t, e: *mut libc::uid_t, s: *mut libc::uid_t) -> c_int {
        prepare {
            out(r);
            out(e);
            out(s)
        }
        fallback { sys!(libc::SYS_getresuid, r, e, s) as c_int }
    }

    /// `getresgid(2)`.
    fn getresgid(r: *mut libc::gid_t, e: *mut libc::gid_t, s: *mut libc::gid_t) -> c_int {
        prepare {
            out(r);
            out(e);
            out(s)
        }
        fallback { sys!(libc::SYS_getresgid, r, e, s) as c_int }
    }

    /// `sched_getaffinity(2)`: libc zeroes the part of the set the kernel did not fill.
    fn sched_getaffinity(pid: libc::pid_t, size: usize, set: *mut libc::cpu_set_t) -> c_int {
        prepare { bytes(set, size) }
        fallback {
            let r = sys!(libc::SYS_sched_getaffinity, pid, size.min(c_int::MAX as usize), set);
            if r < 0 {
                return -1;
            }
            core::ptr::write_bytes(set.cast::<u8>().add(r as usize), 0, size - r as usize);
            0
        }
    }

    /// `pthread_getaffinity_np(3)`: libc makes the system call itself.
    fn pthread_getaffinity_np(thread: libc::pthread_t, size: usize, set: *mut libc::cpu_set_t) -> c_int {
        prepare { bytes(set, size) }
        fallback { no_fallback!(pthread_getaffinity_np) }
    }

    /// `pthread_getname_np(3)`: libc reads the name with `prctl` or its internal `read`.
    fn pthread_getname_np(thread: libc::pthread_t, buf: *mut c_char, len: usize) -> c_int {
        prepare { bytes(buf, len) }
        fallback { no_fallback!(pthread_getname_np) }
    }

    /// `sched_getparam(2)`.
    fn sched_getparam(pid: libc::pid_t, param: *mut libc::sched_param) -> c_int {
        prepare { out(param) }
        fallback { sys!(libc::SYS_sched_getparam, pid, param) as c_int }
    }

    /// `sched_rr_get_interval(2)`.
    fn sched_rr_get_interval(pid: libc::pid_t, ts: *mut libc::timespec) -> c_int {
        prepare { out(ts) }
        fallback { sys!(libc::SYS_sched_rr_get_interval, pid, ts) as c_int }
    }

    /// `getcpu(2)`.
    fn getcpu(cpu: *mut c_uint, node: *mut c_uint) -> c_int {
        prepare {
            out(cpu);
            out(node)
        }
        fallback { sys!(libc::SYS_getcpu, cpu, node, 0) as c_int }
    }

    /// `mincore(2)`: one byte per page of the range.
    fn mincore(addr: *mut libc::c_void, len: usize, vec: *mut c_uchar) -> c_int {
        prepare { bytes(vec, len.div_ceil(crate::sys::PAGE)) }
        fallback { sys!(libc::SYS_mincore, addr, len, vec) as c_int }
    }

    /// `capget(2)`: the header (its version, on EINVAL) and two data structs (version 2 and 3;
    /// version 1 uses one).
    fn capget(hdr: *mut libc::c_void, data: *mut libc::c_void) -> c_int {
        prepare {
            bytes(hdr, 8);
            bytes(data, 24)
        }
        fallback { sys!(libc::SYS_capget, hdr, data) as c_int }
    }
}
