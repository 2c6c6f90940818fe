//! `pthread_cond_t` (48 bytes in glibc's headers): a notification counter (std's futex
//! condition variable) and the clock its timed waits use.
//!
//! | offset | field   | meaning                                                   |
//! |--------|---------|-----------------------------------------------------------|
//! | 0      | `seq`   | bumped by every signal and broadcast; waiters sleep on it |
//! | 4      | `clock` | `CLOCK_REALTIME` (0, the static initialiser's) or `CLOCK_MONOTONIC` |
//!
//! A wait releases the mutex (its holder's lock depth goes down, and at 0 a due checkpoint is
//! taken there), sleeps at a safepoint, and takes the mutex back. A wake-up may be spurious (a
//! restore resumes a waiter as one), which POSIX allows.

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::mutex::Mutex;
use crate::error::Errno;
use crate::thread::park::{self, Wake};

/// `pthread_cond_t` as crthreads lays it out.
#[repr(C)]
pub struct Cond {
    seq: AtomicU32,
    clock: AtomicI32,
    _rest: [u32; 10],
}

const _: () = assert!(core::mem::size_of::<Cond>() == 48);

/// `pthread_condattr_t` (4 bytes): the clock.
#[repr(C)]
pub struct CondAttr(pub i32);

impl CondAttr {
    /// `pthread_condattr_setclock`: `CLOCK_REALTIME` or `CLOCK_MONOTONIC` (`EINVAL` otherwise).
    pub fn set_clock(&mut self, c: libc::clockid_t) -> Result<(), Errno> {
        if c != libc::CLOCK_REALTIME && c != libc::CLOCK_MONOTONIC {
            return Err(Errno(libc::EINVAL));
        }
        self.0 = c;
        Ok(())
    }

    /// `pthread_condattr_setpshared`: process-private only.
    pub fn set_pshared(&mut self, v: i32) -> Result<(), Errno> {
        super::mutex::unsupported_value(
            v,
            libc::PTHREAD_PROCESS_PRIVATE,
            libc::PTHREAD_PROCESS_SHARED,
            "a process-shared condition variable",
        )
    }
}

impl Cond {
    /// `pthread_cond_init`.
    pub fn init(&mut self, attr: Option<&CondAttr>) {
        self.seq = AtomicU32::new(0);
        self.clock = AtomicI32::new(attr.map_or(libc::CLOCK_REALTIME, |a| a.0));
        self._rest = [0; 10];
    }

    /// `pthread_cond_wait`, or with `until` (an absolute time on `clock`, the condition
    /// variable's own if `None`) `pthread_cond_timedwait` / `pthread_cond_clockwait`.
    pub fn wait(&self, m: &Mutex, until: Option<(&libc::timespec, Option<libc::clockid_t>)>) -> Result<(), Errno> {
        let deadline = match until {
            None => None,
            Some((ts, clock)) => {
                let clock = clock.unwrap_or_else(|| self.clock.load(Ordering::Relaxed));
                if clock != libc::CLOCK_REALTIME && clock != libc::CLOCK_MONOTONIC {
                    return Err(Errno(libc::EINVAL));
                }
                super::deadline(ts, clock)?
            }
        };
        // Read before the mutex is released: a signal sent after that changes it.
        let seq = self.seq.load(Ordering::Relaxed);
        let count = m.unlock_for_wait()?;
        let r = park::wait(&self.seq, seq, deadline);
        m.relock_after_wait(count);
        if r == Wake::TimedOut || deadline.is_some_and(|d| crate::sys::realtime_ns() >= d) {
            // A notification that came meanwhile counts as a (spurious-looking) wake-up.
            if self.seq.load(Ordering::Relaxed) == seq {
                return Err(Errno(libc::ETIMEDOUT));
            }
        }
        Ok(())
    }

    /// `pthread_cond_signal`.
    pub fn signal(&self) {
        // Relaxed: the mutex orders the waiter's read of `seq` against this change (as std's).
        self.seq.fetch_add(1, Ordering::Relaxed);
        park::wake(&self.seq, 1);
    }

    /// `pthread_cond_broadcast`.
    pub fn broadcast(&self) {
        self.seq.fetch_add(1, Ordering::Relaxed);
        park::wake(&self.seq, i32::MAX);
    }
}
