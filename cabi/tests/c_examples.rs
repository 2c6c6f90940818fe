//! The C example programs (`examples/c/`: `counter`, `tsp`, `kmeans`, `gradient_descent`,
//! `prodcons`), built with the repository's Makefile rules and run with small arguments.
//!
//! | variant   | how it is built (`make`, the `c-examples` rules)          | how it gets crthreads         |
//! |-----------|-----------------------------------------------------------|-------------------------------|
//! | `plain`   | `NAME-plain`: `-pthread`                                  | not at all (glibc only)       |
//! | `preload` | `NAME-plain`                                              | `LD_PRELOAD=libcrthreads.so`  |
//! | `shared`  | `NAME`: `-lcrthreads` against the built `libcrthreads.so` | as a dependency               |
//!
//! For each example:
//! - `--help` prints the usage on stdout and exits 0;
//! - two plain runs with different `--threads` (and, for `prodcons`, a different queue
//!   capacity) exit 0, follow the output contract (stdout is exactly `iter 0` .. `iter <n-1>`,
//!   one per unit of the run, then `result <16 hex digits>`; the output file has one record
//!   `<i> ...` per unit in order, then the same result line) and give the same stdout and a
//!   byte-identical output file;
//! - a plain run with one more unit (`--iters n+1`) repeats the first n records exactly and ends
//!   with another result: each record depends on the arguments only, and the checksum on the
//!   work;
//! - the `preload` and `shared` runs give the same stdout and output file as the plain run
//!   (their `main` and threads run on crthreads' threads and locks);
//! - bad arguments (unknown options, stray words, missing, empty, non-numeric, out-of-range and
//!   overflowing values, inconsistent combinations) exit 2 with a message on stderr that
//!   names the program and the offending argument, and print nothing on stdout;
//! - an output file that cannot be created exits 1 with a message naming it.
//!
//! Not here: killing and resuming the examples (`c_examples_resume.rs`).
//!
//! The build runs `make` in the repository root with `C_EXAMPLES_DIR` set to the program's
//! temporary directory and `C_LIB_DIR` to the built library (see `common/mod.rs`; `make lib`
//! builds it first); `CC` chooses the compiler as for the other C suites.

#[allow(dead_code)] // this driver builds with make, so it uses only part of the helpers
mod common;

use common::{Link, Program, s};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A run longer than this is killed and reported as hung (the small runs take well under a
/// second each).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// One example: its small arguments (without `--threads`, `--iters` and `--out`), the thread
/// counts of its two reference runs, and bad command lines of its own beyond the common ones.
struct Example {
    name: &'static str,
    small: &'static [&'static str],
    iters: u64,
    threads: [&'static [&'static str]; 2],
    bad: &'static [&'static [&'static str]],
}

/// Builds `name` (variant `link`) with the Makefile rule of `make c-examples`.
fn build(name: &'static str, link: Link) -> Program {
    let exe = if link == Link::Shared { name.to_string() } else { format!("{name}-plain") };
    let p = Program::to_build(name, link, &exe, RUN_LIMIT);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = p.path("");
    let lib = common::lib_dir();
    let mut cmd = Command::new("make");
    cmd.current_dir(&root)
        .arg("--no-print-directory")
        .arg(format!("C_EXAMPLES_DIR={}", s(&dir).trim_end_matches('/')))
        .arg(format!("C_LIB_DIR={}", s(&lib)))
        .arg(&p.exe)
        .stdin(Stdio::null());
    // Under `make test` the outer make's job server is not ours to use.
    for k in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL"] {
        cmd.env_remove(k);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run make: {e}"));
    assert!(
        out.status.success() && p.exe.is_file(),
        "building {} with make failed: {cmd:?}\n--- make output ---\n{}{}",
        p.exe.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

/// What a successful run left: its stdout and output file.
struct Output {
    stdout: String,
    file: Vec<u8>,
}

/// Runs `p` with `args` plus `--out <label>.out`; it must exit 0 and follow the output
/// contract for `iters` units.
#[track_caller]
fn run_ok(p: &Program, label: &str, args: &[&str], iters: u64) -> Output {
    let out_path = p.path(&format!("{label}.out"));
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--out", s(&out_path)]);
    let ckpt = p.path(&format!("ckpt-{label}"));
    let done = p.start(label, &all, &[("CRTHREADS_DIR", s(&ckpt))]).finish();
    done.check(done.status.success(), || "exited with a failure".into());

    let lines: Vec<&str> = done.stdout.lines().collect();
    done.check(lines.len() as u64 == iters + 1, || {
        format!("stdout should have {iters} `iter` lines and a result line, it has {} lines", lines.len())
    });
    for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
        done.check(*line == format!("iter {i}"), || format!("stdout line {} is `{line}`, expected `iter {i}`", i + 1));
    }
    let last = lines[lines.len() - 1];
    let hex = last.strip_prefix("result ").unwrap_or("");
    done.check(hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), || {
        format!("the last stdout line is `{last}`, expected `result <16 lowercase hex digits>`")
    });

    let file = std::fs::read(&out_path)
        .unwrap_or_else(|e| panic!("{}: no output file {}: {e}", done.what, out_path.display()));
    let text = String::from_utf8_lossy(&file);
    let records: Vec<&str> = text.lines().collect();
    done.check(text.ends_with('\n') && records.len() as u64 == iters + 1, || {
        format!("the output file should have {iters} records and a result line, each ending in a newline:\n{text}")
    });
    for (i, r) in records[..records.len() - 1].iter().enumerate() {
        done.check(r.starts_with(&format!("{i} ")), || format!("record {i} of the output file is `{r}`"));
    }
    done.check(records[records.len() - 1] == last, || {
        format!("the output file ends with `{}`, stdout with `{last}`", records[records.len() - 1])
    });
    Output { stdout: done.stdout, file }
}

