//! Producers and consumers around a bounded queue built from a mutex and two condition
//! variables.
//!
//! `--producers` threads each make `--items` items: item `s` of producer `p` carries a value
//! that takes `--work` rounds of a 64-bit mix to compute from (`--seed`, `p`, `s`). They push
//! them in order into a queue of `--capacity` slots, waiting on `not_full` while it is full.
//! `--consumers` threads pop items, waiting on `not_empty` while it is empty, spend another
//! `--work` rounds on each, check that the items of each producer reach them in order, and
//! fold a digest of every item into a sum. The queue counts the items consumed and reports a
//! progress unit every [`UNIT`] items. When the last producer is done and the queue is empty,
//! the consumers stop and the main thread checks that every item of every producer was
//! consumed exactly once.
//!
//! Determinism: which consumer gets which item depends on scheduling, but the result does not:
//! item digests are combined by wrapping addition, which ignores order, and the per-producer
//! counts and sequence sums are fixed by the arguments.
//!
//! Under crthreads every push and every pop releases the queue's mutex, each a checkpoint
//! under policy `every-release`; group commit lets the many threads that release at about the
//! same moment share one.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::common::{Example, Flag, Fnv, Progress, Runtime, in_range, join_all, mix, parse_flags, spawn_n, to_usize};

/// Items per progress unit.
pub const UNIT: u64 = 32;

/// The run's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProdCons {
    producers: usize,
    consumers: usize,
    items: u64,
    capacity: usize,
    work: u64,
    seed: u64,
}

const FLAGS: &[Flag] = &[
    Flag { name: "--producers", expects: "an integer from 1 to 1000" },
    Flag { name: "--consumers", expects: "an integer from 1 to 1000" },
    Flag { name: "--items", expects: "an integer from 0 to 4294967295" },
    Flag { name: "--capacity", expects: "an integer from 1 to 1048576" },
    Flag { name: "--work", expects: "a non-negative integer" },
    Flag { name: "--seed", expects: "an integer from 0 to 18446744073709551615" },
];

/// One item in the queue.
#[derive(Clone, Copy)]
struct Item {
    producer: u32,
    seq: u32,
    value: u64,
}

impl Example for ProdCons {
    const NAME: &'static str = "prodcons";
    const USAGE: &'static str =
        "usage: prodcons [--producers P] [--consumers C] [--items M] [--capacity Q] [--work W] [--seed S]

  --producers P  producer threads, 1..=1000 (default 32)
  --consumers C  consumer threads, 1..=1000 (default 32)
  --items M      items per producer (default 200)
  --capacity Q   slots in the bounded queue, 1..=1048576 (default 16)
  --work W       rounds of hashing to make an item and again to consume it (default 100000)
  --seed S       seed of the item values, 0..2^64-1 (default 1)

Prints `iter <i>` as the consumers start each group of 32 items and `result <checksum>` at the
end (the checksum covers every item consumed, in no particular order). Checkpoints go to
$CRTHREADS_DIR; after a crash, the same command resumes from the last checkpoint.";

    fn parse(args: Vec<String>) -> Result<Option<ProdCons>, String> {
        let Some(flags) = parse_flags(args, FLAGS)? else { return Ok(None) };
        let mut p = ProdCons { producers: 32, consumers: 32, items: 200, capacity: 16, work: 100_000, seed: 1 };
        for (flag, v) in flags {
            match flag {
                "--producers" => p.producers = to_usize(in_range(v, 1, 1000, flag)?, flag)?,
                "--consumers" => p.consumers = to_usize(in_range(v, 1, 1000, flag)?, flag)?,
                "--items" => p.items = in_range(v, 0, u32::MAX.into(), flag)?,
                "--capacity" => p.capacity = to_usize(in_range(v, 1, 1 << 20, flag)?, flag)?,
                "--work" => p.work = v,
                _ => p.seed = v,
            }
        }
        Ok(Some(p))
    }

    fn describe(&self) -> String {
        format!(
            "--producers {} --consumers {} --items {} --capacity {} --work {} --seed {}",
            self.producers, self.consumers, self.items, self.capacity, self.work, self.seed
        )
    }

    fn units(&self) -> u64 {
        (self.producers as u64 * self.items).div_ceil(UNIT)
    }

