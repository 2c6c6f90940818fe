//! Small-object malloc/free throughput: crthreads' persistent heap against glibc's malloc,
//! measured in the same run, single-threaded and with two threads.
//!
//! Workload per thread: a working set of `--slots` pointers; each operation picks a random
//! slot, frees what it holds and allocates a new block of a random size in `16..=--max`
//! bytes, writing its first byte (so the block is really used). Reported: median million
//! operations (one free + one malloc) per second over `--rounds` rounds, and the ratio.
//!
//! `cargo run --release -p crthreads-benches --bin malloc`

use crthreads_benches::{Rng, arg, median_of, temp_dir, time};

type Alloc = (fn(usize) -> *mut u8, unsafe fn(*mut u8));

fn glibc_malloc(n: usize) -> *mut u8 {
    // SAFETY: plain libc malloc.
    unsafe { libc::malloc(n).cast() }
}
unsafe fn glibc_free(p: *mut u8) {
    // SAFETY: `p` came from glibc_malloc.
    unsafe { libc::free(p.cast()) }
}
unsafe fn cr_free(p: *mut u8) {
    // SAFETY: `p` came from crthreads::heap::malloc.
    unsafe { crthreads::heap::free(p) }
}

fn work(a: Alloc, ops: usize, slots: usize, max: usize, seed: u64) {
    let mut rng = Rng(seed);
    let mut v: Vec<*mut u8> = vec![std::ptr::null_mut(); slots];
    for _ in 0..ops {
        let r = rng.next_u64();
        let i = (r as usize) % slots;
        let size = 16 + ((r >> 32) as usize) % (max - 15);
        if !v[i].is_null() {
            // SAFETY: the slot holds a live block of this allocator.
            unsafe { (a.1)(v[i]) };
        }
        let p = (a.0)(size);
        assert!(!p.is_null());
        // SAFETY: the block has at least one byte.
        unsafe { p.write(r as u8) };
        v[i] = p;
    }
    for p in v {
        if !p.is_null() {
            // SAFETY: live block.
            unsafe { (a.1)(p) };
        }
    }
}

fn mops(a: Alloc, threads: usize, ops: usize, slots: usize, max: usize) -> f64 {
    let secs = time(|| {
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || work(a, ops, slots, max, 42 + t as u64));
            }
        })
    });
    (threads * ops) as f64 / secs / 1e6
}

fn main() {
    let ops: usize = arg("--ops", 2_000_000);
    let slots: usize = arg("--slots", 1000);
    let max: usize = arg("--max", 512);
    let rounds: usize = arg("--rounds", 7);
    let dir = temp_dir("malloc");
    crthreads::init(crthreads::Config::default().dir(&dir).reexec(false).keep(false)).expect("init");
    let cr: Alloc = (crthreads::heap::malloc, cr_free);
    let gl: Alloc = (glibc_malloc, glibc_free);
    // `--only crthreads|glibc`: one single-threaded pass, for instruction counting under
    // valgrind --tool=callgrind (which, unlike time, is repeatable on a noisy machine).
    let only: String = arg("--only", String::new());
    if !only.is_empty() {
        work(if only == "glibc" { gl } else { cr }, ops, slots, max, 42);
        return;
    }
    println!("malloc/free throughput, sizes 16..={max} B, {slots} live slots, {ops} ops/thread, median of {rounds}");
    println!("{:<10} {:>14} {:>14} {:>8}", "threads", "glibc Mops/s", "crthreads", "ratio");
    for threads in [1, 2] {
        // Warm both up once.
        mops(gl, threads, ops / 10, slots, max);
        mops(cr, threads, ops / 10, slots, max);
        let mut g = Vec::new();
        let mut c = Vec::new();
        for _ in 0..rounds {
            // Interleave rounds so that machine noise hits both alike.
            g.push(mops(gl, threads, ops, slots, max));
            c.push(mops(cr, threads, ops, slots, max));
        }
        let gm = median_of(1, || crthreads_benches::median(&mut g));
        let cm = median_of(1, || crthreads_benches::median(&mut c));
        println!("{threads:<10} {gm:>14.1} {cm:>14.1} {:>7.2}x", cm / gm);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
