//! Futex wait and wake on a 32-bit atomic (`FUTEX_PRIVATE_FLAG`: process-private).
//!
//! Both preserve `errno`: they run inside `free`, which POSIX forbids to change it, and a
//! contended wait routinely fails with EAGAIN or EINTR.

use core::sync::atomic::AtomicU32;

/// Blocks while `*word == expected`, until woken (or spuriously). Returns after any wake-up;
/// callers re-check their condition in a loop.
#[inline]
pub(crate) fn wait(word: &AtomicU32, expected: u32) {
    let saved = super::errno();
    // SAFETY: `word` is a valid aligned u32 for the duration of the call; a null timeout waits
    // indefinitely. EINTR, EAGAIN (value changed) and spurious returns are all fine for callers
    // that loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const AtomicU32,
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            core::ptr::null::<libc::timespec>(),
        );
    }
    super::set_errno(saved);
}

/// Wakes at most `n` threads blocked in [`wait`] on `word`.
#[inline]
pub(crate) fn wake(word: &AtomicU32, n: i32) {
    let saved = super::errno();
    // SAFETY: FUTEX_WAKE only reads the address as a key; it never dereferences user memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word as *const AtomicU32, libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, n);
    }
    super::set_errno(saved);
}

/// Blocks while `*word == expected`, until woken, spuriously, or until the wall-clock time
/// `deadline` (ns since the epoch) passes. Returns `false` if the deadline passed. A wall-clock
/// deadline keeps its meaning across a restore in another process (a monotonic one would not).
pub(crate) fn wait_until(word: &AtomicU32, expected: u32, deadline: Option<u64>) -> bool {
    let Some(d) = deadline else {
        wait(word, expected);
        return true;
    };
    let saved = super::errno();
    let ts = libc::timespec { tv_sec: (d / 1_000_000_000) as i64, tv_nsec: (d % 1_000_000_000) as i64 };
    // SAFETY: `word` is a valid aligned u32; `ts` is an absolute CLOCK_REALTIME time, as
    // FUTEX_WAIT_BITSET with FUTEX_CLOCK_REALTIME takes it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word as *const AtomicU32,
            libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME,
            expected,
            &ts as *const libc::timespec,
            core::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        )
    };
    let timed_out = r == -1 && super::errno() == libc::ETIMEDOUT;
    super::set_errno(saved);
    !timed_out
}
