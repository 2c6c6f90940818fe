//! Dirty-page tracking, end to end, under every backend: writes by the program, by the kernel
//! (`read`, `pread`, `readv`, `recv`, stdio) and by other threads are all seen by the next
//! checkpoint; a genuine segfault outside the region still kills the process with SIGSEGV; an
//! unavailable backend asked for by name is a clear error.

mod common;

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use common::{TempDir, child, role, run_tests, wait_or_kill};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const PAGES: usize = 64;
const PAGE: usize = 4096;
const TRACKERS: [&str; 3] = ["uffd", "mprotect", "full"];

fn init(dir: &str) -> crthreads::Start {
    crthreads::init(crthreads::Config::from_env().unwrap().dir(dir).keep(true)).unwrap()
}

/// Child: writes into the heap in every way a program can, checkpointing in between, then
/// reports the final contents' digest on stdout and dies (the parent restores and compares).
fn child_writer() {
    let dir = std::env::var("DIR").unwrap();
    assert_eq!(init(&dir), crthreads::Start::Fresh);
    // SAFETY: the root holds only heap data.
    let mut buf = unsafe { crthreads::root(|| vec![0u8; PAGES * PAGE]) }.unwrap();
    crthreads::checkpoint().unwrap();

    // 1. Plain writes, one per page.
    for p in 0..PAGES / 4 {
        buf[p * PAGE + 1] = 0xA1;
    }
    crthreads::checkpoint().unwrap();

    // 2. The kernel writes: read, pread, readv, recv, stdio.
    let src = std::env::var("SRC").unwrap();
    let mut f = std::fs::File::open(&src).unwrap();
    let n = f.read(&mut buf[16 * PAGE..18 * PAGE]).unwrap();
    assert_eq!(n, 2 * PAGE, "read() into tracked memory");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    // SAFETY: the destination is a live, writable heap range of the given length.
    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().add(20 * PAGE).cast(), PAGE, 100) };
    assert_eq!(r, PAGE as isize, "pread() into tracked memory: {}", std::io::Error::last_os_error());
    let iov = [
        libc::iovec { iov_base: buf[24 * PAGE..].as_mut_ptr().cast(), iov_len: 100 },
        libc::iovec { iov_base: buf[26 * PAGE..].as_mut_ptr().cast(), iov_len: 3000 },
    ];
    // SAFETY: both iovecs describe live heap ranges.
    let r = unsafe { libc::readv(fd, iov.as_ptr(), 2) };
    assert_eq!(r, 3100, "readv() into tracked memory: {}", std::io::Error::last_os_error());
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.write_all(&[0x5A; 3000]).unwrap();
    // SAFETY: a live heap range of 3000 bytes.
    let r = unsafe {
        libc::recv(std::os::fd::AsRawFd::as_raw_fd(&b), buf.as_mut_ptr().add(28 * PAGE + 50).cast(), 3000, 0)
    };
    assert_eq!(r, 3000, "recv() into tracked memory: {}", std::io::Error::last_os_error());
    drop((a, &mut b));
    crthreads::checkpoint().unwrap();
    // stdio: fread into the heap, through a FILE whose buffer is allocated after init.
    let c = std::ffi::CString::new(src.clone()).unwrap();
    // SAFETY: plain stdio calls on a file we opened.
    unsafe {
        let fp = libc::fopen(c.as_ptr(), c"r".as_ptr());
        assert!(!fp.is_null());
        let got = libc::fread(buf.as_mut_ptr().add(30 * PAGE + 7).cast(), 1, 5000, fp);
        assert_eq!(got, 5000, "fread() into tracked memory");
        crthreads::checkpoint().unwrap();
        // Small reads go through the FILE's own (heap) buffer, filled by libc's internal read.
        let mut small = [0u8; 10];
        let got = libc::fread(small.as_mut_ptr().cast(), 1, 10, fp);
        assert_eq!(got, 10, "fread() through the stream buffer after a checkpoint");
        buf[40 * PAGE..40 * PAGE + 10].copy_from_slice(&small);
        libc::fclose(fp);
    }
    crthreads::checkpoint().unwrap();

    // 3. Other threads.
    let base = buf.as_mut_ptr() as usize;
    std::thread::scope(|s| {
        for t in 0..4usize {
            s.spawn(move || {
                for p in (44 + t..PAGES).step_by(4) {
                    // SAFETY: each thread writes its own pages of the live buffer.
                    unsafe { ((base + p * PAGE + t) as *mut u8).write(0xC0 + t as u8) };
                }
            });
        }
    });
    crthreads::checkpoint().unwrap();
    println!("digest {:016x}", digest(&buf));
    std::io::stdout().flush().unwrap();
    // Die without cleaning up, as a crash would.
    // SAFETY: raising SIGKILL on ourselves.
    unsafe { libc::raise(libc::SIGKILL) };
}

