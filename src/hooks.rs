//! Program hooks around checkpoints and restores: functions the program registers to run
//! before every checkpoint, after every checkpoint attempt, and after a restore.
//!
//! Hooks are plain function pointers kept in fixed arrays of volatile memory: registering one
//! allocates nothing, and a restored process starts with none (the program registers them
//! again as it starts, before [`crate::main`] or [`crate::init`]).
//!
//! Where they run:
//! - `before_checkpoint` hooks run on the thread that takes the checkpoint, after every
//!   persistent thread was gathered (no thread holds a crthreads lock then) and before the
//!   heap is copied: what they write to the persistent heap is part of the checkpoint.
//! - `after_checkpoint` hooks run on the same thread once the attempt is over, before the
//!   gathered threads resume, with the attempt's statistics or its error.
//! - `after_restore` hooks run once the heap was restored, before any restored thread resumes
//!   and before [`crate::init`] returns, with the restored checkpoint's sequence number: the
//!   place to reopen files and sockets the checkpoint could not carry.
//!
//! A hook must not take a lock a persistent thread might hold; [`crate::checkpoint`] and
//! [`crate::rollback`] called from a hook are refused with [`crate::Error::Reentered`].

#![allow(unsafe_code)] // Function pointers kept as words, for registration without allocation.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::ckpt::Stats;
use crate::error::{Error, Result};

/// How many hooks of each kind may be registered.
pub const MAX_HOOKS: usize = 8;

struct List([AtomicUsize; MAX_HOOKS]);

impl List {
    const fn new() -> List {
        List([const { AtomicUsize::new(0) }; MAX_HOOKS])
    }

    fn add(&self, f: usize, kind: &'static str) -> Result<()> {
        for s in &self.0 {
            match s.compare_exchange(0, f, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(cur) if cur == f => return Ok(()),
                Err(_) => {}
            }
        }
        Err(Error::Unsupported {
            what: format!("registering another {kind} hook"),
            why: format!("at most {MAX_HOOKS} are kept; combine them into one function"),
        })
    }

    fn each(&self, mut call: impl FnMut(usize)) {
        // Hooks run as part of the runtime: a checkpoint asked for inside one is refused, and
        // the thread is not preempted meanwhile.
        struct Busy;
        impl Drop for Busy {
            fn drop(&mut self) {
                crate::sys::tls::busy_add(-1);
            }
        }
        crate::sys::tls::busy_add(1);
        let _busy = Busy;
        for s in &self.0 {
            let f = s.load(Ordering::Acquire);
            if f != 0 {
                call(f);
            }
        }
    }
}

static BEFORE: List = List::new();
static AFTER: List = List::new();
static RESTORED: List = List::new();

/// Runs `f` before every checkpoint (see the module docs for where). Registering the same
/// function twice registers it once.
pub fn before_checkpoint(f: fn()) -> Result<()> {
    BEFORE.add(f as usize, "before-checkpoint")
}

/// Runs `f` after every checkpoint attempt, with its statistics or its error.
pub fn after_checkpoint(f: fn(core::result::Result<&Stats, &Error>)) -> Result<()> {
    AFTER.add(f as usize, "after-checkpoint")
}

/// Runs `f` after a restore, with the restored checkpoint's sequence number.
pub fn after_restore(f: fn(u64)) -> Result<()> {
    RESTORED.add(f as usize, "after-restore")
}

/// Calls every `before_checkpoint` hook.
pub(crate) fn run_before() {
    BEFORE.each(|f| {
        // SAFETY: only `before_checkpoint` stores into BEFORE, and only `fn()` pointers.
        let f = unsafe { core::mem::transmute::<usize, fn()>(f) };
        f()
    });
}

/// Calls every `after_checkpoint` hook.
pub(crate) fn run_after(r: core::result::Result<&Stats, &Error>) {
    AFTER.each(|f| {
        // SAFETY: only `after_checkpoint` stores into AFTER, and only pointers of this type.
        let f = unsafe { core::mem::transmute::<usize, fn(core::result::Result<&Stats, &Error>)>(f) };
        f(r)
    });
}

/// Calls every `after_restore` hook.
pub(crate) fn run_restored(seq: u64) {
    RESTORED.each(|f| {
        // SAFETY: only `after_restore` stores into RESTORED, and only `fn(u64)` pointers.
        let f = unsafe { core::mem::transmute::<usize, fn(u64)>(f) };
        f(seq)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_keeps_each_function_once_and_refuses_beyond_its_size() {
        let l = List::new();
        l.add(1, "test").unwrap();
        l.add(1, "test").unwrap();
        let mut n = 0;
        l.each(|_| n += 1);
        assert_eq!(n, 1);
        for f in 2..=MAX_HOOKS {
            l.add(f, "test").unwrap();
        }
        let e = l.add(100, "test").unwrap_err().to_string();
        assert!(e.contains("test hook") && e.contains("at most 8"), "{e}");
    }
}
