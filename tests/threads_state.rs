//! Restored threads run correctly: what a thread keeps in its frames and registers survives a
//! checkpoint, a SIGKILL and a restore in a new process, several times over.
//!
//! - **Stack protector.** C code compiled with `-fstack-protector-all` (built at test time into
//!   a shared library, opened with `dlopen`) recurses and calls back into Rust at several
//!   depths; each callback is checkpointed and the process killed there, so C frames whose
//!   canaries were written with the first process's canary return in later processes, whose
//!   own canary differs. A wrong canary aborts with "stack smashing detected".
//! - **Deep recursion.** Twenty thousand frames (about 10 MiB of a 32 MiB stack set with
//!   `Builder::stack_size`) are live across kills on the way down, at the bottom and on the way
//!   up; every frame checks its locals on the way back and the result equals an uninterrupted
//!   run's.
//! - **Floating-point state.** A thread sets upward rounding (`fesetround`), flush-to-zero and
//!   denormals-are-zero in MXCSR, and single precision in the x87 control word; it is
//!   checkpointed at an explicit safepoint and, in other rounds, preempted in a compute loop;
//!   after each restore it still computes with those modes.
//! - **Registers.** A thread runs a loop of integer and vector arithmetic held entirely in
//!   registers (13 general-purpose registers and 16 XMM registers live, no call, no memory
//!   access but a progress word): it can only be stopped by preemption. It is checkpointed and
//!   killed three times mid-loop, and its result must equal an uninterrupted run's. The
//!   statistics file shows that each of those checkpoints parked both threads.
//! - **Spawning during a restore.** A thread that spawns as soon as it is resumed, while the
//!   restore still starts the checkpoint's other 300 threads, gets threads that run once each
//!   (the restore once started the new threads a second time, as if they were the checkpoint's).
//!
//! Children run with the `manual` policy: each checkpoint is asked for by the child, which
//! prints `ready` and waits to be killed; the parent kills it at that line and runs it again.

mod common;
mod threads_common;

use std::ffi::{CString, c_int, c_long, c_void};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{TempDir, child, role, run_tests};
use threads_common::{Ended, Running, canary, field, num, say, stats};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

/// The longest a run may take before it counts as hung.
const LIMIT: Duration = Duration::from_secs(60);

/// The sequence number of the checkpoint this process was restored from (0: not restored).
/// Volatile, like every static of a Rust program: a restored process starts with 0, and the
/// hook sets it before any persistent thread resumes.
static RESTORED: AtomicU64 = AtomicU64::new(0);

fn on_restore(seq: u64) {
    RESTORED.store(seq, Ordering::SeqCst);
}

