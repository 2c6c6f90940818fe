//! What crthreads' C library does for a C program: its `main` as the main persistent thread,
//! and the pthread and semaphore objects, laid out as glibc's headers lay them out (the
//! program was compiled against them: their sizes, and the all-zero static initialisers).
//!
//! The C library (`cabi/`) only translates: it checks arguments, converts C types and calls
//! here. Every object keeps its state in the words the program's memory gives it (its
//! `pthread_mutex_t`, say), in the persistent heap or the program's globals, so a checkpoint
//! holds it with the rest of the program; the locking is the checkpoint-aware raw primitives'
//! of [`crate::sync`] (lock depth, safepoints).
//!
//! | object               | size | state                                                     |
//! |----------------------|------|-----------------------------------------------------------|
//! | `pthread_mutex_t`    | 40   | [`mutex::Mutex`]: a raw mutex word, count, owner, kind at 16 |
//! | `pthread_cond_t`     | 48   | [`cond::Cond`]: a sequence word, the clock                |
//! | `pthread_rwlock_t`   | 56   | [`rwlock::RwLock`]: a raw rwlock word, the writer, the kind |
//! | `pthread_barrier_t`  | 32   | [`misc::Barrier`]: a [`crate::sync::Barrier`]             |
//! | `pthread_spinlock_t` | 4    | [`misc::spin_lock`]: one word                             |
//! | `pthread_once_t`     | 4    | [`crate::sync::Once`]'s word ([`misc::once`])             |
//! | `sem_t`              | 32   | [`misc::Sem`]: a [`crate::sync::Semaphore`]               |
//!
//! What is not supported (process-shared objects, robust mutexes, priority protocols) is
//! refused where it is asked for, with the error number each function documents and a
//! one-line message on stderr.
#![allow(unsafe_code)] // Objects in the program's memory, C strings.

pub mod attr;
pub mod cond;
pub mod key;
pub mod main;
pub mod misc;
pub mod mutex;
pub mod process;
pub mod rwlock;

/// A one-line message on stderr about something crthreads does not support.
pub fn unsupported(what: &str) {
    crate::sys::warn(&format!("{what} is not supported by crthreads"));
}

/// The current thread's owner id for mutexes and rwlocks: its slot plus one for a persistent
/// thread, the kernel thread id with the top bit set otherwise. Never 0.
pub fn owner_id() -> u32 {
    match crate::thread::native::slot() {
        Some(i) => i as u32 + 1,
        None => (crate::sys::thread::gettid() as u32) | 0x8000_0000,
    }
}

/// A wall-clock deadline (ns since the epoch) from an absolute `timespec` on `clock`
/// (`CLOCK_REALTIME` or `CLOCK_MONOTONIC`); `Err(EINVAL)` for a malformed one.
pub fn deadline(ts: &libc::timespec, clock: libc::clockid_t) -> Result<Option<u64>, crate::Errno> {
    if ts.tv_nsec < 0 || ts.tv_nsec >= 1_000_000_000 {
        return Err(crate::Errno(libc::EINVAL));
    }
    if ts.tv_sec < 0 {
        return Ok(Some(0));
    }
    let at = (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64);
    Ok(Some(match clock {
        libc::CLOCK_MONOTONIC => {
            let (now, rt) = (crate::sys::now_ns(), crate::sys::realtime_ns());
            if at >= now { rt.saturating_add(at - now) } else { rt.saturating_sub(now - at) }
        }
        _ => at,
    }))
}
