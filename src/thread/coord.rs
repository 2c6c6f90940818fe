//! The checkpoint coordinator: gathers every persistent thread at a safepoint, has the runtime
//! take the checkpoint, and releases them; abandons an attempt that cannot gather everyone in
//! time, so that a thread at depth > 0 waiting for a parked thread never deadlocks the program.
//!
//! The coordinator is an OS thread of the runtime (its stack is volatile memory, never part of
//! an image, so a checkpoint never runs on a stack it copies). It wakes on a request — a thread
//! releasing its last lock under `every-release`, an explicit `checkpoint()`, the external
//! request signal — or when the `interval` elapses, and runs one *attempt*:
//!
//! 1. `phase = GATHERING`, `due = true`: threads that release their last lock or block at depth
//!    0 park; threads running at depth 0 are preempted by a signal ([`super::preempt`]);
//! 2. when every thread is safe: `phase = COMMITTING`, the checkpoint is taken;
//! 3. `phase = IDLE`: the outcome is published (the attempt's ticket) and every thread waiting
//!    in `leave_safe` or on a ticket is woken.
//!
//! With `CRTHREADS_ON_TERM=checkpoint`, a SIGTERM is a request marked as a termination
//! ([`term`]): after the first attempt that ends once the mark is set, the coordinator ends the
//! process with SIGTERM's default action ([`crate::sys::signal::die_of`]) *before* it releases
//! the threads, if that attempt committed: no program code runs between the checkpoint and the
//! end, so a rerun resumes from that very instant. An attempt that was abandoned or failed is
//! retried up to [`TERM_TRIES`] times (the previous checkpoint stays valid); after that, or once
//! the main thread has returned, the process ends without a new checkpoint.
//!
//! | phase        | value | threads may leave a safepoint? |
//! |--------------|-------|--------------------------------|
//! | `IDLE`       | 0     | yes                            |
//! | `GATHERING`  | 1     | no                             |
//! | `COMMITTING` | 2     | no                             |
//!
//! A thread that parked during an attempt's gathering is included in it: if the attempt
//! commits, the checkpoint holds the thread's state as of its safepoint (group commit: any
//! number of releases share one checkpoint). A thread that asks while an attempt commits cannot
//! exist: nobody runs then.
//!
//! No attempt begins before the main persistent thread is parked for the first time (`ready`).
//! The coordinator starts before `crate::main` creates that thread (or, after a restore, gives
//! the checkpoint's threads OS threads again); until then no OS thread is registered, so
//! "every thread is safe" holds trivially while the program's main OS thread is still filling
//! in the thread table, and an attempt would save a record that is live but has no stack or
//! context yet. Requests that arrive meanwhile (the external request signal, an interval) are
//! served once it is ready.
#![allow(unsafe_code)] // Process-wide state shared with signal handlers.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::native;
use super::table::Table;
use crate::sys::{futex, now_ns, realtime_ns};

pub(crate) use super::handshake::GATHERING;
use super::handshake::Handshake;

/// The phase and the gatherer's wake-ups (see `handshake`).
pub(crate) static HS: Handshake = Handshake::new();

/// How long an attempt may take to gather every thread before it is abandoned.
const GATHER_LIMIT_NS: u64 = 500_000_000;
/// The shortest limit: after attempts in a row were abandoned (a thread stays blocked outside
/// crthreads), each next one waits a quarter as long, down to this, until one commits.
const GATHER_LIMIT_MIN_NS: u64 = 10_000_000;
/// Attempts made for a SIGTERM before the process ends without a new checkpoint.
const TERM_TRIES: u32 = 4;

/// SIGTERM arrived (`CRTHREADS_ON_TERM=checkpoint`): set by the signal handler.
static TERM: AtomicBool = AtomicBool::new(false);
/// Attempts made since SIGTERM arrived (the coordinator's own count).
static TERM_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// How often a thread that is still running is signalled again while gathering.
const RESIGNAL_NS: u64 = 2_000_000;

pub use crate::config::Policy;

/// The outcome of an attempt, for the threads that waited for it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outcome {
    /// The committed checkpoint's statistics, or why there is none (abandoned or failed).
    pub(crate) result: Option<crate::error::Result<crate::ckpt::Stats>>,
}

/// Which attempt a waiter waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket(pub(crate) u64);

impl Ticket {
    /// No attempt.
    pub(crate) const NONE: Ticket = Ticket(0);
}

