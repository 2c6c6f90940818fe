//! `sync::Mutex` (over `RawMutex`): mutual exclusion (loom checks every access to the data
//! against the happens-before order), no lost wake-up, try_lock, and the lock depth.

use crthreads::sync::{Mutex, TryLockError, lock_depth};
use crthreads_loom_tests::{Arc, model, thread};

fn increment(m: &Mutex<u32>) {
    assert_eq!(lock_depth(), 0);
    let mut g = m.lock().unwrap();
    assert_eq!(lock_depth(), 1);
    *g += 1;
    drop(g);
    assert_eq!(lock_depth(), 0);
}

#[test]
fn two_threads_exclude_each_other() {
    model(|| {
        let m = Arc::new(Mutex::new(0));
        let m2 = m.clone();
        let t = thread::spawn(move || increment(&m2));
        increment(&m);
        t.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 2);
        assert_eq!(lock_depth(), 0);
    });
}

#[test]
fn three_threads_contend_without_lost_wakeups() {
    model(|| {
        let m = Arc::new(Mutex::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || increment(&m))
            })
            .collect();
        increment(&m);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*m.lock().unwrap(), 3);
    });
}

#[test]
fn nested_locks_count_towards_the_depth() {
    model(|| {
        let a = Arc::new(Mutex::new(0));
        let b = Arc::new(Mutex::new(0));
        let (a2, b2) = (a.clone(), b.clone());
        let both = move |a: &Mutex<u32>, b: &Mutex<u32>| {
            let mut ga = a.lock().unwrap();
            let mut gb = b.lock().unwrap();
            assert_eq!(lock_depth(), 2);
            *ga += 1;
            *gb += 1;
            drop(gb);
            assert_eq!(lock_depth(), 1);
            drop(ga);
            assert_eq!(lock_depth(), 0);
        };
        let t = thread::spawn(move || both(&a2, &b2));
        both(&a, &b);
        t.join().unwrap();
        assert_eq!((*a.lock().unwrap(), *b.lock().unwrap()), (2, 2));
    });
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after() {
    model(|| {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock().unwrap();
        let m2 = m.clone();
        let t = thread::spawn(move || match m2.try_lock() {
            Ok(mut g) => {
                assert_eq!(lock_depth(), 1);
                *g += 10;
            }
            Err(TryLockError::WouldBlock) => assert_eq!(lock_depth(), 0),
            Err(TryLockError::Poisoned(_)) => unreachable!("nobody panicked"),
        });
        drop(g);
        *m.lock().unwrap() += 1;
        t.join().unwrap();
        let v = *m.lock().unwrap();
        assert!(v == 1 || v == 11, "{v}");
        assert_eq!(lock_depth(), 0);
    });
}
