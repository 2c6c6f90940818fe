//! The pthread conformance suite: C programs that pin down what glibc's pthreads do (results,
//! error numbers, wake-ups, cancellation, thread-specific data, signals, semaphores, sleeps),
//! so that the same programs can show that crthreads' pthread exports do the same.
//!
//! Each program in `tests/c/conformance/` prints one `name: value` line per check (error
//! numbers by name, yes/no, counts; never a time, an address or a thread id) and exits 0; its
//! stdout must equal the golden file `<program>.expected` beside it, recorded from glibc and
//! reviewed line by line. The golden files are the specification: a run against another
//! implementation passes only if it behaves like glibc on every line. Each file's opening
//! comment lists its checks; `conform.h` has what they share.
//!
//! | program         | area                                                                  |
//! |-----------------|-----------------------------------------------------------------------|
//! | `thread`        | create, join, tryjoin_np, timedjoin_np, clockjoin_np, detach, exit, self, equal; pthread_exit from main |
//! | `attr`          | thread attributes, pthread_getattr_np, a caller-supplied stack        |
//! | `mutex`         | the four mutex types, mutexattr, priority inheritance, robust, process-shared |
//! | `cond`          | condition variables, condattr clocks, no lost wake-ups                |
//! | `rwlock`        | read-write locks and rwlockattr                                       |
//! | `barrier`       | barriers and barrierattr                                              |
//! | `spin`          | spin locks                                                            |
//! | `once`          | pthread_once under contention and cancellation                        |
//! | `key`           | thread-specific data, destructor iterations, PTHREAD_KEYS_MAX keys    |
//! | `cancel`        | deferred and asynchronous cancellation, cancel state, cleanup handlers |
//! | `signal`        | pthread_kill, pthread_sigmask, sigwait                                |
//! | `sem`           | unnamed semaphores                                                    |
//! | `sleep`         | sleep, usleep, nanosleep, clock_nanosleep, EINTR                      |
//! | `static_init`   | the static initialisers                                               |
//! | `app_pool`      | an application: a thread pool with a work queue                       |
//! | `app_mergesort` | an application: a parallel merge sort                                 |
//! | `app_pipeline`  | an application: a pipeline of bounded queues with condition variables |
//!
//! The `app_*` programs are ordinary programs with no test scaffolding, whose output does not
//! depend on scheduling: the same output under crthreads as under glibc is their whole check.
//!
//! [`MODES`] lists the implementations every program runs against: `glibc` (the program built
//! and run plainly, [`Link::Plain`]), and crthreads preloaded and relinked with `-lcrthreads`
//! (see `c_suite.rs` for how each links), where the program's `main` runs as a persistent
//! thread on crthreads' pthreads. The crthreads modes run the programs in [`CRTHREADS`]: those
//! whose every line crthreads gives as glibc does. The others check what crthreads refuses on
//! purpose (process-shared, robust and priority-protocol objects, a caller-supplied stack) or
//! does not provide yet (cancellation, `pthread_getattr_np`, signals, read-write locks of its
//! own): `cond` and `sem` differ only in their process-shared lines, `once` and `key` use
//! cancellation. The static mode stays off: a program linked with `libcrthreads.a` keeps glibc's threads
//! (see `crthreads::posix::main`).
//!
//! Every run gets a fresh temporary `CRTHREADS_DIR` and `CRTHREADS_REEXEC=0` (ignored by the
//! plain runs), and is killed and reported as hung after [`RUN_LIMIT`]; the programs take well
//! under a second each, and wait on deadlines only where the outcome is certain. On a mismatch
//! the driver prints the differing lines and the program's stderr, and keeps its temporary
//! directory. `CC` chooses the C compiler (default `cc`).
//!
//! To record the golden files again (after adding a check, say), run the suite with
//! `CRTHREADS_CONFORMANCE_BLESS=1`: the glibc runs then write `<program>.expected` instead of
//! comparing with it. Review the diff line by line before committing it.

mod common;

use common::{Link, Program, s};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run longer than this is killed and reported as hung.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Where the programs and their golden files live, relative to the package.
const DIR: &str = "tests/c/conformance";

/// The programs' names for [`Program::build`], which looks in `tests/c/`: `conformance/<program>`.
macro_rules! source {
    ($program:ident) => {
        concat!("conformance/", stringify!($program))
    };
}

/// An implementation the programs run against.
struct Mode {
    name: &'static str,
    link: Link,
    /// Whether the suite runs this mode.
    on: bool,
}

