//! The raw reader-writer lock under [`super::RwLock`]: one futex word, with the lock depth kept
//! through `park` (a read lock and a write lock each count once).
//!
//! | bits   | value                      | meaning                                        |
//! |--------|----------------------------|------------------------------------------------|
//! | 0..30  | 0                          | unlocked                                       |
//! | 0..30  | 1 ..= `MAX_READERS`        | read-locked by that many readers               |
//! | 0..30  | `WRITE_LOCKED` (2^30 − 1)  | write-locked                                   |
//! | 30     | `READERS_WAITING`          | a reader may sleep on the word                 |
//! | 31     | `WRITERS_WAITING`          | a writer may sleep on the word; new readers wait |
//!
//! The design is std's futex rwlock (same bits, same writer preference: no new reader enters
//! while a writer waits) with one difference: std puts writers to sleep on a second word and
//! wakes exactly one thread, which needs the wake call to say whether it woke anyone. Here every
//! waiter sleeps on the one word, and a release that leaves the lock free while a waiting bit is
//! set clears both bits and then wakes every sleeper; those that lose the race set their bit
//! again and sleep. That costs a stampede when a contended lock is released, nothing otherwise,
//! and it has one invariant that survives spurious returns, timeouts and restores: **a waiting
//! bit is only ever cleared by a release, which wakes everyone after clearing it.** A sleeper
//! sleeps on a value with its bit set, so either the word still has that bit (and the lock is
//! held, or a release is between its decrement and its clearing, and will wake it), or the word
//! has changed and the futex does not let it sleep.
//!
//! Fast paths: `read` is a load and one CAS, `write` one CAS, `read_unlock` one `fetch_sub`,
//! `write_unlock` one swap, each plus the depth update. A release that brings the depth to 0 is a
//! safepoint (after the word is free), as is a wait at depth 0.
#![allow(unsafe_code)] // The unlocks have a precondition the type system cannot check.

use super::{SPINS, loom_const_fn};
use crate::loom::{AtomicU32, Ordering, park, spin_hint};

const READ_LOCKED: u32 = 1;
const MASK: u32 = (1 << 30) - 1;
const WRITE_LOCKED: u32 = MASK;
const MAX_READERS: u32 = MASK - 1;
const READERS_WAITING: u32 = 1 << 30;
const WRITERS_WAITING: u32 = 1 << 31;
const WAITING: u32 = READERS_WAITING | WRITERS_WAITING;

#[inline]
fn is_unlocked(s: u32) -> bool {
    s & MASK == 0
}

#[inline]
fn is_write_locked(s: u32) -> bool {
    s & MASK == WRITE_LOCKED
}

/// A reader may enter: not write-locked, room for one more reader, and nobody waiting (a waiting
/// writer has priority; waiting readers are waiting for a release that will wake them).
#[inline]
fn is_read_lockable(s: u32) -> bool {
    s & MASK < MAX_READERS && s & WAITING == 0
}

/// A reader-writer lock without data or poisoning that counts towards the lock depth: each lock
/// must be released by the thread that took it (the depth is per thread).
///
/// The shape is `lock_api::RawRwLock`'s. Zeroed memory is an unlocked `RawRwLock`.
#[repr(transparent)]
#[derive(Debug)]
pub struct RawRwLock {
    state: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<RawRwLock>() == 4);

impl RawRwLock {
    loom_const_fn! {
        /// An unlocked lock.
        #[inline]
        pub fn new() -> RawRwLock {
            RawRwLock { state: AtomicU32::new(0) }
        }
    }

    /// Takes a shared lock, blocking while a writer holds or waits for the lock; the depth grows
    /// by one.
    ///
    /// # Panics
    /// If 2^30 − 2 read locks are already held.
    #[inline]
    pub fn read(&self) {
        let s = self.state.load(Ordering::Relaxed);
        // Acquire: pairs with the Release of the last write unlock, so the writer's critical
        // section happens before this reader's.
        if !is_read_lockable(s)
            || self.state.compare_exchange_weak(s, s + READ_LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            self.read_contended(None);
        }
        park::acquired();
    }

