//! Restore time of a program with 64 persistent threads and a 1 GiB heap, for each tracker,
//! against reading the same checkpoint file with plain `pread` into fresh memory.
//!
//! 1. **Build** (once per tracker): a child runs `crthreads::main` (`CRTHREADS_POLICY=manual`);
//!    its 64 persistent threads each fill `--mib`/64 MiB of the persistent heap with varied,
//!    non-zero pages, then wait on a condition variable. The main thread takes one checkpoint
//!    (complete, so it is mirrored into both slots) and the parent kills the child with
//!    SIGKILL.
//! 2. **Restore** (`--rounds` times): the parent starts the program again on the same directory
//!    and takes the time from just before it starts it (fork + exec) until every one of the 64
//!    threads runs again: an `after_restore` hook (which runs before any thread resumes) sets a
//!    flag in the new process's own memory; each thread, back from its wait (a restore ends it
//!    as a spurious wake-up), sees the flag and counts itself under the mutex, and the main
//!    thread, back from its `checkpoint()` call, notifies the condition variable once (for a
//!    thread the checkpoint caught at the release inside `Condvar::wait`, before it began to
//!    sleep: restored, it goes on to sleep for real), waits for the count to reach 64 and reads
//!    `CLOCK_MONOTONIC` (the same clock as the parent's). Only after that does each thread check
//!    its data (a word of every page), so checking is not timed; a mismatch fails the benchmark.
//!    `CRTHREADS_KEEP=1` keeps the checkpoint for the next round. Columns: the whole time, and
//!    its parts: start (fork, exec, crthreads' re-execution without ASLR, up to `main`), init
//!    (up to the hook: mapping the region, reading and checking the image, starting the
//!    tracker), threads (from the hook until all 64 run).
//! 3. **Baseline** (each round, interleaved with the restores): the data of the slot file the
//!    restore reads (a sparse file: its data ranges, found with `SEEK_DATA`/`SEEK_HOLE`; page
//!    cache warm), read with `pread` in pieces of at most 2 MiB (the store's read size) into one
//!    freshly mapped anonymous buffer, by one thread, and by two threads (the store's restore
//!    reads with up to 4 threads, 2 on a 2-core machine). The ratio is restore / 1-thread pread.
//!
//! `CRTHREADS_CAPACITY` is set to 4G (room for the 1 GiB heap, stacks and metadata). The
//! checkpoint directories are removed at the end.
//!
//! `cargo run --release -p crthreads-benches --bin restore -- [--mib 1024] [--threads 64] [--rounds 5] [--trackers uffd,mprotect]`

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crthreads::sync::{Condvar, Mutex};
use crthreads_benches::stats::mono_ns;
use crthreads_benches::{TempDir, Watchdog, arg, child, median, role};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const PAGE: usize = 4096;
const WORDS_PER_PAGE: usize = PAGE / 8;

/// Set by the `after_restore` hook: this process was restored (volatile memory, so it is false
/// in the run that built the checkpoint and in its image).
static RESTORED: AtomicBool = AtomicBool::new(false);
/// When `main` started, and when the hook ran (monotonic ns).
static T_MAIN: AtomicU64 = AtomicU64::new(0);
static T_HOOK: AtomicU64 = AtomicU64::new(0);

fn after_restore(_seq: u64) {
    T_HOOK.store(mono_ns(), Ordering::SeqCst);
    RESTORED.store(true, Ordering::SeqCst);
}

/// What the threads share, under `m`.
#[derive(Default)]
struct Counts {
    built: usize,
    resumed: usize,
    checked: usize,
    bad_pages: u64,
    quit: bool,
}

struct Shared {
    m: Mutex<Counts>,
    /// Workers wait here.
    cv: Condvar,
    /// The main thread waits here.
    main_cv: Condvar,
}