/// The arguments of a run: `small`, `--iters n`, and the thread arguments.
fn args<'a>(ex: &'a Example, iters: &'a str, threads: &[&'a str]) -> Vec<&'a str> {
    let mut v: Vec<&str> = ex.small.to_vec();
    v.extend(["--iters", iters]);
    v.extend_from_slice(threads);
    v
}

/// Runs `p` with `args`; it must exit with `status`, print nothing on stdout and name the
/// program and `mention` on stderr. Returns stderr.
#[track_caller]
fn run_fails(p: &Program, label: &str, args: &[&str], status: i32, mention: &str) -> String {
    let done = p.start(label, args, &[]).finish();
    done.check(done.status.code() == Some(status), || format!("{args:?} should exit with status {status}"));
    done.check(done.stdout.is_empty(), || format!("{args:?} printed on stdout"));
    let prefix = format!("{}: ", p.name);
    done.check(done.stderr.starts_with(&prefix) && done.stderr.contains(mention), || {
        format!("{args:?}: stderr should start with `{prefix}` and mention `{mention}`")
    });
    done.stderr
}

fn check(ex: &Example) {
    let plain = build(ex.name, Link::Plain);
    let n = ex.iters.to_string();

    // --help
    let help = plain.start("help", &["--help"], &[]).finish();
    help.check(help.status.success(), || "--help should exit 0".into());
    help.check(help.stdout.starts_with(&format!("usage: {} ", ex.name)), || "--help should print the usage".into());
    for flag in ["--threads", "--iters", "--size", "--out"] {
        help.check(help.stdout.contains(flag), || format!("the usage does not mention {flag}"));
    }

    // Two thread counts, one result.
    let a = run_ok(&plain, "a", &args(ex, &n, ex.threads[0]), ex.iters);
    let b = run_ok(&plain, "b", &args(ex, &n, ex.threads[1]), ex.iters);
    assert_eq!(a.stdout, b.stdout, "{}: stdout differs between {:?} and {:?}", ex.name, ex.threads[0], ex.threads[1]);
    assert!(
        a.file == b.file,
        "{}: the output files of {:?} and {:?} differ:\n--- a ---\n{}--- b ---\n{}",
        ex.name,
        ex.threads[0],
        ex.threads[1],
        String::from_utf8_lossy(&a.file),
        String::from_utf8_lossy(&b.file)
    );

    // One more unit: the same records first, then another result.
    let more = (ex.iters + 1).to_string();
    let c = run_ok(&plain, "c", &args(ex, &more, ex.threads[1]), ex.iters + 1);
    let records = |f: &[u8]| String::from_utf8_lossy(f).lines().map(str::to_string).collect::<Vec<_>>();
    let (ra, rc) = (records(&a.file), records(&c.file));
    assert_eq!(
        ra[..ra.len() - 1],
        rc[..ra.len() - 1],
        "{}: with --iters {more} the first {n} records should be those of --iters {n}",
        ex.name
    );
    assert_ne!(ra.last(), rc.last(), "{}: --iters {n} and --iters {more} give the same result", ex.name);

    // With crthreads, preloaded or linked: the same output.
    for link in [Link::Preload, Link::Shared] {
        let p = build(ex.name, link);
        let d = run_ok(&p, &link.to_string(), &args(ex, &n, ex.threads[0]), ex.iters);
        assert_eq!(a.stdout, d.stdout, "{}: stdout differs between the plain and the {link} run", ex.name);
        assert!(
            a.file == d.file,
            "{}: the output files of the plain and the {link} run differ:\n--- plain ---\n{}--- {link} ---\n{}",
            ex.name,
            String::from_utf8_lossy(&a.file),
            String::from_utf8_lossy(&d.file)
        );
    }

    // Bad command lines: exit status 2, a message naming the argument.
    let common_bad: &[(&[&str], &str)] = &[
        (&["--threads", "0"], "`--threads` expects an integer from"),
        (&["--threads", "many"], "got `many`"),
        (&["--threads", "-3"], "got `-3`"),
        (&["--threads", " 4"], "got ` 4`"),
        (&["--iters", "99999999999999999999999"], "got `99999999999999999999999`"),
        (&["--iters", "0"], "`--iters` expects an integer from 1"),
        (&["--size=12x"], "got `12x`"),
        (&["--size="], "`--size` needs a value"),
        (&["--iters"], "`--iters` needs a value"),
        (&["--out"], "`--out` needs a value"),
        (&["--frobnicate"], "unknown option `--frobnicate`"),
        (&["--threadsx", "2"], "unknown option `--threadsx`"),
        (&["extra"], "unexpected argument `extra`"),
    ];
    for (i, (bad, mention)) in common_bad.iter().enumerate() {
        let err = run_fails(&plain, &format!("bad{i}"), bad, 2, mention);
        assert!(err.contains("--help"), "{}: {bad:?}: the message should point to --help:\n{err}", ex.name);
    }
    for (i, bad) in ex.bad.iter().enumerate() {
        let mention = bad.iter().find(|a| a.starts_with("--")).expect("a bad command line names an option");
        run_fails(&plain, &format!("own-bad{i}"), bad, 2, mention);
    }

    // An output file that cannot be created: exit status 1.
    let missing = plain.path("no-such-dir/out.txt");
    let mut bad_out = args(ex, &n, ex.threads[0]);
    bad_out.extend(["--out", s(&missing)]);
    run_fails(&plain, "bad-out", &bad_out, 1, "cannot open the output file");
}