/// Takes a checkpoint of the whole program. In the process that took it: prints `ready <tag>`
/// and waits to be killed. Returns in the process restored from it.
fn checkpoint_and_hold(tag: &str) {
    let s = crthreads::checkpoint().unwrap_or_else(|e| panic!("checkpoint at {tag}: {e}"));
    if s.restored {
        return;
    }
    say(&format!("ready {tag} seq={}", s.seq));
    loop {
        crthreads::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs the child in `role` until it completes, killing it each time it prints `ready`.
/// Returns every run's output (the last one completed).
fn rounds(role: &str, dir: &Path, tracker: &str, env: &[(&str, &str)]) -> Vec<Ended> {
    let mut runs = Vec::new();
    let show = |runs: &Vec<Ended>| runs.iter().map(Ended::show).collect::<Vec<_>>().join("\n=====\n");
    for _ in 0..12 {
        let mut cmd: Command = child(role);
        cmd.env("CRTHREADS_DIR", dir.join("ck"))
            .env("CRTHREADS_POLICY", "manual")
            .env("CRTHREADS_TRACKER", tracker)
            .env("CRTHREADS_STATS", dir.join("stats"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut r = Running::start(cmd);
        let ready = r.wait_line(LIMIT, |l| l.starts_with("ready ")).is_some();
        if ready {
            r.kill();
        }
        let e = r.finish(LIMIT);
        let done = !ready;
        assert!(!e.hung, "[{tracker}] {role}: a run hung:\n{}\n=====\n{}", show(&runs), e.show());
        runs.push(e);
        if done {
            let last = runs.last().unwrap();
            assert!(last.status.success(), "[{tracker}] {role}: the last run failed:\n{}", show(&runs));
            return runs;
        }
    }
    panic!("[{tracker}] {role}: still not done after 12 runs:\n{}", show(&runs));
}

/// The lines of all runs that start with `prefix`.
fn lines<'a>(runs: &'a [Ended], prefix: &str) -> Vec<&'a str> {
    runs.iter().flat_map(|r| r.out.iter()).filter(|l| l.starts_with(prefix)).map(String::as_str).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) C frames compiled with -fstack-protector-all.

const FRAMES_C: &str = r#"
#include <string.h>

typedef long (*callback)(int);

/* Recurses n levels; calls back at the bottom and, on the way up, at every multiple of
   `every`. Every frame has an array (and, with -fstack-protector-all, a canary) and checks
   the array after the frames below it returned. */
long frames(int n, int every, callback cb) {
    char buf[64];
    memset(buf, (n * 7 + 1) & 0x7f, sizeof buf);
    long mine = (long)n * 31 + 7;
    long below = n == 0 ? cb(0) : frames(n - 1, every, cb);
    if (n > 0 && n % every == 0)
        below += cb(n);
    for (int i = 0; i < (int)sizeof buf; i++)
        if (buf[i] != (char)((n * 7 + 1) & 0x7f))
            return -1000000 - n;
    return below * 3 + mine + buf[n % 64];
}
"#;

/// Depth of the C recursion and where it calls back (and is killed).
const C_DEPTH: c_int = 120;
const C_EVERY: c_int = 60;

type FramesFn = unsafe extern "C" fn(c_int, c_int, extern "C" fn(c_int) -> c_long) -> c_long;

/// Builds the library into `dir` with the system C compiler.
fn build_frames(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("frames.c");
    let lib = dir.join("libframes.so");
    std::fs::write(&src, FRAMES_C).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O0", "-fstack-protector-all", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("run cc (a C compiler is needed for this test)");
    assert!(out.status.success(), "cc failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&lib).unwrap();
    assert!(
        bytes.windows(16).any(|w| w == b"__stack_chk_fail"),
        "the library does not use the stack protector (no __stack_chk_fail)"
    );
    lib
}

/// Opens the library and finds `frames`.
fn open_frames(lib: &Path) -> FramesFn {
    let path = CString::new(lib.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string; the library only defines a function.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW) };
    assert!(!h.is_null(), "dlopen {}", lib.display());
    // SAFETY: a valid handle and symbol name.
    let f = unsafe { libc::dlsym(h, c"frames".as_ptr()) };
    assert!(!f.is_null(), "dlsym frames");
    // SAFETY: `frames` has this signature (FRAMES_C).
    unsafe { core::mem::transmute::<*mut c_void, FramesFn>(f) }
}

extern "C" fn hold_in_c(n: c_int) -> c_long {
    checkpoint_and_hold(&format!("c{n}"));
    say(&format!("callback n={n} thread_canary={:x}", canary()));
    n as c_long
}

extern "C" fn plain(n: c_int) -> c_long {
    n as c_long
}

fn child_canary() {
    crthreads::hooks::after_restore(on_restore).unwrap();
    let lib = || -> std::path::PathBuf { std::env::var_os("CRT_LIB").expect("CRT_LIB").into() };
    // Opened before crthreads starts, in every run: the checkpoint records the loaded objects
    // and their addresses, and the restored frames return into this library.
    open_frames(&lib());
    say(&format!("process canary={:x}", canary()));
    // (Nothing allocated before crthreads started may be captured by the persistent threads:
    // it lives in volatile memory, gone after a restore. The path is read again inside.)
    let r = crthreads::main(move || {
        let worker = crthreads::thread::spawn(move || {
            // Opened again from the persistent thread (the same handle).
            let frames = open_frames(&lib());
            say(&format!("start thread_canary={:x}", canary()));
            // SAFETY: the library's function with a callback of its type.
            unsafe { frames(C_DEPTH, C_EVERY, hold_in_c) }
        });
        let v = worker.join().unwrap();
        say(&format!("result {v}"));
    });
    r.unwrap();
}

fn c_frames_with_canaries_return_in_later_processes() {
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("canary");
        let lib = build_frames(t.path());
        let runs = rounds("canary", t.path(), tracker, &[("CRT_LIB", lib.to_str().unwrap())]);
        let kills = (C_DEPTH / C_EVERY + 1) as usize;
        assert_eq!(runs.len(), kills + 1, "[{tracker}] a kill at each callback");
        // An uninterrupted run of the same code, in this process.
        // SAFETY: the library's function with a callback of its type.
        let want = unsafe { open_frames(&lib)(C_DEPTH, C_EVERY, plain) };
        let result = lines(&runs, "result ");
        assert_eq!(result.len(), 1, "[{tracker}] {result:?}");
        assert_eq!(result[0], format!("result {want}"), "[{tracker}] the C frames' result");
        // The thread kept the first process's canary; every later process had its own. (Each
        // run prints a process line before and after crthreads re-executes it: the last counts.)
        let procs: Vec<&str> = runs
            .iter()
            .map(|r| {
                r.out.iter().filter_map(|l| l.strip_prefix("process canary=")).next_back().expect("a process line")
            })
            .collect();
        let first = procs[0];
        assert_eq!(lines(&runs, "start ").len(), 1, "[{tracker}]");
        assert_eq!(field(lines(&runs, "start ")[0], "thread_canary"), Some(first), "[{tracker}]");
        assert!(procs[1..].iter().all(|c| *c != first), "[{tracker}] process canaries should differ: {procs:?}");
        let seen: Vec<&str> = lines(&runs, "callback ").into_iter().filter_map(|l| field(l, "thread_canary")).collect();
        assert_eq!(seen.len(), kills, "[{tracker}] every callback returned once");
        assert!(seen.iter().all(|c| *c == first), "[{tracker}] the thread runs with its first canary: {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Deep recursion.

const DEEP: u32 = 20_000;
/// Kills on the way down, at the bottom, and on the way up.
const DOWN_AT: u32 = 5_000;
const UP_AT: u32 = 10_000;

fn mix(n: u32, k: usize) -> u64 {
    let mut x = (n as u64) << 32 | k as u64;
    x = (x ^ (x >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// Recursion from `n` down to `DEEP`; every frame keeps 24 words and checks them on the way
/// back. With `hold`, checkpoints and waits to be killed at the marked depths.
#[inline(never)]
fn deep(n: u32, hold: bool) -> u64 {
    let mut local = [0u64; 24];
    for (k, v) in local.iter_mut().enumerate() {
        *v = mix(n, k);
    }
    std::hint::black_box(&mut local);
    if hold && n == DOWN_AT {
        checkpoint_and_hold("down");
    }
    let below = if n == DEEP {
        if hold {
            checkpoint_and_hold("bottom");
        }
        0
    } else {
        deep(n + 1, hold)
    };
    if hold && n == UP_AT {
        checkpoint_and_hold("up");
    }
    for (k, v) in local.iter().enumerate() {
        assert_eq!(*v, mix(n, k), "frame {n} word {k} changed");
    }
    below.rotate_left(7) ^ local.iter().fold(n as u64, |a, &v| a.wrapping_mul(31).wrapping_add(v))
}

fn child_deep() {
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        let h = crthreads::thread::Builder::new().stack_size(32 << 20).spawn(|| deep(0, true)).unwrap();
        let v = h.join().unwrap();
        say(&format!("result {v}"));
    });
    r.unwrap();
}

fn deep_recursion_survives_kills_down_at_the_bottom_and_up() {
    let want = std::thread::Builder::new().stack_size(64 << 20).spawn(|| deep(0, false)).unwrap().join().unwrap();
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("deep");
        let runs = rounds("deep", t.path(), tracker, &[]);
        let tags: Vec<&str> = lines(&runs, "ready ").iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
        assert_eq!(tags, ["down", "bottom", "up"], "[{tracker}]");
        // The stack written at the bottom: at least the live frames.
        let st = stats(&t.join("stats"));
        let bottom = num(lines(&runs, "ready bottom")[0], "seq");
        let s = st.iter().find(|s| s.get("seq") == bottom).expect("the bottom checkpoint's statistics");
        assert!(s.get("bytes_written") > 4 << 20, "[{tracker}] the deep stack was written: {s:?}");
        assert_eq!(lines(&runs, "result "), [format!("result {want}")], "[{tracker}]");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Floating-point state.

unsafe extern "C" {
    fn fesetround(mode: c_int) -> c_int;
    fn fegetround() -> c_int;
}

/// `FE_UPWARD` on x86-64.
const FE_UPWARD: c_int = 0x800;
/// MXCSR: flush to zero, denormals are zero, rounding control.
const FTZ: u32 = 1 << 15;
const DAZ: u32 = 1 << 6;
const RC_MASK: u32 = 3 << 13;
const RC_UP: u32 = 2 << 13;
/// x87 control word: precision control (00: single) and rounding control.
const PC_MASK: u16 = 3 << 8;
const X87_RC_MASK: u16 = 3 << 10;
const X87_RC_UP: u16 = 2 << 10;

fn mxcsr() -> u32 {
    let mut v = 0u32;
    // SAFETY: stores MXCSR into a local.
    unsafe { core::arch::asm!("stmxcsr [{p}]", p = in(reg) &mut v, options(nostack)) };
    v
}

fn set_mxcsr(v: u32) {
    // SAFETY: loads a valid MXCSR value (reserved bits as read).
    unsafe { core::arch::asm!("ldmxcsr [{p}]", p = in(reg) &v, options(nostack)) };
}

fn fcw() -> u16 {
    let mut v = 0u16;
    // SAFETY: stores the x87 control word into a local.
    unsafe { core::arch::asm!("fnstcw [{p}]", p = in(reg) &mut v, options(nostack)) };
    v
}

fn set_fcw(v: u16) {
    // SAFETY: loads an x87 control word (exceptions stay masked: only PC and RC are changed).
    unsafe { core::arch::asm!("fldcw [{p}]", p = in(reg) &v, options(nostack)) };
}

/// `a / b` computed by the x87 unit (with its precision and rounding control).
fn x87_div(a: f64, b: f64) -> f64 {
    let mut out = 0f64;
    // SAFETY: pushes one value on the x87 stack and pops it again; reads and writes locals.
    unsafe {
        core::arch::asm!(
            "fld qword ptr [{a}]",
            "fdiv qword ptr [{b}]",
            "fstp qword ptr [{o}]",
            a = in(reg) &a,
            b = in(reg) &b,
            o = in(reg) &mut out,
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
            options(nostack)
        )
    };
    out
}

/// What the thread's floating-point environment does now.
#[derive(Debug, PartialEq)]
struct Fp {
    round: c_int,
    mxcsr: u32,
    fcw: u16,
    third: u64,
    tiny: u64,
    x87_third: u64,
}

fn probe() -> Fp {
    use std::hint::black_box as bb;
    Fp {
        // SAFETY: reads the rounding mode.
        round: unsafe { fegetround() },
        mxcsr: mxcsr() & (FTZ | DAZ | RC_MASK),
        fcw: fcw() & (PC_MASK | X87_RC_MASK),
        third: (bb(1.0f64) / bb(3.0f64)).to_bits(),
        tiny: (bb(f64::MIN_POSITIVE) / bb(3.0f64)).to_bits(),
        x87_third: x87_div(bb(1.0), bb(3.0)).to_bits(),
    }
}

/// The environment the thread sets: upward rounding, flush to zero, single-precision x87.
fn expected_fp() -> Fp {
    Fp {
        round: FE_UPWARD,
        mxcsr: FTZ | DAZ | RC_UP,
        fcw: X87_RC_UP,
        // 1/3 rounded up in double precision.
        third: 0x3FD5_5555_5555_5556,
        // A denormal result flushed to zero.
        tiny: 0,
        // 1/3 rounded up to 24 bits of mantissa (0x3EAAAAAB as f32).
        x87_third: 0x3FD5_5555_6000_0000,
    }
}

fn set_fp_modes() {
    // SAFETY: sets the calling thread's rounding mode.
    assert_eq!(unsafe { fesetround(FE_UPWARD) }, 0);
    set_mxcsr(mxcsr() | FTZ | DAZ);
    set_fcw(fcw() & !PC_MASK);
}

/// Rounds of the floating-point child: even ones park at an explicit checkpoint of the thread
/// itself, odd ones are preempted in a compute loop.
const FP_ROUNDS: u64 = 4;

fn child_fp() {
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        // Which preemption round the worker's loop is in (0: none).
        let looping = Arc::new(AtomicU64::new(0));
        let l = looping.clone();
        let worker = crthreads::thread::spawn(move || {
            assert_ne!(probe(), expected_fp(), "the default environment differs from the one set");
            set_fp_modes();
            assert_eq!(probe(), expected_fp(), "the environment as set");
            let mut acc = 0f64;
            for round in 0..FP_ROUNDS {
                if round % 2 == 0 {
                    checkpoint_and_hold(&format!("explicit{round}"));
                } else {
                    // The restored process has a newer sequence number in RESTORED.
                    let seen = RESTORED.load(Ordering::SeqCst);
                    l.store(round, Ordering::SeqCst);
                    while RESTORED.load(Ordering::Relaxed) == seen {
                        acc += std::hint::black_box(1.0f64) / std::hint::black_box(3.0f64);
                    }
                }
                let now = probe();
                say(&format!("round {round} ok={} {now:?}", now == expected_fp()));
                assert_eq!(now, expected_fp(), "round {round}: the environment after a restore");
            }
            acc > 0.0
        });
        for round in (1..FP_ROUNDS).step_by(2) {
            while looping.load(Ordering::SeqCst) != round {
                assert!(!worker.is_finished(), "the worker ended early");
                crthreads::thread::sleep(Duration::from_millis(1));
            }
            checkpoint_and_hold(&format!("preempted{round}"));
        }
        assert!(worker.join().unwrap());
        say("result done");
    });
    r.unwrap();
}

fn floating_point_modes_survive_kills() {
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("fp");
        let runs = rounds("fp", t.path(), tracker, &[]);
        let tags: Vec<&str> = lines(&runs, "ready ").iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
        assert_eq!(tags, ["explicit0", "preempted1", "explicit2", "preempted3"], "[{tracker}]");
        let ok = lines(&runs, "round ");
        assert_eq!(ok.len(), FP_ROUNDS as usize, "[{tracker}] {ok:?}");
        assert!(ok.iter().all(|l| l.contains("ok=true")), "[{tracker}] {ok:?}");
        let st = stats(&t.join("stats"));
        for l in lines(&runs, "ready preempted") {
            let seq = num(l, "seq");
            let s = st.iter().find(|s| s.get("seq") == seq).expect("statistics of the checkpoint");
            assert_eq!(s.get("threads_parked"), 2, "[{tracker}] the looping thread was parked too: {s:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Registers of a thread preempted in a compute loop.

/// Iterations of the register loop (about a second).
const SPIN: u64 = 150_000_000;

/// Runs the register loop for `n` iterations. `io[0]` receives the remaining count every 2^16
/// iterations (the only memory access inside the loop); the 11 integer and 16 XMM
/// accumulators are stored into `io[1..47]` at the end. No call, no safepoint: only a signal
/// can stop the thread inside.
///
/// # Safety
/// `io` must point at 48 writable words that nothing else writes meanwhile.
#[inline(never)]
unsafe fn spin(n: u64, io: *mut u64) {
    let p = io;
    // SAFETY: writes only the words the caller lends (up to byte 368 of 384); every register
    // it changes is declared.
    unsafe {
        core::arch::asm!(
            // Integer accumulators.
            "mov rax, 0x0123456789abcdef",
            "mov rdx, 0x1111111111111111",
            "mov rsi, 0x2222222222222223",
            "mov r8, 0x3333333333333335",
            "mov r9, 0x4444444444444447",
            "mov r10, 0x5555555555555559",
            "mov r11, 0x666666666666666b",
            "mov r12, 0x777777777777777d",
            "mov r13, 0x888888888888888f",
            "mov r14, 0x99999999999999a1",
            "mov r15, 0xaaaaaaaaaaaaaab3",
            // Vector accumulators: xmm0-7 sum f64 lanes, xmm8-15 hold increments and mix.
            "mov r11, 0x3ff8000000000000", // 1.5
            "movq xmm8, r11",
            "movddup xmm8, xmm8",
            "mov r11, 0x4004000000000000", // 2.5
            "movq xmm9, r11",
            "movddup xmm9, xmm9",
            "mov r11, 0x3fe0000000000000", // 0.5
            "movq xmm10, r11",
            "movddup xmm10, xmm10",
            "mov r11, 0x4010000000000000", // 4.0
            "movq xmm11, r11",
            "movddup xmm11, xmm11",
            "movq xmm12, rax",
            "movq xmm13, rdx",
            "movq xmm14, rsi",
            "movq xmm15, r8",
            "mov r11, 0x666666666666666b",
            "xorpd xmm0, xmm0",
            "movapd xmm1, xmm8",
            "movapd xmm2, xmm9",
            "movapd xmm3, xmm10",
            "movapd xmm4, xmm11",
            "addpd xmm4, xmm8",
            "movapd xmm5, xmm9",
            "addpd xmm5, xmm10",
            "movapd xmm6, xmm8",
            "addpd xmm6, xmm11",
            "movapd xmm7, xmm10",
            "addpd xmm7, xmm9",
            "2:",
            "add rax, rdx",
            "rol rdx, 13",
            "xor rdx, rax",
            "add rsi, rdx",
            "rol rsi, 7",
            "xor r8, rsi",
            "add r9, r8",
            "rol r9, 17",
            "xor r10, r9",
            "add r11, r10",
            "rol r11, 29",
            "xor r12, r11",
            "add r13, r12",
            "rol r13, 3",
            "xor r14, r13",
            "add r15, r14",
            "rol r15, 11",
            "xor rax, r15",
            "addpd xmm0, xmm8",
            "addpd xmm1, xmm9",
            "addpd xmm2, xmm10",
            "addpd xmm3, xmm11",
            "addpd xmm4, xmm8",
            "addpd xmm5, xmm9",
            "addpd xmm6, xmm10",
            "addpd xmm7, xmm11",
            "paddq xmm12, xmm13",
            "pxor xmm13, xmm14",
            "paddq xmm14, xmm15",
            "pshufd xmm15, xmm12, 0x4e",
            "pxor xmm15, xmm13",
            "sub rcx, 1",
            "test ecx, 0xffff",
            "jnz 3f",
            "mov [rdi], rcx",
            "3:",
            "test rcx, rcx",
            "jnz 2b",
            "mov [rdi], rcx",
            "mov [rdi + 8], rax",
            "mov [rdi + 16], rdx",
            "mov [rdi + 24], rsi",
            "mov [rdi + 32], r8",
            "mov [rdi + 40], r9",
            "mov [rdi + 48], r10",
            "mov [rdi + 56], r11",
            "mov [rdi + 64], r12",
            "mov [rdi + 72], r13",
            "mov [rdi + 80], r14",
            "mov [rdi + 88], r15",
            "movupd [rdi + 112], xmm0",
            "movupd [rdi + 128], xmm1",
            "movupd [rdi + 144], xmm2",
            "movupd [rdi + 160], xmm3",
            "movupd [rdi + 176], xmm4",
            "movupd [rdi + 192], xmm5",
            "movupd [rdi + 208], xmm6",
            "movupd [rdi + 224], xmm7",
            "movdqu [rdi + 240], xmm8",
            "movdqu [rdi + 256], xmm9",
            "movdqu [rdi + 272], xmm10",
            "movdqu [rdi + 288], xmm11",
            "movdqu [rdi + 304], xmm12",
            "movdqu [rdi + 320], xmm13",
            "movdqu [rdi + 336], xmm14",
            "movdqu [rdi + 352], xmm15",
            inout("rcx") n => _,
            in("rdi") p,
            out("rax") _, out("rdx") _, out("rsi") _, out("r8") _, out("r9") _, out("r10") _,
            out("r11") _, out("r12") _, out("r13") _, out("r14") _, out("r15") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            options(nostack)
        )
    };
}

/// A digest of the loop's final registers.
fn digest(io: &[u64]) -> u64 {
    io[1..47].iter().fold(0xcbf2_9ce4_8422_2325, |a, &v| (a ^ v).wrapping_mul(0x100_0000_01b3))
}

/// Where in the loop each round checkpoints: when this many iterations are left.
fn spin_marks() -> [u64; 3] {
    [SPIN * 3 / 4, SPIN / 2, SPIN / 4]
}

fn child_regs() {
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        // io[0]: iterations left (SPIN until the loop first reports); io[47]: the loop is over.
        let io: Arc<[AtomicU64; 48]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
        io[0].store(SPIN, Ordering::SeqCst);
        let mine = io.clone();
        let worker = crthreads::thread::spawn(move || {
            // SAFETY: 48 words of our own array, which the loop alone writes while it runs.
            unsafe { spin(SPIN, mine.as_ptr() as *mut u64) };
            mine[47].store(1, Ordering::SeqCst);
            let words: Vec<u64> = mine.iter().map(|w| w.load(Ordering::SeqCst)).collect();
            digest(&words)
        });
        for (round, mark) in spin_marks().into_iter().enumerate() {
            while io[0].load(Ordering::SeqCst) > mark {
                assert!(!worker.is_finished(), "the worker ended early");
                crthreads::thread::sleep(Duration::from_millis(1));
            }
            let s = crthreads::checkpoint().unwrap();
            if s.restored {
                continue;
            }
            let (l, d) = (io[0].load(Ordering::SeqCst), io[47].load(Ordering::SeqCst));
            say(&format!("ready round{round} seq={} left={l} inloop={}", s.seq, (d == 0 && l > 0) as u8));
            loop {
                crthreads::thread::sleep(Duration::from_secs(3600));
            }
        }
        let v = worker.join().unwrap();
        say(&format!("result {v}"));
    });
    r.unwrap();
}

fn registers_survive_preemption_and_kills() {
    let mut io = [0u64; 48];
    // SAFETY: 48 words of a local array.
    unsafe { spin(SPIN, io.as_mut_ptr()) };
    let want = digest(&io);
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("regs");
        let runs = rounds("regs", t.path(), tracker, &[]);
        let ready = lines(&runs, "ready ");
        assert_eq!(ready.len(), 3, "[{tracker}] {ready:?}");
        let st = stats(&t.join("stats"));
        for l in &ready {
            assert_eq!(num(l, "inloop"), 1, "[{tracker}] the checkpoint caught the thread inside its loop: {l}");
            let s = st.iter().find(|s| s.get("seq") == num(l, "seq")).expect("statistics of the checkpoint");
            assert_eq!(s.get("threads_parked"), 2, "[{tracker}] the looping thread was parked (preempted): {s:?}");
        }
        assert_eq!(lines(&runs, "result "), [format!("result {want}")], "[{tracker}] the loop's registers");
    }
}

// ---------------------------------------------------------------------------------------------
// Spawning while a restore still resumes threads.

/// Threads parked in the checkpoint, besides the spawner (a restore takes a while to start
/// them all again).
const PARKED: usize = 300;
/// Threads the spawner starts right after the restore.
const SPAWNED: usize = 4;

fn child_respawn() {
    crthreads::hooks::after_restore(on_restore).unwrap();
    let r = crthreads::main(|| {
        let runs = Arc::new(AtomicU64::new(0));
        // The spawner has the lowest slot: a restore resumes it first, and it spawns at once
        // (it waits for the restore, not for the main thread), while the restore is still
        // starting the threads of the higher slots.
        // The new threads live until the main thread resumes, after every thread of the
        // checkpoint was started again.
        let after = Arc::new(crthreads::sync::Barrier::new(SPAWNED + 1));
        let spawner = {
            let (runs, after) = (runs.clone(), after.clone());
            crthreads::thread::spawn(move || {
                while RESTORED.load(Ordering::SeqCst) == 0 {
                    crthreads::thread::sleep(Duration::from_millis(1));
                }
                let hs: Vec<_> = (0..SPAWNED)
                    .map(|_| {
                        let (runs, after) = (runs.clone(), after.clone());
                        crthreads::thread::spawn(move || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            after.wait();
                        })
                    })
                    .collect();
                hs.into_iter().for_each(|h| h.join().unwrap());
            })
        };
        // Blocked without using the CPU, so that nothing slows the spawner down.
        let barrier = Arc::new(crthreads::sync::Barrier::new(PARKED + 1));
        let parked: Vec<_> = (0..PARKED)
            .map(|_| {
                let b = barrier.clone();
                crthreads::thread::Builder::new()
                    .stack_size(crthreads::thread::MIN_STACK)
                    .spawn(move || {
                        b.wait();
                    })
                    .unwrap()
            })
            .collect();
        let s = crthreads::checkpoint().unwrap();
        if !s.restored {
            say(&format!("ready parked seq={}", s.seq));
            loop {
                crthreads::thread::sleep(Duration::from_secs(3600));
            }
        }
        barrier.wait();
        after.wait();
        spawner.join().unwrap();
        parked.into_iter().for_each(|h| h.join().unwrap());
        say(&format!("result runs={}", runs.load(Ordering::SeqCst)));
    });
    r.unwrap();
}

/// A thread that spawns as soon as a restore resumes it must not make the restore resume the
/// new thread too (as if it were in the checkpoint): each new thread runs once, on its own
/// stack.
fn threads_spawned_while_a_restore_resumes_threads_run_once() {
    for round in 0..4 {
        let tracker = ["uffd", "mprotect"][round % 2];
        let t = TempDir::new("respawn");
        let runs = rounds("respawn", t.path(), tracker, &[]);
        assert_eq!(runs.len(), 2, "[{tracker}] one kill, one restore");
        assert_eq!(lines(&runs, "result "), [format!("result runs={SPAWNED}")], "[{tracker}] round {round}");
    }
}

fn main() {
    match role().as_deref() {
        Some("canary") => return child_canary(),
        Some("deep") => return child_deep(),
        Some("fp") => return child_fp(),
        Some("regs") => return child_regs(),
        Some("respawn") => return child_respawn(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("c_frames_with_canaries_return_in_later_processes", c_frames_with_canaries_return_in_later_processes),
        (
            "deep_recursion_survives_kills_down_at_the_bottom_and_up",
            deep_recursion_survives_kills_down_at_the_bottom_and_up,
        ),
        ("floating_point_modes_survive_kills", floating_point_modes_survive_kills),
        ("registers_survive_preemption_and_kills", registers_survive_preemption_and_kills),
        (
            "threads_spawned_while_a_restore_resumes_threads_run_once",
            threads_spawned_while_a_restore_resumes_threads_run_once,
        ),
    ]);
}
