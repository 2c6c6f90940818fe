//! Model test of persistent threads under crashes: random multi-thread programs, killed with
//! SIGKILL and resumed until they complete, must resume in a state the model reaches and end
//! in the state the model computes.
//!
//! A program (from proptest) has 2 to 4 worker threads and up to 2 helper threads. Workers run
//! lists of operations: critical sections over one to three of three mutexes (ascending, so
//! nothing deadlocks) that add to the cells those mutexes protect, sometimes with a kill point
//! *inside* the critical section; unlocked additions to the thread's own cell; posting tokens
//! (even workers) and taking them (odd workers), waiting on a condvar while too few are there;
//! spawning and joining helpers (which run critical sections and own-cell additions); explicit
//! checkpoints; compute; and kill points, where the process kills itself with SIGKILL the first
//! time it gets there (a marker file outside the checkpoint remembers it). Every update
//! commutes and takes never exceed posts, so whatever the schedule, a program that runs each
//! operation exactly once ends with every cell holding the sum of its additions, every own cell
//! its thread's sum, and the tokens posted minus taken: the model.
//!
//! Every thread also counts the operations it completed (an operation under a lock counts
//! itself before it unlocks). A checkpoint is a consistent cut, so the memory it holds must be
//! exactly what the model computes from those counts: the additions of each thread's first
//! *n* operations, no more (a critical section half there, or applied twice) and no less (one
//! lost). After each restore, before any thread resumes, a hook prints the restored memory and
//! the parent checks it against the model.
//!
//! Each case runs the program as a child under one tracker and one policy (`every-release`,
//! `interval` or `manual`); the first run may also be killed by the parent after a random delay.
//! The child runs again (restoring the last checkpoint, or from the start if there is none)
//! until it completes; its final state must equal the model's. 32 cases by default;
//! `PROPTEST_CASES` sets the number, `CRT_SOAK=n` multiplies it by n. Regressions go to
//! `tests/proptest-regressions/threads_model.txt`.

mod common;
mod threads_common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{TempDir, child, role, run_tests};
use crthreads::sync::{Condvar, Mutex};
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, FileFailurePersistence, TestCaseError, TestRunner};
use threads_common::{Running, field, say, soak};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const MUTEXES: usize = 3;
/// Cells behind each mutex.
const CELLS: usize = 3;
/// Workers and helpers together.
const MAX_ACTORS: usize = 6;
const MAX_HELPERS: usize = 2;
/// The longest one run may take.
const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Programs.

#[derive(Clone, Debug, PartialEq)]
enum Op {
    /// Lock `ms` (ascending), add `(index into ms, cell, amount)` to cells; with `kill`, kill
    /// point `kill` between the first half of the additions and the rest.
    Crit {
        ms: Vec<u8>,
        adds: Vec<(u8, u8, u64)>,
        kill: Option<u8>,
    },
    /// Add to the thread's own cell, without a lock.
    Own(u64),
    /// Post tokens and notify.
    Post(u64),
    /// Take tokens, waiting while too few are there.
    Take(u64),
    Spawn(u8),
    Join(u8),
    Checkpoint,
    /// Kill point `id`.
    Kill(u8),
    /// Compute for a while (rounds of a small loop).
    Work(u32),
}

#[derive(Clone, Debug, PartialEq)]
struct Program {
    workers: Vec<Vec<Op>>,
    helpers: Vec<Vec<Op>>,
}

impl Op {
    fn encode(&self, out: &mut Vec<u64>) {
        match self {
            Op::Crit { ms, adds, kill } => {
                out.extend([0, ms.len() as u64]);
                out.extend(ms.iter().map(|&m| m as u64));
                out.push(adds.len() as u64);
                for &(i, c, a) in adds {
                    out.extend([i as u64, c as u64, a]);
                }
                out.push(kill.map_or(0, |k| k as u64 + 1));
            }
            Op::Own(a) => out.extend([1, *a]),
            Op::Post(k) => out.extend([2, *k]),
            Op::Take(k) => out.extend([3, *k]),
            Op::Spawn(h) => out.extend([4, *h as u64]),
            Op::Join(h) => out.extend([5, *h as u64]),
            Op::Checkpoint => out.push(6),
            Op::Kill(id) => out.extend([7, *id as u64]),
            Op::Work(n) => out.extend([8, *n as u64]),
        }
    }

