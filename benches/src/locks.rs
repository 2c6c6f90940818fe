//! The three locks the lock benchmarks compare, each around a counter: crthreads'
//! checkpoint-aware `sync::Mutex`, `std::sync::Mutex` and glibc's `pthread_mutex_t`; and the
//! measuring loop they share (`mutex` runs it without initialising crthreads, `lockcost` inside a
//! running crthreads program).

use std::cell::UnsafeCell;
use std::hint::black_box;

use crate::{median, time};

/// glibc's default (normal) mutex around a counter.
pub struct PthreadMutex {
    m: UnsafeCell<libc::pthread_mutex_t>,
    v: UnsafeCell<u64>,
}

// SAFETY: `v` is only touched between pthread_mutex_lock and pthread_mutex_unlock of `m`, and a
// pthread mutex may be used from any thread at a fixed address (it is never moved while shared).
unsafe impl Sync for PthreadMutex {}

impl PthreadMutex {
    /// An unlocked mutex around 0.
    pub fn new() -> PthreadMutex {
        PthreadMutex { m: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER), v: UnsafeCell::new(0) }
    }

    /// Locks, increments the counter, unlocks.
    #[inline]
    pub fn bump(&self) {
        // SAFETY: `m` is an initialised mutex that stays at this address; `v` is only touched
        // with it held.
        unsafe {
            libc::pthread_mutex_lock(self.m.get());
            *self.v.get() += 1;
            libc::pthread_mutex_unlock(self.m.get());
        }
    }

    /// The counter, read under the lock.
    pub fn get(&self) -> u64 {
        // SAFETY: as in `bump`.
        unsafe {
            libc::pthread_mutex_lock(self.m.get());
            let v = *self.v.get();
            libc::pthread_mutex_unlock(self.m.get());
            v
        }
    }
}

impl Default for PthreadMutex {
    fn default() -> PthreadMutex {
        PthreadMutex::new()
    }
}

/// The three locks, each around a counter.
#[derive(Default)]
pub struct Locks {
    /// crthreads' checkpoint-aware mutex.
    pub cr: crthreads::sync::Mutex<u64>,
    /// std's mutex.
    pub std: std::sync::Mutex<u64>,
    /// glibc's mutex.
    pub glibc: PthreadMutex,
}

/// One of the three locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// `crthreads::sync::Mutex`.
    Crthreads,
    /// `std::sync::Mutex`.
    Std,
    /// `pthread_mutex_t`.
    Glibc,
}

impl Which {
    /// All three, in table order.
    pub const ALL: [Which; 3] = [Which::Crthreads, Which::Std, Which::Glibc];

    /// The lock named `s` (`crthreads`, `std` or `glibc`).
    pub fn parse(s: &str) -> Option<Which> {
        match s {
            "crthreads" => Some(Which::Crthreads),
            "std" => Some(Which::Std),
            "glibc" => Some(Which::Glibc),
            _ => None,
        }
    }
}

impl Locks {
    /// `pairs` lock/increment/unlock pairs on one of the locks.
    #[inline(never)]
    pub fn run(&self, which: Which, pairs: u64) {
        match which {
            Which::Crthreads => {
                for _ in 0..pairs {
                    *black_box(&self.cr).lock().unwrap() += 1;
                }
            }
            Which::Std => {
                for _ in 0..pairs {
                    *black_box(&self.std).lock().unwrap() += 1;
                }
            }
            Which::Glibc => {
                for _ in 0..pairs {
                    black_box(&self.glibc).bump();
                }
            }
        }
    }

    /// Nanoseconds per pair, with `threads` threads (OS threads of the standard library)
    /// sharing the lock; with one thread, the calling thread alone.
    pub fn ns_per_pair(&self, which: Which, threads: u64, pairs: u64) -> f64 {
        let secs = if threads == 1 {
            time(|| self.run(which, pairs))
        } else {
            time(|| {
                std::thread::scope(|s| {
                    for _ in 1..threads {
                        s.spawn(|| self.run(which, pairs));
                    }
                    self.run(which, pairs);
                })
            })
        };
        secs * 1e9 / (threads * pairs) as f64
    }

    /// Median nanoseconds per pair of each lock (in [`Which::ALL`]'s order) over `rounds`
    /// rounds, after a warm-up of a tenth of a round each. Rounds are interleaved, each starting
    /// with another lock, so that machine noise hits every lock alike and no lock always follows
    /// another. Each counter grows by `(pairs / 10 + rounds * pairs) * threads`.
    pub fn compare(&self, threads: u64, pairs: u64, rounds: usize) -> [f64; 3] {
        for w in Which::ALL {
            // Warm up (page in, train the predictors).
            self.ns_per_pair(w, threads, pairs / 10);
        }
        let mut samples = [Vec::new(), Vec::new(), Vec::new()];
        for r in 0..rounds {
            for k in 0..Which::ALL.len() {
                let i = (r + k) % Which::ALL.len();
                samples[i].push(self.ns_per_pair(Which::ALL[i], threads, pairs));
            }
        }
        samples.map(|mut v| median(&mut v))
    }

    /// The three counters (crthreads, std, glibc).
    pub fn counts(&self) -> [u64; 3] {
        [*self.cr.lock().unwrap(), *self.std.lock().unwrap(), self.glibc.get()]
    }
}
