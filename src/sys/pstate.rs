//! The process-wide state a C program may change besides memory and files, for the C runtime's
//! process state (`posix::process`): the working directory, the file mode creation mask, the
//! resource limits, the signal dispositions and the main thread's signal mask. Reading it
//! (`capture`) makes raw system calls into a caller's buffer and never allocates, so it runs
//! while every thread is stopped; `apply` gives it back in a fresh process.
//!
//! The umask and the main thread's signal mask are read from `/proc/self/status` (`Umask:`,
//! `SigBlk:`; "self" names the thread-group leader, the OS thread the main persistent thread
//! runs on), so reading them changes nothing. Dispositions are read and set through the C
//! library's real `sigaction` (not crthreads' interposer), which keeps the kernel's and the C
//! library's views in step.
#![allow(unsafe_code)] // Raw system calls into buffers owned by the caller.

use core::ffi::c_int;

use super::signal;

/// Resource limits recorded (`RLIMIT_CPU` .. `RLIMIT_RTTIME`).
pub const NLIMITS: usize = 16;
/// Signals whose disposition is recorded: 1 to 64.
pub const NSIG: usize = 64;
/// The longest working directory recorded.
pub const CWD_MAX: usize = 1024;

/// One signal's disposition.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Action {
    /// `sa_handler` / `sa_sigaction` (`SIG_DFL` is 0, `SIG_IGN` 1).
    pub handler: usize,
    /// `sa_flags`.
    pub flags: i32,
    /// 1 when the disposition was read.
    pub valid: i32,
    /// `sa_mask`'s first word (signals 1 to 64).
    pub mask: u64,
}

/// The process state (see the module docs), in a plain-data layout the persistent heap keeps.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ProcState {
    /// 1 once captured.
    pub valid: u64,
    pub cwd_len: u64,
    pub cwd: [u8; CWD_MAX],
    pub umask: u32,
    /// 1 when `umask` was read.
    pub umask_valid: u32,
    /// The main thread's blocked signals (bit `sig - 1`), valid with `umask_valid`.
    pub sigmask: u64,
    /// `(soft, hard)` per resource.
    pub limits: [[u64; 2]; NLIMITS],
    pub actions: [Action; NSIG],
}

/// Whether `sig`'s disposition is recorded and restored: not SIGKILL, SIGSTOP or the C
/// library's internal signals, nor SIGSEGV while the write-fault tracker owns it.
fn restorable(sig: c_int) -> bool {
    sig != libc::SIGKILL
        && sig != libc::SIGSTOP
        && !signal::GLIBC_INTERNAL.contains(&sig)
        && !(sig == libc::SIGSEGV && signal::segv_is_virtual())
}

/// Parses the value of the line starting with `key` in `/proc/self/status`, in base `radix`.
fn status_field(text: &[u8], key: &[u8], radix: u32) -> Option<u64> {
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = &rest[..end];
        if let Some(v) = line.strip_prefix(key) {
            let mut n: u64 = 0;
            let mut any = false;
            for &b in v.iter().skip_while(|b| b.is_ascii_whitespace()) {
                let d = (b as char).to_digit(radix)?;
                n = n.checked_mul(radix as u64)?.checked_add(d as u64)?;
                any = true;
            }
            return any.then_some(n);
        }
        rest = &rest[(end + 1).min(rest.len())..];
    }
    None
}

/// Reads the process state into `s`. No allocation; what cannot be read is marked not valid.
pub fn capture(s: &mut ProcState) {
    // SAFETY: `s.cwd` is writable for its length.
    let n = unsafe { libc::syscall(libc::SYS_getcwd, s.cwd.as_mut_ptr(), s.cwd.len()) };
    // The kernel counts the NUL; a path that does not start with '/' is unreachable.
    s.cwd_len = if n > 1 && s.cwd[0] == b'/' { (n - 1) as u64 } else { 0 };
    let mut buf = [0u8; 4096];
    // SAFETY: a NUL-terminated path; `buf` is writable for its length; the descriptor is closed.
    let len = unsafe {
        let fd = libc::syscall(libc::SYS_open, c"/proc/self/status".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            0
        } else {
            let mut got = 0usize;
            loop {
                let r = libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr().add(got), buf.len() - got);
                if r <= 0 {
                    break;
                }
                got += r as usize;
            }
            libc::syscall(libc::SYS_close, fd);
            got
        }
    };
    let text = &buf[..len];
    match (status_field(text, b"Umask:", 8), status_field(text, b"SigBlk:", 16)) {
        (Some(u), Some(m)) => {
            s.umask = u as u32;
            s.sigmask = m;
            s.umask_valid = 1;
        }
        _ => s.umask_valid = 0,
    }
    for (res, l) in s.limits.iter_mut().enumerate() {
        let mut r = libc::rlimit64 { rlim_cur: libc::RLIM64_INFINITY, rlim_max: libc::RLIM64_INFINITY };
        // SAFETY: a query into a valid struct.
        if unsafe { libc::syscall(libc::SYS_prlimit64, 0, res, core::ptr::null::<libc::rlimit64>(), &mut r) } == 0 {
            *l = [r.rlim_cur, r.rlim_max];
        } else {
            *l = [libc::RLIM64_INFINITY, libc::RLIM64_INFINITY];
        }
    }
    let sigaction = signal::next_sigaction();
    for (i, a) in s.actions.iter_mut().enumerate() {
        let sig = i as c_int + 1;
        *a = Action::default();
        if !restorable(sig) {
            continue;
        }
        // SAFETY: an all-zero sigaction is valid.
        let mut cur: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: a query into a valid struct.
        if unsafe { sigaction(sig, core::ptr::null(), &mut cur) } == 0 {
            *a = Action {
                handler: cur.sa_sigaction,
                flags: cur.sa_flags,
                valid: 1,
                mask: signal::mask_word(&cur.sa_mask),
            };
        }
    }
    s.valid = 1;
}