    fn decode(it: &mut impl Iterator<Item = u64>) -> Op {
        let mut n = || it.next().expect("a truncated program");
        match n() {
            0 => {
                let k = n() as usize;
                let ms = (0..k).map(|_| n() as u8).collect();
                let k = n() as usize;
                let adds = (0..k).map(|_| (n() as u8, n() as u8, n())).collect();
                let kill = n().checked_sub(1).map(|k| k as u8);
                Op::Crit { ms, adds, kill }
            }
            1 => Op::Own(n()),
            2 => Op::Post(n()),
            3 => Op::Take(n()),
            4 => Op::Spawn(n() as u8),
            5 => Op::Join(n() as u8),
            6 => Op::Checkpoint,
            7 => Op::Kill(n() as u8),
            8 => Op::Work(n() as u32),
            t => panic!("unknown op tag {t}"),
        }
    }
}

impl Program {
    /// As a line of numbers: lists are prefixed by their lengths.
    fn encode(&self) -> String {
        let mut v = Vec::new();
        for list in [&self.workers, &self.helpers] {
            v.push(list.len() as u64);
            for ops in list {
                v.push(ops.len() as u64);
                ops.iter().for_each(|o| o.encode(&mut v));
            }
        }
        v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    }

    fn decode(s: &str) -> Program {
        let mut it = s.split(',').map(|x| x.parse::<u64>().expect("a number"));
        let mut lists = Vec::new();
        for _ in 0..2 {
            let n = it.next().unwrap() as usize;
            let list: Vec<Vec<Op>> = (0..n)
                .map(|_| {
                    let k = it.next().unwrap() as usize;
                    (0..k).map(|_| Op::decode(&mut it)).collect()
                })
                .collect();
            lists.push(list);
        }
        let helpers = lists.pop().unwrap();
        Program { workers: lists.pop().unwrap(), helpers }
    }

    /// Kill points, in all lists.
    fn kills(&self) -> usize {
        self.workers
            .iter()
            .chain(&self.helpers)
            .flatten()
            .filter(|o| matches!(o, Op::Kill(_) | Op::Crit { kill: Some(_), .. }))
            .count()
    }

    /// Every thread's list of operations, with the thread's number (its own cell and its
    /// progress counter): workers `0..`, helper `h` at [`helper_cell`]`(h)`.
    fn actors(&self) -> impl Iterator<Item = (usize, &Vec<Op>)> {
        self.workers.iter().enumerate().chain(self.helpers.iter().enumerate().map(|(h, o)| (helper_cell(h), o)))
    }

    /// The state the program's memory is in once thread `a` completed its first `done[a]`
    /// operations and made `own[a]` additions to its own cell: the model. Fails if these counts
    /// are no state the program can be in at a safepoint (a thread past its end, or its own
    /// cell's count out of step with its progress by more than the one addition it makes before
    /// it counts that operation done).
    fn state_at(&self, done: &[u64; MAX_ACTORS], own: &[u64; MAX_ACTORS]) -> Result<State, String> {
        let mut st = State { done: *done, ..State::default() };
        let mut seen = [false; MAX_ACTORS];
        for (a, ops) in self.actors() {
            seen[a] = true;
            let n = done[a] as usize;
            if n > ops.len() {
                return Err(format!("thread {a} completed {n} operations of {}", ops.len()));
            }
            let owns = |k: usize| ops[..k].iter().filter_map(|o| if let Op::Own(v) = o { Some(*v) } else { None });
            let counted = owns(n).count() as u64;
            let next_own = matches!(ops.get(n), Some(Op::Own(_)));
            let k = own[a];
            if !(k == counted || (next_own && k == counted + 1)) {
                return Err(format!("thread {a}: {k} own additions after {n} operations ({counted} in the model)"));
            }
            st.own[a] = (owns(if k > counted { n + 1 } else { n }).sum(), k);
            for op in &ops[..n] {
                match op {
                    Op::Crit { ms, adds, .. } => {
                        for &(i, c, v) in adds {
                            st.cells[ms[i as usize] as usize][c as usize] += v;
                        }
                    }
                    Op::Post(k) => st.tokens += *k as i64,
                    Op::Take(k) => st.tokens -= *k as i64,
                    _ => {}
                }
            }
        }
        if let Some(a) = (0..MAX_ACTORS).find(|&a| !seen[a] && (done[a] != 0 || own[a] != 0)) {
            return Err(format!("thread {a} is in no list, yet made progress"));
        }
        Ok(st)
    }

