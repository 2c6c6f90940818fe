//! [`Once`]: std's one-time initialisation (std's futex design), waiting through `park`.
//!
//! | bits | value        | meaning                                                    |
//! |------|--------------|------------------------------------------------------------|
//! | 0..2 | `INCOMPLETE` (0) | nothing has run yet                                    |
//! | 0..2 | `POISONED` (1)   | a closure panicked; the next `call_once_force` runs    |
//! | 0..2 | `RUNNING` (2)    | a thread runs the closure                              |
//! | 0..2 | `COMPLETE` (3)   | done; every call returns at once                       |
//! | 2    | `QUEUED` (4)     | a thread may sleep on the word                         |
//!
//! Zeroed memory is an incomplete `Once`. The thread that moves the word to `RUNNING` runs the
//! closure; a guard stores `COMPLETE` (or `POISONED` if the closure unwinds) and wakes every
//! sleeper if `QUEUED` was set. Waiters sleep on `RUNNING | QUEUED` and look at the word again
//! after every return.
//!
//! `RUNNING` is not a lock and does not count towards the depth: the closure is the program's
//! code and may reach safepoints of its own (release its last lock, wait at depth 0); a checkpoint
//! taken then captures the word as `RUNNING` and the running thread inside its closure, and a
//! restore resumes both, so the waiters, restored waiting, see it complete as they would have.
//! Counting it would forbid checkpoints for as long as any initialiser runs, and an initialiser
//! that waits for another thread at depth > 0 could never be checkpointed at all.

use core::cell::Cell;
use core::fmt;

use super::loom_const_fn;
use crate::loom::park;
use crate::loom::{AtomicU32, Ordering};

const INCOMPLETE: u32 = 0;
const POISONED: u32 = 1;
const RUNNING: u32 = 2;
const COMPLETE: u32 = 3;
const QUEUED: u32 = 4;
const STATE_MASK: u32 = 0b11;

/// One-time initialisation, with std's API. One `u32` word (`repr(transparent)`): zeroed memory
/// is an incomplete `Once`.
#[repr(transparent)]
pub struct Once {
    state: AtomicU32,
}

/// What [`Once::call_once_force`] tells its closure (a mirror of std's type, which has no
/// public constructor).
pub struct OnceState {
    poisoned: bool,
    set_state_to: Cell<u32>,
}

impl OnceState {
    /// Whether an earlier closure of this `Once` panicked.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

impl fmt::Debug for OnceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceState").field("poisoned", &self.is_poisoned()).finish()
    }
}

/// Stores the final state (COMPLETE, or POISONED if the closure unwound past it) and wakes the
/// sleepers.
struct CompletionGuard<'a> {
    state: &'a AtomicU32,
    set_state_on_drop_to: u32,
}

impl Drop for CompletionGuard<'_> {
    fn drop(&mut self) {
        // Release: publishes the closure's effects to every thread that sees COMPLETE with an
        // Acquire load (`is_completed`, `call`, `wait`).
        if self.state.swap(self.set_state_on_drop_to, Ordering::Release) & QUEUED != 0 {
            park::wake(self.state, i32::MAX);
        }
    }
}

impl Once {
    loom_const_fn! {
        /// A `Once` that has not run.
        #[inline]
        pub fn new() -> Once {
            Once { state: AtomicU32::new(INCOMPLETE) }
        }
    }

