//! The thread runtime's gather handshake (`crthreads::thread::handshake`): while the
//! coordinator commits, no thread runs region code; an abandoned attempt lets every thread go;
//! no thread waits forever to leave its safepoint.
//!
//! Each thread's "region work" writes a cell that the coordinator reads while committing: loom
//! reports a data race if the two can overlap, which is exactly a checkpoint copying a stack
//! or heap that is still being written.

use crthreads::thread::handshake::{COMMITTING, Handshake, RUNNING, SAFE};
use crthreads_loom_tests::{Arc, AtomicU32, Ordering, UnsafeCell, model, thread};

struct Shared {
    hs: Handshake,
    sides: [AtomicU32; 2],
    cells: [UnsafeCell<u32>; 2],
}

// SAFETY: each cell is written by its thread between leave_safe and enter_safe, and read by
// the coordinator only while committing; loom checks that these never overlap.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn shared() -> Arc<Shared> {
    let s = Shared {
        hs: Handshake::new(),
        sides: [AtomicU32::new(SAFE), AtomicU32::new(SAFE)],
        cells: [UnsafeCell::new(0), UnsafeCell::new(0)],
    };
    Arc::new(s)
}

/// A persistent thread: leaves its safepoint, runs (writes its cell), parks again; `rounds`
/// times.
fn worker(s: &Shared, i: usize, rounds: u32) {
    for _ in 0..rounds {
        s.hs.leave_safe(&s.sides[i]);
        assert_ne!(s.hs.phase(), COMMITTING, "a thread runs while a checkpoint commits");
        // SAFETY: see `Shared`.
        s.cells[i].with_mut(|v| unsafe { *v += 1 });
        s.hs.enter_safe(&s.sides[i]);
    }
}

#[test]
fn nobody_runs_while_a_checkpoint_commits() {
    model(|| {
        let s = shared();
        let ts: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || worker(&s, i, 1))
            })
            .collect();
        // One attempt: gather (waiting as the real gatherer does), commit, finish.
        s.hs.begin();
        loop {
            let seen = s.hs.changes();
            if s.hs.all_safe(s.sides.iter()) {
                break;
            }
            s.hs.wait_change(seen);
        }
        s.hs.commit();
        for c in &s.cells {
            // SAFETY: see `Shared`: the copy of a frozen stack.
            let v = c.with(|v| unsafe { *v });
            assert!(v <= 1);
        }
        s.hs.finish();
        for t in ts {
            t.join().unwrap();
        }
        for side in &s.sides {
            assert_ne!(side.load(Ordering::SeqCst), RUNNING);
        }
    });
}

#[test]
fn an_abandoned_attempt_lets_every_thread_go() {
    model(|| {
        let s = shared();
        let s1 = s.clone();
        let t = thread::spawn(move || worker(&s1, 0, 2));
        // The attempt looks once and gives up unless everyone is safe right away (the real
        // coordinator gives up after a time limit); if it may commit, it reads the cells.
        s.hs.begin();
        if s.hs.all_safe(s.sides.iter()) {
            s.hs.commit();
            // SAFETY: see `Shared`.
            let v = s.cells[0].with(|v| unsafe { *v });
            assert!(v <= 2);
        }
        s.hs.finish();
        // The worker finishes both rounds either way: no thread is left waiting to leave.
        t.join().unwrap();
        // SAFETY: the worker is done.
        assert_eq!(s.cells[0].with(|v| unsafe { *v }), 2);
    });
}

#[test]
fn two_attempts_in_a_row_never_overlap_a_running_thread() {
    model(|| {
        let s = shared();
        let s1 = s.clone();
        let t = thread::spawn(move || worker(&s1, 0, 2));
        for _ in 0..2 {
            s.hs.begin();
            loop {
                let seen = s.hs.changes();
                if s.hs.all_safe(s.sides.iter()) {
                    break;
                }
                s.hs.wait_change(seen);
            }
            s.hs.commit();
            // SAFETY: see `Shared`.
            let _ = s.cells[0].with(|v| unsafe { *v });
            s.hs.finish();
        }
        t.join().unwrap();
    });
}
