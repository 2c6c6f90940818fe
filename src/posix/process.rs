//! What a C program's process holds besides its heap and threads, saved at each checkpoint and
//! given back before its threads resume: the main executable's writable globals and its open
//! regular files.
//!
//! - **Globals.** The executable's writable segments (`.data`, `.bss`), without the part made
//!   read-only after relocation (`PT_GNU_RELRO`) and without the objects copy relocations
//!   placed there for shared libraries (`stdout`, `environ`: the C library keeps using its
//!   own). A *mirror* block in the persistent heap holds them: at each checkpoint, with every
//!   thread stopped, the pages that differ are copied into it (so unchanged globals add nothing
//!   to an incremental checkpoint), and a restore copies it back.
//! - **Open files.** The regular files open on descriptors 3 and up (not crthreads' own, which
//!   live above [`crate::sys::fs::RUNTIME_FD_MIN`]): path, flags, offset and size, recorded at
//!   each checkpoint. A restore opens each again at its descriptor number, cuts a file open for
//!   writing back to its recorded size (output written after the checkpoint is not kept twice)
//!   and puts the offset back. Terminals, pipes and sockets are left as they are; at most
//!   [`MAX_FILES`] files are recorded.
//!
//! - **Process state** (`sys::pstate`): the working directory, the umask, the
//!   resource limits (a limit the program lowered is lowered again; a hard limit is never
//!   raised), the signal dispositions (handler, flags, mask; crthreads' own handlers and
//!   signals are left to the new process's set-up, SIGSEGV too while the `mprotect` tracker
//!   owns it) and the main thread's signal mask. A restore gives all but the mask back with the
//!   files; the mask is put back on the main thread's OS thread just before it resumes (a
//!   thread that was preempted gets its mask back from its signal frame anyway). What cannot be
//!   given back (a working directory that was removed) is reported on stderr, and the program
//!   resumes without it.
//!
//! - **Descriptors no restore can give back** (sockets, pipes and FIFOs, kernel objects such as
//!   eventfd, epoll, timerfd or inotify descriptors) refuse a checkpoint while the program holds
//!   one it opened itself: the checkpoint fails with a message naming the descriptor's number
//!   and kind (the previous checkpoint stays valid; the warning is rate-limited), unless
//!   `CRTHREADS_UNSUPPORTED_FDS=ignore`, under which they are simply not restored. Descriptors
//!   the process inherited when it started (0, 1 and 2, and any other its parent left open,
//!   recognised by device and inode) are the environment's and left as they are.
//!
//! All are recorded by a before-checkpoint hook and given back by `restore`, called by
//! `main::start_main` before any restored thread resumes. The block holding them (with the key
//! registry) is found through the heap header.
#![allow(unsafe_code)] // Copies between the program's globals and the mirror.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::sys::PAGE;
use crate::sys::files::{self, OpenFile};
use crate::sys::pstate;

/// Files recorded at most.
pub const MAX_FILES: usize = 64;

/// The C runtime's persistent state.
#[repr(C)]
pub(crate) struct State {
    pub(crate) keys: super::key::Registry,
    /// The globals' mirror (a block of the persistent heap) and its length, or 0.
    mirror: AtomicU64,
    mirror_len: AtomicU64,
    /// Files recorded by the last checkpoint.
    nfiles: u64,
    files: [Rec; MAX_FILES],
    /// The process state recorded by the last checkpoint.
    proc_state: pstate::ProcState,
}

/// One recorded file.
#[repr(C)]
#[derive(Clone, Copy)]
struct Rec {
    fd: i32,
    flags: i32,
    offset: i64,
    size: i64,
    path_len: u64,
    path: [u8; 480],
}

/// The state block (made zeroed the first time), or `None` without a heap.
pub(crate) fn state() -> Option<*mut State> {
    // Persistent even when first asked for inside the runtime (an `internal` section).
    let p = crate::heap::posix_block(|| {
        crate::heap::program(|| crate::heap::alloc(core::mem::size_of::<State>(), 64, true))
    });
    (!p.is_null()).then_some(p as *mut State)
}

/// Descriptors this process inherited (number, device, inode), recorded by `prepare`.
static INHERITED: OnceLock<Vec<(i32, u64, u64)>> = OnceLock::new();

