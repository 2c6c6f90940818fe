//! What the drivers of the C programs (`c_suite.rs`, `seed_api.rs`, `hardening.rs`,
//! `mprotect_c.rs`, `pthread_conformance.rs` for the programs in `tests/c/`, `c_examples.rs` for
//! the examples) share: finding the built library, compiling a program for one link mode, and
//! running it with a clean environment and a time limit.
//!
//! The library is not built here (cargo does not build `cdylib`s for integration tests, and
//! building inside a test would make runs depend on build state): `make lib` builds it first,
//! and [`Program::build`] finds it with [`lib_dir`] (`lib_dir.rs`, shared with the README test
//! of the core crate). `CC` chooses the C compiler (default `cc`).
//!
//! Every run ([`Program::start`]) gets the environment of the test without the inherited
//! `CRTHREADS_*`, `LD_PRELOAD` and `LD_LIBRARY_PATH`, then `LD_PRELOAD=libcrthreads.so` in the
//! `preload` link mode, then the variables the driver names (a `CRTHREADS_DIR` among them), then
//! whatever the driver changes on the command ([`Program::start_with`]: descriptors, the
//! environment). Its stdout and stderr go to files in the program's temporary directory, which
//! is removed when the test passes and kept for inspection when it fails. A run longer than the
//! driver's limit is killed and reported as hung; a failure ([`Done::fail`]) shows the command,
//! the exit status and the program's stderr and stdout.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod lib_dir;
pub mod rng;
pub use lib_dir::lib_dir;

/// What rustc lists (`--print native-static-libs`) for linking `libcrthreads.a`.
const STATIC_NATIVE_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

const CFLAGS: &[&str] = &["-std=c11", "-O2", "-g", "-fno-builtin", "-Wall", "-Wextra", "-pthread"];

/// How a program gets crthreads (see the drivers' module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Plain C run as it is, without crthreads: the system's libc and pthreads (the reference
    /// the pthread conformance suite records). Needs no built library.
    Plain,
    /// Plain C, `LD_PRELOAD=libcrthreads.so`.
    Preload,
    /// Linked with `-lcrthreads` against `libcrthreads.so`.
    Shared,
    /// `libcrthreads.a` linked in.
    Static,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::Plain => "plain",
            Link::Preload => "preload",
            Link::Shared => "shared",
            Link::Static => "static",
        })
    }
}

