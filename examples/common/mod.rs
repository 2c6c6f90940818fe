//! What the multithreaded examples share with each other and with their benchmark: the seam
//! between an algorithm and the threads and locks it runs on, command-line flags, progress
//! lines, a seeded generator and a checksum.
//!
//! Each algorithm (`kmeans.rs`, `tsp.rs`, `gradient_descent.rs`, `prodcons.rs` in this folder)
//! is written once, generic over [`Runtime`], and implements [`Example`]. Two runtimes
//! instantiate it:
//!
//! ```text
//!              algorithm<R: Runtime>  (kmeans, tsp, gradient_descent, prodcons)
//!                 /                                  \
//!   cr.rs: crthreads::thread + crthreads::sync    std_rt.rs: std::thread + std::sync
//!   persistent heap, checkpoints, resume          glibc malloc, nothing persistent
//!   examples/<name>.rs                            benches/src/bin/examples.rs
//! ```
//!
//! The two instantiations compute bit-identical results: an algorithm's result never depends
//! on the runtime, the number of threads or the order in which the scheduler runs them.
//!
//! Output contract of every example: `iter <i>` on stdout as the run starts progress unit `i`
//! (units are consecutive within a run), `result <checksum>` (16 hex digits) as the last line,
//! notes on stderr.
#![allow(dead_code)] // Each binary that includes this module uses a different part of it.

use std::io::Write;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// Threads and synchronisation, as an algorithm needs them: a thin mirror of the std API
/// (poisoning is not carried over: a poisoned lock means a thread panicked, and the examples
/// abort on panic).
///
/// Locks are for short critical sections. Under crthreads a thread holding a lock cannot be
/// stopped for a checkpoint, and releasing its last lock is where one is taken, so algorithms
/// copy what they need under a lock and compute outside it, and once their threads have ended
/// they take the shared state apart ([`Runtime::into_inner`]) instead of locking it again for
/// a checkpoint that would only record the threads' stacks being freed.
pub trait Runtime: Sized + 'static {
    /// A handle to join a spawned thread.
    type JoinHandle<T: Send + 'static>;
    /// Starts a thread running `f`.
    fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;
    /// Waits for a thread and returns its value (a panic in it propagates).
    fn join<T: Send + 'static>(h: Self::JoinHandle<T>) -> T;

    /// A mutual-exclusion lock around a `T`.
    type Mutex<T: Send>: Send + Sync;
    /// The guard of a locked [`Runtime::Mutex`].
    type MutexGuard<'a, T: Send + 'a>: DerefMut<Target = T>;
    /// A new mutex holding `v`.
    fn mutex<T: Send>(v: T) -> Self::Mutex<T>;
    /// Locks `m`.
    fn lock<T: Send>(m: &Self::Mutex<T>) -> Self::MutexGuard<'_, T>;
    /// The value of a mutex nobody else can reach any more.
    fn into_inner<T: Send>(m: Self::Mutex<T>) -> T;

    /// A condition variable for [`Runtime::Mutex`].
    type Condvar: Send + Sync;
    /// A new condition variable.
    fn condvar() -> Self::Condvar;
    /// Releases `g`, waits for a notification (or spuriously), and locks again.
    fn wait<'a, T: Send>(cv: &Self::Condvar, g: Self::MutexGuard<'a, T>) -> Self::MutexGuard<'a, T>;
    /// Wakes one waiter.
    fn notify_one(cv: &Self::Condvar);
    /// Wakes every waiter.
    fn notify_all(cv: &Self::Condvar);

    /// A reader-writer lock around a `T`.
    type RwLock<T: Send + Sync>: Send + Sync;
    /// The guard of a read lock.
    type ReadGuard<'a, T: Send + Sync + 'a>: Deref<Target = T>;
    /// The guard of a write lock.
    type WriteGuard<'a, T: Send + Sync + 'a>: DerefMut<Target = T>;
    /// A new reader-writer lock holding `v`.
    fn rwlock<T: Send + Sync>(v: T) -> Self::RwLock<T>;
    /// Locks `l` for reading.
    fn read<T: Send + Sync>(l: &Self::RwLock<T>) -> Self::ReadGuard<'_, T>;
    /// Locks `l` for writing.
    fn write<T: Send + Sync>(l: &Self::RwLock<T>) -> Self::WriteGuard<'_, T>;
    /// The value of a reader-writer lock nobody else can reach any more.
    fn rw_into_inner<T: Send + Sync>(l: Self::RwLock<T>) -> T;

    /// A barrier for a fixed number of threads.
    type Barrier: Send + Sync;
    /// A barrier for `n` threads.
    fn barrier(n: usize) -> Self::Barrier;
    /// Waits until `n` threads have arrived.
    fn barrier_wait(b: &Self::Barrier);

    /// Called as the run reports progress unit `unit`, before its `iter` line: where a
    /// persistent runtime says that it resumed from a checkpoint. Nothing by default.
    fn before_progress(_p: &Progress, _unit: u64) {}
}