/// The check before each checkpoint: refuses it while the program holds a descriptor that no
/// restore can give back (see the module docs).
fn refuse_unsupported() -> crate::Result<()> {
    if crate::runtime::ignores_unsupported_fds() {
        return Ok(());
    }
    let inherited = INHERITED.get().map_or(&[][..], |v| &v[..]);
    let mut first: Option<(i32, &'static str, [u8; 64], usize)> = None;
    let _ = files::each_unsupported(crate::sys::fs::RUNTIME_FD_MIN, |u| {
        if first.is_none() && !crate::sys::fs::is_runtime_fd(u.fd) && !inherited.contains(&(u.fd, u.dev, u.ino)) {
            let mut link = [0u8; 64];
            link[..u.link.len()].copy_from_slice(u.link);
            first = Some((u.fd, u.kind, link, u.link.len()));
        }
    });
    match first {
        None => Ok(()),
        Some((fd, kind, link, len)) => Err(crate::Error::Unsupported {
            what: format!(
                "a checkpoint while descriptor {fd} is open ({kind}, {})",
                String::from_utf8_lossy(&link[..len])
            ),
            why: "no restore can give it back; close it before checkpoints are taken, or set \
                  CRTHREADS_UNSUPPORTED_FDS=ignore to checkpoint without it"
                .into(),
        }),
    }
}

/// The globals' ranges in this process (computed once, by `prepare`).
static GLOBALS: OnceLock<Vec<(usize, usize)>> = OnceLock::new();

/// `a` minus every range of `cut` (sorted, possibly overlapping).
fn subtract(a: (usize, usize), cut: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut lo = a.0;
    for &(c0, c1) in cut {
        if c1 <= lo || c0 >= a.1 {
            continue;
        }
        if c0 > lo {
            out.push((lo, c0));
        }
        lo = lo.max(c1);
    }
    if lo < a.1 {
        out.push((lo, a.1));
    }
    out
}

/// Works out the globals and makes their mirror (on a fresh start) or checks it (after a
/// restore). Registers the before-checkpoint hook. Called before threads start.
pub(crate) fn prepare() -> crate::Result<()> {
    let (bias, rw, relro) = crate::sys::elf::program_writable();
    let img = crate::heap::internal(|| std::fs::read("/proc/self/exe")).unwrap_or_default();
    let mut cut: Vec<(usize, usize)> = crate::sys::elf::copy_relocations(&img)
        .into_iter()
        .map(|(o, n)| (bias + o as usize, bias + (o + n) as usize))
        .collect();
    cut.push(relro);
    cut.sort_unstable();
    let ranges: Vec<(usize, usize)> = rw.iter().flat_map(|&r| subtract(r, &cut)).filter(|r| r.1 > r.0).collect();
    let len: usize = ranges.iter().map(|r| r.1 - r.0).sum();
    let st = state().ok_or(crate::Error::OutOfMemory)?;
    // SAFETY: the state block is ours; no thread runs yet.
    unsafe {
        if (*st).mirror.load(Ordering::Relaxed) == 0 || (*st).mirror_len.load(Ordering::Relaxed) != len as u64 {
            let m = crate::heap::program(|| crate::heap::alloc(len.max(1), PAGE, false));
            if m.is_null() {
                return Err(crate::Error::OutOfMemory);
            }
            for &(a, b) in &ranges {
                let off: usize = ranges.iter().take_while(|r| r.0 < a).map(|r| r.1 - r.0).sum();
                core::ptr::copy_nonoverlapping(a as *const u8, m.add(off), b - a);
            }
            (*st).mirror.store(m as usize as u64, Ordering::Relaxed);
            (*st).mirror_len.store(len as u64, Ordering::Relaxed);
        }
    }
    let _ = GLOBALS.set(ranges);
    let mut inherited = Vec::new();
    let _ = files::each_unsupported(crate::sys::fs::RUNTIME_FD_MIN, |u| {
        if !crate::sys::fs::is_runtime_fd(u.fd) {
            inherited.push((u.fd, u.dev, u.ino));
        }
    });
    let _ = INHERITED.set(inherited);
    crate::runtime::set_checkpoint_veto(refuse_unsupported);
    crate::hooks::before_checkpoint(save)
}

/// The before-checkpoint hook: every thread is stopped.
fn save() {
    let Some(st) = state() else { return };
    let Some(ranges) = GLOBALS.get() else { return };
    // SAFETY: every persistent thread is parked; the mirror has the globals' total length.
    unsafe {
        let m = (*st).mirror.load(Ordering::Relaxed) as usize as *mut u8;
        let mut off = 0;
        for &(a, b) in ranges {
            let mut p = a;
            while p < b {
                let n = (PAGE - p % PAGE).min(b - p);
                let src = core::slice::from_raw_parts(p as *const u8, n);
                let dst = core::slice::from_raw_parts_mut(m.add(off), n);
                if src != dst {
                    dst.copy_from_slice(src);
                }
                p += n;
                off += n;
            }
        }
        let mut n = 0;
        let _ = files::each_regular(crate::sys::fs::RUNTIME_FD_MIN, |f| {
            if n < MAX_FILES && !crate::sys::fs::is_runtime_fd(f.fd) {
                (*st).files[n] = Rec {
                    fd: f.fd,
                    flags: f.flags,
                    offset: f.offset,
                    size: f.size,
                    path_len: f.path_len as u64,
                    path: f.path,
                };
                n += 1;
            }
        });
        (*st).nfiles = n as u64;
        pstate::capture(&mut (*st).proc_state);
    }
}

/// Gives the checkpoint's globals and open files back (after a restore, before any thread
/// resumes). A file that cannot be opened again ends the process with a message naming it.
pub(crate) fn restore() {
    let Some(st) = state() else { return };
    let Some(ranges) = GLOBALS.get() else { return };
    // SAFETY: no persistent thread runs yet; the mirror has the globals' total length
    // (checked by `prepare`).
    unsafe {
        let m = (*st).mirror.load(Ordering::Relaxed) as usize as *const u8;
        let mut off = 0;
        for &(a, b) in ranges {
            core::ptr::copy_nonoverlapping(m.add(off), a as *mut u8, b - a);
            off += b - a;
        }
        let st = &*st;
        for r in &st.files[..(st.nfiles as usize).min(MAX_FILES)] {
            let f = OpenFile {
                fd: r.fd,
                path: r.path,
                path_len: (r.path_len as usize).min(r.path.len()),
                flags: r.flags,
                offset: r.offset,
                size: r.size,
            };
            if let Err(e) = files::reopen(&f) {
                let path = String::from_utf8_lossy(&f.path[..f.path_len]);
                crate::sys::write_stderr(&[format!(
                    "crthreads: cannot restore: {path} (descriptor {}) was open at the checkpoint and cannot be opened again: {e}\n",
                    f.fd
                )
                .as_bytes()]);
                crate::sys::proc::exit_now(1);
            }
        }
        if let Err((what, e)) = pstate::apply(&st.proc_state, crate::thread::preempt::is_runtime_handler) {
            crate::sys::write_stderr(&[format!(
                "crthreads: warning: {what} of the checkpoint cannot be given back ({e}); the program resumes without it\n"
            )
            .as_bytes()]);
        }
    }
}

/// Puts the checkpoint's signal mask back on the calling OS thread (the main thread's, just
/// before it resumes after a restore), never blocking crthreads' own signals.
pub(crate) fn restore_main_mask() {
    let Some(st) = state() else { return };
    // SAFETY: the state block is ours; the restored threads do not write it.
    let ps = unsafe { &(*st).proc_state };
    pstate::apply_sigmask(ps, crate::thread::preempt::runtime_signals());
}

#[cfg(test)]
mod tests {
    use super::subtract;

    #[test]
    fn subtract_cuts_holes_and_ends() {
        assert_eq!(subtract((100, 200), &[]), vec![(100, 200)]);
        assert_eq!(subtract((100, 200), &[(0, 50), (250, 300)]), vec![(100, 200)]);
        assert_eq!(subtract((100, 200), &[(90, 120), (150, 160), (190, 210)]), vec![(120, 150), (160, 190)]);
        assert_eq!(subtract((100, 200), &[(120, 130), (125, 140)]), vec![(100, 120), (140, 200)]);
        assert_eq!(subtract((100, 200), &[(0, 300)]), Vec::<(usize, usize)>::new());
    }
}