/// A fresh directory under the system temp dir, named after the test executable; removed when
/// dropped, unless the test failed.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let test = env!("CARGO_CRATE_NAME");
        let p = std::env::temp_dir().join(format!("crthreads-{test}-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A path as a program argument or environment value (temporary paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// One C program built for one link mode, with its temporary directory.
pub struct Program {
    pub name: &'static str,
    pub link: Link,
    lib: PathBuf,
    /// The compiled program.
    pub exe: PathBuf,
    tmp: TempDir,
    /// A run longer than this is killed and reported as hung.
    limit: Duration,
}

impl Program {
    /// Compiles `tests/c/<name>.c` for `link` into a fresh temporary directory; its runs may
    /// take `limit` each. `name` may start with a directory (`conformance/mutex` is
    /// `tests/c/conformance/mutex.c`); the source is compiled from its directory, so its
    /// `#include "..."` files live there.
    pub fn build(name: &'static str, link: Link, limit: Duration) -> Program {
        let (dir, file) = name.rsplit_once('/').unwrap_or(("", name));
        // A plain program needs no library (and its runs set no LD_PRELOAD).
        let lib = if link == Link::Plain { PathBuf::new() } else { lib_dir() };
        let tmp = TempDir::new(&format!("{file}-{link}"));
        let exe = tmp.0.join(format!("{file}-{link}"));
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cc = std::env::var_os("CC").unwrap_or_else(|| OsString::from("cc"));
        let mut cmd = Command::new(&cc);
        // Compile from the source directory so that failure messages name `<name>.c`.
        cmd.current_dir(manifest.join("tests/c").join(dir))
            .args(CFLAGS)
            .arg("-I")
            .arg(manifest.join("include"))
            .arg(format!("{file}.c"))
            .arg("-o")
            .arg(&exe);
        match link {
            Link::Preload | Link::Plain => {}
            Link::Shared => {
                cmd.arg("-L").arg(&lib).arg(format!("-Wl,-rpath,{}", lib.display())).arg("-lcrthreads");
            }
            Link::Static => {
                cmd.arg("-L").arg(&lib).args(["-Wl,-Bstatic", "-lcrthreads", "-Wl,-Bdynamic"]).args(STATIC_NATIVE_LIBS);
            }
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?} (set CC to choose another): {e}"));
        assert!(
            out.status.success(),
            "compiling {name}.c ({link}) failed: {:?}\n--- compiler output ---\n{}{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Program { name, link, lib, exe, tmp, limit }
    }

    /// A program whose executable the caller builds at `path(exe)`, in the program's fresh
    /// temporary directory (the examples' driver builds it there with `make`).
    #[allow(dead_code)] // only the examples' driver builds its programs itself
    pub fn to_build(name: &'static str, link: Link, exe: &str, limit: Duration) -> Program {
        let tmp = TempDir::new(&format!("{name}-{link}"));
        let exe = tmp.0.join(exe);
        Program { name, link, lib: lib_dir(), exe, tmp, limit }
    }

    /// A path inside this program's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.0.join(name)
    }

    /// Starts the program with `args` and a clean environment plus `env` (which must name
    /// `CRTHREADS_DIR`, unless the program is [`Link::Plain`]). `label` names the run in
    /// messages and its output files.
    pub fn start(&self, label: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.start_with(label, args, env, |_| {})
    }

    /// [`Program::start`], with `adjust` applied to the command last (to change what the
    /// program inherits: its descriptors, its environment).
    pub fn start_with(
        &self,
        label: &str,
        args: &[&str],
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Run {
        assert!(
            self.link == Link::Plain || env.iter().any(|(k, _)| *k == "CRTHREADS_DIR"),
            "every run gets its own CRTHREADS_DIR"
        );
        let out_path = self.path(&format!("{label}.stdout"));
        let err_path = self.path(&format!("{label}.stderr"));
        let mut cmd = Command::new(&self.exe);
        cmd.args(args).stdin(Stdio::null());
        for (k, _) in std::env::vars_os() {
            // cargo test puts its own target/<profile> directories on LD_LIBRARY_PATH, which
            // would override the rpath and load a debug build of the library.
            if k.to_string_lossy().starts_with("CRTHREADS_") || k == "LD_PRELOAD" || k == "LD_LIBRARY_PATH" {
                cmd.env_remove(k);
            }
        }
        if self.link == Link::Preload {
            cmd.env("LD_PRELOAD", self.lib.join("libcrthreads.so"));
        }
        cmd.envs(env.iter().copied());
        let create = |p: &Path| std::fs::File::create(p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        cmd.stdout(create(&out_path)).stderr(create(&err_path));
        adjust(&mut cmd);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.exe.display()));
        Run {
            what: format!("{} [{}, {label}]", self.name, self.link),
            command: format!("{cmd:?}"),
            child,
            started: Instant::now(),
            limit: self.limit,
            out_path,
            err_path,
        }
    }
}

/// A running program.
pub struct Run {
    /// `name [link, label]`, for messages.
    pub what: String,
    pub command: String,
    pub child: Child,
    pub started: Instant,
    /// A run longer than this is killed and reported as hung.
    pub limit: Duration,
    out_path: PathBuf,
    err_path: PathBuf,
}

impl Run {
    /// What the program has printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out_path).unwrap_or_default()
    }

    /// What the program has printed on stderr so far.
    #[allow(dead_code)] // only some drivers watch stderr while the program runs
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err_path).unwrap_or_default()
    }

    /// Waits for the program to exit by itself (at most [`Run::limit`]).
    #[track_caller]
    pub fn finish(mut self) -> Done {
        loop {
            if self.child.try_wait().expect("wait for the C program").is_some() {
                return self.collect();
            }
            if self.started.elapsed() > self.limit {
                let _ = self.child.kill();
                self.collect().fail(&format!("hung: killed after {:?}", self.limit));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Reaps the program (which has exited or been killed) and reads its output.
    pub fn collect(&mut self) -> Done {
        let status = self.child.wait().expect("wait for the C program");
        Done {
            what: self.what.clone(),
            command: self.command.clone(),
            status,
            stdout: self.stdout(),
            stderr: std::fs::read_to_string(&self.err_path).unwrap_or_default(),
        }
    }
}

/// A program that has exited (or was killed).
pub struct Done {
    pub what: String,
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Done {
    /// Panics with `msg`, the command, and the program's stderr and stdout (at the caller's line).
    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{}: {msg}\nstatus: {}\ncommand: {}\n--- stderr ---\n{}--- stdout ---\n{}",
            self.what, self.status, self.command, self.stderr, self.stdout
        );
    }

    /// Fails with `msg()` unless `ok`.
    #[track_caller]
    pub fn check(&self, ok: bool, msg: impl FnOnce() -> String) {
        if !ok {
            self.fail(&msg());
        }
    }
}