/// What runs the checkpoint itself (the runtime's checkpoint with the given stacks).
/// The second argument completes the statistics (the coordinator's figures) before they are
/// reported.
pub(crate) type TakeFn = dyn Fn(&[crate::ckpt::StackRange], &dyn Fn(&mut crate::ckpt::Stats)) -> crate::error::Result<crate::ckpt::Stats>
    + Send
    + Sync;

struct Coord {
    /// A checkpoint is wanted: a release to depth 0 parks there.
    due: AtomicBool,
    /// Bumped by every request; the coordinator thread waits on it.
    requests: AtomicU32,
    /// The attempt under way or last finished (1, 2, ...).
    attempt: AtomicU64,
    /// The last attempt that finished; ticket waiters wait on its low bits.
    done: AtomicU32,
    done_full: AtomicU64,
    /// The last attempt that committed.
    committed: AtomicU64,
    /// Attempts abandoned (threads could not be gathered in time).
    abandoned: AtomicU64,
    /// Threads waiting for the next attempt to cover their release (the group commit's size).
    group: AtomicU64,
    /// The next attempt rolls back instead of checkpointing.
    rollback_wanted: AtomicBool,
    /// Rollbacks done in this process (the generation native sides compare).
    rollbacks: AtomicU32,
    /// The current gathering limit, ns (see `GATHER_LIMIT_MIN_NS`).
    limit_ns: AtomicU64,
    /// The main thread returned: the program is ending, and no checkpoint may record a state
    /// without it (a restore would run the program's main logic again).
    stopped: AtomicBool,
    policy_ms: AtomicU64,
    every_release: AtomicBool,
    /// The thread table (its base address), once threads run.
    table: AtomicUsize,
    /// 1 once the main persistent thread parked for the first time: attempts may begin (a
    /// futex word the coordinator waits on until then).
    ready: AtomicU32,
}

static C: Coord = Coord {
    due: AtomicBool::new(false),
    requests: AtomicU32::new(0),
    attempt: AtomicU64::new(0),
    done: AtomicU32::new(0),
    done_full: AtomicU64::new(0),
    committed: AtomicU64::new(0),
    abandoned: AtomicU64::new(0),
    group: AtomicU64::new(0),
    rollback_wanted: AtomicBool::new(false),
    rollbacks: AtomicU32::new(0),
    stopped: AtomicBool::new(false),
    limit_ns: AtomicU64::new(GATHER_LIMIT_NS),
    policy_ms: AtomicU64::new(0),
    every_release: AtomicBool::new(false),
    table: AtomicUsize::new(0),
    ready: AtomicU32::new(0),
};

/// How many times this process reached the failpoint stages `gathered` and `before-resume`
/// (a thread stage's `@n` is its n-th time; only the coordinator thread counts).
static STAGE_HITS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Outcomes of recent attempts, by attempt number modulo the ring's length.
static OUTCOMES: Mutex<Vec<(u64, Outcome)>> = Mutex::new(Vec::new());

/// The function that takes the checkpoint, set when threads start.
static TAKE: std::sync::OnceLock<Box<TakeFn>> = std::sync::OnceLock::new();

/// What rolls memory back in place (the runtime's), set when threads start.
pub(crate) type RollFn = dyn Fn() -> crate::error::Result<u64> + Send + Sync;
static ROLL: std::sync::OnceLock<Box<RollFn>> = std::sync::OnceLock::new();

/// Whether the coordinator runs (threads mode).
pub(crate) fn active() -> bool {
    C.table.load(Ordering::Acquire) != 0
}

/// The thread table.
pub(crate) fn table() -> Table {
    let base = C.table.load(Ordering::Acquire);
    if base == 0 {
        crate::sys::fatal("the thread table is used before threads started");
    }
    Table::at(base)
}

/// The current phase (`SeqCst`: see the handshake in `native`).
pub(crate) fn phase() -> u32 {
    HS.phase()
}

/// A thread's state changed: wakes the gatherer.
pub(crate) fn safe_changed() {
    HS.changed();
}

/// Whether a release to depth 0 must stop at a checkpoint now.
#[inline]
pub(crate) fn due() -> bool {
    C.due.load(Ordering::Relaxed)
}

/// Asks for a checkpoint (async-signal-safe: the external request signal calls it).
pub(crate) fn request() {
    C.requests.fetch_add(1, Ordering::SeqCst);
    futex::wake(&C.requests, 1);
}

