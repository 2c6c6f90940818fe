//! The small objects: `pthread_once_t`, `pthread_spinlock_t`, `pthread_barrier_t` and `sem_t`.
//!
//! - once (4 bytes, `PTHREAD_ONCE_INIT` is 0): [`crate::sync::Once`]'s word; waiting for
//!   another thread's initialisation is a safepoint.
//! - spin lock (4 bytes): one word, 0 free, 1 held; held counts towards the lock depth like a
//!   mutex, so no checkpoint is taken inside its critical section.
//! - barrier (32 bytes): a [`crate::sync::Barrier`] (arrivals, generation, count).
//! - semaphore (32 bytes): a [`crate::sync::Semaphore`]; waiting is a safepoint. Process-shared
//!   semaphores are refused (`ENOTSUP`, with a message).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::error::Errno;
use crate::sync::{Barrier as CoreBarrier, Once as CoreOnce, Semaphore};
use crate::thread::park;

/// `pthread_once`: runs `f` once for `once`, however many threads call this.
pub fn once(once: &AtomicU32, f: impl FnOnce()) {
    // SAFETY: `Once` is a transparent `AtomicU32`, whose zero is an incomplete Once.
    let o = unsafe { &*(once as *const AtomicU32 as *const CoreOnce) };
    o.call_once(f);
}

/// `pthread_spin_lock`.
pub fn spin_lock(w: &AtomicU32) {
    loop {
        // Acquire: pairs with the Release store of `spin_unlock`.
        if w.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            park::acquired();
            return;
        }
        while w.load(Ordering::Relaxed) != 0 {
            core::hint::spin_loop();
        }
    }
}

/// `pthread_spin_trylock`: `EBUSY` if held.
pub fn spin_trylock(w: &AtomicU32) -> Result<(), Errno> {
    // Acquire: as in `spin_lock`.
    if w.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
        park::acquired();
        Ok(())
    } else {
        Err(Errno(libc::EBUSY))
    }
}

/// `pthread_spin_unlock`.
pub fn spin_unlock(w: &AtomicU32) {
    // Release: publishes the critical section to the next locker.
    w.store(0, Ordering::Release);
    park::released();
}

/// `pthread_barrier_t` as crthreads lays it out.
#[repr(C)]
pub struct Barrier {
    inner: CoreBarrier,
    _rest: [u32; 6],
}

const _: () = assert!(core::mem::size_of::<Barrier>() == 32);

impl Barrier {
    /// `pthread_barrier_init`: `EINVAL` for a count of 0 or beyond what the barrier counts.
    pub fn init(&mut self, count: u32) -> Result<(), Errno> {
        if count == 0 || count as usize > CoreBarrier::MAX_THREADS {
            return Err(Errno(libc::EINVAL));
        }
        self.inner = CoreBarrier::new(count as usize);
        Ok(())
    }

    /// `pthread_barrier_wait`: true for the one thread of the round that gets
    /// `PTHREAD_BARRIER_SERIAL_THREAD`.
    pub fn wait(&self) -> bool {
        self.inner.wait().is_leader()
    }
}

/// `sem_t` as crthreads lays it out.
#[repr(C)]
pub struct Sem {
    inner: Semaphore,
    _rest: [u32; 6],
}

const _: () = assert!(core::mem::size_of::<Sem>() == 32);

/// `SEM_VALUE_MAX`.
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

impl Sem {
    /// `sem_init`: `EINVAL` above `SEM_VALUE_MAX`, `ENOTSUP` for a process-shared one.
    pub fn init(&mut self, pshared: bool, value: u32) -> Result<(), Errno> {
        if value > SEM_VALUE_MAX {
            return Err(Errno(libc::EINVAL));
        }
        if pshared {
            super::unsupported("a process-shared semaphore (sem_init with pshared != 0)");
            return Err(Errno(libc::ENOTSUP));
        }
        self.inner = Semaphore::new(value);
        Ok(())
    }

    /// `sem_wait`, or with `until` (absolute, `CLOCK_REALTIME` unless given) `sem_timedwait` /
    /// `sem_clockwait`: `ETIMEDOUT` when the time passed, `EINVAL` for a malformed time.
    /// A wait is not interrupted by signals (no `EINTR`).
    pub fn wait(&self, until: Option<(&libc::timespec, libc::clockid_t)>) -> Result<(), Errno> {
        // The time is checked first, even if a permit is there (as glibc).
        let deadline = match until {
            None => None,
            Some((ts, clock)) => {
                if clock != libc::CLOCK_REALTIME && clock != libc::CLOCK_MONOTONIC {
                    return Err(Errno(libc::EINVAL));
                }
                super::deadline(ts, clock)?
            }
        };
        if self.inner.acquire_until(deadline) { Ok(()) } else { Err(Errno(libc::ETIMEDOUT)) }
    }

    /// `sem_trywait`: `EAGAIN` if no permit.
    pub fn try_wait(&self) -> Result<(), Errno> {
        if self.inner.try_acquire() { Ok(()) } else { Err(Errno(libc::EAGAIN)) }
    }

    /// `sem_post`: `EOVERFLOW` at `SEM_VALUE_MAX`.
    pub fn post(&self) -> Result<(), Errno> {
        if self.inner.release_below(SEM_VALUE_MAX) { Ok(()) } else { Err(Errno(libc::EOVERFLOW)) }
    }

    /// `sem_getvalue`.
    pub fn value(&self) -> i32 {
        self.inner.available() as i32
    }
}
