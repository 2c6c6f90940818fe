//! `sync::Condvar` with `sync::Mutex`: a notification is never lost between the predicate check
//! and the sleep, and a wait returns with the lock depth it was called with.

use crthreads::sync::{Condvar, Mutex, lock_depth};
use crthreads_loom_tests::{Arc, model, thread};

#[test]
fn wait_while_sees_the_notified_predicate() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let t = thread::spawn(move || {
            *p2.0.lock().unwrap() = true;
            assert_eq!(lock_depth(), 0);
            p2.1.notify_one();
        });
        let g = pair.1.wait_while(pair.0.lock().unwrap(), |ready| !*ready).unwrap();
        assert!(*g);
        assert_eq!(lock_depth(), 1, "the wait returns holding the mutex");
        drop(g);
        assert_eq!(lock_depth(), 0);
        t.join().unwrap();
    });
}

#[test]
fn a_wait_under_an_outer_lock_returns_with_depth_two() {
    model(|| {
        let outer = Mutex::new(());
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let p2 = pair.clone();
        let t = thread::spawn(move || {
            *p2.0.lock().unwrap() += 1;
            p2.1.notify_all();
        });
        let _o = outer.lock().unwrap();
        let mut g = pair.0.lock().unwrap();
        assert_eq!(lock_depth(), 2);
        while *g == 0 {
            g = pair.1.wait(g).unwrap();
            assert_eq!(lock_depth(), 2);
        }
        drop(g);
        assert_eq!(lock_depth(), 1);
        t.join().unwrap();
    });
}

#[test]
fn notify_all_wakes_both_waiters() {
    model(|| {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let p = pair.clone();
                thread::spawn(move || {
                    drop(p.1.wait_while(p.0.lock().unwrap(), |go| !*go).unwrap());
                    assert_eq!(lock_depth(), 0);
                })
            })
            .collect();
        *pair.0.lock().unwrap() = true;
        pair.1.notify_all();
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn notify_one_per_item_wakes_enough_waiters() {
    // Two consumers each wait for an item; two notify_one calls, one per item, must get both
    // through (a notification that wakes nobody while a consumer sleeps would hang the model).
    model(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let p = pair.clone();
                thread::spawn(move || {
                    let mut g = p.1.wait_while(p.0.lock().unwrap(), |items| *items == 0).unwrap();
                    *g -= 1;
                })
            })
            .collect();
        for _ in 0..2 {
            *pair.0.lock().unwrap() += 1;
            pair.1.notify_one();
        }
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*pair.0.lock().unwrap(), 0);
    });
}
