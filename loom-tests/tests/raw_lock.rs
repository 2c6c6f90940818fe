//! The runtime's internal futex lock: mutual exclusion, no lost wake-up, try_lock semantics.

use crthreads::sync::RawLock;
use crthreads_loom_tests::{Arc, UnsafeCell, model, thread};

struct Shared {
    lock: RawLock,
    value: UnsafeCell<u32>,
}

// SAFETY: `value` is only accessed with `lock` held.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn increment(s: &Shared) {
    s.lock.lock();
    // SAFETY: the lock is held; loom checks that no other access overlaps.
    s.value.with_mut(|v| unsafe { *v += 1 });
    // SAFETY: this thread holds the lock.
    unsafe { s.lock.unlock() };
}

#[test]
fn two_threads_exclude_each_other() {
    model(|| {
        let s = Arc::new(Shared { lock: RawLock::new(), value: UnsafeCell::new(0) });
        let s2 = s.clone();
        let t = thread::spawn(move || increment(&s2));
        increment(&s);
        t.join().unwrap();
        // SAFETY: both threads are done.
        assert_eq!(s.value.with(|v| unsafe { *v }), 2);
        assert!(!s.lock.is_locked());
    });
}

#[test]
fn three_threads_contend_without_lost_wakeups() {
    model(|| {
        let s = Arc::new(Shared { lock: RawLock::new(), value: UnsafeCell::new(0) });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || increment(&s))
            })
            .collect();
        increment(&s);
        for t in ts {
            t.join().unwrap();
        }
        // SAFETY: all threads are done.
        assert_eq!(s.value.with(|v| unsafe { *v }), 3);
    });
}

#[test]
fn try_lock_fails_while_held_and_succeeds_after() {
    model(|| {
        let s = Arc::new(Shared { lock: RawLock::new(), value: UnsafeCell::new(0) });
        s.lock.lock();
        let s2 = s.clone();
        let t = thread::spawn(move || {
            if s2.lock.try_lock() {
                // SAFETY: try_lock succeeded, so the lock is ours.
                s2.value.with_mut(|v| unsafe { *v += 10 });
                // SAFETY: held.
                unsafe { s2.lock.unlock() };
            }
        });
        // SAFETY: held by this thread.
        s.value.with_mut(|v| unsafe { *v += 1 });
        // SAFETY: held by this thread.
        unsafe { s.lock.unlock() };
        t.join().unwrap();
        // SAFETY: all threads are done.
        let v = s.value.with(|v| unsafe { *v });
        assert!(v == 1 || v == 11, "{v}");
    });
}
