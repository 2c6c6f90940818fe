//! `sync::Once` and `sync::OnceLock`: under contention the closure runs once, every caller
//! returns after it completed and sees what it wrote (loom checks the accesses), and neither
//! touches the lock depth.

use crthreads::sync::{Once, OnceLock, lock_depth};
use crthreads_loom_tests::{Arc, UnsafeCell, model, thread};

struct Shared {
    once: Once,
    value: UnsafeCell<u32>,
}

// SAFETY: `value` is written inside the Once's closure and read only after `call_once` returns.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn init(s: &Shared) -> u32 {
    // SAFETY: the closure runs on one thread, before any `call_once` returns.
    s.once.call_once(|| s.value.with_mut(|p| unsafe { *p += 1 }));
    assert!(s.once.is_completed());
    assert_eq!(lock_depth(), 0);
    // SAFETY: after `call_once` the value is never written again.
    s.value.with(|p| unsafe { *p })
}

#[test]
fn call_once_runs_once_and_publishes() {
    model(|| {
        let s = Arc::new(Shared { once: Once::new(), value: UnsafeCell::new(0) });
        let s2 = s.clone();
        let t = thread::spawn(move || init(&s2));
        assert_eq!(init(&s), 1);
        assert_eq!(t.join().unwrap(), 1);
    });
}

#[test]
fn once_lock_has_one_winner() {
    model(|| {
        let cell = Arc::new(OnceLock::new());
        let c2 = cell.clone();
        let t = thread::spawn(move || *c2.get_or_init(|| 1u32));
        let mine = *cell.get_or_init(|| 2u32);
        let theirs = t.join().unwrap();
        assert_eq!(mine, theirs);
        assert_eq!(cell.get(), Some(&mine));
        assert_eq!(lock_depth(), 0);
    });
}

#[test]
fn three_callers_one_closure() {
    model(|| {
        let s = Arc::new(Shared { once: Once::new(), value: UnsafeCell::new(0) });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || init(&s))
            })
            .collect();
        assert_eq!(init(&s), 1);
        for t in ts {
            assert_eq!(t.join().unwrap(), 1);
        }
    });
}
