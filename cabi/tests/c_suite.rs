//! The C test suite of the malloc exports: compiles each program in `tests/c/` with `cc` and runs it
//! against the built library in all three link modes.
//!
//! | link mode | how the program is built                                   | how it gets crthreads             |
//! |-----------|------------------------------------------------------------|-----------------------------------|
//! | `preload` | plain C, glibc's malloc                                    | `LD_PRELOAD=libcrthreads.so`      |
//! | `shared`  | `-L<lib> -Wl,-rpath,<lib> -lcrthreads`                     | `libcrthreads.so` as a dependency |
//! | `static`  | `-Wl,-Bstatic -lcrthreads -Wl,-Bdynamic` + its native libs | `libcrthreads.a` linked in        |
//!
//! The programs (each file's opening comment lists its checks):
//! - `region.c`: blocks lie in the persistent region, or outside it under `CRTHREADS_AUTO=0`,
//!   libc's internal allocations included; a small region filled until ENOMEM and refilled;
//!   `crinit` after `CRTHREADS_AUTO=0`; the program is linked the way the driver asked.
//! - `errno.c`: ENOMEM for huge sizes and overflowing products, EINVAL for bad alignments,
//!   posix_memalign's result and untouched `*out`, a failed realloc keeps the block, free keeps
//!   errno.
//! - `zero_null.c`: `free(NULL)`, `realloc(NULL, n)`, `malloc_usable_size(NULL)`, zero sizes,
//!   `pvalloc(0)`, `realloc(p, 0)` frees (and does not leak).
//! - `alignment.c`: every power of two up to 4 MiB for posix_memalign, aligned_alloc and memalign;
//!   the alignment of malloc, valloc and pvalloc.
//! - `contents.c`: calloc zeroes reused dirty memory, realloc keeps contents, usable sizes are
//!   writable.
//! - `stress.c`: 8 threads of random operations passing blocks between them, then 300 threads
//!   alive at once.
//! - `fork.c`: the allocator works in the child of a multithreaded `fork`.
//!
//! Each program runs with a fresh temporary `CRTHREADS_DIR`, `CRTHREADS_REEXEC=0` (except in the
//! re-exec check), and once with crthreads initialising itself (`persistent`: memory comes from
//! the region) and once under `CRTHREADS_AUTO=0` (`volatile`); `region.c` has its own list of
//! runs. A program exits 0 when every check passed, or prints the failed check on stderr and
//! exits 1; this driver prints the program's stderr and stdout on failure. `CC` chooses the C
//! compiler (default `cc`).
//!
//! The library is not built here: `make lib` builds it first. The driver looks in
//! `$CRTHREADS_LIB_DIR`, else in `<target dir>/release` (see `common/mod.rs`). A last test
//! checks that `libcrthreads.so` carries its SONAME (read with binutils' `readelf`).

mod common;

use common::{Link, Program, s};
use std::time::Duration;

/// The documented defaults of `CRTHREADS_BASE` and `CRTHREADS_CAPACITY`.
const DEFAULT_BASE: &str = "0x200000000000";
const DEFAULT_CAPACITY: u64 = 64 << 30;

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

impl Program {
    /// Runs the program with `args` and extra environment `env` (which may override the
    /// defaults `CRTHREADS_REEXEC=0` and the fresh `CRTHREADS_DIR`). Panics with the program's
    /// output unless it exits 0; returns its stdout.
    #[track_caller]
    fn run(&self, label: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let ckpt_dir = self.path(&format!("ckpt-{label}"));
        let link = self.link.to_string();
        let mut all = vec![("CRTHREADS_DIR", s(&ckpt_dir)), ("CRTHREADS_REEXEC", "0"), ("CRT_LINK", &link)];
        all.extend_from_slice(env);
        let done = self.start(label, args, &all).finish();
        if !done.status.success() {
            done.fail("failed");
        }
        if !done.stderr.is_empty() {
            eprintln!("{} wrote on stderr:\n{}", done.what, done.stderr);
        }
        done.check(!ckpt_dir.exists(), || {
            format!(
                "the checkpoint directory {} exists after exit(0), yet the program never took a checkpoint \
                 (and a clean exit removes it)",
                ckpt_dir.display()
            )
        });
        done.stdout
    }

