//! `pthread_mutex_t` (40 bytes in glibc's headers) over [`RawMutex`].
//!
//! | offset | field   | meaning                                                           |
//! |--------|---------|-------------------------------------------------------------------|
//! | 0      | `lock`  | the raw mutex word: 0 free (as glibc's `__lock`), 1 held, 2 contended |
//! | 4      | `count` | recursive mutexes: how many times the owner holds it              |
//! | 8      | `owner` | [`super::owner_id`] of the holder, 0 if free                      |
//! | 16     | `kind`  | the type, where glibc keeps it: 0 normal (default), 1 recursive, 2 errorcheck, 3 adaptive |
//!
//! All zeros is `PTHREAD_MUTEX_INITIALIZER`, and glibc's `PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP`
//! and `PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP` put their type at offset 16 as well. A mutex
//! counts once towards its holder's lock depth however often a recursive one is taken.
//!
//! Not supported: process-shared, robust and priority-protocol mutexes; the attribute calls
//! that ask for them fail with `ENOTSUP` and a message (see [`MutexAttr`]).

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use crate::error::Errno;
use crate::sync::RawMutex;

const NORMAL: i32 = 0;
const RECURSIVE: i32 = 1;
const ERRORCHECK: i32 = 2;
const ADAPTIVE: i32 = 3;

/// `pthread_mutex_t` as crthreads lays it out.
#[repr(C)]
pub struct Mutex {
    lock: RawMutex,
    count: AtomicU32,
    owner: AtomicU32,
    _users: u32,
    kind: AtomicI32,
    _rest: [u32; 5],
}

const _: () = assert!(core::mem::size_of::<Mutex>() == 40);
const _: () = assert!(core::mem::offset_of!(Mutex, kind) == 16);

fn e(n: i32) -> Errno {
    Errno(n)
}

impl Mutex {
    /// `pthread_mutex_init`: a free mutex of `attr`'s type.
    pub fn init(&mut self, attr: Option<&MutexAttr>) {
        let kind = attr.map_or(NORMAL, |a| a.0 & 3);
        // SAFETY-free: plain stores into the caller's object.
        self.lock = RawMutex::new();
        self.count = AtomicU32::new(0);
        self.owner = AtomicU32::new(0);
        self._users = 0;
        self.kind = AtomicI32::new(kind);
        self._rest = [0; 5];
    }

    fn kind(&self) -> i32 {
        self.kind.load(Ordering::Relaxed) & 3
    }

    /// Checks made before blocking: `Ok(true)` if the caller already holds a recursive mutex
    /// (counted again), `Err` for a relock of an errorcheck one.
    fn relock(&self, me: u32) -> Result<bool, Errno> {
        if self.owner.load(Ordering::Relaxed) != me {
            return Ok(false);
        }
        match self.kind() {
            RECURSIVE => {
                let c = self.count.load(Ordering::Relaxed);
                if c == u32::MAX {
                    return Err(e(libc::EAGAIN));
                }
                self.count.store(c + 1, Ordering::Relaxed);
                Ok(true)
            }
            ERRORCHECK => Err(e(libc::EDEADLK)),
            _ => Ok(false),
        }
    }

    fn taken(&self, me: u32) {
        self.owner.store(me, Ordering::Relaxed);
        self.count.store(1, Ordering::Relaxed);
    }

    /// `pthread_mutex_lock`.
    pub fn lock(&self) -> Result<(), Errno> {
        let me = super::owner_id();
        if self.relock(me)? {
            return Ok(());
        }
        self.lock.lock();
        self.taken(me);
        Ok(())
    }

    /// `pthread_mutex_trylock`.
    pub fn try_lock(&self) -> Result<(), Errno> {
        let me = super::owner_id();
        if self.kind() == RECURSIVE && self.relock(me)? {
            return Ok(());
        }
        if !self.lock.try_lock() {
            return Err(e(libc::EBUSY));
        }
        self.taken(me);
        Ok(())
    }

    /// `pthread_mutex_timedlock` / `pthread_mutex_clocklock`: the absolute time `ts` on `clock`.
    pub fn lock_until(&self, ts: &libc::timespec, clock: libc::clockid_t) -> Result<(), Errno> {
        if clock != libc::CLOCK_REALTIME && clock != libc::CLOCK_MONOTONIC {
            return Err(e(libc::EINVAL));
        }
        let me = super::owner_id();
        if self.relock(me)? {
            return Ok(());
        }
        if self.lock.try_lock() {
            self.taken(me);
            return Ok(());
        }
        let deadline = super::deadline(ts, clock)?;
        if !self.lock.lock_until(deadline) {
            return Err(e(libc::ETIMEDOUT));
        }
        self.taken(me);
        Ok(())
    }