    /// The state a complete run ends in.
    fn model(&self) -> State {
        let mut done = [0; MAX_ACTORS];
        let mut own = [0; MAX_ACTORS];
        for (a, ops) in self.actors() {
            done[a] = ops.len() as u64;
            own[a] = ops.iter().filter(|o| matches!(o, Op::Own(_))).count() as u64;
        }
        self.state_at(&done, &own).expect("a complete run is a state of the program")
    }
}

/// The own cell of helper `h` (after every worker's).
fn helper_cell(h: usize) -> usize {
    MAX_ACTORS - MAX_HELPERS + h
}

/// The program's shared memory, as the child prints it and as the model computes it.
#[derive(Clone, Debug, Default, PartialEq)]
struct State {
    /// Operations each thread completed.
    done: [u64; MAX_ACTORS],
    /// Each thread's own cell: the sum of its additions, and how many it made.
    own: [(u64, u64); MAX_ACTORS],
    cells: [[u64; CELLS]; MUTEXES],
    /// Posted minus taken.
    tokens: i64,
}

impl State {
    /// As `done=d,.. own=sum/count,.. cells=a/b/c,.. tokens=t`.
    fn show(&self) -> String {
        let list = |v: Vec<String>| v.join(",");
        format!(
            "done={} own={} cells={} tokens={}",
            list(self.done.iter().map(u64::to_string).collect()),
            list(self.own.iter().map(|(s, c)| format!("{s}/{c}")).collect()),
            list(self.cells.iter().map(|m| m.iter().map(u64::to_string).collect::<Vec<_>>().join("/")).collect()),
            self.tokens
        )
    }

    /// The state in a line that [`State::show`] wrote into.
    fn parse(line: &str) -> Option<State> {
        let groups = |key: &str| -> Option<Vec<Vec<u64>>> {
            field(line, key)?.split(',').map(|g| g.split('/').map(|x| x.parse().ok()).collect()).collect()
        };
        let (done, own, cells) = (groups("done")?, groups("own")?, groups("cells")?);
        if done.len() != MAX_ACTORS || own.len() != MAX_ACTORS || cells.len() != MUTEXES {
            return None;
        }
        let mut st = State::default();
        for a in 0..MAX_ACTORS {
            st.done[a] = *done[a].first()?;
            st.own[a] = (*own[a].first()?, *own[a].get(1)?);
        }
        for (m, c) in cells.iter().enumerate() {
            st.cells[m] = c.as_slice().try_into().ok()?;
        }
        st.tokens = field(line, "tokens")?.parse().ok()?;
        Some(st)
    }
}

// ---------------------------------------------------------------------------------------------
// The child: runs the program under crthreads.

/// The program's shared memory. `#[repr(C)]`: the restore hook checks the first two words
/// before it trusts the address it was given.
#[repr(C)]
struct World {
    magic: u64,
    nonce: u64,
    cells: [Mutex<[u64; CELLS]>; MUTEXES],
    /// Each thread's own cell: the sum of its additions plus [`OWN_ONE`] per addition, so that
    /// one atomic step adds to both.
    own: [AtomicU64; MAX_ACTORS],
    /// Operations each thread completed. Only the thread writes its counter; an operation that
    /// takes a lock counts itself done before it releases the lock, so at a safepoint the
    /// counter and the memory the operation changed agree.
    done: [AtomicU64; MAX_ACTORS],
    tokens: Mutex<i64>,
    cv: Condvar,
    helpers: Vec<Vec<Op>>,
}

