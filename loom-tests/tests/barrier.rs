//! `sync::Barrier`: one leader per round, everything written before the barrier is visible
//! after it, and the same barrier works for the next generation.

use crthreads::sync::{Barrier, lock_depth};
use crthreads_loom_tests::{Arc, UnsafeCell, model, thread};

struct Shared {
    barrier: Barrier,
    /// Written by one thread before a barrier, read by the other after it (loom checks that
    /// the barrier orders the accesses).
    slots: [UnsafeCell<u32>; 2],
}

// SAFETY: each slot is written by its own thread before a barrier and read by the other only
// after it, and not written again until after the next barrier.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn rounds(s: &Shared, me: usize, n: u32) -> u32 {
    let mut leaders = 0;
    for round in 1..=n {
        // SAFETY: our own slot; the other thread reads it only between the barriers below.
        s.slots[me].with_mut(|p| unsafe { *p = round });
        if s.barrier.wait().is_leader() {
            leaders += 1;
        }
        // SAFETY: the other thread wrote its slot before the barrier and writes it next only
        // after the second barrier.
        let theirs = s.slots[1 - me].with(|p| unsafe { *p });
        assert_eq!(theirs, round);
        s.barrier.wait();
        assert_eq!(lock_depth(), 0);
    }
    leaders
}

#[test]
fn two_threads_two_generations() {
    model(|| {
        let s = Arc::new(Shared { barrier: Barrier::new(2), slots: [UnsafeCell::new(0), UnsafeCell::new(0)] });
        let s2 = s.clone();
        let t = thread::spawn(move || rounds(&s2, 1, 1));
        let mine = rounds(&s, 0, 1);
        let theirs = t.join().unwrap();
        assert_eq!(mine + theirs, 1, "one leader per round");
    });
}

#[test]
fn one_leader_among_three() {
    model(|| {
        let b = Arc::new(Barrier::new(3));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.wait().is_leader() as u32)
            })
            .collect();
        let mut leaders = b.wait().is_leader() as u32;
        for t in ts {
            leaders += t.join().unwrap();
        }
        assert_eq!(leaders, 1);
    });
}
