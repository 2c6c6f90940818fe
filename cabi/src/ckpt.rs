//! The seed interface of `checkpoint_restore.h`, plus `crthreads_*` extras.
//!
//! Control calls return -1 and set `errno` on failure; `crthreads_last_error()` gives the
//! message (which was also written to stderr).

use core::cell::RefCell;
use core::ffi::{c_char, c_int, c_void};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crthreads::sys::set_errno;
use crthreads::{Durability, Error, Overrides, Start, heap};

/// C's `struct crattr`; zero means "the environment's setting, or the default".
#[repr(C)]
pub struct CrAttr {
    dir: *const c_char,
    base: usize,
    capacity: usize,
    durability: c_int,
    keep: c_int,
    stats: *const c_char,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `e` for `crthreads_last_error`, reports it, sets errno, returns -1.
fn fail(e: Error) -> c_int {
    let errno = match &e {
        Error::Os { errno, .. } => errno.0,
        Error::Config { .. } => libc::EINVAL,
        Error::Conflict { .. } | Error::AlreadyInitialised | Error::DirectoryBusy { .. } => libc::EBUSY,
        Error::Reentered { .. } => libc::EDEADLK,
        Error::OverLimit { .. } => libc::ENOMEM,
        Error::NotInitialised => libc::EPERM,
        Error::OutOfMemory => libc::ENOMEM,
        Error::Insecure { .. } | Error::SecureExecution => libc::EACCES,
        _ => libc::EIO,
    };
    let msg = e.to_string();
    crthreads::sys::write_stderr(&[b"crthreads: ", msg.as_bytes(), b"\n"]);
    LAST_ERROR.with(|l| *l.borrow_mut() = CString::new(msg).unwrap_or_default());
    set_errno(errno);
    -1
}

fn path(p: *const c_char) -> Option<PathBuf> {
    // SAFETY: C's contract: a non-null pointer is a NUL-terminated string.
    (!p.is_null()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(unsafe { CStr::from_ptr(p) }.to_bytes())))
}

fn overrides(a: &CrAttr) -> Result<Overrides, Error> {
    let bad = |var: &'static str, v: c_int, expected: &str| Error::Config {
        var,
        value: v.to_string(),
        expected: expected.into(),
    };
    Ok(Overrides {
        dir: path(a.dir),
        base: (a.base != 0).then_some(a.base),
        capacity: (a.capacity != 0).then_some(a.capacity),
        durability: match a.durability {
            0 => None,
            1 => Some(Durability::Process),
            2 => Some(Durability::Sync),
            v => return Err(bad("crattr.durability", v, "CR_DURABILITY_PROCESS or CR_DURABILITY_SYNC")),
        },
        keep: match a.keep {
            0 => None,
            1 => Some(true),
            2 => Some(false),
            v => return Err(bad("crattr.keep", v, "CR_KEEP or CR_REMOVE")),
        },
        stats: path(a.stats),
    })
}

/// Initialises crthreads (or confirms the initialisation done when the library was loaded).
/// Returns 1 if the heap was restored from a checkpoint, 0 on a fresh start, -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn crinit(attr: *const CrAttr) -> c_int {
    // SAFETY: C's contract: `attr` is null or points to a valid struct crattr.
    let ov = match unsafe { attr.as_ref() }.map(overrides).transpose() {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => return fail(e),
    };
    match crthreads::init_or_adopt(&ov) {
        Ok(s) => s.is_restored() as c_int,
        Err(e) => fail(e),
    }
}

/// Takes a checkpoint. 0 on success, -1 on error (the previous checkpoint stays valid).
#[unsafe(no_mangle)]
pub extern "C" fn checkpoint() -> c_int {
    match crthreads::checkpoint() {
        Ok(_) => 0,
        Err(e) => fail(e),
    }
}

/// 1 if this run's heap was restored from a checkpoint, 0 if it started fresh, -1 if
/// crthreads is not initialised.
#[unsafe(no_mangle)]
pub extern "C" fn restore() -> c_int {
    match crthreads::start() {
        Ok(Start::Restored { .. }) => 1,
        Ok(Start::Fresh) | Ok(Start::Plain) => 0,
        Err(e) => fail(e),
    }
}

/// Allocates persistent memory; NULL with errno ENOMEM when full, EPERM before `crinit`.
#[unsafe(no_mangle)]
pub extern "C" fn crmalloc(size: usize) -> *mut c_void {
    if !heap::is_live() {
        set_errno(libc::EPERM);
        return core::ptr::null_mut();
    }
    crate::malloc::malloc(size)
}

/// Frees persistent memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn crfree(p: *mut c_void) {
    // SAFETY: forwarded.
    unsafe { crate::malloc::free(p) }
}

/// Resizes persistent memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn crrealloc(p: *mut c_void, size: usize) -> *mut c_void {
    if !heap::is_live() {
        set_errno(libc::EPERM);
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded.
    unsafe { crate::malloc::realloc(p, size) }
}

/// The persistent root: a block of `size` bytes, zeroed on a fresh start, the same block after
/// a restore. NULL with errno EINVAL if a root of another size exists.
#[unsafe(no_mangle)]
pub extern "C" fn crthreads_root_get(size: usize) -> *mut c_void {
    match crthreads::root_bytes(size) {
        Ok(p) => p.as_ptr().cast(),
        Err(e) => {
            fail(e);
            if matches!(crthreads::root_bytes(size), Err(Error::RootType { .. })) {
                set_errno(libc::EINVAL);
            }
            core::ptr::null_mut()
        }
    }
}

/// Deletes the checkpoint now (otherwise done at `exit(0)`). 0 or -1.
#[unsafe(no_mangle)]
pub extern "C" fn crthreads_retire() -> c_int {
    match crthreads::retire() {
        Ok(()) => 0,
        Err(e) => fail(e),
    }
}

/// The message of this thread's last failed crthreads call ("" if none).
#[unsafe(no_mangle)]
pub extern "C" fn crthreads_last_error() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}