/// The implementations, in the order they run. The crthreads modes run the programs of
/// [`CRTHREADS`].
const MODES: &[Mode] = &[
    Mode { name: "glibc", link: Link::Plain, on: true },
    Mode { name: "crthreads-preload", link: Link::Preload, on: true },
    Mode { name: "crthreads-shared", link: Link::Shared, on: true },
    Mode { name: "crthreads-static", link: Link::Static, on: false },
];

/// The programs the crthreads modes run (see the module docs for the others).
const CRTHREADS: &[&str] = &["thread", "barrier", "spin", "static_init", "app_pool", "app_mergesort", "app_pipeline"];

/// Whether `mode` runs `program`.
fn runs(mode: &Mode, program: &str) -> bool {
    mode.on && (mode.link == Link::Plain || CRTHREADS.contains(&program))
}

/// Rewrites the golden files from the glibc runs instead of comparing with them.
const BLESS: &str = "CRTHREADS_CONFORMANCE_BLESS";

fn golden_path(program: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(format!("{program}.expected"))
}

/// Builds and runs `program` (`source` under `tests/c/`) in every mode that is on; its stdout
/// must equal the golden file.
fn conform(program: &str, source: &'static str) {
    let golden = golden_path(program);
    let bless = std::env::var_os(BLESS).is_some_and(|v| v == "1");
    for mode in MODES.iter().filter(|m| runs(m, program)) {
        let p = Program::build(source, mode.link, RUN_LIMIT);
        let ckpt = p.path("ckpt");
        let done = p.start(mode.name, &[], &[("CRTHREADS_DIR", s(&ckpt)), ("CRTHREADS_REEXEC", "0")]).finish();
        done.check(done.status.success(), || "did not exit 0".into());
        if !done.stderr.is_empty() {
            eprintln!("{program} [{}] wrote on stderr:\n{}", mode.name, done.stderr);
        }
        if bless && mode.link == Link::Plain {
            std::fs::write(&golden, &done.stdout).unwrap_or_else(|e| panic!("write {}: {e}", golden.display()));
            eprintln!("{BLESS}: wrote {}; review it line by line", golden.display());
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!("cannot read the golden file {}: {e} (record it with {BLESS}=1)", golden.display())
        });
        if done.stdout != want {
            done.fail(&format!(
                "stdout differs from {} (- expected, + got):\n{}",
                golden.display(),
                diff(&want, &done.stdout)
            ));
        }
    }
}

/// The lines that differ between `want` and `got`, from a longest common subsequence of lines:
/// `- ` lines only in `want`, `+ ` lines only in `got`, each with its line number.
fn diff(want: &str, got: &str) -> String {
    let a: Vec<&str> = want.lines().collect();
    let b: Vec<&str> = got.lines().collect();
    // lcs[i][j]: the length of a longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {:>4}: {}\n", i + 1, a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {:>4}: {}\n", j + 1, b[j]));
            j += 1;
        }
    }
    if out.is_empty() {
        out.push_str("(the lines are the same; the line endings differ)\n");
    }
    out
}

macro_rules! programs {
    ($($program:ident)*) => {
        /// Every program of the suite.
        const PROGRAMS: &[&str] = &[$(stringify!($program)),*];

        $(
            #[test]
            fn $program() {
                conform(stringify!($program), source!($program));
            }
        )*
    };
}

programs! {
    thread attr mutex cond rwlock barrier spin once key cancel signal sem sleep static_init
    app_pool app_mergesort app_pipeline
}

/// Every C program in the directory has a test and a golden file, and every golden file a
/// program: a program added without being listed here, or a golden file left behind, fails.
#[test]
fn every_program_is_listed_and_has_a_golden_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut sources = Vec::new();
    let mut goldens = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 file names").to_string();
        match path.extension().and_then(|e| e.to_str()) {
            Some("c") => sources.push(stem),
            Some("expected") => goldens.push(stem),
            _ => {}
        }
    }
    sources.sort();
    goldens.sort();
    let mut listed: Vec<String> = PROGRAMS.iter().map(|p| p.to_string()).collect();
    listed.sort();
    assert_eq!(sources, listed, "the C programs in {} and the programs! list differ", dir.display());
    assert_eq!(goldens, listed, "the golden files in {} and the programs! list differ", dir.display());
    for p in CRTHREADS {
        assert!(PROGRAMS.contains(p), "CRTHREADS names {p}, which is not a program of the suite");
    }
}