const MAGIC: u64 = 0x6d6f_6465_6c5f_6f6b;
/// One addition in an own cell's count (the sum stays far below).
const OWN_ONE: u64 = 1 << 40;

impl World {
    /// The state as the program sees it. Fails if a lock is held (no lock is held at a
    /// safepoint: the restore hook finds them all free).
    fn state(&self) -> Result<State, &'static str> {
        let mut st = State::default();
        for a in 0..MAX_ACTORS {
            let o = self.own[a].load(Ordering::Relaxed);
            st.own[a] = (o % OWN_ONE, o / OWN_ONE);
            st.done[a] = self.done[a].load(Ordering::Relaxed);
        }
        for (m, c) in self.cells.iter().zip(st.cells.iter_mut()) {
            *c = *m.try_lock().map_err(|_| "a cell mutex is held")?;
        }
        st.tokens = *self.tokens.try_lock().map_err(|_| "the token mutex is held")?;
        Ok(st)
    }
}

/// Held while a kill point decides: no checkpoint can take a thread between its look at the
/// marker and its death (a restore from there would die again at once, forever).
static DECIDING: Mutex<()> = Mutex::new(());

/// Kill point `id`: the first time any run gets here, the process dies.
fn kill_point(id: u8) {
    let marks: std::path::PathBuf = std::env::var_os("CRT_MARKS").expect("CRT_MARKS").into();
    let m = marks.join(format!("kill-{id}"));
    let _deciding = DECIDING.lock().unwrap();
    if !m.exists() {
        std::fs::write(&m, b"").unwrap();
        // SAFETY: signals this process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        unreachable!("survived SIGKILL");
    }
}

fn run(w: &Arc<World>, actor: usize, ops: &[Op]) {
    let mut helpers: Vec<Option<crthreads::thread::JoinHandle<()>>> = (0..MAX_HELPERS).map(|_| None).collect();
    // The thread's progress; Relaxed: read only by the thread and by the restore hook, which
    // runs while no thread does.
    let done = || w.done[actor].fetch_add(1, Ordering::Relaxed);
    for op in ops {
        match op {
            Op::Crit { ms, adds, kill } => {
                let mut gs: Vec<_> = ms.iter().map(|&m| w.cells[m as usize].lock().unwrap()).collect();
                let half = adds.len() / 2;
                for (k, &(i, c, v)) in adds.iter().enumerate() {
                    if k == half {
                        if let Some(id) = kill {
                            kill_point(*id);
                        }
                    }
                    gs[i as usize][c as usize] += v;
                }
                done();
                // Released in reverse order; the last release is the safepoint.
                while gs.pop().is_some() {}
            }
            Op::Own(v) => {
                w.own[actor].fetch_add(OWN_ONE + v, Ordering::Relaxed);
                done();
            }
            Op::Post(k) => {
                let mut g = w.tokens.lock().unwrap();
                *g += *k as i64;
                done();
                drop(g);
                w.cv.notify_all();
            }
            Op::Take(k) => {
                let g = w.tokens.lock().unwrap();
                let mut g = w.cv.wait_while(g, |t| *t < *k as i64).unwrap();
                *g -= *k as i64;
                done();
            }
            Op::Spawn(h) => {
                let (w2, hops) = (w.clone(), w.helpers[*h as usize].clone());
                let a = helper_cell(*h as usize);
                helpers[*h as usize] = Some(crthreads::thread::spawn(move || run(&w2, a, &hops)));
                done();
            }
            Op::Join(h) => {
                helpers[*h as usize].take().expect("joined a helper it spawned").join().unwrap();
                done();
            }
            Op::Checkpoint => {
                match crthreads::checkpoint() {
                    Ok(_) | Err(crthreads::Error::Abandoned { .. }) => {}
                    Err(e) => panic!("checkpoint: {e}"),
                }
                done();
            }
            Op::Kill(id) => {
                kill_point(*id);
                done();
            }
            Op::Work(n) => {
                let mut x = 1u64;
                for i in 0..*n as u64 * 1000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                done();
            }
        }
    }
    for h in helpers.into_iter().flatten() {
        h.join().unwrap();
    }
}

