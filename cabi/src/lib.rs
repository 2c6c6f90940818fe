//! `libcrthreads.so` / `libcrthreads.a`: crthreads for C programs.
//!
//! A translation layer only: each export checks its arguments, calls the core crate and maps
//! the result to C conventions (POSIX return values and `errno`). The library's own Rust code
//! allocates from the volatile allocator (the global allocator below), never from the
//! persistent heap it serves, and the library initialises itself when it is loaded.
#![deny(unsafe_op_in_unsafe_fn)]
#![allow(unsafe_code)] // FFI exports.

mod check;
mod ckpt;
mod malloc;
mod pthread;
mod start;

#[global_allocator]
static INTERNAL: crthreads::heap::volatile::Volatile = crthreads::heap::volatile::Volatile;

/// Called by the dynamic loader (or libc's start-up code for a static link) before `main`,
/// with the program's arguments.
extern "C" fn load(argc: libc::c_int, argv: *const *const libc::c_char, _envp: *const *const libc::c_char) {
    let args = (0..argc.max(0) as usize)
        // SAFETY: argv holds argc valid C strings (the ELF start-up contract).
        .map(|i| unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) }.to_owned())
        .collect();
    crthreads::auto_init(args);
}

#[used]
#[unsafe(link_section = ".init_array")]
static LOAD: extern "C" fn(libc::c_int, *const *const libc::c_char, *const *const libc::c_char) = load;