#[test]
fn counter() {
    check(&Example {
        name: "counter",
        small: &["--size", "3000", "--counters", "5"],
        iters: 6,
        threads: [&["--threads", "1"], &["--threads", "7"]],
        bad: &[&["--counters", "0"], &["--counters", "5000"]],
    });
}

#[test]
fn tsp() {
    check(&Example {
        name: "tsp",
        small: &["--size", "10", "--seed", "3"],
        iters: 4,
        threads: [&["--threads", "1"], &["--threads", "6"]],
        bad: &[&["--size", "3"], &["--size", "21"], &["--seed", "-1"]],
    });
}

#[test]
fn kmeans() {
    check(&Example {
        name: "kmeans",
        // 5 partitions of points, so 3 threads own unequal shares.
        small: &["--size", "20000", "--k", "5", "--dim", "4", "--seed", "9"],
        iters: 6,
        threads: [&["--threads", "1"], &["--threads", "3"]],
        bad: &[&["--k", "11", "--size", "10"], &["--dim", "0"], &["--size", "10000000", "--dim", "256"]],
    });
}

#[test]
fn gradient_descent() {
    check(&Example {
        name: "gradient_descent",
        // 5 shards.
        small: &["--size", "10000", "--dim", "8", "--seed", "4"],
        iters: 8,
        threads: [&["--threads", "1"], &["--threads", "3"]],
        bad: &[&["--dim", "2000"], &["--size", "10000000", "--dim", "1000"]],
    });
}

#[test]
fn prodcons() {
    check(&Example {
        name: "prodcons",
        small: &["--size", "3000", "--seed", "5"],
        iters: 5,
        // 1 + 1 threads with a roomy queue, 32 + 32 with a tiny one.
        threads: [&["--threads", "2", "--capacity", "100"], &["--threads", "64", "--capacity", "2"]],
        bad: &[&["--threads", "1"], &["--capacity", "0"], &["--iters", "1000000", "--size", "10000"]],
    });
}
