//! The process, its children and time: the `wait` family (status, rusage, siginfo), `uname`,
//! `sysinfo`, `times`, `getrusage`, resource limits, ids and groups, CPU affinity and
//! scheduling parameters, `getcpu`, `mincore`, `capget`, thread names; clocks, sleeps, interval
//! and POSIX timers, clock adjustment.
//!
//! `clock_gettime`, `gettimeofday` and `time` usually run in the vDSO, which writes from user
//! space (a write fault the tracker handles), but CPU-time clocks, and every clock when the
//! clock source cannot be read from user space, fall back to the system call, whose write fails
//! with EFAULT on a protected page: they are opened in every case. The sleeps write the
//! remaining time only when a signal interrupts them.

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
    fn getrlimit(resource: libc::__rlimit_resource_t, rlim: *mut libc::rlimit) -> c_int {
        prepare { out(rlim) }
        fallback { sys!(libc::SYS_prlimit64, 0, resource, 0, rlim) as c_int }
    }

    /// `getrlimit64(2)`.
    fn getrlimit64(resource: libc::__rlimit_resource_t, rlim: *mut libc::rlimit64) -> c_int {
        prepare { out(rlim) }
        fallback { sys!(libc::SYS_prlimit64, 0, resource, 0, rlim) as c_int }
    }

    /// `prlimit(2)`: the old limit.
    fn prlimit(pid: libc::pid_t, resource: libc::__rlimit_resource_t, new: *const libc::rlimit, old: *mut libc::rlimit) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_prlimit64, pid, resource, new, old) as c_int }
    }

    /// `prlimit64(2)`.
    fn prlimit64(pid: libc::pid_t, resource: libc::__rlimit_resource_t, new: *const libc::rlimit64, old: *mut libc::rlimit64) -> c_int {
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

interpose! {
    /// `clock_gettime(2)`.
    fn clock_gettime(clock: libc::clockid_t, ts: *mut libc::timespec) -> c_int {
        prepare { out(ts) }
        fallback { sys!(libc::SYS_clock_gettime, clock, ts) as c_int }
    }

    /// `clock_getres(2)`.
    fn clock_getres(clock: libc::clockid_t, ts: *mut libc::timespec) -> c_int {
        prepare { out(ts) }
        fallback { sys!(libc::SYS_clock_getres, clock, ts) as c_int }
    }

    /// `gettimeofday(2)`: the time and the obsolete time zone.
    fn gettimeofday(tv: *mut libc::timeval, tz: *mut libc::timezone) -> c_int {
        prepare {
            out(tv);
            out(tz)
        }
        fallback { sys!(libc::SYS_gettimeofday, tv, tz) as c_int }
    }

    /// `time(2)`.
    fn time(t: *mut libc::time_t) -> libc::time_t {
        prepare { out(t) }
        fallback { sys!(libc::SYS_time, t) as libc::time_t }
    }

    /// `timespec_get(3)`: `clock_gettime` inside libc.
    fn timespec_get(ts: *mut libc::timespec, base: c_int) -> c_int {
        prepare { out(ts) }
        fallback { no_fallback!(timespec_get) }
    }

    /// `timespec_getres(3)`.
    fn timespec_getres(ts: *mut libc::timespec, base: c_int) -> c_int {
        prepare { out(ts) }
        fallback { no_fallback!(timespec_getres) }
    }

    /// `nanosleep(2)`: the remaining time, when interrupted.
    fn nanosleep(req: *const libc::timespec, rem: *mut libc::timespec) -> c_int {
        prepare { out(rem) }
        fallback { sys!(libc::SYS_nanosleep, req, rem) as c_int }
    }

    /// `clock_nanosleep(2)`: returns the error number (errno untouched).
    fn clock_nanosleep(
        clock: libc::clockid_t,
        flags: c_int,
        req: *const libc::timespec,
        rem: *mut libc::timespec,
    ) -> c_int {
        prepare { out(rem) }
        fallback {
            let errno = crate::sys::errno();
            let r = if sys!(libc::SYS_clock_nanosleep, clock, flags, req, rem) < 0 { crate::sys::errno() } else { 0 };
            crate::sys::set_errno(errno);
            r
        }
    }

    /// `getitimer(2)`.
    fn getitimer(which: c_int, value: *mut libc::itimerval) -> c_int {
        prepare { out(value) }
        fallback { sys!(libc::SYS_getitimer, which, value) as c_int }
    }

    /// `setitimer(2)`: the old value.
    fn setitimer(which: c_int, new: *const libc::itimerval, old: *mut libc::itimerval) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_setitimer, which, new, old) as c_int }
    }

    /// `timer_gettime(2)` (glibc maps its `timer_t` to the kernel's timer).
    fn timer_gettime(timer: libc::timer_t, value: *mut libc::itimerspec) -> c_int {
        prepare { out(value) }
        fallback { no_fallback!(timer_gettime) }
    }

    /// `timer_settime(2)`: the old value.
    fn timer_settime(
        timer: libc::timer_t,
        flags: c_int,
        new: *const libc::itimerspec,
        old: *mut libc::itimerspec,
    ) -> c_int {
        prepare { out(old) }
        fallback { no_fallback!(timer_settime) }
    }

    /// `timerfd_gettime(2)`.
    fn timerfd_gettime(fd: c_int, value: *mut libc::itimerspec) -> c_int {
        prepare { out(value) }
        fallback { sys!(libc::SYS_timerfd_gettime, fd, value) as c_int }
    }

    /// `timerfd_settime(2)`: the old value.
    fn timerfd_settime(fd: c_int, flags: c_int, new: *const libc::itimerspec, old: *mut libc::itimerspec) -> c_int {
        prepare { out(old) }
        fallback { sys!(libc::SYS_timerfd_settime, fd, flags, new, old) as c_int }
    }

    /// `adjtimex(2)`: the kernel writes the whole struct back.
    fn adjtimex(buf: *mut libc::timex) -> c_int {
        prepare { out(buf) }
        fallback { sys!(libc::SYS_adjtimex, buf) as c_int }
    }

    /// `ntp_adjtime(3)` (`adjtimex`).
    fn ntp_adjtime(buf: *mut libc::timex) -> c_int {
        prepare { out(buf) }
        fallback { sys!(libc::SYS_adjtimex, buf) as c_int }
    }

    /// `clock_adjtime(2)`.
    fn clock_adjtime(clock: libc::clockid_t, buf: *mut libc::timex) -> c_int {
        prepare { out(buf) }
        fallback { sys!(libc::SYS_clock_adjtime, clock, buf) as c_int }
    }
}