/// Word `i` of thread `k`'s data: every page differs from every other, none is zero.
#[inline]
fn word(k: usize, i: usize) -> u64 {
    ((k as u64 + 1) << 48) ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// Pages of thread `k`'s data whose first or last word is not what was written.
fn check(k: usize, data: &[u64]) -> u64 {
    let mut bad = 0;
    for p in (0..data.len()).step_by(WORDS_PER_PAGE) {
        let last = (p + WORDS_PER_PAGE).min(data.len()) - 1;
        if data[p] != word(k, p) || data[last] != word(k, last) {
            bad += 1;
        }
    }
    bad
}

/// The program that builds the checkpoint and, restored, measures its resumption.
fn child_program(mib: usize, threads: usize) {
    T_MAIN.store(mono_ns(), Ordering::SeqCst);
    crthreads::hooks::after_restore(after_restore).expect("hook");
    let r = crthreads::main(move || {
        let sh = Arc::new(Shared { m: Mutex::new(Counts::default()), cv: Condvar::new(), main_cv: Condvar::new() });
        let words = (mib << 20) / threads / 8 / WORDS_PER_PAGE * WORDS_PER_PAGE;
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                let sh = sh.clone();
                crthreads::thread::spawn(move || {
                    let mut data = vec![0u64; words];
                    for (i, w) in data.iter_mut().enumerate() {
                        *w = word(k, i);
                    }
                    let mut g = sh.m.lock().unwrap();
                    g.built += 1;
                    sh.main_cv.notify_all();
                    let mut counted = false;
                    while !g.quit {
                        if RESTORED.load(Ordering::SeqCst) && !counted {
                            counted = true;
                            g.resumed += 1;
                            sh.main_cv.notify_all();
                            drop(g);
                            let bad = check(k, &data);
                            g = sh.m.lock().unwrap();
                            g.checked += 1;
                            g.bad_pages += bad;
                            sh.main_cv.notify_all();
                            continue;
                        }
                        g = sh.cv.wait(g).unwrap();
                    }
                    drop(g);
                    data.len()
                })
            })
            .collect();
        drop(sh.main_cv.wait_while(sh.m.lock().unwrap(), |c| c.built < threads).unwrap());
        // Every worker is (or will be, once gathered) waiting on `cv`, at depth 0.
        let s = crthreads::checkpoint().expect("checkpoint");
        if !RESTORED.load(Ordering::SeqCst) {
            println!("checkpointed {} {} {}", s.seq, s.pages_written, s.bytes_written);
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            // The parent kills this process now.
            loop {
                crthreads::thread::sleep(Duration::from_secs(1));
            }
        }
        // Restored: the checkpoint() call returned in a new process. A worker gathered at the
        // release inside `Condvar::wait` (before it began to sleep) resumes there and goes on to
        // sleep for real, as it would have without the restore: wake it. Workers gathered while
        // asleep are back already (a restore ends their wait as a spurious wake-up).
        sh.cv.notify_all();
        let g = sh.main_cv.wait_while(sh.m.lock().unwrap(), |c| c.resumed < threads).unwrap();
        let t_all = mono_ns();
        drop(g);
        println!("resumed {} {} {t_all}", T_MAIN.load(Ordering::SeqCst), T_HOOK.load(Ordering::SeqCst));
        let mut g = sh.main_cv.wait_while(sh.m.lock().unwrap(), |c| c.checked < threads).unwrap();
        assert_eq!(g.bad_pages, 0, "restored pages differ from what was written");
        g.quit = true;
        sh.cv.notify_all();
        drop(g);
        for h in hs {
            assert_eq!(h.join().unwrap(), words);
        }
    });
    r.unwrap_or_else(|e| panic!("crthreads::main: {e}"));
}

/// An anonymous mapping of `len` bytes, unmapped on drop.
struct Fresh {
    p: *mut u8,
    len: usize,
}

impl Fresh {
    fn new(len: usize) -> Fresh {
        // SAFETY: a new private anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap");
        Fresh { p: p.cast(), len }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer referenced.
        unsafe { libc::munmap(self.p.cast(), self.len) };
    }
}

/// The parts of `file` that hold data (a slot file is a sparse image of the region), found
/// with `SEEK_DATA`/`SEEK_HOLE`, cut into pieces of at most 2 MiB (the store's read size):
/// `(file offset, length)`.
fn data_pieces(file: &std::fs::File) -> Vec<(u64, usize)> {
    use std::os::fd::AsRawFd;
    const PIECE: u64 = 2 << 20;
    let fd = file.as_raw_fd();
    let len = file.metadata().unwrap().len() as i64;
    let mut out = Vec::new();
    let mut at = 0i64;
    while at < len {
        // SAFETY: lseek on our own open file descriptor.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            break; // ENXIO: no data after `at`
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        assert!(hole > data, "lseek(SEEK_HOLE)");
        let mut p = data as u64;
        while p < hole as u64 {
            let n = PIECE.min(hole as u64 - p);
            out.push((p, n as usize));
            p += n;
        }
        at = hole;
    }
    out
}

/// Seconds to read `pieces` of `file` with `pread` into one freshly mapped buffer, by
/// `threads` threads taking pieces in turn.
fn pread_baseline(file: &std::fs::File, pieces: &[(u64, usize)], threads: usize) -> f64 {
    let total: usize = pieces.iter().map(|p| p.1).sum();
    let mut dst_off = Vec::with_capacity(pieces.len());
    let mut acc = 0;
    for p in pieces {
        dst_off.push(acc);
        acc += p.1;
    }
    let t = mono_ns();
    let buf = Fresh::new(total.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let base = buf.p as usize;
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(off, n)) = pieces.get(i) else { return };
            // SAFETY: `dst_off[i]..+n` lies inside the mapping, and each piece is taken by one
            // thread only.
            let dst = unsafe { std::slice::from_raw_parts_mut((base + dst_off[i]) as *mut u8, n) };
            file.read_exact_at(dst, off).expect("pread");
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    let secs = (mono_ns() - t) as f64 / 1e9;
    drop(buf);
    secs
}