/// Implements [`Runtime`] for `$rt` over a `thread` and a `sync` module with std's API (std's
/// own, and crthreads'), with `$extra` items (overrides of the provided methods) added.
macro_rules! runtime_over_std_api {
    ($rt:ty, $($thread:ident)::+, $($sync:ident)::+ $(, $extra:item)*) => {
        impl $crate::common::Runtime for $rt {
            type JoinHandle<T: Send + 'static> = $($thread)::+::JoinHandle<T>;
            fn spawn<F, T>(f: F) -> Self::JoinHandle<T>
            where
                F: FnOnce() -> T + Send + 'static,
                T: Send + 'static,
            {
                $($thread)::+::spawn(f)
            }
            fn join<T: Send + 'static>(h: Self::JoinHandle<T>) -> T {
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            }

            type Mutex<T: Send> = $($sync)::+::Mutex<T>;
            type MutexGuard<'a, T: Send + 'a> = $($sync)::+::MutexGuard<'a, T>;
            fn mutex<T: Send>(v: T) -> Self::Mutex<T> {
                $($sync)::+::Mutex::new(v)
            }
            fn lock<T: Send>(m: &Self::Mutex<T>) -> Self::MutexGuard<'_, T> {
                m.lock().expect("a thread panicked holding the lock")
            }
            fn into_inner<T: Send>(m: Self::Mutex<T>) -> T {
                m.into_inner().expect("a thread panicked holding the lock")
            }

            type Condvar = $($sync)::+::Condvar;
            fn condvar() -> Self::Condvar {
                $($sync)::+::Condvar::new()
            }
            fn wait<'a, T: Send>(cv: &Self::Condvar, g: Self::MutexGuard<'a, T>) -> Self::MutexGuard<'a, T> {
                cv.wait(g).expect("a thread panicked holding the lock")
            }
            fn notify_one(cv: &Self::Condvar) {
                cv.notify_one();
            }
            fn notify_all(cv: &Self::Condvar) {
                cv.notify_all();
            }

            type RwLock<T: Send + Sync> = $($sync)::+::RwLock<T>;
            type ReadGuard<'a, T: Send + Sync + 'a> = $($sync)::+::RwLockReadGuard<'a, T>;
            type WriteGuard<'a, T: Send + Sync + 'a> = $($sync)::+::RwLockWriteGuard<'a, T>;
            fn rwlock<T: Send + Sync>(v: T) -> Self::RwLock<T> {
                $($sync)::+::RwLock::new(v)
            }
            fn read<T: Send + Sync>(l: &Self::RwLock<T>) -> Self::ReadGuard<'_, T> {
                l.read().expect("a thread panicked holding the lock")
            }
            fn write<T: Send + Sync>(l: &Self::RwLock<T>) -> Self::WriteGuard<'_, T> {
                l.write().expect("a thread panicked holding the lock")
            }
            fn rw_into_inner<T: Send + Sync>(l: Self::RwLock<T>) -> T {
                l.into_inner().expect("a thread panicked holding the lock")
            }

            type Barrier = $($sync)::+::Barrier;
            fn barrier(n: usize) -> Self::Barrier {
                $($sync)::+::Barrier::new(n)
            }
            fn barrier_wait(b: &Self::Barrier) {
                let _ = b.wait();
            }

            $($extra)*
        }
    };
}

/// Starts `n` threads, thread `i` running `f(shared, i, progress)`.
pub fn spawn_n<R: Runtime, S: Send + Sync + 'static, T: Send + 'static>(
    n: usize,
    shared: &Arc<S>,
    progress: &Progress,
    f: fn(&S, usize, &Progress) -> T,
) -> Vec<R::JoinHandle<T>> {
    (0..n)
        .map(|i| {
            let (sh, progress) = (shared.clone(), progress.clone());
            R::spawn(move || f(&sh, i, &progress))
        })
        .collect()
}

/// Waits for every thread of `hs`, in order; returns their values.
pub fn join_all<R: Runtime, T: Send + 'static>(hs: Vec<R::JoinHandle<T>>) -> Vec<T> {
    hs.into_iter().map(R::join).collect()
}

