//! Time: clocks, sleeps, interval and POSIX timers, clock adjustment.
//!
//! `clock_gettime`, `gettimeofday` and `time` usually run in the vDSO, which writes from user
//! space (a write fault the tracker handles), but CPU-time clocks, and every clock when the
//! clock source cannot be read from user space, fall back to the system call, whose write fails
//! with EFAULT on a protected page: they are opened in every case. The sleeps write the
//! remaining time only when a signal interrupts them.

use core::ffi::{c_int, c_void};

use super::{interpose, no_fallback, out, sys};

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
    fn gettimeofday(tv: *mut libc::timeval, tz: *mut c_void) -> c_int {
        prepare {
            out(tv);
            super::bytes(tz, 8)
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