/// Reads `c`'s output until a line starting with `key`; returns that line's other fields.
/// Panics, with the child's stderr, if it ends first or does not get there within `limit`
/// (it is then killed).
fn read_until(c: &mut std::process::Child, key: &str, limit: Duration) -> Vec<String> {
    let dog = Watchdog::new(c.id(), limit);
    let mut r = BufReader::new(c.stdout.as_mut().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            let fired = dog.fired();
            drop(dog);
            let mut err = String::new();
            if let Some(e) = c.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            let st = c.wait().unwrap();
            if fired {
                panic!("the child did not print {key:?} within {limit:?} and was killed (a hang)\n{err}");
            }
            panic!("the child ended ({st}) without printing {key:?}\n{err}");
        }
        if line.split_whitespace().next() == Some(key) {
            return line.split_whitespace().skip(1).map(String::from).collect();
        }
    }
}

fn main() {
    let mib: usize = arg("--mib", 1024);
    let threads: usize = arg("--threads", 64);
    let rounds: usize = arg("--rounds", 5);
    if role().as_deref() == Some("program") {
        return child_program(mib, threads);
    }
    let trackers: String = arg("--trackers", "uffd,mprotect".to_string());
    let dir = TempDir::new("restore");
    let program = |tracker: &str, ckdir: &std::path::Path| {
        let mut c = child("program");
        c.env("CRTHREADS_DIR", ckdir)
            .env("CRTHREADS_POLICY", "manual")
            .env("CRTHREADS_TRACKER", tracker)
            .env("CRTHREADS_CAPACITY", "4G")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    println!(
        "restore of {mib} MiB of persistent data with {threads} persistent threads (waiting on a condvar), {rounds} rounds; \
         baseline: the slot file read with pread into fresh memory, page cache warm"
    );
    println!(
        "{:<9} {:>10} | {:>9} {:>8} {:>8} {:>8} | {:>10} {:>10} | {:>8} {:>8}",
        "tracker", "image MiB", "total ms", "start", "init", "threads", "pread ms", "pread2 ms", "/pread", "/pread2"
    );
    for tracker in trackers.split(',') {
        let ckdir = dir.join(tracker);
        let mut b = program(tracker, &ckdir).spawn().expect("spawn");
        let built = read_until(&mut b, "checkpointed", Duration::from_secs(120));
        b.kill().unwrap();
        b.wait().unwrap();
        let seq: u64 = built[0].parse().unwrap();
        assert_eq!(seq, 1, "the build should have taken exactly one checkpoint");
        // The first checkpoint is complete and mirrored: both slots hold the whole image.
        let slot = std::fs::File::open(ckdir.join("slot-0")).expect("the checkpoint's slot file");
        let pieces = data_pieces(&slot);
        let bytes = pieces.iter().map(|p| p.1).sum::<usize>() as f64;
        let (mut total, mut start, mut init, mut thr, mut p1, mut p2) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            // Alternate which goes first, so that neither always runs on a machine the other
            // just disturbed.
            let base = |p1: &mut Vec<f64>, p2: &mut Vec<f64>| {
                p1.push(pread_baseline(&slot, &pieces, 1) * 1e3);
                p2.push(pread_baseline(&slot, &pieces, 2) * 1e3);
            };
            if r % 2 == 0 {
                base(&mut p1, &mut p2);
            }
            let mut c = program(tracker, &ckdir);
            c.env("CRTHREADS_KEEP", "1");
            let t0 = mono_ns();
            let mut c = c.spawn().expect("spawn");
            let f: Vec<u64> =
                read_until(&mut c, "resumed", Duration::from_secs(60)).iter().map(|x| x.parse().unwrap()).collect();
            let dog = Watchdog::new(c.id(), Duration::from_secs(60));
            let mut rest = String::new();
            let _ = c.stdout.as_mut().unwrap().read_to_string(&mut rest);
            drop(dog);
            let st = c.wait().unwrap();
            if !st.success() {
                let mut err = String::new();
                let _ = c.stderr.as_mut().unwrap().read_to_string(&mut err);
                panic!("the restored program failed: {st}\n{err}");
            }
            let (t_main, t_hook, t_all) = (f[0], f[1], f[2]);
            let ms = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e6;
            total.push(ms(t0, t_all));
            start.push(ms(t0, t_main));
            init.push(ms(t_main, t_hook));
            thr.push(ms(t_hook, t_all));
            if r % 2 == 1 {
                base(&mut p1, &mut p2);
            }
        }
        let (tot, b1, b2) = (median(&mut total), median(&mut p1), median(&mut p2));
        println!(
            "{:<9} {:>10.0} | {:>9.1} {:>8.1} {:>8.1} {:>8.1} | {:>10.1} {:>10.1} | {:>7.2}x {:>7.2}x",
            tracker,
            bytes / (1 << 20) as f64,
            tot,
            median(&mut start),
            median(&mut init),
            median(&mut thr),
            b1,
            b2,
            tot / b1,
            tot / b2
        );
        drop(slot);
        let _ = std::fs::remove_dir_all(&ckdir);
    }
    println!(
        "\nmedians of {rounds} rounds. total: from starting the process to all {threads} threads running again = \
         start (fork, exec, re-exec without ASLR, to main) + init (map, read and check the image, start the \
         tracker, to the after_restore hook) + threads (hook to all running); image MiB: the data in the slot file \
         (pages, tables, header); pread, pread2: reading the slot file into fresh memory with 1 and 2 threads"
    );
}
