//! `run`: a C program with the library preloaded, finding the library, programs with crthreads
//! linked in, and mistakes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::TempDir;
use crate::{CLI, clean_env, cli, lib_dir, output, s};

// ---------------------------------------------------------------------------------------------
// run.

/// `seed_counter.c` of the C suite, built as a plain C program (no -lcrthreads) in `t`.
fn seed_counter(t: &TempDir) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("cabi/tests/c");
    let exe = t.join("seed_counter");
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let o = output(
        Command::new(&cc)
            .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-pthread", "-I"])
            .arg(&src)
            .arg("-I")
            .arg(src.join("../../include"))
            .arg(src.join("seed_counter.c"))
            .arg("-o")
            .arg(&exe),
    );
    assert!(o.status.success(), "cc {cc:?}: {o:?}");
    exe
}

fn library() -> PathBuf {
    lib_dir::lib_dir().join("libcrthreads.so").canonicalize().unwrap()
}

pub fn run_executes_a_c_program_with_the_library_preloaded() {
    let t = TempDir::new("cli-run");
    let prog = seed_counter(&t);
    let (dir, lib) = (t.join("ck"), library());
    let run = |c: &mut Command, args: &[&str]| -> Command {
        let mut c2 = std::mem::replace(c, Command::new(CLI));
        clean_env(&mut c2).args(["run", "--dir", s(&dir), "--keep", "--lib", s(&lib), "--", s(&prog)]).args(args);
        c2
    };
    let mut c = run(&mut Command::new(CLI), &["400", "1", "5000"]);
    let mut ch = c.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(ch.stdout.take().unwrap());
    let mut line = String::new();
    while line != "checkpoint 5\n" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the program ended early");
    }
    // The program is this very process: crthreads run exec'd it, with the library preloaded.
    let proc = PathBuf::from(format!("/proc/{}", ch.id()));
    assert_eq!(fs::read_link(proc.join("exe")).unwrap(), prog.canonicalize().unwrap());
    let environ = fs::read(proc.join("environ")).unwrap();
    let want = format!("LD_PRELOAD={}", lib.display());
    assert!(environ.split(|&b| b == 0).any(|kv| kv == want.as_bytes()), "{want} is not in its environment");
    // A C program has no persistent threads to take checkpoint requests: the request signal,
    // whose default action would kill it, is not sent.
    let o = cli(&["checkpoint", &ch.id().to_string()]);
    o.expect(69);
    assert!(o.stderr.contains("does not handle checkpoint requests") && o.stderr.contains("Nothing was sent"), "{o:?}");
    assert!(ch.try_wait().unwrap().is_none(), "the program still runs");
    ch.kill().unwrap();
    assert!(crate::common::killed(&ch.wait().unwrap()));

    let j = cli(&["status", "--json", s(&dir)]).expect(0).json();
    let seq = j.get("seq").u64().unwrap();
    assert!(seq >= 5, "{j:?}");
    let binary =
        j.get("slots").at(j.get("slot").u64().unwrap() as usize).get("binary").get("path").str().map(PathBuf::from);
    assert_eq!(binary, Some(prog.canonicalize().unwrap()));

    let o = output(&mut run(&mut Command::new(CLI), &["400", "1", "0"]));
    o.expect(0);
    let next: u64 = o.lines()[0].strip_prefix("start restored=1 next=").and_then(|n| n.parse().ok()).expect("resumed");
    assert!(next >= 5, "{o:?}");
    assert_eq!(o.lines().last(), Some(&"done"));
    cli(&["verify", s(&dir)]).expect(0);
    cli(&["clean", s(&dir)]).expect(0);

    // The program's exit status is the command's.
    let o = output(clean_env(&mut Command::new(CLI)).args([
        "run",
        "--dir",
        s(&dir),
        "--lib",
        s(&lib),
        "--",
        "sh",
        "-c",
        "exit 7",
    ]));
    o.expect(7);
}