/// Where the restore hook finds the shared memory: its address and nonce, written by the fresh
/// run that made it (`CRT_STATE`).
fn state_file() -> std::path::PathBuf {
    std::env::var_os("CRT_STATE").expect("CRT_STATE").into()
}

/// After a restore, before any thread resumes: prints the restored state (`state=none` if the
/// checkpoint predates the shared memory).
fn on_restore(seq: u64) {
    let text = std::fs::read_to_string(state_file()).unwrap_or_default();
    let mut words = text.split_whitespace().map(|x| u64::from_str_radix(x, 16).unwrap_or(0));
    let (addr, nonce) = (words.next().unwrap_or(0), words.next().unwrap_or(0));
    let (lo, len) = crthreads::region().unwrap();
    let inside = addr as usize >= lo && (addr as usize) + std::mem::size_of::<World>() <= lo + len;
    // SAFETY: two words inside the mapped region (checked above), compared before anything
    // else is read through the address.
    let found =
        inside && unsafe { (addr as *const u64).read() == MAGIC && (addr as *const u64).add(1).read() == nonce };
    if !found {
        say(&format!("resumed seq={seq} state=none"));
        return;
    }
    // SAFETY: the shared memory of this checkpoint (magic and nonce match); no thread runs.
    let w = unsafe { &*(addr as *const World) };
    match w.state() {
        Ok(st) => say(&format!("resumed seq={seq} state=found {}", st.show())),
        Err(e) => say(&format!("resumed seq={seq} state=broken: {e}")),
    }
}

fn child_program() {
    // A failed assertion on any thread ends the child at once (the others might wait for it
    // forever), and the parent reports it.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |p| {
        report(p);
        std::process::abort();
    }));
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        let p = Program::decode(&std::env::var("CRT_PROGRAM").expect("CRT_PROGRAM"));
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let w = Arc::new(World {
            magic: MAGIC,
            nonce,
            cells: Default::default(),
            own: Default::default(),
            done: Default::default(),
            tokens: Mutex::new(0),
            cv: Condvar::new(),
            helpers: p.helpers.clone(),
        });
        let tmp = state_file().with_extension("tmp");
        std::fs::write(&tmp, format!("{:x} {nonce:x}", Arc::as_ptr(&w) as usize)).unwrap();
        std::fs::rename(&tmp, state_file()).unwrap();
        let hs: Vec<_> = p
            .workers
            .into_iter()
            .enumerate()
            .map(|(a, ops)| {
                let w = w.clone();
                crthreads::thread::spawn(move || run(&w, a, &ops))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        match w.state() {
            Ok(st) => say(&format!("final {}", st.show())),
            Err(e) => say(&format!("broken at the end: {e}")),
        }
    });
    if let Err(e) = r {
        eprintln!("crthreads: {e}");
        std::process::exit(2);
    }
}

// ---------------------------------------------------------------------------------------------
// Generating programs.

/// One operation before the program is made consistent (spawns, joins, tokens, kill ids).
#[derive(Clone, Debug)]
enum Raw {
    Crit { mask: u8, adds: Vec<(u8, u8, u64)>, kill: bool },
    Own(u64),
    Token(u64),
    Checkpoint,
    Kill,
    Work(u32),
}

fn raw_op(helper: bool) -> impl Strategy<Value = Raw> {
    let crit = (1u8..8, prop::collection::vec((0u8..3, 0u8..CELLS as u8, 1u64..100), 1..5), prop::bool::weighted(0.15))
        .prop_map(|(mask, adds, kill)| Raw::Crit { mask, adds, kill });
    let own = (1u64..50).prop_map(Raw::Own);
    let work = (1u32..200).prop_map(Raw::Work);
    if helper {
        prop_oneof![4 => crit, 2 => own, 1 => work].boxed()
    } else {
        prop_oneof![
            5 => crit,
            2 => own,
            3 => (1u64..5).prop_map(Raw::Token),
            1 => Just(Raw::Checkpoint),
            1 => Just(Raw::Kill),
            2 => work,
        ]
        .boxed()
    }
}