/// SIGTERM arrived and must end the process after a checkpoint (async-signal-safe: the
/// SIGTERM handler calls it).
pub(crate) fn term() {
    TERM.store(true, Ordering::SeqCst);
    request();
}

/// Called on the native side of a safe thread: waits until an attempt that includes this
/// thread's current state has finished (a checkpoint, or with `rollback` a rollback), and
/// records which one in `t`.
pub(crate) fn wait_for_attempt(t: &mut Ticket, rollback: bool) {
    if rollback {
        C.rollback_wanted.store(true, Ordering::SeqCst);
    }
    // The thread is safe already. An attempt still gathering will include it; otherwise the
    // next one will. (A rollback asked for while one gathers is served by the next attempt:
    // the one gathering already chose what it does.)
    // The phase first: an attempt bumps its number before it starts gathering, so a phase
    // seen `GATHERING` belongs to the number read next or an earlier one (never to an attempt
    // already over when the number is read).
    let gathering = HS.phase() == GATHERING;
    let cur = C.attempt.load(Ordering::SeqCst);
    let want = if !rollback && gathering { cur } else { cur + 1 };
    if want > cur {
        request();
    }
    *t = Ticket(want);
    if !rollback {
        // Counted for the attempt that will commit next: covers are only asked for while a
        // thread runs, and an attempt reads the count while none does.
        C.group.fetch_add(1, Ordering::SeqCst);
    }
    loop {
        let done = C.done.load(Ordering::SeqCst);
        if C.done_full.load(Ordering::SeqCst) >= want {
            return;
        }
        futex::wait(&C.done, done);
    }
}

/// The checkpoint this process's threads were last resumed from (by the start-up restore or a
/// rollback), 0 if none.
static RESUMED_FROM: AtomicU64 = AtomicU64::new(0);

/// Records that the threads resume from checkpoint `seq`.
pub(crate) fn set_resumed_from(seq: u64) {
    RESUMED_FROM.store(seq, Ordering::SeqCst);
}

/// The checkpoint the threads were last resumed from.
pub(crate) fn resumed_from() -> u64 {
    RESUMED_FROM.load(Ordering::SeqCst)
}

/// Rollbacks done in this process so far.
pub(crate) fn rollbacks() -> u32 {
    C.rollbacks.load(Ordering::SeqCst)
}

/// Waits up to `ns` for a thread's state to change.
pub(crate) fn wait_safe_change(ns: u64) {
    let seen = HS.changes();
    futex::wait_until(HS.changes_word(), seen, Some(realtime_ns() + ns));
}

/// The outcome of attempt `t` (if it is still remembered).
pub(crate) fn outcome(t: Ticket) -> Outcome {
    let outcomes = OUTCOMES.lock().unwrap_or_else(|p| p.into_inner());
    outcomes.iter().find(|(a, _)| *a == t.0).map(|(_, o)| o.clone()).unwrap_or_default()
}

/// Starts threads mode: the coordinator thread, with `policy`, on the thread table at
/// `table_base`, taking checkpoints with `take`.
pub(crate) fn start(
    table_base: usize,
    policy: Policy,
    on_term: bool,
    take: Box<TakeFn>,
    roll: Box<RollFn>,
) -> crate::error::Result<()> {
    if TAKE.set(take).is_err() || ROLL.set(roll).is_err() {
        return Err(crate::error::Error::AlreadyInitialised);
    }
    match policy {
        Policy::EveryRelease => {
            C.every_release.store(true, Ordering::Relaxed);
            C.due.store(true, Ordering::Relaxed);
        }
        Policy::Interval(d) => C.policy_ms.store(d.as_millis().max(1) as u64, Ordering::Relaxed),
        Policy::Manual => {}
    }
    super::preempt::install(on_term)?;
    // Release: the table is usable before anyone sees threads mode on.
    C.table.store(table_base, Ordering::Release);
    crate::heap::events::set_allocation_check(super::check_allocator);
    extern "C" fn nothing() {}
    crate::sys::proc::at_fork(nothing, nothing, forked_child);
    extern "C" fn body(_: *mut libc::c_void) -> *mut libc::c_void {
        super::quiet();
        crate::heap::internal(coordinator_loop)
    }
    crate::sys::thread::spawn_raw(body, core::ptr::null_mut(), 256 << 10)
        .map_err(|e| crate::error::Error::os("pthread_create (checkpoint coordinator)", e))
}

