//! `sync::Semaphore`: the permit count bounds who is inside (loom checks the accesses a single
//! permit guards), a release is never lost against an acquirer going to sleep (the two-fence
//! handshake), and a permit does not count towards the lock depth.

use crthreads::sync::{Semaphore, lock_depth};
use crthreads_loom_tests::{Arc, UnsafeCell, model, thread};

struct Shared {
    sem: Semaphore,
    value: UnsafeCell<u32>,
}

// SAFETY: `value` is only touched by the holder of the semaphore's single permit.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn increment(s: &Shared) {
    s.sem.acquire();
    assert_eq!(lock_depth(), 0, "a permit is not a lock");
    // SAFETY: we hold the only permit.
    s.value.with_mut(|p| unsafe { *p += 1 });
    s.sem.release();
}

#[test]
fn one_permit_excludes() {
    model(|| {
        let s = Arc::new(Shared { sem: Semaphore::new(1), value: UnsafeCell::new(0) });
        let s2 = s.clone();
        let t = thread::spawn(move || increment(&s2));
        increment(&s);
        t.join().unwrap();
        assert_eq!(s.sem.available(), 1);
        // SAFETY: both threads are done.
        assert_eq!(s.value.with(|p| unsafe { *p }), 2);
    });
}

#[test]
fn a_release_wakes_a_sleeping_acquirer() {
    model(|| {
        let s = Arc::new(Semaphore::new(0));
        let s2 = s.clone();
        let t = thread::spawn(move || s2.release());
        s.acquire();
        t.join().unwrap();
        assert_eq!(s.available(), 0);
    });
}

#[test]
fn two_acquirers_two_releases() {
    model(|| {
        let s = Arc::new(Semaphore::new(0));
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || s.acquire())
            })
            .collect();
        s.release();
        s.release();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.available(), 0);
        assert!(!s.try_acquire());
    });
}
