//! The C drop-in end to end, every figure against a baseline measured in the same run.
//!
//! 1. Each C example (`examples/c/`), relinked with `-lcrthreads` (`make c-examples`:
//!    `<c-examples>/NAME`), with the arguments of [`EXAMPLES`], under the `manual` policy (no checkpoint is ever taken), `interval`
//!    at 1 s and `every-release`, against `NAME-plain` on glibc's pthreads. A round runs the
//!    four variants in an order that rotates from round to round, timing each from start to
//!    exit; every run must print the plain run's `result` line. Reported: median wall times and
//!    the ratios of the medians to plain.
//! 2. Start-up: `heap_hold 0` (`benches/c/heap_hold.c`, a trivial program), time from start to
//!    its first line, plain, relinked on a fresh start, and relinked restarting from an existing
//!    checkpoint.
//! 3. `crthreads checkpoint PID` against `heap_hold MIB` for 64, 256 and 1024 MiB heaps: the
//!    command's wall time from request to the commit it prints, for the first checkpoint (the
//!    whole heap) and the third (the first after both slots hold the heap: the pages written in
//!    the last two epochs, some 50 ms of a page written per millisecond); then the restart time (start to
//!    the restored program's first line) after a SIGKILL.
//!
//! ```text
//! make lib bin c-examples && cargo build --release -p crthreads-benches
//! target/release/cexamples [--rounds N] [--heaps 64,256,1024]
//! ```
//! The examples run with arguments smaller than their defaults ([`EXAMPLES`]); `--rounds`
//! (default 3) applies to every measurement (start-up takes at least 5).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crthreads_benches::{TempDir, Watchdog, arg, median};

/// The examples and their arguments: smaller than their defaults so that `every-release`, which
/// takes a checkpoint for each release of a last lock (one per increment in `counter`, two per
/// item in `prodcons`), ends within seconds too. Every variant runs the same arguments.
const EXAMPLES: &[(&str, &[&str])] = &[
    ("counter", &["--iters", "4", "--size", "10000"]),
    ("tsp", &["--iters", "8"]),
    ("kmeans", &["--iters", "20"]),
    ("gradient_descent", &["--iters", "240"]),
    ("prodcons", &["--iters", "4", "--size", "10000"]),
];

/// The variants: name and `CRTHREADS_POLICY` (`None`: the plain build).
const VARIANTS: &[(&str, Option<&str>)] = &[
    ("plain", None),
    ("manual", Some("manual")),
    ("interval", Some("interval")),
    ("every-release", Some("every-release")),
];

const LIMIT: Duration = Duration::from_secs(300);

fn release_dir() -> PathBuf {
    std::env::current_exe().unwrap().parent().unwrap().to_path_buf()
}

fn clean(c: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("CRTHREADS_") || k == "LD_PRELOAD" {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null())
}

/// Runs `c` to its end; returns (seconds, stdout).
fn timed(c: &mut Command) -> (f64, String) {
    let t = Instant::now();
    let ch = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let _w = Watchdog::new(ch.id(), LIMIT);
    let o = ch.wait_with_output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success(), "{c:?}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (secs, String::from_utf8(o.stdout).unwrap())
}

fn result_line(out: &str) -> String {
    out.lines().rev().find(|l| l.starts_with("result ")).expect("a result line").to_string()
}

fn examples(dir: &Path, rounds: usize, tmp: &TempDir) {
    println!("C examples relinked with -lcrthreads vs -plain (glibc pthreads): median s, ratio to plain");
    println!("{:<18} {:>9} {:>16} {:>16} {:>16}", "example", "plain s", "manual", "interval 1s", "every-release");
    for &(name, args) in EXAMPLES {
        let mut times = vec![Vec::new(); VARIANTS.len()];
        let mut want = None;
        for r in 0..rounds {
            for k in 0..VARIANTS.len() {
                let v = (k + r) % VARIANTS.len();
                let (label, policy) = VARIANTS[v];
                let exe = dir.join(if policy.is_none() { format!("{name}-plain") } else { name.to_string() });
                let ck = tmp.join(&format!("{name}-{label}"));
                let _ = std::fs::remove_dir_all(&ck);
                let mut c = Command::new(&exe);
                clean(&mut c).args(args).env("CRTHREADS_DIR", &ck);
                if let Some(p) = policy {
                    c.env("CRTHREADS_POLICY", p);
                }
                let (secs, out) = timed(&mut c);
                let res = result_line(&out);
                assert_eq!(want.get_or_insert_with(|| res.clone()), &res, "{name} {label}: another result");
                times[v].push(secs);
            }
        }
        let m: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
        let cell = |i: usize| format!("{:.2}s {:.2}x", m[i], m[i] / m[0]);
        println!("{:<18} {:>9.2} {:>16} {:>16} {:>16}", name, m[0], cell(1), cell(2), cell(3));
    }
}

