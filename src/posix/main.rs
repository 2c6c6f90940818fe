//! The program's `main` as the main persistent thread.
//!
//! The C library takes over process start (`__libc_start_main`, whose real definition it
//! calls with a `main` of its own) and calls [`start_main`] where the C library would call the
//! program's `main`: on a fresh start `main(argc, argv, envp)` runs on a region stack as the
//! main persistent thread, with `argv` and `envp` copied into the persistent heap (the
//! originals lie on the initial stack, which no checkpoint holds); after a restore, the
//! checkpoint's threads resume where they were parked and `main` is not called again.
//!
//! A program that uses the seed interface (`crinit`, `restore`, `crthreads_root_get`, as an
//! undefined symbol of its dynamic symbol table) manages its own restart: its `main` runs
//! again after a restore and finds its data through the root, so it runs as it always did, on
//! the initial stack and without persistent threads. So does a program that links crthreads
//! statically (the seed functions are then defined inside it, used or not), a program started
//! with `CRTHREADS_AUTO=0` (it initialises crthreads itself, later), and a child of a
//! crthreads program.
#![allow(unsafe_code)] // The C entry point, argv and envp.

use core::ffi::{c_char, c_int, c_void};

/// The program's `main`.
pub type MainFn = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;

/// The seed interface: a program that uses any of these restarts through its `main`.
const SEED_API: &[&str] = &["crinit", "restore", "crthreads_root_get", "checkpoint", "crmalloc"];

/// What the main persistent thread starts with, in the persistent heap.
#[repr(C)]
struct MainArgs {
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    envp: *mut *mut c_char,
}

/// Whether the program's `main` should run as the main persistent thread (see the module docs).
fn wanted() -> bool {
    if crate::runtime::is_plain() || !crate::runtime::is_initialised() {
        return false;
    }
    let Ok(img) = crate::heap::internal(|| std::fs::read("/proc/self/exe")) else { return false };
    !crate::sys::elf::defines(&img, "__libc_start_main") && !crate::sys::elf::uses_dynamic(&img, SEED_API)
}

/// Runs the program's `main` (see the module docs) and returns its exit status; `main` runs as
/// a persistent thread if it should, else directly.
///
/// # Safety
/// `main` is the program's main function; `argv` and `envp` are the vectors the C library
/// start-up passes it.
pub unsafe fn start_main(main: MainFn, argc: c_int, argv: *mut *mut c_char, envp: *mut *mut c_char) -> c_int {
    // SAFETY: the caller passes the program's main and its arguments.
    let direct = || unsafe { main(argc, argv, envp) };
    if !wanted() {
        return direct();
    }
    crate::thread::c::set_exit_hook(super::key::thread_exit);
    crate::thread::c::set_resume_hook(super::process::restore_main_mask);
    let restored = matches!(crate::runtime::start(), Ok(crate::Start::Restored { .. }));
    if let Err(e) = super::process::prepare() {
        crate::sys::write_stderr(&[format!("crthreads: cannot start threads: {e}\n").as_bytes()]);
        crate::sys::proc::exit_now(1);
    }
    if restored {
        super::process::restore();
    }
    let table = match crate::runtime::start_threads() {
        Ok(t) => t,
        Err(e) => {
            crate::sys::write_stderr(&[format!("crthreads: cannot start threads: {e}\n").as_bytes()]);
            crate::sys::proc::exit_now(1);
        }
    };
    crate::thread::quiet();
    let args = if restored {
        core::ptr::null_mut()
    } else {
        // SAFETY: argv and envp are NULL-terminated vectors of C strings (the start-up contract).
        crate::heap::program(|| unsafe { persistent_args(main, argc, argv, envp) })
    };
    crate::thread::c::run_main(table, restored, c_main, args.cast())
}

/// The main persistent thread's start routine.
extern "C" fn c_main(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `MainArgs` block `start_main` made, in the persistent heap.
    let a = unsafe { &*(arg as *const MainArgs) };
    // SAFETY: the program's main with its (copied) arguments.
    let r = unsafe { (a.main)(a.argc, a.argv, a.envp) };
    r as isize as *mut c_void
}

/// Copies a NULL-terminated vector of C strings into the persistent heap.
///
/// # Safety
/// `v` is a NULL-terminated array of valid C strings.
unsafe fn copy_vector(v: *mut *mut c_char) -> *mut *mut c_char {
    let mut n = 0;
    // SAFETY: NULL-terminated (the caller's contract).
    while !unsafe { *v.add(n) }.is_null() {
        n += 1;
    }
    let out = crate::heap::alloc((n + 1) * 8, 8, false) as *mut *mut c_char;
    if out.is_null() {
        crate::sys::fatal("crthreads: no memory for the program's arguments");
    }
    for i in 0..n {
        // SAFETY: each entry is a valid C string; the copy has room for it and its NUL.
        unsafe {
            let s = *v.add(i);
            let len = libc::strlen(s) + 1;
            let c = crate::heap::alloc(len, 1, false);
            if c.is_null() {
                crate::sys::fatal("crthreads: no memory for the program's arguments");
            }
            core::ptr::copy_nonoverlapping(s as *const u8, c, len);
            *out.add(i) = c as *mut c_char;
        }
    }
    // SAFETY: `out` has n + 1 entries.
    unsafe { *out.add(n) = core::ptr::null_mut() };
    out
}

/// The main thread's arguments, copied into the persistent heap.
///
/// # Safety
/// As [`start_main`].
unsafe fn persistent_args(main: MainFn, argc: c_int, argv: *mut *mut c_char, envp: *mut *mut c_char) -> *mut MainArgs {
    let a = crate::heap::alloc(core::mem::size_of::<MainArgs>(), 8, false) as *mut MainArgs;
    if a.is_null() {
        crate::sys::fatal("crthreads: no memory for the program's arguments");
    }
    // SAFETY: `a` is a fresh block of the right size; the vectors are valid (the caller's contract).
    unsafe { a.write(MainArgs { main, argc, argv: copy_vector(argv), envp: copy_vector(envp) }) };
    a
}