    /// Takes a shared lock if that needs no waiting (the depth grows by one if it did).
    #[inline]
    pub fn try_read(&self) -> bool {
        let ok = self
            .state
            // Acquire: as in `read`.
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| is_read_lockable(s).then_some(s + READ_LOCKED))
            .is_ok();
        if ok {
            park::acquired();
        }
        ok
    }

    /// Takes a shared lock, waiting at most until the wall-clock time `deadline` (ns since the
    /// epoch); true (and the depth one greater) if it was taken.
    #[cfg(not(loom))]
    pub(crate) fn read_until(&self, deadline: Option<u64>) -> bool {
        if self.try_read() {
            return true;
        }
        // `read_contended` leaves counting the lock to its caller.
        let ok = self.read_contended(deadline);
        if ok {
            park::acquired();
        }
        ok
    }

    /// Takes the exclusive lock, waiting at most until the wall-clock time `deadline`; true (and
    /// the depth one greater) if it was taken.
    #[cfg(not(loom))]
    pub(crate) fn write_until(&self, deadline: Option<u64>) -> bool {
        if self.try_write() {
            return true;
        }
        let ok = self.write_contended(deadline);
        if ok {
            park::acquired();
        }
        ok
    }

    /// Waits for a shared lock (until `deadline`); true if taken.
    #[cold]
    fn read_contended(&self, deadline: Option<u64>) -> bool {
        let mut state = self.spin_read();
        loop {
            if is_read_lockable(state) {
                // Acquire: as in `read`.
                match self.state.compare_exchange_weak(state, state + READ_LOCKED, Ordering::Acquire, Ordering::Relaxed)
                {
                    Ok(_) => return true,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if state & MASK == MAX_READERS {
                panic!("too many active read locks on RwLock");
            }
            // Announce ourselves before sleeping, on a word that is not free (or is free only
            // until its releaser clears the bits, which then wakes us).
            if state & READERS_WAITING == 0 {
                if let Err(s) =
                    self.state.compare_exchange(state, state | READERS_WAITING, Ordering::Relaxed, Ordering::Relaxed)
                {
                    state = s;
                    continue;
                }
            }
            if super::passed(deadline) {
                return false;
            }
            park::wait(&self.state, state | READERS_WAITING, deadline);
            state = self.spin_read();
        }
    }

    /// Takes the exclusive lock, blocking while anyone holds it; the depth grows by one.
    #[inline]
    pub fn write(&self) {
        // Acquire: pairs with the Release of the last unlock (read or write), so every earlier
        // critical section happens before this writer's.
        if self.state.compare_exchange(0, WRITE_LOCKED, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.write_contended(None);
        }
        park::acquired();
    }

    /// Takes the exclusive lock if it is free (the depth grows by one if it was).
    #[inline]
    pub fn try_write(&self) -> bool {
        let ok = self
            .state
            // Acquire: as in `write`.
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| is_unlocked(s).then_some(s | WRITE_LOCKED))
            .is_ok();
        if ok {
            park::acquired();
        }
        ok
    }

    /// Waits for the exclusive lock (until `deadline`); true if taken.
    #[cold]
    fn write_contended(&self, deadline: Option<u64>) -> bool {
        let mut state = self.spin_write();
        loop {
            if is_unlocked(state) {
                // Keeps any waiting bits: a free word with bits set is a release in progress,
                // which will clear them and wake their sleepers.
                // Acquire: as in `write`.
                match self.state.compare_exchange_weak(
                    state,
                    state | WRITE_LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if state & WRITERS_WAITING == 0 {
                if let Err(s) =
                    self.state.compare_exchange(state, state | WRITERS_WAITING, Ordering::Relaxed, Ordering::Relaxed)
                {
                    state = s;
                    continue;
                }
            }
            if super::passed(deadline) {
                // Our bit must not keep holding off readers: clear it and wake everyone; other
                // waiting writers set it again.
                self.state.fetch_and(!WRITERS_WAITING, Ordering::Relaxed);
                park::wake(&self.state, i32::MAX);
                return false;
            }
            park::wait(&self.state, state | WRITERS_WAITING, deadline);
            state = self.spin_write();
        }
    }

    /// Releases a shared lock; the depth shrinks by one (at 0, a due checkpoint is taken here).
    ///
    /// # Safety
    /// The calling thread must hold a read lock on this lock, taken on this thread.
    #[inline]
    pub unsafe fn read_unlock(&self) {
        // Release: publishes this reader's critical section (its reads) to the next writer,
        // whose Acquire reads this value or a later one in its release sequence.
        let s = self.state.fetch_sub(READ_LOCKED, Ordering::Release) - READ_LOCKED;
        if is_unlocked(s) && s & WAITING != 0 {
            self.wake_all();
        }
        park::released();
    }

    /// Releases the exclusive lock; the depth shrinks by one (at 0, a due checkpoint is taken
    /// here).
    ///
    /// # Safety
    /// The calling thread must hold the write lock, taken on this thread.
    #[inline]
    pub unsafe fn write_unlock(&self) {
        // Clears the waiting bits with the lock: everyone who set one is woken just below.
        // Release: publishes the writer's critical section to the next locker (its Acquire).
        if self.state.swap(0, Ordering::Release) & WAITING != 0 {
            park::wake(&self.state, i32::MAX);
        }
        park::released();
    }

    /// The last reader left a lock with waiting bits: clear them, then wake every sleeper.
    #[cold]
    fn wake_all(&self) {
        // Relaxed: an RMW, so it continues the release sequence of our `fetch_sub`; whoever
        // acquires from the value it writes still synchronises with our release. If a writer
        // took the lock in between, its bits are cleared too, and its sleepers woken: they look
        // at the word again and set their bits again.
        self.state.fetch_and(!WAITING, Ordering::Relaxed);
        park::wake(&self.state, i32::MAX);
    }

    /// Spins while a writer holds the lock and nobody waits, briefly.
    fn spin_read(&self) -> u32 {
        self.spin_until(|s| !is_write_locked(s) || s & WAITING != 0)
    }

    /// Spins while the lock is held and no writer waits, briefly.
    fn spin_write(&self) -> u32 {
        self.spin_until(|s| is_unlocked(s) || s & WRITERS_WAITING != 0)
    }

    fn spin_until(&self, f: impl Fn(u32) -> bool) -> u32 {
        let mut n = SPINS;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if f(s) || n == 0 {
                return s;
            }
            spin_hint();
            n -= 1;
        }
    }

    /// Whether the lock is held, shared or exclusive (a racy snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        !is_unlocked(self.state.load(Ordering::Relaxed))
    }

    /// Whether the lock is held exclusively (a racy snapshot).
    #[inline]
    pub fn is_locked_exclusive(&self) -> bool {
        is_write_locked(self.state.load(Ordering::Relaxed))
    }
}

