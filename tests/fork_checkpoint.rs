//! A checkpoint and a `fork()` running at the same time never deadlock, with either tracker.
//!
//! One thread takes checkpoints in a loop while another forks in a loop (each child exits at
//! once). The fork handlers take the allocators' locks, the checkpoint takes the heap's locks
//! and (before the locks were ordered and the checkpoint's stop window made allocation-free)
//! allocated from the volatile allocator while holding them: the two took the same locks in
//! opposite orders and hung within a few iterations. A hang fails the test (the parent kills a
//! child that runs past a generous limit).

mod common;

use std::time::Duration;

use common::{TempDir, child, role, run_tests, wait_or_kill};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn child_race() {
    crthreads::init_from_env().unwrap();
    // SAFETY: the root holds a Vec of the persistent heap.
    let mut v = unsafe { crthreads::root(Vec::<u64>::new) }.unwrap();
    v.extend(0..100_000);
    let forks = std::thread::spawn(|| {
        for _ in 0..300 {
            // SAFETY: the child only calls _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: leaving the child at once, without running exit handlers.
                unsafe { libc::_exit(0) };
            }
            assert!(pid > 0, "fork failed");
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        }
    });
    let mut n = 0;
    while !forks.is_finished() {
        crthreads::checkpoint().unwrap();
        n += 1;
    }
    forks.join().unwrap();
    let bad = crthreads::heap::volatile::forbidden_allocations();
    println!("done {n} checkpoints, {bad} allocations in stop windows");
}

fn checkpoints_and_forks_never_deadlock() {
    for tracker in ["uffd", "mprotect"] {
        for round in 0..3 {
            let t = TempDir::new("forkrace");
            let mut c = child("race")
                .env("CRTHREADS_DIR", t.join("ck"))
                .env("CRTHREADS_TRACKER", tracker)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let (st, hung) = wait_or_kill(&mut c, Duration::from_secs(120));
            let mut out = String::new();
            std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut out).unwrap();
            assert!(!hung, "{tracker} round {round}: a checkpoint and a fork deadlocked: {out}");
            assert!(st.success() && out.contains("done"), "{tracker} round {round}: {st:?} {out}");
            assert!(out.contains(", 0 allocations in stop windows"), "{tracker} round {round}: {out}");
        }
    }
}

fn main() {
    if role().as_deref() == Some("race") {
        return child_race();
    }
    run_tests(&[("checkpoints_and_forks_never_deadlock", checkpoints_and_forks_never_deadlock)]);
}