/// Starts `c` and waits for its first line; returns the child and the seconds that took.
fn until_alive(c: &mut Command) -> (Child, f64) {
    let t = Instant::now();
    let mut ch = c.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn");
    let mut line = String::new();
    BufReader::new(ch.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(line, "alive\n", "{c:?} did not start");
    (ch, secs)
}

fn kill(mut ch: Child) {
    let _ = ch.kill();
    let _ = ch.wait();
}

/// `crthreads checkpoint PID`: its wall time and the sequence number it printed.
fn request(cli: &Path, pid: u32) -> (f64, u64) {
    let (secs, out) = timed(clean(&mut Command::new(cli)).args(["checkpoint", "--no-progress", &pid.to_string()]));
    (secs, out.trim().parse().expect("a sequence number"))
}

fn hold(exe: &Path, mib: u64, ck: &Path) -> Command {
    let mut c = Command::new(exe);
    clean(&mut c).arg(mib.to_string()).env("CRTHREADS_DIR", ck).env("CRTHREADS_POLICY", "manual");
    c
}

fn startup(linked: &Path, plain: &Path, cli: &Path, rounds: usize, tmp: &TempDir) {
    let ck = tmp.join("startup");
    let mut t = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..rounds.max(5) {
        let _ = std::fs::remove_dir_all(&ck);
        let (ch, s) = until_alive(&mut hold(plain, 0, &ck));
        kill(ch);
        t[0].push(s);
        let (ch, s) = until_alive(&mut hold(linked, 0, &ck));
        t[1].push(s);
        request(cli, ch.id());
        kill(ch);
        let (ch, s) = until_alive(&mut hold(linked, 0, &ck));
        kill(ch);
        t[2].push(s);
    }
    let m: Vec<f64> = t.iter_mut().map(|v| median(v)).collect();
    println!("\nstart-up of a trivial program (start to its first line), median of {} rounds", t[0].len());
    println!(
        "  plain {:.1} ms; relinked, fresh {:.1} ms ({:.1}x); relinked, restoring a checkpoint {:.1} ms ({:.1}x)",
        m[0] * 1e3,
        m[1] * 1e3,
        m[1] / m[0],
        m[2] * 1e3,
        m[2] / m[0]
    );
}

fn heaps(linked: &Path, cli: &Path, rounds: usize, sizes: &[u64], tmp: &TempDir) {
    println!(
        "\n`crthreads checkpoint PID` (request to printed commit) and restart (start to first line after SIGKILL)"
    );
    println!("{:>8} {:>14} {:>14} {:>12}", "heap MiB", "first ckpt ms", "third ckpt ms", "restart ms");
    for &mib in sizes {
        let ck = tmp.join(&format!("heap-{mib}"));
        let (mut first, mut next, mut restart) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let _ = std::fs::remove_dir_all(&ck);
            let (ch, _) = until_alive(&mut hold(linked, mib, &ck));
            let (s1, q1) = request(cli, ch.id());
            // The other slot does not hold the heap yet: the next checkpoint writes it whole too.
            let (_, q) = request(cli, ch.id());
            std::thread::sleep(Duration::from_millis(50)); // some pages written in between
            let (s2, q2) = request(cli, ch.id());
            assert!(q1 < q && q < q2);
            first.push(s1);
            next.push(s2);
            kill(ch);
            let (ch, s) = until_alive(&mut hold(linked, mib, &ck));
            restart.push(s);
            kill(ch);
        }
        let _ = std::fs::remove_dir_all(&ck);
        println!(
            "{:>8} {:>14.1} {:>14.1} {:>12.1}",
            mib,
            median(&mut first) * 1e3,
            median(&mut next) * 1e3,
            median(&mut restart) * 1e3
        );
    }
}

fn main() {
    let rounds: usize = arg("--rounds", 3);
    let sizes: Vec<u64> =
        arg("--heaps", "64,256,1024".to_string()).split(',').map(|s| s.parse().expect("--heaps 64,256")).collect();
    let rel = release_dir();
    let cli = rel.join("crthreads");
    let cdir = rel.join("../c-examples");
    for p in [&cli, &rel.join("libcrthreads.so"), &cdir.join("prodcons")] {
        assert!(p.exists(), "{} is missing: run `make lib bin c-examples` first", p.display());
    }
    let tmp = TempDir::new("cexamples");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("c/heap_hold.c");
    let (linked, plain) = (tmp.join("heap_hold"), tmp.join("heap_hold-plain"));
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let lib = rel.canonicalize().unwrap();
    for (exe, flags) in [
        (&linked, vec![format!("-L{}", lib.display()), format!("-Wl,-rpath,{}", lib.display()), "-lcrthreads".into()]),
        (&plain, vec!["-pthread".to_string()]),
    ] {
        let st = Command::new(&cc).args(["-O2", "-o"]).arg(exe).arg(&src).args(&flags).status().unwrap();
        assert!(st.success(), "cc {}", src.display());
    }
    println!("medians of {rounds} rounds; this machine is noisy: compare ratios within one run\n");
    examples(&cdir, rounds, &tmp);
    startup(&linked, &plain, &cli, rounds, &tmp);
    heaps(&linked, &cli, rounds, &sizes, &tmp);
}