pub fn run_finds_the_library_next_to_itself_or_in_lib() {
    let t = TempDir::new("cli-find");
    let prog = seed_counter(&t);
    let lib = library();
    for (layout, exe_dir, lib_dir) in
        [("install", "inst/bin", Some("inst/lib")), ("build", "flat", Some("flat")), ("none", "none", None)]
    {
        let bin = t.join(exe_dir).join("crthreads");
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        fs::copy(CLI, &bin).unwrap();
        if let Some(l) = lib_dir {
            fs::create_dir_all(t.join(l)).unwrap();
            fs::copy(&lib, t.join(l).join("libcrthreads.so")).unwrap();
        }
        let dir = t.join(&format!("ck-{layout}"));
        let o =
            output(clean_env(&mut Command::new(&bin)).args(["run", "--dir", s(&dir), "--", s(&prog), "3", "1", "0"]));
        match lib_dir {
            // seed_counter fails unless the library is loaded.
            Some(_) => assert_eq!(o.expect(0).lines().last(), Some(&"done"), "{layout}: {o:?}"),
            None => {
                o.expect(69);
                let here = bin.parent().unwrap().display();
                assert_eq!(
                    o.stderr.trim(),
                    format!(
                        "crthreads run: libcrthreads.so was not found (looked for {here}/libcrthreads.so and \
                         {here}/../lib/libcrthreads.so): build it with `make lib`, or give its path with --lib PATH \
                         or CRTHREADS_LIB"
                    )
                );
                // CRTHREADS_LIB names it from anywhere.
                let o = output(
                    clean_env(&mut Command::new(&bin))
                        .args(["run", "--dir", s(&dir), "--", s(&prog), "3", "1", "0"])
                        .env("CRTHREADS_LIB", &lib),
                );
                assert_eq!(o.expect(0).lines().last(), Some(&"done"), "CRTHREADS_LIB: {o:?}");
            }
        }
    }
}

pub fn run_sets_only_the_environment_for_a_program_with_crthreads_linked_in() {
    let t = TempDir::new("cli-run-rust");
    let dir = t.join("ck");
    let exe = std::env::current_exe().unwrap();
    let mut c = Command::new(CLI);
    clean_env(&mut c)
        .args(["run", "--dir", s(&dir), "--policy", "manual", "--no-reexec", "--", s(&exe)])
        .env("CRT_TEST_ROLE", "env")
        .env("CRTHREADS_OWNER", "1:2");
    let ch = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = ch.id();
    let o = ch.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!(
            "pid={pid} LD_PRELOAD=- CRTHREADS_DIR={} CRTHREADS_POLICY=manual CRTHREADS_REEXEC=0 CRTHREADS_OWNER=-",
            dir.display()
        )
    );
}

pub fn run_reports_mistakes_before_starting_anything() {
    let lib = library();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        output(clean_env(&mut Command::new(CLI)).arg("run").args(args).envs(env.iter().copied()))
    };
    let o = run(&["--polcy", "manual", "--", "true"], &[]);
    o.expect(2);
    assert!(
        o.stderr.starts_with("crthreads run: unknown option --polcy; the options of run are --dir, --policy,"),
        "{o:?}"
    );
    let o = run(&["--policy", "sometimes", "true"], &[]);
    o.expect(2);
    assert!(
        o.stderr.starts_with("crthreads run: --policy \"sometimes\" is not valid: expected `every-release`"),
        "{o:?}"
    );
    let o = run(&["--lib", s(&lib), "true"], &[("CRTHREADS_TRACKER", "bogus")]);
    o.expect(2);
    assert!(
        o.stderr.starts_with("crthreads run: CRTHREADS_TRACKER=\"bogus\" in the environment is not valid"),
        "{o:?}"
    );
    let o = run(&["--lib", s(&lib), "no-such-program-xyz"], &[]);
    o.expect(127);
    assert!(o.stderr.contains("program `no-such-program-xyz` was not found in PATH"), "{o:?}");
    run(&["--lib", s(&lib), "/"], &[]).expect(126);
    let o = run(&["--lib", "/nonexistent/libcrthreads.so", "true"], &[]);
    o.expect(2);
    assert_eq!(
        o.stderr.trim(),
        "crthreads run: --lib /nonexistent/libcrthreads.so: No such file or directory (os error 2): give the path \
         of libcrthreads.so (`make lib` builds it in target/release)"
    );
    let o = run(&["true"], &[("CRTHREADS_LIB", "/nonexistent/libcrthreads.so")]);
    o.expect(2);
    assert!(
        o.stderr.starts_with(
            "crthreads run: CRTHREADS_LIB=/nonexistent/libcrthreads.so: No such file or directory (os error 2): \
             point it at libcrthreads.so"
        ),
        "{o:?}"
    );
    let o = run(&["--lib", "/", "true"], &[]);
    o.expect(2);
    assert!(o.stderr.starts_with("crthreads run: --lib / is not a file: "), "{o:?}");
    let o = run(&[], &[]);
    o.expect(2);
    assert!(o.stderr.contains("missing PROGRAM"), "{o:?}");
}