    /// The default plan: once persistent, once under `CRTHREADS_AUTO=0`.
    fn run_both(&self) {
        self.run("persistent", &["persistent"], &[]);
        self.run("volatile", &["volatile"], &[("CRTHREADS_AUTO", "0")]);
    }
}

/// The `layout` line of region.c: where the executable and libc were loaded.
fn layout(stdout: &str) -> String {
    let line = stdout.lines().find(|l| l.starts_with("layout ")).unwrap_or_else(|| {
        panic!("region printed no layout line; its stdout was:\n{stdout}");
    });
    line.to_string()
}

/// region.c in every mode, then the re-exec check.
fn region(link: Link) {
    let p = Program::build("region", link, RUN_LIMIT);
    let cap = DEFAULT_CAPACITY.to_string();
    p.run("persistent", &["persistent", DEFAULT_BASE, &cap], &[]);
    // A small region elsewhere, which region.c also fills to exhaustion.
    let small = (64u64 << 20).to_string();
    p.run(
        "persistent-small",
        &["persistent", "0x300000000000", &small],
        &[("CRTHREADS_BASE", "0x300000000000"), ("CRTHREADS_CAPACITY", "64M")],
    );
    p.run("volatile", &["volatile", DEFAULT_BASE, &cap], &[("CRTHREADS_AUTO", "0")]);
    p.run("late-init", &["late-init", DEFAULT_BASE, &cap], &[("CRTHREADS_AUTO", "0")]);

    // With CRTHREADS_REEXEC=1 the program re-executes itself once without address-space
    // randomisation, so two runs load at the same addresses. Two runs without re-exec show
    // whether randomisation is on at all; if it is off, the check cannot tell anything apart.
    let args = ["persistent", DEFAULT_BASE, cap.as_str()];
    let randomised = [0, 1].map(|_| layout(&p.run("no-reexec", &args, &[])));
    let fixed = [0, 1].map(|_| layout(&p.run("reexec", &args, &[("CRTHREADS_REEXEC", "1")])));
    assert_eq!(
        fixed[0], fixed[1],
        "region [{link}]: with CRTHREADS_REEXEC=1 the program should run without ASLR, at the same \
         addresses every time"
    );
    if randomised[0] == randomised[1] {
        eprintln!("note: address-space randomisation seems to be off here; the re-exec check proves little");
    }
}

macro_rules! suite {
    ($($program:ident => $plan:expr;)*) => {$(
        mod $program {
            use super::*;

            #[test]
            fn preload() {
                $plan(stringify!($program), Link::Preload)
            }

            #[test]
            fn shared() {
                $plan(stringify!($program), Link::Shared)
            }

            #[test]
            fn static_archive() {
                $plan(stringify!($program), Link::Static)
            }
        }
    )*};
}

fn both(name: &'static str, link: Link) {
    Program::build(name, link, RUN_LIMIT).run_both();
}

suite! {
    region => |_, link| super::region(link);
    errno => both;
    zero_null => both;
    alignment => both;
    contents => both;
    stress => both;
    fork => both;
}

/// `libcrthreads.so` names itself (DT_SONAME), so that a program linked against it records
/// `libcrthreads.so` as NEEDED however the linker was pointed at it, never a build path.
#[test]
fn shared_library_has_its_soname() {
    let lib = common::lib_dir().join("libcrthreads.so");
    let out = std::process::Command::new("readelf")
        .arg("-d")
        .arg(&lib)
        .output()
        .unwrap_or_else(|e| panic!("cannot run readelf (binutils): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "readelf -d {} failed: {}", lib.display(), String::from_utf8_lossy(&out.stderr));
    assert!(
        text.lines().any(|l| l.contains("(SONAME)") && l.contains("[libcrthreads.so]")),
        "{} has no SONAME libcrthreads.so:\n{text}",
        lib.display()
    );
}
