//! Gives `libcrthreads.so` its SONAME, so that a program linked against it records
//! `libcrthreads.so` as its NEEDED entry (not the path the linker was given).

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcrthreads.so");
    println!("cargo:rerun-if-changed=build.rs");
}