    /// `pthread_mutex_unlock`. A normal mutex may only be unlocked by the thread that holds it
    /// here (the lock depth is per thread): otherwise `EPERM`, as for errorcheck.
    pub fn unlock(&self) -> Result<(), Errno> {
        let me = super::owner_id();
        if self.owner.load(Ordering::Relaxed) != me {
            return Err(e(libc::EPERM));
        }
        if self.kind() == RECURSIVE {
            let c = self.count.load(Ordering::Relaxed);
            if c > 1 {
                self.count.store(c - 1, Ordering::Relaxed);
                return Ok(());
            }
        }
        self.count.store(0, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        // SAFETY: the calling thread holds the word (it is the recorded owner).
        unsafe { self.lock.unlock() };
        Ok(())
    }

    /// `pthread_mutex_destroy`: `EBUSY` while held.
    pub fn destroy(&self) -> Result<(), Errno> {
        if self.lock.is_locked() {
            return Err(e(libc::EBUSY));
        }
        Ok(())
    }

    /// For a condition variable: releases the mutex completely (whatever its recursion count),
    /// returning the count to give back to [`Mutex::relock_after_wait`]; `EPERM` if the caller
    /// does not hold it.
    pub(crate) fn unlock_for_wait(&self) -> Result<u32, Errno> {
        let me = super::owner_id();
        if self.owner.load(Ordering::Relaxed) != me {
            return Err(e(libc::EPERM));
        }
        let c = self.count.load(Ordering::Relaxed).max(1);
        self.count.store(1, Ordering::Relaxed);
        self.unlock()?;
        Ok(c)
    }

    /// Takes the mutex back after a condition-variable wait, with its recursion count.
    pub(crate) fn relock_after_wait(&self, count: u32) {
        self.lock.lock();
        self.owner.store(super::owner_id(), Ordering::Relaxed);
        self.count.store(count, Ordering::Relaxed);
    }
}

/// `pthread_mutexattr_t` (4 bytes): the mutex type in the low bits.
#[repr(C)]
pub struct MutexAttr(pub i32);

const _: () = assert!(core::mem::size_of::<MutexAttr>() == 4);

impl MutexAttr {
    /// `pthread_mutexattr_settype`.
    pub fn set_type(&mut self, t: i32) -> Result<(), Errno> {
        if !(NORMAL..=ADAPTIVE).contains(&t) {
            return Err(e(libc::EINVAL));
        }
        self.0 = t;
        Ok(())
    }

    /// `pthread_mutexattr_gettype`.
    pub fn get_type(&self) -> i32 {
        self.0 & 3
    }

    /// `pthread_mutexattr_setpshared`: only `PTHREAD_PROCESS_PRIVATE` (`ENOTSUP` for shared).
    pub fn set_pshared(&mut self, v: i32) -> Result<(), Errno> {
        unsupported_value(v, libc::PTHREAD_PROCESS_PRIVATE, libc::PTHREAD_PROCESS_SHARED, "a process-shared mutex")
    }

    /// `pthread_mutexattr_setrobust`: only `PTHREAD_MUTEX_STALLED` (`ENOTSUP` for robust).
    pub fn set_robust(&mut self, v: i32) -> Result<(), Errno> {
        unsupported_value(v, libc::PTHREAD_MUTEX_STALLED, libc::PTHREAD_MUTEX_ROBUST, "a robust mutex")
    }

    /// `pthread_mutexattr_setprotocol`: only `PTHREAD_PRIO_NONE` (`ENOTSUP` for the others).
    pub fn set_protocol(&mut self, v: i32) -> Result<(), Errno> {
        if v == libc::PTHREAD_PRIO_PROTECT {
            super::unsupported("a priority-protect mutex");
            return Err(e(libc::ENOTSUP));
        }
        unsupported_value(v, libc::PTHREAD_PRIO_NONE, libc::PTHREAD_PRIO_INHERIT, "a priority-inheritance mutex")
    }
}

/// `ok` is accepted, `refused` fails with `ENOTSUP` and a message naming `what`, anything else
/// is `EINVAL`.
pub(crate) fn unsupported_value(v: i32, ok: i32, refused: i32, what: &str) -> Result<(), Errno> {
    if v == ok {
        Ok(())
    } else if v == refused {
        super::unsupported(what);
        Err(e(libc::ENOTSUP))
    } else {
        Err(e(libc::EINVAL))
    }
}
