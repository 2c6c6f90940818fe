//! Cost of the first write to a tracked page, per backend, against the raw mechanism measured
//! in the same run: `mprotect` + a SIGSEGV handler that unprotects the page, and userfaultfd
//! write-protection in async mode (what the probe in the design notes measures).
//!
//! Each measurement runs in its own child process: N pages are populated, write-protected (raw)
//! or armed by a checkpoint (crthreads), then one byte is written to each page; reported is the
//! median over rounds of the time per page.
//!
//! `cargo run --release -p crthreads-benches --bin track -- [--pages 65536] [--rounds 5]`

use std::process::Command;
use std::time::Instant;

use crthreads_benches::{arg, median};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const PAGE: usize = 4096;

fn write_each(base: *mut u8, pages: usize, v: u8) -> f64 {
    let t = Instant::now();
    for i in 0..pages {
        // SAFETY: `base` has `pages` pages owned by the caller.
        unsafe { base.add(i * PAGE).write_volatile(v) };
    }
    t.elapsed().as_secs_f64() * 1e6 / pages as f64
}

extern "C" fn unprotect(_sig: i32, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: SIGSEGV siginfo carries the faulting address; the page is ours.
    unsafe {
        let a = (*info).si_addr() as usize & !(PAGE - 1);
        libc::mprotect(a as *mut _, PAGE, libc::PROT_READ | libc::PROT_WRITE);
    }
}

fn map(pages: usize) -> *mut u8 {
    // SAFETY: a fresh anonymous mapping.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            pages * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    // SAFETY: populate it.
    unsafe { libc::memset(p, 1, pages * PAGE) };
    p.cast()
}

fn raw_mprotect(pages: usize, rounds: usize) -> f64 {
    let base = map(pages);
    // SAFETY: installing a handler for this benchmark process.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = unprotect as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut());
    }
    let mut v: Vec<f64> = (0..rounds)
        .map(|r| {
            // SAFETY: our mapping.
            unsafe { libc::mprotect(base.cast(), pages * PAGE, libc::PROT_READ) };
            write_each(base, pages, r as u8)
        })
        .collect();
    median(&mut v)
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}
#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}
#[repr(C)]
struct UffdioWp {
    start: u64,
    len: u64,
    mode: u64,
}

fn raw_uffd(pages: usize, rounds: usize) -> f64 {
    let base = map(pages);
    // SAFETY: the userfaultfd setup of the probe, on our own mapping.
    unsafe {
        let fd = libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK | 1) as i32;
        assert!(fd >= 0, "userfaultfd unavailable");
        let mut api = UffdioApi { api: 0xAA, features: (1 << 15) | (1 << 13), ioctls: 0 };
        assert_eq!(libc::ioctl(fd, 0xC018_AA3F, &mut api), 0, "UFFD_FEATURE_WP_ASYNC unavailable");
        let mut reg = UffdioRegister { start: base as u64, len: (pages * PAGE) as u64, mode: 2, ioctls: 0 };
        assert_eq!(libc::ioctl(fd, 0xC020_AA00, &mut reg), 0);
        let mut v: Vec<f64> = (0..rounds)
            .map(|r| {
                let mut wp = UffdioWp { start: base as u64, len: (pages * PAGE) as u64, mode: 1 };
                assert_eq!(libc::ioctl(fd, 0xC018_AA06, &mut wp), 0);
                write_each(base, pages, r as u8)
            })
            .collect();
        median(&mut v)
    }
}

fn crthreads_first_write(pages: usize, rounds: usize) -> f64 {
    let dir = crthreads_benches::temp_dir("track");
    crthreads::init(crthreads::Config::from_env().expect("config").dir(&dir).reexec(false)).expect("init");
    // SAFETY: the root holds only persistent data.
    let mut root = unsafe { crthreads::root(|| vec![1u8; pages * PAGE]) }.expect("root");
    let base = root.as_mut_ptr();
    let mut v: Vec<f64> = (0..rounds)
        .map(|r| {
            crthreads::checkpoint().expect("checkpoint");
            write_each(base, pages, r as u8)
        })
        .collect();
    let _ = crthreads::retire();
    median(&mut v)
}

fn main() {
    let pages: usize = arg("--pages", 65536);
    let rounds: usize = arg("--rounds", 5);
    if let Ok(role) = std::env::var("CRT_BENCH_ROLE") {
        let us = match role.as_str() {
            "raw-mprotect" => raw_mprotect(pages, rounds),
            "raw-uffd" => raw_uffd(pages, rounds),
            _ => crthreads_first_write(pages, rounds),
        };
        println!("{us}");
        return;
    }
    let child = |role: &str, tracker: &str| -> f64 {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--pages", &pages.to_string(), "--rounds", &rounds.to_string()])
            .env("CRT_BENCH_ROLE", role)
            .env("CRTHREADS_TRACKER", tracker)
            .output()
            .unwrap();
        assert!(out.status.success(), "{role}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    println!("first write to a tracked page, {pages} pages, median of {rounds} rounds (µs/page)");
    println!("{:<10} {:>10} {:>12} {:>8}", "backend", "raw", "crthreads", "ratio");
    for (raw, tracker) in [("raw-uffd", "uffd"), ("raw-mprotect", "mprotect")] {
        let r = child(raw, tracker);
        let c = child("crthreads", tracker);
        println!("{:<10} {:>10.3} {:>12.3} {:>7.2}x", tracker, r, c, c / r);
    }
}
