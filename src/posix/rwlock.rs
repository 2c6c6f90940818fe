//! `pthread_rwlock_t` (56 bytes in glibc's headers) over [`RawRwLock`].
//!
//! | offset | field    | meaning                                                          |
//! |--------|----------|------------------------------------------------------------------|
//! | 0      | `raw`    | the raw rwlock word (0: unlocked, as glibc's zeroed `__readers`) |
//! | 4      | `writer` | [`super::owner_id`] of the write-lock holder, 0 if none          |
//! | 48     | `kind`   | where glibc keeps `__flags`: the `PTHREAD_RWLOCK_PREFER_*_NP` kind |
//!
//! All zeros is `PTHREAD_RWLOCK_INITIALIZER`. Every read or write lock counts once towards its
//! holder's lock depth. The raw lock prefers writers whatever the kind (a waiting writer holds
//! off new readers), so a thread that takes a second read lock while a writer waits deadlocks,
//! which glibc's default reader-preferring kind allows; the kind is recorded and read back.
//! Process-shared rwlocks are refused (`ENOTSUP`, with a message).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::error::Errno;
use crate::sync::RawRwLock;

/// `pthread_rwlock_t` as crthreads lays it out.
#[repr(C)]
pub struct RwLock {
    raw: RawRwLock,
    writer: AtomicU32,
    _pad: [u32; 10],
    kind: u32,
    _pad2: u32,
}

const _: () = assert!(core::mem::size_of::<RwLock>() == 56);
const _: () = assert!(core::mem::offset_of!(RwLock, kind) == 48);

/// `pthread_rwlockattr_t` (8 bytes): the kind and the sharing.
#[repr(C)]
pub struct RwLockAttr {
    /// `PTHREAD_RWLOCK_PREFER_READER_NP` (0), `..._WRITER_NP` (1) or
    /// `..._WRITER_NONRECURSIVE_NP` (2).
    pub kind: i32,
    _shared: i32,
}

const _: () = assert!(core::mem::size_of::<RwLockAttr>() == 8);

impl RwLockAttr {
    /// The defaults of `pthread_rwlockattr_init`.
    pub const DEFAULT: RwLockAttr = RwLockAttr { kind: 0, _shared: 0 };

    /// `pthread_rwlockattr_setkind_np`: `EINVAL` for an unknown kind.
    pub fn set_kind(&mut self, k: i32) -> Result<(), Errno> {
        if !(0..=2).contains(&k) {
            return Err(Errno(libc::EINVAL));
        }
        self.kind = k;
        Ok(())
    }

    /// `pthread_rwlockattr_setpshared`: process-private only.
    pub fn set_pshared(&mut self, v: i32) -> Result<(), Errno> {
        super::mutex::unsupported_value(
            v,
            libc::PTHREAD_PROCESS_PRIVATE,
            libc::PTHREAD_PROCESS_SHARED,
            "a process-shared read-write lock",
        )
    }
}

/// A validated deadline for a timed lock, parsed only once the lock must be waited for.
fn deadline_of(ts: &libc::timespec, clock: libc::clockid_t) -> Result<Option<u64>, Errno> {
    if clock != libc::CLOCK_REALTIME && clock != libc::CLOCK_MONOTONIC {
        return Err(Errno(libc::EINVAL));
    }
    super::deadline(ts, clock)
}

impl RwLock {
    /// `pthread_rwlock_init`.
    pub fn init(&mut self, attr: Option<&RwLockAttr>) {
        self.raw = RawRwLock::new();
        self.writer = AtomicU32::new(0);
        self._pad = [0; 10];
        self.kind = attr.map_or(0, |a| a.kind as u32);
        self._pad2 = 0;
    }

    fn is_writer(&self) -> bool {
        self.writer.load(Ordering::Relaxed) == super::owner_id()
    }

    /// `pthread_rwlock_rdlock`, or with `until` the timed and clock variants.
    pub fn read(&self, until: Option<(&libc::timespec, libc::clockid_t)>) -> Result<(), Errno> {
        if self.is_writer() {
            return Err(Errno(libc::EDEADLK));
        }
        match until {
            None => self.raw.read(),
            Some((ts, clock)) => {
                if !self.raw.try_read() && !self.raw.read_until(deadline_of(ts, clock)?) {
                    return Err(Errno(libc::ETIMEDOUT));
                }
            }
        }
        Ok(())
    }

    /// `pthread_rwlock_tryrdlock`.
    pub fn try_read(&self) -> Result<(), Errno> {
        if self.raw.try_read() { Ok(()) } else { Err(Errno(libc::EBUSY)) }
    }

    /// `pthread_rwlock_wrlock`, or with `until` the timed and clock variants.
    pub fn write(&self, until: Option<(&libc::timespec, libc::clockid_t)>) -> Result<(), Errno> {
        if self.is_writer() {
            return Err(Errno(libc::EDEADLK));
        }
        match until {
            None => self.raw.write(),
            Some((ts, clock)) => {
                if !self.raw.try_write() && !self.raw.write_until(deadline_of(ts, clock)?) {
                    return Err(Errno(libc::ETIMEDOUT));
                }
            }
        }
        self.writer.store(super::owner_id(), Ordering::Relaxed);
        Ok(())
    }

    /// `pthread_rwlock_trywrlock`.
    pub fn try_write(&self) -> Result<(), Errno> {
        if !self.raw.try_write() {
            return Err(Errno(libc::EBUSY));
        }
        self.writer.store(super::owner_id(), Ordering::Relaxed);
        Ok(())
    }

    /// `pthread_rwlock_unlock`: the write lock if the caller holds it, else one read lock;
    /// `EPERM` if the caller holds no lock at all.
    pub fn unlock(&self) -> Result<(), Errno> {
        if self.is_writer() {
            self.writer.store(0, Ordering::Relaxed);
            // SAFETY: the calling thread is the recorded writer.
            unsafe { self.raw.write_unlock() };
            return Ok(());
        }
        if !self.raw.is_locked() || self.raw.is_locked_exclusive() || crate::sync::lock_depth() == 0 {
            return Err(Errno(libc::EPERM));
        }
        // SAFETY: the lock is read-locked and the caller holds locks; POSIX makes unlocking a
        // read lock one does not hold undefined.
        unsafe { self.raw.read_unlock() };
        Ok(())
    }
}