/// Gives `s` back to this process, except the main thread's signal mask (see
/// [`apply_sigmask`]) and the dispositions `skip` names (crthreads' own handlers). Returns the
/// first thing that could not be given back, for the caller's message.
pub fn apply(s: &ProcState, skip: impl Fn(usize) -> bool) -> Result<(), (&'static str, crate::error::Errno)> {
    if s.valid == 0 {
        return Ok(());
    }
    let err = |what| (what, crate::error::Errno::last());
    if s.cwd_len > 0 {
        let mut path = [0u8; CWD_MAX + 1];
        let n = (s.cwd_len as usize).min(CWD_MAX);
        path[..n].copy_from_slice(&s.cwd[..n]);
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::syscall(libc::SYS_chdir, path.as_ptr()) } != 0 {
            return Err(err("the working directory"));
        }
    }
    if s.umask_valid != 0 {
        // SAFETY: sets the mask; cannot fail.
        unsafe { libc::syscall(libc::SYS_umask, s.umask & 0o777) };
    }
    for (res, l) in s.limits.iter().enumerate() {
        let mut now = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a query into a valid struct.
        if unsafe { libc::syscall(libc::SYS_prlimit64, 0, res, core::ptr::null::<libc::rlimit64>(), &mut now) } != 0 {
            continue;
        }
        // A hard limit can be lowered but not raised (without privilege); a soft one is kept
        // under the hard one.
        let max = l[1].min(now.rlim_max);
        let want = libc::rlimit64 { rlim_cur: l[0].min(max), rlim_max: max };
        if (want.rlim_cur, want.rlim_max) == (now.rlim_cur, now.rlim_max) {
            continue;
        }
        // SAFETY: sets a limit from a valid struct.
        if unsafe { libc::syscall(libc::SYS_prlimit64, 0, res, &want, core::ptr::null_mut::<libc::rlimit64>()) } != 0 {
            return Err(err("a resource limit"));
        }
    }
    let sigaction = signal::next_sigaction();
    for (i, a) in s.actions.iter().enumerate() {
        let sig = i as c_int + 1;
        if a.valid == 0 || !restorable(sig) || skip(a.handler) {
            continue;
        }
        // SAFETY: an all-zero sigaction is valid; the fields set below complete it.
        let mut act: libc::sigaction = unsafe { core::mem::zeroed() };
        act.sa_sigaction = a.handler;
        // The C library supplies its own restorer.
        act.sa_flags = a.flags & !signal::SA_RESTORER;
        act.sa_mask = signal::sigset_of(a.mask);
        // SAFETY: a complete disposition; the handler's address is the checkpointed process's,
        // and the executable and its libraries are where they were (the layout is checked).
        if unsafe { sigaction(sig, &act, core::ptr::null_mut()) } != 0 {
            return Err(err("a signal disposition"));
        }
    }
    Ok(())
}

/// Blocks exactly the recorded main thread's signals on the calling thread, but never those in
/// `keep_open` (crthreads' own).
pub fn apply_sigmask(s: &ProcState, keep_open: u64) {
    if s.valid != 0 && s.umask_valid != 0 {
        signal::sigprocmask_raw(libc::SIG_SETMASK, s.sigmask & !keep_open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse() {
        let t = b"Name:\tx\nUmask:\t0027\nSigQ:\t0/1\nSigBlk:\t0000000000010002\n";
        assert_eq!(status_field(t, b"Umask:", 8), Some(0o27));
        assert_eq!(status_field(t, b"SigBlk:", 16), Some(0x10002));
        assert_eq!(status_field(t, b"SigIgn:", 16), None);
        assert_eq!(status_field(b"Umask:\t\n", b"Umask:", 8), None);
    }

    #[test]
    fn capture_reads_this_process() {
        // SAFETY: all-zero is a valid ProcState (plain data).
        let mut s: ProcState = unsafe { core::mem::zeroed() };
        capture(&mut s);
        assert_eq!(s.valid, 1);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(&s.cwd[..s.cwd_len as usize], cwd.as_os_str().as_encoded_bytes());
        assert_eq!(s.umask_valid, 1);
        let mut r = libc::rlimit64 { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a query into a valid struct.
        unsafe { libc::getrlimit64(libc::RLIMIT_NOFILE, &mut r) };
        assert_eq!(s.limits[libc::RLIMIT_NOFILE as usize], [r.rlim_cur, r.rlim_max]);
        assert_eq!(s.actions[libc::SIGKILL as usize - 1].valid, 0);
    }
}