    /// Runs `f` if no closure of this `Once` has completed, exactly once across all threads;
    /// other callers block until it has.
    ///
    /// # Panics
    /// If an earlier closure panicked (the `Once` is poisoned); the panic of `f` propagates and
    /// poisons it.
    #[inline]
    pub fn call_once<F: FnOnce()>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(false, &mut |_| f.take().expect("the closure runs once")());
    }

    /// As [`call_once`](Self::call_once), but runs `f` on a poisoned `Once` too, telling it so.
    #[inline]
    pub fn call_once_force<F: FnOnce(&OnceState)>(&self, f: F) {
        if self.is_completed() {
            return;
        }
        let mut f = Some(f);
        self.call(true, &mut |p| f.take().expect("the closure runs once")(p));
    }

    /// Whether a closure has completed (an Acquire load: its effects are visible if so).
    #[inline]
    pub fn is_completed(&self) -> bool {
        // Acquire: pairs with the Release swap of `CompletionGuard`.
        self.state.load(Ordering::Acquire) == COMPLETE
    }

    /// Blocks until a closure has completed.
    ///
    /// # Panics
    /// If the `Once` is poisoned (now or while waiting).
    pub fn wait(&self) {
        if !self.is_completed() {
            self.wait_slow(false);
        }
    }

    /// Blocks until a closure has completed, ignoring poisoning.
    pub fn wait_force(&self) {
        if !self.is_completed() {
            self.wait_slow(true);
        }
    }

    #[cold]
    fn wait_slow(&self, ignore_poisoning: bool) {
        // Acquire: as in `is_completed`.
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            match state {
                COMPLETE => return,
                POISONED if !ignore_poisoning => panic!("Once instance has previously been poisoned"),
                _ => {
                    if state & QUEUED == 0 {
                        // Acquire on failure: the new value may be COMPLETE.
                        if let Err(now) = self.state.compare_exchange_weak(
                            state,
                            state | QUEUED,
                            Ordering::Relaxed,
                            Ordering::Acquire,
                        ) {
                            state = now;
                            continue;
                        }
                    }
                    park::wait(&self.state, state | QUEUED, None);
                    // Acquire: as in `is_completed`.
                    state = self.state.load(Ordering::Acquire);
                }
            }
        }
    }

    #[cold]
    fn call(&self, ignore_poisoning: bool, f: &mut dyn FnMut(&OnceState)) {
        // Acquire: as in `is_completed`.
        let mut state_and_queued = self.state.load(Ordering::Acquire);
        loop {
            let state = state_and_queued & STATE_MASK;
            let queued = state_and_queued & QUEUED;
            match state {
                COMPLETE => return,
                POISONED if !ignore_poisoning => panic!("Once instance has previously been poisoned"),
                INCOMPLETE | POISONED => {
                    // Acquire (both ways): a POISONED word was stored with Release by a panicked
                    // closure whose partial effects the next one may look at; a failed CAS may
                    // read COMPLETE.
                    if let Err(now) = self.state.compare_exchange_weak(
                        state_and_queued,
                        RUNNING | queued,
                        Ordering::Acquire,
                        Ordering::Acquire,
                    ) {
                        state_and_queued = now;
                        continue;
                    }
                    let mut guard = CompletionGuard { state: &self.state, set_state_on_drop_to: POISONED };
                    let once_state = OnceState { poisoned: state == POISONED, set_state_to: Cell::new(COMPLETE) };
                    f(&once_state);
                    guard.set_state_on_drop_to = once_state.set_state_to.get();
                    return;
                }
                _ => {
                    debug_assert_eq!(state, RUNNING);
                    if queued == 0 {
                        state_and_queued |= QUEUED;
                        // Acquire on failure: the new value may be COMPLETE.
                        if let Err(now) = self.state.compare_exchange_weak(
                            state,
                            state_and_queued,
                            Ordering::Relaxed,
                            Ordering::Acquire,
                        ) {
                            state_and_queued = now;
                            continue;
                        }
                    }
                    park::wait(&self.state, state_and_queued, None);
                    // Acquire: as in `is_completed`.
                    state_and_queued = self.state.load(Ordering::Acquire);
                }
            }
        }
    }
}

impl Default for Once {
    fn default() -> Once {
        Once::new()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32 as StdAtomicU32, Ordering::Relaxed};

    #[test]
    fn runs_once_under_contention_and_everyone_sees_it() {
        for _ in 0..50 {
            let once = Arc::new(Once::new());
            let runs = Arc::new(StdAtomicU32::new(0));
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    let (once, runs) = (once.clone(), runs.clone());
                    std::thread::spawn(move || {
                        once.call_once(|| {
                            std::thread::yield_now();
                            runs.fetch_add(1, Relaxed);
                        });
                        assert!(once.is_completed());
                        assert_eq!(runs.load(Relaxed), 1, "returned before the closure finished");
                    })
                })
                .collect();
            hs.into_iter().for_each(|h| h.join().unwrap());
        }
    }

    #[test]
    fn a_panicking_closure_poisons_and_force_recovers() {
        let once = Arc::new(Once::new());
        let o2 = once.clone();
        assert!(std::thread::spawn(move || o2.call_once(|| panic!("init failed"))).join().is_err());
        assert!(!once.is_completed());
        let o3 = once.clone();
        assert!(std::thread::spawn(move || o3.call_once(|| {})).join().is_err(), "call_once panics on poison");
        let o4 = once.clone();
        assert!(std::thread::spawn(move || o4.wait()).join().is_err(), "wait panics on poison");
        let mut saw_poison = false;
        once.call_once_force(|s| saw_poison = s.is_poisoned());
        assert!(saw_poison && once.is_completed());
        once.call_once(|| unreachable!("already complete"));
        once.wait();
        once.wait_force();
    }

    #[test]
    fn waiters_block_until_the_closure_completes() {
        let once = Arc::new(Once::new());
        let started = Arc::new(Once::new());
        let (o, s) = (once.clone(), started.clone());
        let runner = std::thread::spawn(move || {
            o.call_once(|| {
                s.call_once(|| {});
                // Let the waiter reach its wait; it must not return before we finish.
                std::thread::yield_now();
            })
        });
        started.wait();
        once.wait();
        assert!(once.is_completed());
        runner.join().unwrap();
    }
}
