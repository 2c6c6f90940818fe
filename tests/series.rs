//! A slot file of another run is never merged into this run's chain of checkpoints.
//!
//! Two runs of this binary write checkpoints into two directories, with different data in a
//! block that never changes after the first checkpoint. The older slot of the first directory is
//! then replaced by the second run's file. The first directory must still restore its newest
//! checkpoint, warn about the foreign slot, and, after the next checkpoint (which has to rewrite
//! that slot completely), restore the right data from that slot too. Without a series identity
//! the foreign slot passes validation and the next checkpoint writes only the pages changed
//! since it, leaving the other run's unchanging block in the image.

mod common;

use std::path::Path;

use common::{Rng, TempDir, child, killed, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

struct State {
    /// Written once, before the first checkpoint, from the run's salt.
    fixed: Vec<u64>,
    /// Rewritten before every checkpoint.
    counter: u64,
}

fn fixed(salt: u64) -> Vec<u64> {
    let mut r = Rng(salt);
    (0..20_000).map(|_| r.next()).collect()
}

fn cfg() -> crthreads::Config {
    crthreads::Config::from_env().unwrap().dir(std::env::var("DIR").unwrap()).capacity(64 << 20).keep(true)
}

/// Child: `ROUNDS` more checkpoints on top of whatever it restored, then a crash.
fn child_work() {
    let salt: u64 = std::env::var("SALT").unwrap().parse().unwrap();
    let start = crthreads::init(cfg()).unwrap();
    // SAFETY: State holds only persistent data.
    let mut s = unsafe { crthreads::root(|| State { fixed: fixed(salt), counter: 0 }) }.unwrap();
    let rounds: u64 = std::env::var("ROUNDS").unwrap().parse().unwrap();
    println!("{start:?} counter={} fixed_ok={}", s.counter, s.fixed == fixed(salt));
    for _ in 0..rounds {
        s.counter += 1;
        crthreads::checkpoint().unwrap();
    }
    // SAFETY: crash as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

fn work(dir: &Path, salt: u64, rounds: u64) -> std::process::Output {
    let o =
        child("work").env("DIR", dir).env("SALT", salt.to_string()).env("ROUNDS", rounds.to_string()).output().unwrap();
    assert!(killed(&o.status), "{o:?}");
    o
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn a_slot_of_another_run_is_never_merged() {
    let t = TempDir::new("series");
    let (x, y) = (t.join("x"), t.join("y"));
    work(&x, 1, 3); // x: slot-0 holds checkpoint 3, slot-1 checkpoint 2
    work(&y, 2, 3); // the same program, another run, other data
    std::fs::copy(y.join("slot-1"), x.join("slot-1")).unwrap();
    // The newest checkpoint restores; the foreign slot is named and set aside.
    let o = work(&x, 1, 1);
    assert!(out(&o).contains("Restored { seq: 3 } counter=3 fixed_ok=true"), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("belongs to another checkpoint series"), "{err}");
    // Checkpoint 4 went into slot-1; make restore depend on it alone.
    std::fs::remove_file(x.join("slot-0")).unwrap();
    let o = work(&x, 1, 0);
    assert!(out(&o).contains("Restored { seq: 4 } counter=4 fixed_ok=true"), "{o:?}");
}

fn main() {
    if role().as_deref() == Some("work") {
        return child_work();
    }
    run_tests(&[("a_slot_of_another_run_is_never_merged", a_slot_of_another_run_is_never_merged)]);
}