/// The main persistent thread is parked for the first time (its record whole, its OS thread
/// registered): checkpoint attempts may begin.
pub(crate) fn ready() {
    // SeqCst: the table's writes (the main record, the restored threads listed) come before;
    // the coordinator reads the table only after it saw this.
    if C.ready.swap(1, Ordering::SeqCst) == 0 {
        futex::wake(&C.ready, i32::MAX);
    }
}

/// The main thread is returning (called on its OS thread while it still counts as running, so
/// no attempt can commit before this): no checkpoint is taken from now on.
pub(crate) fn stop() {
    C.stopped.store(true, Ordering::SeqCst);
    C.every_release.store(false, Ordering::SeqCst);
    C.due.store(false, Ordering::SeqCst);
}

/// In a child forked by a persistent thread: no coordinator runs here, and the child is a plain
/// process that never checkpoints. Threads mode is off, so its locks and waits never park, and
/// the forking thread, which carries on on its (copied) persistent stack, is no persistent
/// thread any more.
extern "C" fn forked_child() {
    C.table.store(0, Ordering::SeqCst);
    C.due.store(false, Ordering::SeqCst);
    C.every_release.store(false, Ordering::SeqCst);
    HS.reset_in_child();
    crate::sys::tls::set_native(0);
}

fn coordinator_loop() -> ! {
    while C.ready.load(Ordering::SeqCst) == 0 {
        futex::wait(&C.ready, 0);
    }
    // Requests made before this thread ran (or before the main thread was ready) count: they
    // were made against zero.
    let mut seen = 0;
    let mut next_interval = interval_ns().map(|i| realtime_ns() + i);
    loop {
        let now = C.requests.load(Ordering::SeqCst);
        if now == seen {
            let woke = futex::wait_until(&C.requests, now, next_interval);
            let due_by_time = !woke || next_interval.is_some_and(|t| realtime_ns() >= t);
            if !due_by_time && C.requests.load(Ordering::SeqCst) == now {
                continue;
            }
        }
        seen = C.requests.load(Ordering::SeqCst);
        attempt();
        next_interval = interval_ns().map(|i| realtime_ns() + i);
    }
}

fn interval_ns() -> Option<u64> {
    let ms = C.policy_ms.load(Ordering::Relaxed);
    (ms > 0).then_some(ms * 1_000_000)
}

/// One attempt: gather, then commit or abandon, then publish.
fn attempt() {
    let n = C.attempt.fetch_add(1, Ordering::SeqCst) + 1;
    let rollback = C.rollback_wanted.swap(false, Ordering::SeqCst);
    if C.stopped.load(Ordering::SeqCst) {
        publish(n, Err(after_stop()));
        return;
    }
    C.due.store(true, Ordering::SeqCst);
    HS.begin();
    let t0 = now_ns();
    let gathered = gather(t0);
    let gather_ns = now_ns() - t0;
    // Read again once gathered: the main thread may have returned while this attempt gathered
    // (its side retired, so it no longer held the attempt up). `stop` runs on the main
    // thread's OS thread while its side is running, before it retires; once every side was
    // seen safe or retired, either the main side is safe and cannot leave before this attempt
    // is over, or it retired and its `stop` is visible here (both SeqCst).
    let result = if gathered && C.stopped.load(Ordering::SeqCst) {
        Err(after_stop())
    } else if gathered && rollback {
        HS.commit();
        C.group.swap(0, Ordering::SeqCst);
        super::rollback_all(|| match ROLL.get() {
            Some(f) => f(),
            None => Err(crate::error::Error::NotInitialised),
        })
        .map(|seq| {
            // The coordinator's own cache (used by hooks) is free in the checkpoint.
            crate::heap::forget_cache();
            set_resumed_from(seq);
            C.rollbacks.fetch_add(1, Ordering::SeqCst);
            native::wake_waiters(C.rollbacks.load(Ordering::SeqCst));
            crate::heap::program(|| crate::hooks::run_restored(seq));
            crate::ckpt::Stats::default()
        })
    } else if gathered {
        HS.commit();
        crate::failpoint::hit("gathered", STAGE_HITS[0].fetch_add(1, Ordering::Relaxed) + 1);
        let group = C.group.swap(0, Ordering::SeqCst);
        crate::heap::program(crate::hooks::run_before);
        let stacks = super::parked_stacks();
        let parked = native::count() as u64;
        let r = match TAKE.get() {
            Some(f) => {
                let abandoned = C.abandoned.load(Ordering::Relaxed);
                let r = f(&stacks, &|s| {
                    s.threads_parked = parked;
                    s.gather_us = gather_ns / 1000;
                    s.abandoned = abandoned;
                    s.group = group;
                });
                if r.is_ok() {
                    C.committed.store(n, Ordering::SeqCst);
                }
                r
            }
            None => Err(crate::error::Error::NotInitialised),
        };
        crate::heap::program(|| crate::hooks::run_after(r.as_ref()));
        r
    } else {
        C.abandoned.fetch_add(1, Ordering::Relaxed);
        let e = crate::error::Error::Abandoned {
            attempt: n,
            stuck: native::running().count(),
            waited_ms: gather_ns / 1_000_000,
        };
        crate::sys::warn_limited("checkpoint-abandoned", &e.to_string());
        crate::heap::program(|| crate::hooks::run_after(Err(&e)));
        Err(e)
    };
    crate::failpoint::hit("before-resume", STAGE_HITS[1].fetch_add(1, Ordering::Relaxed) + 1);
    if TERM.load(Ordering::SeqCst) {
        end_for_term(&result);
    }
    publish(n, result);
}

