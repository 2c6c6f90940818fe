//! The handshake between threads leaving their safepoints and the coordinator gathering them,
//! written against the concurrency facade (`crate::loom`) so that `loom-tests/` models this
//! very code.
//!
//! Two kinds of word:
//! - the coordinator's *phase*: [`IDLE`], [`GATHERING`] or [`COMMITTING`];
//! - each thread's *side* state: [`NONE`] (no OS thread), [`SAFE`] (at a safepoint, its stack
//!   frozen) or [`RUNNING`].
//!
//! The invariant: **while the phase is `COMMITTING`, no side is `RUNNING`** and no thread runs
//! region code, so the checkpoint copies frozen stacks and a quiescent heap.
//!
//! It holds by Dekker's argument. A thread leaving a safepoint stores `RUNNING` and then reads
//! the phase ([`Handshake::leave_safe`]); the coordinator stores `GATHERING` and then reads
//! every side ([`Handshake::all_safe`]). Both pairs are separated by a sequentially consistent
//! fence, so at least one of the two sees the other's store: either the thread sees the
//! gathering and steps back to `SAFE` having run nothing, or the coordinator sees it running
//! and waits (or preempts it). Once every side was seen safe under `GATHERING`, no side can
//! leave until the phase is `IDLE` again ([`Handshake::finish`]).
//!
//! An attempt that cannot gather everyone is abandoned by going back to `IDLE` without
//! committing: the threads that were safe stay where they were and simply leave later.

use crate::loom::{AtomicU32, Ordering, futex};

/// No checkpoint is under way.
pub const IDLE: u32 = 0;
/// An attempt is gathering threads.
pub const GATHERING: u32 = 1;
/// An attempt is committing (or rolling back): nobody runs.
pub const COMMITTING: u32 = 2;

/// No OS thread serves this side.
pub const NONE: u32 = 0;
/// At a safepoint: the region side is switched out and its stack frozen.
pub const SAFE: u32 = 1;
/// Running region code (or about to).
pub const RUNNING: u32 = 2;

/// The coordinator's phase, and a counter bumped whenever a side's state changes (the
/// gatherer sleeps on it).
pub struct Handshake {
    phase: AtomicU32,
    changes: AtomicU32,
}

impl Handshake {
    crate::sync::loom_const_fn! {
        /// An idle handshake.
        pub fn new() -> Handshake {
            Handshake { phase: AtomicU32::new(IDLE), changes: AtomicU32::new(0) }
        }
    }

    /// The current phase.
    pub fn phase(&self) -> u32 {
        self.phase.load(Ordering::SeqCst)
    }

    /// The phase word (for timed waits on it outside the model).
    pub fn phase_word(&self) -> &AtomicU32 {
        &self.phase
    }

    /// The change counter (sample it, check the sides, then [`Handshake::wait_change`]).
    pub fn changes(&self) -> u32 {
        self.changes.load(Ordering::SeqCst)
    }

    /// The change counter's word (for timed waits on it outside the model).
    pub fn changes_word(&self) -> &AtomicU32 {
        &self.changes
    }

    /// Waits until the change counter differs from `seen` (or spuriously).
    pub fn wait_change(&self, seen: u32) {
        futex::wait(&self.changes, seen);
    }

    /// A side changed state: wakes the gatherer.
    pub fn changed(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        futex::wake(&self.changes, 1);
    }

    /// The region side of `side` stopped: it is safe now.
    pub fn enter_safe(&self, side: &AtomicU32) {
        side.store(SAFE, Ordering::SeqCst);
        self.changed();
    }

    /// The native side retires `side` (its thread exited).
    pub fn retire(&self, side: &AtomicU32) {
        side.store(NONE, Ordering::SeqCst);
        self.changed();
    }

    /// Blocks while an attempt is under way, then marks `side` running. On return the phase
    /// was `IDLE` after `side` became `RUNNING`: any later attempt sees it running.
    pub fn leave_safe(&self, side: &AtomicU32) {
        loop {
            let phase = self.phase();
            if phase != IDLE {
                futex::wait(&self.phase, phase);
                continue;
            }
            side.store(RUNNING, Ordering::SeqCst);
            crate::sync::fence_seqcst();
            if self.phase() == IDLE {
                return;
            }
            // An attempt began meanwhile, and may have seen this side safe: step back.
            self.enter_safe(side);
        }
    }

    /// Starts gathering.
    pub fn begin(&self) {
        self.phase.store(GATHERING, Ordering::SeqCst);
        crate::sync::fence_seqcst();
    }

    /// Whether every side is safe (or has no thread). Call after [`Handshake::begin`].
    pub fn all_safe<'a>(&self, sides: impl IntoIterator<Item = &'a AtomicU32>) -> bool {
        sides.into_iter().all(|s| s.load(Ordering::SeqCst) != RUNNING)
    }

    /// Every side was seen safe: nobody may run until [`Handshake::finish`].
    pub fn commit(&self) {
        self.phase.store(COMMITTING, Ordering::SeqCst);
    }

    /// In a forked child, where no coordinator runs: back to `IDLE` without waking anyone
    /// (the child has one thread).
    pub fn reset_in_child(&self) {
        self.phase.store(IDLE, Ordering::SeqCst);
    }

    /// Ends the attempt (committed or abandoned) and lets the threads go.
    pub fn finish(&self) {
        self.phase.store(IDLE, Ordering::SeqCst);
        futex::wake(&self.phase, i32::MAX);
    }
}

impl Default for Handshake {
    fn default() -> Handshake {
        Handshake::new()
    }
}
