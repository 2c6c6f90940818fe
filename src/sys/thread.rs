//! OS threads for the runtime: created with the C library's own `pthread_create` (found
//! behind any definition of ours, so the C library's exported `pthread_create` is never
//! re-entered), signalled by kernel thread id, given an alternate signal stack.

use core::ffi::c_void;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::{cvt, mman};
use crate::error::Errno;

type CreateFn = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> libc::c_int;

/// glibc's `pthread_create`, looked up once.
fn real_create() -> Option<CreateFn> {
    static REAL: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());
    let mut p = REAL.load(Ordering::Relaxed);
    if p.is_null() {
        p = super::proc::next_symbol(c"pthread_create");
        if p.is_null() {
            // Not behind us (this code is in the executable, or the program is static).
            // SAFETY: RTLD_DEFAULT is a valid pseudo-handle and the name is NUL-terminated.
            p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_create".as_ptr()) };
        }
        if p.is_null() {
            return None;
        }
        REAL.store(p, Ordering::Relaxed);
    }
    // SAFETY: the symbol is glibc's pthread_create, of exactly this signature.
    Some(unsafe { core::mem::transmute::<*mut c_void, CreateFn>(p) })
}

/// Starts an OS thread running `f(arg)`, detached, with a stack of `stack` bytes.
pub(crate) fn spawn_raw(
    f: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
    stack: usize,
) -> Result<(), Errno> {
    let create = real_create().ok_or(Errno(libc::ENOSYS))?;
    // SAFETY: an all-zero attr is overwritten by pthread_attr_init before use.
    let mut attr: libc::pthread_attr_t = unsafe { core::mem::zeroed() };
    let mut t: libc::pthread_t = 0;
    // SAFETY: `attr` is a valid attr object for the calls below, destroyed at the end; `t` is a
    // valid out-pointer; `f` has the start-routine signature and `arg` is passed through.
    unsafe {
        // The C library's own attr functions: crthreads' C library exports its own.
        super::real::pthread_attr_init(&mut attr);
        super::real::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        super::real::pthread_attr_setstacksize(&mut attr, stack.max(libc::PTHREAD_STACK_MIN));
        let r = create(&mut t, &attr, f, arg);
        super::real::pthread_attr_destroy(&mut attr);
        if r != 0 { Err(Errno(r)) } else { Ok(()) }
    }
}

/// The calling thread's kernel id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Sends `sig` to thread `tid` of this process.
pub(crate) fn signal_thread(tid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: tgkill only sends a signal.
    cvt(unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig) }).map(drop)
}

/// Gives the calling thread an alternate signal stack of `len` bytes (volatile memory), if it
/// has none. Returns the stack's address, or 0.
pub(crate) fn ensure_altstack(len: usize) -> usize {
    // SAFETY: an all-zero stack_t is valid to pass as the out-parameter.
    let mut old: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: querying only. A raw syscall: sigaltstack may be interposed by this library.
    unsafe { libc::syscall(libc::SYS_sigaltstack, core::ptr::null::<libc::stack_t>(), &mut old) };
    if old.ss_flags & libc::SS_DISABLE == 0 && !old.ss_sp.is_null() {
        return old.ss_sp as usize;
    }
    let Ok(p) = mman::map_anon(len) else { return 0 };
    let st = libc::stack_t { ss_sp: p.as_ptr().cast(), ss_flags: 0, ss_size: len };
    // SAFETY: `st` describes a fresh mapping of `len` bytes owned by this thread from now on.
    unsafe { libc::syscall(libc::SYS_sigaltstack, &st, core::ptr::null_mut::<libc::stack_t>()) };
    p.as_ptr() as usize
}

/// The calling thread's alternate signal stack as the kernel knows it.
pub(crate) fn altstack() -> libc::stack_t {
    // SAFETY: as in `ensure_altstack`.
    let mut st: libc::stack_t = unsafe { core::mem::zeroed() };
    // SAFETY: querying only.
    unsafe { libc::syscall(libc::SYS_sigaltstack, core::ptr::null::<libc::stack_t>(), &mut st) };
    st
}

/// Runs `work` on the calling thread and on up to `extra` more OS threads at once, and returns
/// when every copy has returned. Threads that cannot be started are simply not used. A copy
/// that panics is reported as `false` (nothing unwinds out of a thread's start routine).
///
/// The runtime's own parallel work (reading a checkpoint) uses this instead of `std::thread`:
/// these threads come from the C library's `pthread_create` directly and allocate nothing from
/// the persistent heap.
pub(crate) fn parallel(extra: usize, work: &(dyn Fn() + Sync)) -> bool {
    struct Shared<'a> {
        work: &'a (dyn Fn() + Sync),
        running: core::sync::atomic::AtomicU32,
        failed: core::sync::atomic::AtomicBool,
    }
    extern "C" fn start(arg: *mut c_void) -> *mut c_void {
        // SAFETY: `arg` is the `Shared` of the `parallel` call below, which does not return
        // (and so keeps it alive) until `running` dropped to zero, after this thread's last use.
        let s = unsafe { &*(arg as *const Shared<'_>) };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.work)())).is_err() {
            s.failed.store(true, Ordering::Relaxed);
        }
        // The last touch of `s`: after this, `parallel` may return and free it.
        if s.running.fetch_sub(1, Ordering::Release) == 1 {
            super::futex::wake(&s.running, 1);
        }
        core::ptr::null_mut()
    }
    let s = Shared {
        work,
        running: core::sync::atomic::AtomicU32::new(0),
        failed: core::sync::atomic::AtomicBool::new(false),
    };
    for _ in 0..extra {
        s.running.fetch_add(1, Ordering::Relaxed);
        if spawn_raw(start, &s as *const Shared<'_> as *mut c_void, 256 << 10).is_err() {
            s.running.fetch_sub(1, Ordering::Relaxed);
            break;
        }
    }
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_ok();
    loop {
        let n = s.running.load(Ordering::Acquire);
        if n == 0 {
            break;
        }
        super::futex::wait(&s.running, n);
    }
    mine && !s.failed.load(Ordering::Relaxed)
}

/// Whether thread `tid` of this process is asleep in the kernel (`S` or `D` in
/// `/proc/self/task/<tid>/stat`), read with raw system calls. Allocates nothing. `false` if it
/// cannot be told.
pub(crate) fn asleep_in_kernel(tid: i32) -> bool {
    let mut path = [0u8; 48];
    let prefix = b"/proc/self/task/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut at = prefix.len();
    let mut digits = [0u8; 12];
    let (mut n, mut k) = (tid as u32, 0);
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    while k > 0 {
        k -= 1;
        path[at] = digits[k];
        at += 1;
    }
    path[at..at + 6].copy_from_slice(b"/stat\0");
    let Ok(path) = core::ffi::CStr::from_bytes_until_nul(&path) else { return false };
    let mut buf = [0u8; 128];
    let Ok(n) = super::fs::read_into_stack(path, &mut buf) else { return false };
    // "<tid> (<comm>) <state> ...": the state follows the last ')'.
    let line = &buf[..n];
    match line.iter().rposition(|&c| c == b')') {
        Some(p) => matches!(line.get(p + 2), Some(b'S' | b'D')),
        None => false,
    }
}