/// After an attempt made once SIGTERM arrived, with the threads still stopped: ends the process
/// as SIGTERM would if the attempt committed (or no checkpoint can be taken any more), or asks
/// for another attempt.
fn end_for_term(result: &crate::error::Result<crate::ckpt::Stats>) {
    let tries = TERM_ATTEMPTS.fetch_add(1, Ordering::Relaxed) + 1;
    match result {
        Ok(_) => crate::sys::signal::die_of(libc::SIGTERM),
        Err(_) if C.stopped.load(Ordering::SeqCst) => crate::sys::signal::die_of(libc::SIGTERM),
        Err(e) if tries >= TERM_TRIES => {
            crate::sys::warn_limited(
                "term-no-checkpoint",
                &format!(
                    "SIGTERM: no checkpoint could be taken in {tries} attempts (the last: {e}); ending \
                     the process now, the previous checkpoint stays valid"
                ),
            );
            crate::sys::signal::die_of(libc::SIGTERM)
        }
        Err(_) => request(),
    }
}

/// The refusal of an attempt once the main thread returned (see [`stop`]).
fn after_stop() -> crate::error::Error {
    crate::error::Error::Unsupported {
        what: "a checkpoint after the main thread returned".into(),
        why: "the program is ending; its last checkpoint stays as it was".into(),
    }
}

/// Records attempt `n`'s outcome, ends it and wakes everyone waiting for it.
fn publish(n: u64, result: crate::error::Result<crate::ckpt::Stats>) {
    {
        let mut o = OUTCOMES.lock().unwrap_or_else(|p| p.into_inner());
        if o.len() >= 64 {
            o.remove(0);
        }
        o.push((n, Outcome { result: Some(result) }));
    }
    C.due.store(C.every_release.load(Ordering::Relaxed), Ordering::SeqCst);
    C.done_full.store(n, Ordering::SeqCst);
    C.done.fetch_add(1, Ordering::SeqCst);
    HS.finish();
    futex::wake(&C.done, i32::MAX);
}

/// Waits until every persistent thread is safe, preempting the running ones; `false` if that
/// takes longer than the limit.
fn gather(t0: u64) -> bool {
    let limit = C.limit_ns.load(Ordering::Relaxed);
    let mut last_signal = 0;
    loop {
        let seen = HS.changes();
        if native::all_safe() {
            C.limit_ns.store(GATHER_LIMIT_NS, Ordering::Relaxed);
            return true;
        }
        let now = now_ns();
        if now - t0 > limit {
            C.limit_ns.store((limit / 4).max(GATHER_LIMIT_MIN_NS), Ordering::Relaxed);
            return false;
        }
        if now - last_signal >= RESIGNAL_NS {
            for i in native::running() {
                // A thread asleep in the kernel runs no code of its own to preempt (it is inside
                // libc): a signal would only interrupt its call, and some calls (poll, sleep)
                // return EINTR to the program.
                if !super::preempt::asleep_in_kernel(i) {
                    super::preempt::poke(i);
                }
            }
            last_signal = now;
        }
        let deadline = realtime_ns() + RESIGNAL_NS / 2;
        futex::wait_until(HS.changes_word(), seen, Some(deadline));
    }
}