fn digest(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}

fn child_reader() {
    let dir = std::env::var("DIR").unwrap();
    assert!(init(&dir).is_restored());
    // SAFETY: same root type as the writer.
    let buf = unsafe { crthreads::root(|| vec![0u8; 0]) }.unwrap();
    println!("digest {:016x}", digest(&buf));
}

fn child_segv() {
    let dir = std::env::var("DIR").unwrap();
    init(&dir);
    let mut v = vec![1u8; 10 * PAGE];
    crthreads::checkpoint().unwrap();
    v[5 * PAGE] = 2; // a tracked write: must not kill us
    assert_eq!(v[5 * PAGE], 2);
    eprintln!("tracked write ok");
    // A genuine bug: a write to an unmapped address.
    // SAFETY: deliberately invalid, to check that the fault is not swallowed.
    unsafe { (0x10 as *mut u8).write_volatile(1) };
    eprintln!("survived a wild write");
}

fn out(c: &std::process::Output) -> String {
    String::from_utf8_lossy(&c.stdout).into_owned()
}

fn kernel_and_thread_writes_reach_the_checkpoint() {
    for t in TRACKERS {
        let d = TempDir::new("track");
        let src = d.join("src");
        std::fs::write(&src, (0..20000u32).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>()).unwrap();
        let dir = d.join("ckpt");
        let w = child("writer").env("DIR", &dir).env("SRC", &src).env("CRTHREADS_TRACKER", t).output().unwrap();
        assert_eq!(w.status.signal(), Some(libc::SIGKILL), "[{t}] writer: {}", String::from_utf8_lossy(&w.stderr));
        let r = child("reader").env("DIR", &dir).env("CRTHREADS_TRACKER", t).output().unwrap();
        assert!(r.status.success(), "[{t}] reader: {}", String::from_utf8_lossy(&r.stderr));
        let (wd, rd) = (out(&w), out(&r));
        assert!(wd.starts_with("digest "), "[{t}] writer printed {wd:?}");
        assert_eq!(rd, wd, "[{t}] restored contents differ from what was checkpointed");
    }
}

fn genuine_segfault_still_kills_with_sigsegv() {
    for t in TRACKERS {
        let d = TempDir::new("segv");
        let mut c = child("segv")
            .env("DIR", d.join("ckpt"))
            .env("CRTHREADS_TRACKER", t)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (status, timed_out) = wait_or_kill(&mut c, Duration::from_secs(30));
        let mut err = String::new();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(!timed_out, "[{t}] the child hung: {err}");
        assert!(err.contains("tracked write ok"), "[{t}] {err}");
        assert!(!err.contains("survived"), "[{t}] {err}");
        assert_eq!(status.signal(), Some(libc::SIGSEGV), "[{t}] status {status:?}, stderr {err}");
    }
}

fn child_named_tracker() {
    let dir = std::env::var("DIR").unwrap();
    match crthreads::init(crthreads::Config::from_env().unwrap().dir(dir).reexec(false)) {
        Ok(_) => println!("started"),
        Err(e) => println!("error: {e}"),
    }
}

fn trackers_asked_for_by_name_start_or_fail_clearly() {
    for t in ["uffd", "mprotect", "full", "auto"] {
        let d = TempDir::new("named");
        let o = child("named").env("DIR", d.join("c")).env("CRTHREADS_TRACKER", t).output().unwrap();
        let s = out(&o);
        // This machine has userfaultfd write-protection; elsewhere uffd must fail by name.
        assert!(s.starts_with("started") || (t == "uffd" && s.contains("userfaultfd tracker")), "[{t}] {s}");
    }
    let o = child("named").env("DIR", "/tmp/x").env("CRTHREADS_TRACKER", "ebpf").output().unwrap();
    assert!(!o.status.success() || out(&o).contains("error"), "a bad CRTHREADS_TRACKER must be refused");
}

fn main() {
    match role().as_deref() {
        Some("writer") => return child_writer(),
        Some("reader") => return child_reader(),
        Some("segv") => return child_segv(),
        Some("named") => return child_named_tracker(),
        _ => {}
    }
    run_tests(&[
        ("kernel_and_thread_writes_reach_the_checkpoint", kernel_and_thread_writes_reach_the_checkpoint),
        ("genuine_segfault_still_kills_with_sigsegv", genuine_segfault_still_kills_with_sigsegv),
        ("trackers_asked_for_by_name_start_or_fail_clearly", trackers_asked_for_by_name_start_or_fail_clearly),
    ]);
}