/// An algorithm with its command line: what both instantiations need to run it.
pub trait Example: Sized + Send + Sync + 'static {
    /// The program's name, for messages.
    const NAME: &'static str;
    /// The usage text (`--help`).
    const USAGE: &'static str;
    /// Parses the command line (without the program name); `Ok(None)` means `--help`.
    fn parse(args: Vec<String>) -> Result<Option<Self>, String>;
    /// The arguments as flags, complete, for comparing runs and for messages.
    fn describe(&self) -> String;
    /// How many progress units an uninterrupted run reports.
    fn units(&self) -> u64;
    /// Runs the algorithm on `R`'s threads; returns the checksum of its result.
    fn run<R: Runtime>(&self, progress: &Progress) -> u64;
}

/// Progress reporting: `iter <i>` lines on stdout, from whichever thread reaches a unit.
#[derive(Clone)]
pub struct Progress {
    /// The program's name.
    pub name: &'static str,
    /// The run's arguments ([`Example::describe`]), kept with the run's state.
    pub args: String,
    /// Units in a whole run.
    pub units: u64,
}

impl Progress {
    /// Progress of `ex`.
    pub fn of<E: Example>(ex: &E) -> Progress {
        Progress { name: E::NAME, args: ex.describe(), units: ex.units() }
    }

    /// Reports that unit `i` starts. Call it from one thread at a time (under a lock or from
    /// a single leader), so that the lines come out in order.
    pub fn iter<R: Runtime>(&self, i: u64) {
        R::before_progress(self, i);
        line(&format!("iter {i}"));
    }
}

/// Writes `s` and a newline to stdout in one write; an error (a closed pipe) ends the program.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{s}").and_then(|()| out.flush()) {
        eprintln!("cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// The usual end of a run: `result <checksum>`.
pub fn print_result(checksum: u64) {
    line(&format!("result {checksum:016x}"));
}

// ---------------------------------------------------------------------------------------------
// Command-line flags.

/// Parses `E`'s command line. On `--help` prints the usage and gives status 0; on an error
/// prints it with the usage and gives status 2.
pub fn parse_cli<E: Example>(args: Vec<String>) -> Result<E, std::process::ExitCode> {
    match E::parse(args) {
        Ok(Some(ex)) => Ok(ex),
        Ok(None) => {
            println!("{}", E::USAGE);
            Err(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}\n\n{}", E::NAME, E::USAGE);
            Err(std::process::ExitCode::from(2))
        }
    }
}

/// A flag taking an unsigned integer: its name (`--points`) and what it expects, for messages.
pub struct Flag {
    /// The flag, with its dashes.
    pub name: &'static str,
    /// What the value must be ("a positive integer").
    pub expects: &'static str,
}

/// Parses `--flag value` and `--flag=value` pairs of unsigned integers among `flags`.
/// `Ok(None)` means `-h`/`--help`. Later occurrences override earlier ones.
pub fn parse_flags(args: Vec<String>, flags: &[Flag]) -> Result<Option<Vec<(&'static str, u64)>>, String> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let Some(flag) = flags.iter().find(|f| f.name == name) else {
            return Err(format!("unknown argument `{arg}`"));
        };
        let Some(value) = inline.or_else(|| args.next()) else {
            return Err(format!("`{name}` needs a value"));
        };
        let v = value.trim().parse::<u64>().map_err(|_| format!("`{name}` expects {}, got `{value}`", flag.expects))?;
        out.push((flag.name, v));
    }
    Ok(Some(out))
}

/// `v` as a usize, or an error naming `flag`.
pub fn to_usize(v: u64, flag: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("`{flag}` value {v} is too large"))
}

/// Fails unless `lo <= v <= hi`.
pub fn in_range(v: u64, lo: u64, hi: u64, flag: &str) -> Result<u64, String> {
    if v < lo || v > hi {
        return Err(format!("`{flag}` must be from {lo} to {hi}, got {v}"));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Determinism helpers.

/// SplitMix64: a small, fast, well-mixed generator (Steele, Lea & Flood, 2014).
#[derive(Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    /// Uniform in [0, 1), with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [0, n) for n > 0 (the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over 64-bit words (little-endian bytes), for result checksums.
pub struct Fnv(pub u64);

impl Fnv {
    /// The empty hash.
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    /// Hashes `w`.
    pub fn word(&mut self, w: u64) -> &mut Fnv {
        for b in w.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }
    /// Hashes the bit patterns of `v`.
    pub fn floats(&mut self, v: &[f64]) -> &mut Fnv {
        for x in v {
            self.word(x.to_bits());
        }
        self
    }
}

/// Splits `0..n` into `parts` contiguous ranges of sizes differing by at most one; part `i`.
pub fn share(n: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    (n * i / parts)..(n * (i + 1) / parts)
}