/// Makes raw lists into a program: mutex masks into ascending lists (additions pointing into
/// them), tokens into posts (even workers) and takes (odd workers, capped so that takes never
/// exceed posts), helpers spawned and joined by worker `h % workers`, kill points numbered.
fn build(workers: Vec<Vec<Raw>>, helpers: Vec<Vec<Raw>>, placement: Vec<(u8, u8)>) -> Program {
    let posts: u64 = workers.iter().step_by(2).flatten().map(|r| if let Raw::Token(k) = r { *k } else { 0 }).sum();
    let mut takes_left = posts;
    let mut kill_id = 0u8;
    let mut convert = |w: usize, r: &Raw, worker: bool| -> Option<Op> {
        Some(match r {
            Raw::Crit { mask, adds, kill } => {
                let ms: Vec<u8> = (0..MUTEXES as u8).filter(|m| mask & (1 << m) != 0).collect();
                let adds = adds.iter().map(|&(i, c, v)| (i % ms.len() as u8, c, v)).collect();
                let kill = kill.then(|| {
                    kill_id += 1;
                    kill_id
                });
                Op::Crit { ms, adds, kill }
            }
            Raw::Own(v) => Op::Own(*v),
            Raw::Token(k) if worker && w % 2 == 0 => Op::Post(*k),
            Raw::Token(k) => {
                let k = (*k).min(takes_left);
                if k == 0 {
                    return None;
                }
                takes_left -= k;
                Op::Take(k)
            }
            Raw::Checkpoint => Op::Checkpoint,
            Raw::Kill => {
                kill_id += 1;
                Op::Kill(kill_id)
            }
            Raw::Work(n) => Op::Work(*n),
        })
    };
    let mut ws: Vec<Vec<Op>> =
        workers.iter().enumerate().map(|(w, ops)| ops.iter().filter_map(|r| convert(w, r, true)).collect()).collect();
    let hs: Vec<Vec<Op>> =
        helpers.iter().map(|ops| ops.iter().filter_map(|r| convert(0, r, false)).collect()).collect();
    for (h, &(sp, jp)) in placement.iter().enumerate().take(hs.len()) {
        let ops = &mut ws[h % workers.len()];
        let s = sp as usize % (ops.len() + 1);
        ops.insert(s, Op::Spawn(h as u8));
        // A join somewhere after the spawn, or none (joined when the worker's list ends).
        let j = s + 1 + jp as usize % (ops.len() - s + 1);
        if j <= ops.len() {
            ops.insert(j, Op::Join(h as u8));
        }
    }
    Program { workers: ws, helpers: hs }
}

fn program() -> impl Strategy<Value = Program> {
    (2usize..=4, 0usize..=MAX_HELPERS).prop_flat_map(|(nw, nh)| {
        (
            prop::collection::vec(prop::collection::vec(raw_op(false), 1..10), nw),
            prop::collection::vec(prop::collection::vec(raw_op(true), 1..5), nh),
            prop::collection::vec((any::<u8>(), any::<u8>()), nh),
        )
            .prop_map(|(w, h, p)| build(w, h, p))
    })
}

#[derive(Clone, Debug)]
struct Case {
    program: Program,
    tracker: &'static str,
    /// "every-release", "interval" or "manual".
    policy: &'static str,
    /// The parent kills the first run this many ms after it started.
    kill_after: Option<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        program(),
        prop::sample::select(&["uffd", "mprotect"][..]),
        prop::sample::select(&["every-release", "interval", "manual"][..]),
        prop::option::weighted(0.5, 20u64..150),
    )
        .prop_map(|(program, tracker, policy, kill_after)| Case { program, tracker, policy, kill_after })
}

// ---------------------------------------------------------------------------------------------
// The parent.

/// Checks the state a run printed after its restore (if it restored) against the model: the
/// state must be the model's state for the progress the threads had made.
fn check_resume(p: &Program, out: &[String]) -> Result<bool, String> {
    let Some(line) = out.iter().find(|l| l.starts_with("resumed")) else { return Ok(false) };
    match field(line, "state") {
        Some("none") => return Ok(false),
        Some("found") => {}
        _ => return Err(format!("the restored state is not one a safepoint can see: {line}")),
    }
    let got = State::parse(line).ok_or_else(|| format!("unreadable: {line}"))?;
    let own = got.own.map(|(_, count)| count);
    let want = p.state_at(&got.done, &own).map_err(|e| format!("{e}: {line}"))?;
    if got != want {
        return Err(format!(
            "the restored state is not the model's for the threads' progress:\n  restored {}\n  model    {}",
            got.show(),
            want.show()
        ));
    }
    Ok(true)
}

