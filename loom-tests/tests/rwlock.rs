//! `sync::RwLock` (over `RawRwLock`): readers share, a writer excludes everyone (loom checks the
//! accesses to the data), no lost wake-up on the one futex word, and the lock depth.

use crthreads::sync::{RwLock, TryLockError, lock_depth};
use crthreads_loom_tests::{Arc, model, thread};

#[test]
fn a_reader_sees_all_of_a_write_or_none_of_it() {
    model(|| {
        let l = Arc::new(RwLock::new((0u32, 0u32)));
        let l2 = l.clone();
        let w = thread::spawn(move || {
            let mut g = l2.write().unwrap();
            assert_eq!(lock_depth(), 1);
            g.0 += 1;
            g.1 += 1;
            drop(g);
            assert_eq!(lock_depth(), 0);
        });
        let g = l.read().unwrap();
        assert_eq!(lock_depth(), 1);
        assert_eq!(g.0, g.1);
        drop(g);
        assert_eq!(lock_depth(), 0);
        w.join().unwrap();
        assert_eq!(*l.read().unwrap(), (1, 1));
    });
}

#[test]
fn two_writers_and_a_reader_without_lost_wakeups() {
    model(|| {
        let l = Arc::new(RwLock::new(0u32));
        let ws: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || *l.write().unwrap() += 1)
            })
            .collect();
        let v = *l.read().unwrap();
        assert!(v <= 2);
        for w in ws {
            w.join().unwrap();
        }
        assert_eq!(*l.read().unwrap(), 2);
        assert_eq!(lock_depth(), 0);
    });
}

#[test]
fn readers_share_and_each_read_lock_counts() {
    model(|| {
        let l = Arc::new(RwLock::new(7u32));
        let l2 = l.clone();
        let t = thread::spawn(move || {
            // A read lock and a second one, while the main thread may hold a read lock too.
            let a = l2.read().unwrap();
            let b = l2.try_read();
            let expect = if b.is_ok() { 2 } else { 1 };
            assert_eq!(lock_depth(), expect);
            assert_eq!(*a, 7);
            drop(b);
            drop(a);
            assert_eq!(lock_depth(), 0);
        });
        let g = l.read().unwrap();
        assert!(matches!(l.try_write(), Err(TryLockError::WouldBlock)));
        assert_eq!(lock_depth(), 1);
        drop(g);
        t.join().unwrap();
        assert!(l.try_write().is_ok());
        assert_eq!(lock_depth(), 0);
    });
}

#[test]
fn two_readers_and_a_writer_all_finish() {
    model(|| {
        let l = Arc::new(RwLock::new(0u32));
        let rs: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                thread::spawn(move || {
                    let v = *l.read().unwrap();
                    assert!(v <= 1);
                    assert_eq!(lock_depth(), 0);
                })
            })
            .collect();
        *l.write().unwrap() += 1;
        for r in rs {
            r.join().unwrap();
        }
        assert_eq!(*l.read().unwrap(), 1);
    });
}