#[cfg(not(loom))]
impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::lock_depth;

    #[test]
    fn readers_share_and_exclude_writers() {
        let l = RawRwLock::new();
        l.read();
        assert!(l.try_read());
        assert_eq!(lock_depth(), 2, "each read lock counts");
        assert!(!l.try_write());
        assert!(l.is_locked() && !l.is_locked_exclusive());
        // SAFETY: two read locks held by this thread.
        unsafe {
            l.read_unlock();
            l.read_unlock();
        }
        assert_eq!(lock_depth(), 0);
        l.write();
        assert!(l.is_locked_exclusive());
        assert!(!l.try_read() && !l.try_write());
        assert_eq!(lock_depth(), 1);
        // SAFETY: the write lock is held by this thread.
        unsafe { l.write_unlock() };
        assert!(!l.is_locked());
        assert_eq!(lock_depth(), 0);
    }

    #[test]
    fn a_waiting_writer_holds_off_new_readers() {
        let l = std::sync::Arc::new(RawRwLock::new());
        l.read();
        let l2 = l.clone();
        let w = std::thread::spawn(move || {
            l2.write();
            // SAFETY: held by this thread.
            unsafe { l2.write_unlock() };
        });
        // The writer cannot get in while we read; once it has announced itself, a new reader
        // must not get in either (writer preference). Wait for the announcement on the word.
        while l.state.load(Ordering::Relaxed) & WRITERS_WAITING == 0 {
            std::thread::yield_now();
        }
        assert!(!l.try_read(), "a reader overtook a waiting writer");
        // SAFETY: one read lock held by this thread.
        unsafe { l.read_unlock() };
        w.join().unwrap();
        assert_eq!(l.state.load(Ordering::Relaxed), 0, "the bits were cleared by the releases");
    }
}
