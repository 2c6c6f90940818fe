//! Process start: `__libc_start_main`, so that the program's `main` runs as the main persistent
//! thread (see `crthreads::posix::main`). The C library's own `__libc_start_main` does all of
//! its work as usual and calls our `main`, which hands the program's to the core.

use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering};

use crthreads::posix::main::MainFn;

/// The program's `main`, as `_start` passed it.
static MAIN: AtomicUsize = AtomicUsize::new(0);

type Hook = unsafe extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) -> c_int;

mod real {
    use core::ffi::{c_char, c_int, c_void};
    crthreads::real_fn!(pub unsafe fn start_main = __libc_start_main(
        main: super::Hook,
        argc: c_int,
        argv: *mut *mut c_char,
        init: *mut c_void,
        fini: *mut c_void,
        rtld_fini: *mut c_void,
        stack_end: *mut c_void,
    ) -> c_int);
}

/// Called by the program's `_start`: passes everything on to the C library's
/// `__libc_start_main`, with our `main` in place of the program's.
///
/// # Safety
/// Only `_start` calls this, with the arguments the kernel and the linker give it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __libc_start_main(
    main: MainFn,
    argc: c_int,
    argv: *mut *mut c_char,
    init: *mut c_void,
    fini: *mut c_void,
    rtld_fini: *mut c_void,
    stack_end: *mut c_void,
) -> c_int {
    MAIN.store(main as usize, Ordering::Relaxed);
    // SAFETY: the arguments are _start's, passed on unchanged but for `main`.
    unsafe { real::start_main(program_main, argc, argv, init, fini, rtld_fini, stack_end) }
}

/// What the C library calls as `main`, after the constructors.
unsafe extern "C" fn program_main(argc: c_int, argv: *mut *mut c_char, envp: *mut *mut c_char) -> c_int {
    // SAFETY: stored by `__libc_start_main` from _start's `main` argument.
    let main = unsafe { core::mem::transmute::<usize, MainFn>(MAIN.load(Ordering::Relaxed)) };
    // SAFETY: the program's main and the start-up's vectors.
    unsafe { crthreads::posix::main::start_main(main, argc, argv, envp) }
}