fn run_case(c: Case) -> Result<(), TestCaseError> {
    let t = TempDir::new("model");
    let marks = t.join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let encoded = c.program.encode();
    assert_eq!(Program::decode(&encoded), c.program, "the encoding round-trips");
    let want = c.program.model();
    let most = c.program.kills() + 3;
    let mut log = vec![format!(
        "child: CRT_TEST_ROLE=program CRTHREADS_TRACKER={} CRTHREADS_POLICY={} CRTHREADS_INTERVAL=0.005 \
         CRT_PROGRAM={encoded} (kill points fire once each: CRT_MARKS names an empty directory first)",
        c.tracker, c.policy
    )];
    for run in 0..most {
        let mut cmd: Command = child("program");
        cmd.env("CRTHREADS_DIR", t.join("ck"))
            .env("CRTHREADS_TRACKER", c.tracker)
            .env("CRTHREADS_POLICY", c.policy)
            .env("CRTHREADS_INTERVAL", "0.005")
            .env("CRT_PROGRAM", &encoded)
            .env("CRT_MARKS", &marks)
            .env("CRT_STATE", t.join("state"));
        let mut r = Running::start(cmd);
        if let (0, Some(ms)) = (run, c.kill_after) {
            // Killed by the parent, unless it finished first.
            if r.wait_line(Duration::from_millis(ms), |l| l.starts_with("final")).is_none() {
                r.kill();
            }
        }
        let e = r.finish(LIMIT);
        log.push(format!("run {run}: {:?}", e.status));
        if e.hung {
            return Err(TestCaseError::fail(format!("run {run} hung: {}\n{}", log.join("; "), e.show())));
        }
        let resumed = check_resume(&c.program, &e.out)
            .map_err(|m| TestCaseError::fail(format!("run {run}: {m}\nruns: {}\n{}", log.join("; "), e.show())))?;
        TALLY[0].fetch_add(1, Ordering::Relaxed);
        TALLY[1].fetch_add(e.killed() as u64, Ordering::Relaxed);
        TALLY[2].fetch_add(resumed as u64, Ordering::Relaxed);
        if e.killed() {
            continue;
        }
        if !e.status.success() {
            return Err(TestCaseError::fail(format!("run {run} failed: {}\n{}", log.join("; "), e.show())));
        }
        let Some(fin) = e.out.iter().find(|l| l.starts_with("final")) else {
            return Err(TestCaseError::fail(format!("run {run} printed no final state: {}", e.show())));
        };
        prop_assert_eq!(State::parse(fin), Some(want), "runs: {}\n{}", log.join("; "), e.show());
        return Ok(());
    }
    Err(TestCaseError::fail(format!("not complete after {most} runs: {}", log.join("; "))))
}

/// Runs, runs killed, runs whose restored state was checked (over all cases).
static TALLY: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn random_programs_end_in_the_models_state() {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32 * soak() as u32);
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/proptest-regressions/threads_model.txt");
    let cfg = PtConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(file))),
        ..PtConfig::default()
    };
    let mut runner = TestRunner::new(cfg);
    if let Err(e) = runner.run(&case(), run_case) {
        panic!("{e}");
    }
    let [runs, killed, checked] = TALLY.each_ref().map(|t| t.load(Ordering::Relaxed));
    println!("  {cases} programs: {runs} runs, {killed} killed, {checked} restored states checked against the model");
    assert!(killed >= cases as u64 / 2 && checked >= cases as u64 / 4, "too few kills and restores to mean much");
}

fn main() {
    match role().as_deref() {
        Some("program") => return child_program(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[("random_programs_end_in_the_models_state", random_programs_end_in_the_models_state)]);
}
