//! Failpoints: kill the process with SIGKILL at a named stage of a checkpoint.
//!
//! Compiled only with the `failpoints` cargo feature; without it [`hit`] is an empty inline
//! function. `CRTHREADS_FAILPOINT=<stage>` kills at the first time the stage is reached,
//! `<stage>@<seq>` only during checkpoint number `seq`. Stages, in the order a checkpoint
//! reaches them: `before-payload` (the slot is marked as being written), `mid-payload` (half of
//! the pages are written), `before-commit` (payload, tables and summary written, not the
//! commit record), `after-commit` (the commit record is written), and `mirror` (the first
//! checkpoint's copy into the second slot has begun). With persistent threads two more:
//! `gathered` (every thread is parked, nothing written yet) and `before-resume` (the attempt
//! is over, committed or not, and the parked threads are about to be released). These two
//! belong to attempts, which have no checkpoint number yet (or never get one): for them
//! `@<n>` means the n-th time this process reaches the stage.
//!
//! One delay rather than a kill: `CRTHREADS_FAILPOINT_START_DELAY_MS=<n>` makes every OS thread
//! started for a persistent thread wait `n` ms before it serves its slot (a thread slow to
//! start, so that rollbacks and spawns meet it before it runs).

/// Whether failpoints are compiled in (the `failpoints` feature).
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// The stages a checkpoint passes.
pub const STAGES: [&str; 5] = ["before-payload", "mid-payload", "before-commit", "after-commit", "mirror"];

/// The stages only a checkpoint of persistent threads passes (around the stages above).
pub const THREAD_STAGES: [&str; 2] = ["gathered", "before-resume"];

#[cfg(feature = "failpoints")]
mod imp {
    use std::sync::OnceLock;

    static ARMED: OnceLock<Option<(String, Option<u64>)>> = OnceLock::new();

    fn armed() -> &'static Option<(String, Option<u64>)> {
        ARMED.get_or_init(|| {
            let v = std::env::var("CRTHREADS_FAILPOINT").ok()?;
            let (name, seq) = match v.split_once('@') {
                Some((n, s)) => (n.to_string(), s.parse().ok()),
                None => (v, None),
            };
            if !super::STAGES.contains(&name.as_str()) && !super::THREAD_STAGES.contains(&name.as_str()) {
                crate::sys::write_stderr(&[b"crthreads: unknown CRTHREADS_FAILPOINT stage\n"]);
                std::process::abort();
            }
            Some((name, seq))
        })
    }

    /// Parses the variable now (before any checkpoint, while allocation is allowed).
    pub fn arm() {
        let _ = armed();
        let _ = START_DELAY
            .get_or_init(|| std::env::var("CRTHREADS_FAILPOINT_START_DELAY_MS").ok().and_then(|v| v.parse().ok()));
    }

    static START_DELAY: OnceLock<Option<u64>> = OnceLock::new();

    /// Waits `CRTHREADS_FAILPOINT_START_DELAY_MS` ms, if set (parsed by [`arm`]).
    pub fn start_delay() {
        if let Some(Some(ms)) = START_DELAY.get() {
            std::thread::sleep(std::time::Duration::from_millis(*ms));
        }
    }

    /// Dies here if this stage (of checkpoint `seq`) is armed.
    pub fn hit(stage: &str, seq: u64) {
        if let Some((name, at)) = armed() {
            if name == stage && at.is_none_or(|s| s == seq) {
                crate::sys::proc::kill_self();
            }
        }
    }
}

#[cfg(not(feature = "failpoints"))]
mod imp {
    /// Failpoints are compiled out.
    #[inline(always)]
    pub fn arm() {}
    /// Failpoints are compiled out.
    #[inline(always)]
    pub fn hit(_stage: &str, _seq: u64) {}
    /// Failpoints are compiled out.
    #[inline(always)]
    pub fn start_delay() {}
}

pub use imp::{arm, hit, start_delay};
