//! C programs and the command: `checkpoint PID` against a busy 64-thread C example relinked
//! with `-lcrthreads` (its `main` runs as a persistent thread, so it takes requests), and
//! `make install` into a temporary prefix, then a C program built with `pkg-config`, killed and
//! resumed.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::TempDir;
use crate::{CLI, clean_env, cli, lib_dir, output, s, seq_of};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cc() -> std::ffi::OsString {
    std::env::var_os("CC").unwrap_or_else(|| "cc".into())
}

/// Compiles `src` to `exe` with `flags` after the source.
fn build(src: &Path, exe: &Path, flags: &[&str]) {
    let o = output(
        Command::new(cc())
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fstack-protector-strong"])
            .arg(src)
            .arg("-o")
            .arg(exe)
            .args(flags),
    );
    assert!(o.status.success(), "cc {src:?}: {o:?}");
}

pub fn checkpoint_of_a_busy_64_thread_c_program_and_it_runs_on_to_the_right_result() {
    let t = TempDir::new("cli-cprog");
    let src = repo().join("examples/c/prodcons.c");
    let (linked, plain) = (t.join("prodcons"), t.join("prodcons-plain"));
    let lib = lib_dir::lib_dir().canonicalize().unwrap();
    let rpath = format!("-Wl,-rpath,{}", lib.display());
    build(&src, &linked, &[&format!("-L{}", lib.display()), &rpath, "-lcrthreads"]);
    build(&src, &plain, &["-pthread"]);
    let args = ["--threads", "64", "--iters", "30", "--size", "40000"];

    // The reference: glibc's threads, no crthreads at all.
    let want_out = t.join("plain.out");
    let reference = output(clean_env(&mut Command::new(&plain)).args(args).arg("--out").arg(&want_out));
    reference.expect(0);

    let (dir, got_out) = (t.join("ck"), t.join("linked.out"));
    let mut ch = clean_env(&mut Command::new(&linked))
        .args(args)
        .arg("--out")
        .arg(&got_out)
        .env("CRTHREADS_DIR", &dir)
        .env("CRTHREADS_POLICY", "manual")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(ch.stdout.take().unwrap());
    let mut err = ch.stderr.take().unwrap();
    let t_err = std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap());
    let mut stdout = String::new();
    // Busy: its 64 threads pass items through the queue.
    while !stdout.ends_with("iter 0\n") {
        assert!(out.read_line(&mut stdout).unwrap() > 0, "the program ended early: {stdout}");
    }
    assert!((0..2).all(|sl| seq_of(&dir, sl).is_none()), "manual policy: no checkpoint before a request");
    let pid = ch.id().to_string();
    let mut last = 0;
    for target in [pid.as_str(), s(&dir)] {
        let o = cli(&["checkpoint", "--no-progress", target]);
        o.expect(0);
        let seq: u64 = o.stdout.trim().parse().unwrap_or_else(|_| panic!("not a sequence number: {o:?}"));
        assert!(seq > last, "checkpoint {seq} after {last}");
        assert!((0..2).any(|sl| seq_of(&dir, sl) == Some(seq)), "checkpoint {seq} is not committed");
        last = seq;
    }
    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    let newest = j.get("slots").at(j.get("slot").u64().unwrap() as usize);
    assert_eq!(newest.get("threads").u64(), Some(65), "64 threads and main: {newest:?}");
    stdout.push_str(&std::io::read_to_string(&mut out).unwrap());
    let status = ch.wait().unwrap();
    let stderr = t_err.join().unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stdout, reference.stdout, "the same stdout as glibc's run; stderr: {stderr}");
    assert_eq!(fs::read(&got_out).unwrap(), fs::read(&want_out).unwrap(), "the same output file");
}

/// Installs with the Makefile's recipe into `prefix` (the built library and this test's CLI).
fn install(prefix: &Path, target: &str) -> crate::Out {
    let lib = lib_dir::lib_dir();
    output(
        clean_env(&mut Command::new("make"))
            .current_dir(repo())
            .arg("--no-print-directory")
            .arg(target)
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!("LIB_DIR={}", lib.display()))
            .arg(format!("CLI_BIN={CLI}")),
    )
}

pub fn make_install_gives_a_pkg_config_build_that_resumes() {
    let t = TempDir::new("cli-install");
    let prefix = t.join("prefix");
    install(&prefix, "install-files").expect(0);
    for f in [
        "bin/crthreads",
        "lib/libcrthreads.so",
        "lib/libcrthreads.a",
        "include/checkpoint_restore.h",
        "lib/pkgconfig/crthreads.pc",
    ] {
        assert!(prefix.join(f).is_file(), "{f} is not installed");
    }
    let pc = |args: &[&str]| {
        let o = output(
            clean_env(&mut Command::new("pkg-config"))
                .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
                .args(args)
                .arg("crthreads"),
        );
        o.expect(0);
        o.stdout.trim().to_string()
    };
    let flags = format!("{} {}", pc(&["--cflags"]), pc(&["--libs"]));
    assert!(flags.contains(&format!("-I{}/include", prefix.display())), "{flags}");
    assert!(flags.contains("-lcrthreads"), "{flags}");

    // A seed-API C program built only from what was installed: `cc $(pkg-config ...)`.
    let src = repo().join("cabi/tests/c");
    let exe = t.join("seed_counter");
    let mut cflags: Vec<String> = flags.split_whitespace().map(String::from).collect();
    cflags.push(format!("-I{}", src.display()));
    let refs: Vec<&str> = cflags.iter().map(String::as_str).collect();
    build(&src.join("seed_counter.c"), &exe, &refs);
    let o = output(Command::new("ldd").arg(&exe));
    let want = prefix.join("lib/libcrthreads.so");
    assert!(o.stdout.contains(s(&want)), "found through the rpath, not LD_LIBRARY_PATH: {o:?}");

    let dir = t.join("ck");
    let run = |args: &[&str]| {
        let mut c = Command::new(&exe);
        clean_env(&mut c).args(args).env("CRTHREADS_DIR", &dir).env("CRTHREADS_KEEP", "1");
        c
    };
    let mut ch = run(&["400", "1", "5000"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(ch.stdout.take().unwrap());
    let mut line = String::new();
    while line != "checkpoint 5\n" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the program ended early");
    }
    ch.kill().unwrap();
    assert!(crate::common::killed(&ch.wait().unwrap()));
    // The installed command reads what the installed library wrote.
    let o = output(clean_env(&mut Command::new(prefix.join("bin/crthreads"))).args(["status", "--json", s(&dir)]));
    let seq = o.expect(0).json().get("seq").u64().unwrap();
    assert!(seq >= 5, "{o:?}");
    let o = output(&mut run(&["400", "1", "0"]));
    o.expect(0);
    let next: u64 = o.lines()[0].strip_prefix("start restored=1 next=").and_then(|n| n.parse().ok()).expect("resumed");
    assert!(next >= 5, "{o:?}");
    assert_eq!(o.lines().last(), Some(&"done"));

    install(&prefix, "uninstall").expect(0);
    let left: Vec<PathBuf> = walk(&prefix);
    assert!(left.is_empty(), "left behind by uninstall: {left:?}");
}

/// The files under `p`.
fn walk(p: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() { files.extend(walk(&e)) } else { files.push(e) }
    }
    files
}