    fn run<R: Runtime>(&self, progress: &Progress) -> u64 {
        let p = *self;
        let shared: Arc<Shared<R>> = Arc::new(Shared {
            p,
            queue: R::mutex(Queue {
                items: VecDeque::with_capacity(p.capacity),
                producers_done: 0,
                consumed: 0,
                unit: 0,
            }),
            not_full: R::condvar(),
            not_empty: R::condvar(),
        });
        if self.units() > 0 {
            progress.iter::<R>(0);
        }
        let producers = spawn_n::<R, _, _>(p.producers, &shared, progress, produce::<R>);
        let consumers = spawn_n::<R, _, _>(p.consumers, &shared, progress, consume::<R>);
        join_all::<R, _>(producers);
        let mut total = Tally::new(p.producers);
        for t in join_all::<R, _>(consumers) {
            total.merge(&t);
        }
        total.check(p.items);
        let q = R::into_inner(Arc::into_inner(shared).expect("every thread has ended").queue);
        eprintln!("prodcons: done: {} items from {} producers consumed", q.consumed, p.producers);
        let mut h = Fnv::new();
        h.word(total.sum);
        for (&n, &s) in total.count.iter().zip(&total.seq_sum) {
            h.word(n).word(s);
        }
        h.0
    }
}

/// What the threads share.
struct Shared<R: Runtime> {
    p: ProdCons,
    queue: R::Mutex<Queue>,
    not_full: R::Condvar,
    not_empty: R::Condvar,
}

/// The queue and its bookkeeping, under the mutex.
struct Queue {
    /// At most `capacity` items (allocated once).
    items: VecDeque<Item>,
    producers_done: usize,
    consumed: u64,
    /// The progress unit reported last.
    unit: u64,
}

/// What a consumer saw: a digest sum, and per producer the count and sum of sequence numbers.
struct Tally {
    sum: u64,
    count: Vec<u64>,
    seq_sum: Vec<u64>,
    /// Per producer, the next sequence number it may send this consumer (no smaller one).
    next: Vec<u64>,
}

impl Tally {
    fn new(producers: usize) -> Tally {
        Tally { sum: 0, count: vec![0; producers], seq_sum: vec![0; producers], next: vec![0; producers] }
    }

    /// Records an item and its digest; panics if a producer's items came out of order.
    fn add(&mut self, it: Item, digest: u64) {
        let p = it.producer as usize;
        let seq = u64::from(it.seq);
        assert!(seq >= self.next[p], "producer {p}: item {seq} after item {}", self.next[p] - 1);
        self.next[p] = seq + 1;
        self.count[p] += 1;
        self.seq_sum[p] += seq;
        self.sum = self.sum.wrapping_add(mix(digest ^ (u64::from(it.producer) << 32 | seq)));
    }

    fn merge(&mut self, o: &Tally) {
        self.sum = self.sum.wrapping_add(o.sum);
        for p in 0..self.count.len() {
            self.count[p] += o.count[p];
            self.seq_sum[p] += o.seq_sum[p];
        }
    }

    /// Panics unless every producer's `items` items were each consumed once.
    fn check(&self, items: u64) {
        let seq_sum = items * items.saturating_sub(1) / 2;
        for (p, (&n, &s)) in self.count.iter().zip(&self.seq_sum).enumerate() {
            assert!(n == items && s == seq_sum, "producer {p}: {n} items consumed (sequence sum {s}), not {items}");
        }
    }
}

/// `rounds` rounds of the mix from `x`: the stand-in for real work on an item.
fn work(mut x: u64, rounds: u64) -> u64 {
    for _ in 0..rounds {
        x = mix(x.wrapping_add(0x9E37_79B9_7F4A_7C15));
    }
    x
}

fn produce<R: Runtime>(sh: &Shared<R>, producer: usize, _: &Progress) {
    let (p, producer) = (&sh.p, producer as u32);
    for seq in 0..p.items as u32 {
        let value = work(p.seed ^ mix(u64::from(producer) << 32 | u64::from(seq)), p.work);
        let mut q = R::lock(&sh.queue);
        while q.items.len() == p.capacity {
            q = R::wait(&sh.not_full, q);
        }
        q.items.push_back(Item { producer, seq, value });
        R::notify_one(&sh.not_empty);
    }
    let mut q = R::lock(&sh.queue);
    q.producers_done += 1;
    if q.producers_done == p.producers {
        R::notify_all(&sh.not_empty);
    }
}

fn consume<R: Runtime>(sh: &Shared<R>, _: usize, progress: &Progress) -> Tally {
    let p = &sh.p;
    let mut tally = Tally::new(p.producers);
    loop {
        let item = {
            let mut q = R::lock(&sh.queue);
            loop {
                if let Some(it) = q.items.pop_front() {
                    q.consumed += 1;
                    // The unit the next item belongs to starts now.
                    if q.consumed / UNIT > q.unit && q.consumed < p.producers as u64 * p.items {
                        q.unit += 1;
                        progress.iter::<R>(q.unit);
                    }
                    R::notify_one(&sh.not_full);
                    break Some(it);
                }
                if q.producers_done == p.producers {
                    break None;
                }
                q = R::wait(&sh.not_empty, q);
            }
        };
        let Some(it) = item else { return tally };
        tally.add(it, work(it.value, p.work));
    }
}
