//! The multithreaded examples end to end: each algorithm on std threads and locks with glibc's
//! malloc, against the crthreads example under the `every-release` policy and under `interval`
//! at 1 s, all measured in the same run.
//!
//! The std variant is this binary (no global allocator: the system's malloc) re-executed as
//! `examples-bench --std <example> [args]`; it runs the very algorithm the example runs (the
//! same source, `examples/common/<name>.rs`, instantiated with `std::thread`/`std::sync`). The
//! crthreads variants are the example binaries, built next to this one
//! (`cargo build --release --examples`), each run in a fresh checkpoint directory. A round runs
//! the three variants of one example as child processes, in an order that rotates from round to
//! round, and times each from start to exit; every run must print the same `result` line.
//!
//! Reported per example: the median wall time of each variant over `--rounds` rounds (at least
//! 3) with its fastest and slowest round, the crthreads/std ratios of the medians, and from
//! `CRTHREADS_STATS` the checkpoints per second and the median time an attempt took to gather
//! the threads (`gather_us`) and to write its checkpoint (`duration_us`), with the share of the
//! run they add up to.
//!
//! ```text
//! cargo build --release --examples && cargo run --release -p crthreads-benches --bin examples-bench
//! examples-bench [--rounds N] [--only kmeans|tsp|gradient_descent|prodcons] [--quick]
//! ```
//! `--quick` runs every example with small arguments (a smoke test of the benchmark itself).

#[macro_use]
#[path = "../../../examples/common/mod.rs"]
mod common;
#[path = "../../../examples/common/gradient_descent.rs"]
mod gradient_descent;
#[path = "../../../examples/common/kmeans.rs"]
mod kmeans;
#[path = "../../../examples/common/prodcons.rs"]
mod prodcons;
#[path = "../../../examples/common/std_rt.rs"]
mod std_rt;
#[path = "../../../examples/common/tsp.rs"]
mod tsp;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crthreads_benches::{TempDir, Watchdog, arg, median, stats};

/// The examples, with the small arguments of `--quick`.
const EXAMPLES: &[(&str, &[&str])] = &[
    ("kmeans", &["--points", "20000", "--iters", "10"]),
    ("tsp", &["--cities", "14"]),
    ("gradient_descent", &["--samples", "20000", "--epochs", "20"]),
    ("prodcons", &["--items", "10", "--work", "10000"]),
];

/// Runs the std variant of `name` (child mode).
fn run_std(name: &str, args: Vec<String>) -> ExitCode {
    match name {
        "kmeans" => std_rt::run::<kmeans::Kmeans>(args),
        "tsp" => std_rt::run::<tsp::Tsp>(args),
        "gradient_descent" => std_rt::run::<gradient_descent::GradientDescent>(args),
        "prodcons" => std_rt::run::<prodcons::ProdCons>(args),
        _ => {
            eprintln!("examples-bench: no example named `{name}`");
            ExitCode::from(2)
        }
    }
}

/// How a variant is run.
#[derive(Clone, Copy)]
enum Variant {
    Std,
    EveryRelease,
    Interval,
}

const VARIANTS: [Variant; 3] = [Variant::Std, Variant::EveryRelease, Variant::Interval];

/// One timed run.
struct Sample {
    secs: f64,
    result: String,
    /// The checkpoints it committed (crthreads variants).
    stats: Vec<stats::Line>,
}

/// A run longer than this is killed and fails the benchmark.
const LIMIT: Duration = Duration::from_secs(600);

/// Runs one variant of `name` once.
fn run_once(v: Variant, name: &str, args: &[&str], examples: &Path) -> Sample {
    let dir = TempDir::new(name);
    let stats_path = dir.join("stats.jsonl");
    let mut cmd = match v {
        Variant::Std => {
            let mut c = Command::new(std::env::current_exe().expect("current_exe"));
            c.arg("--std").arg(name);
            c
        }
        Variant::EveryRelease | Variant::Interval => {
            let mut c = Command::new(examples.join(name));
            for (k, _) in std::env::vars_os() {
                if k.to_str().is_some_and(|k| k.starts_with("CRTHREADS_")) {
                    c.env_remove(k);
                }
            }
            c.env("CRTHREADS_DIR", dir.join("ckpt")).env("CRTHREADS_STATS", &stats_path);
            match v {
                Variant::Interval => c.env("CRTHREADS_POLICY", "interval").env("CRTHREADS_INTERVAL", "1"),
                _ => c.env("CRTHREADS_POLICY", "every-release"),
            };
            c
        }
    };
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t = Instant::now();
    let child = cmd.spawn().expect("run an example");
    let dog = Watchdog::new(child.id(), LIMIT);
    let out = child.wait_with_output().expect("wait for an example");
    let secs = t.elapsed().as_secs_f64();
    assert!(!dog.fired(), "{name} ({}) ran longer than {LIMIT:?}", label(v));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().last().and_then(|l| l.strip_prefix("result ")).map(str::to_string);
    let Some(result) = result.filter(|_| out.status.success()) else {
        panic!("{name} ({}) failed: {}\n{}", label(v), out.status, String::from_utf8_lossy(&out.stderr));
    };
    Sample { secs, result, stats: stats::read(&stats_path) }
}

fn label(v: Variant) -> &'static str {
    match v {
        Variant::Std => "std",
        Variant::EveryRelease => "every-release",
        Variant::Interval => "interval 1 s",
    }
}

/// The fastest and slowest round of a variant (how noisy its median is).
fn spread(samples: &[Sample]) -> String {
    let lo = samples.iter().map(|x| x.secs).fold(f64::INFINITY, f64::min);
    let hi = samples.iter().map(|x| x.secs).fold(0.0, f64::max);
    format!("[{lo:.3}..{hi:.3}]")
}

/// Checkpoints per second, median gather and write times, and their share of the run, over
/// the samples of one variant.
fn checkpoint_figures(samples: &[Sample]) -> String {
    let mut rate = Vec::new();
    let mut share = Vec::new();
    let mut gather = Vec::new();
    let mut write = Vec::new();
    for s in samples {
        rate.push(s.stats.len() as f64 / s.secs);
        let mut total_us = 0.0;
        for l in &s.stats {
            let (g, d) = (l.gather_us as f64, l.duration_us as f64);
            gather.push(g);
            write.push(d);
            total_us += g + d;
        }
        share.push(total_us / 1e6 / s.secs * 100.0);
    }
    if gather.is_empty() {
        return "none".into();
    }
    format!(
        "{:>7.1}/s  gather {:>6.0} us  write {:>6.0} us  ({:.1}% of the run)",
        median(&mut rate),
        median(&mut gather),
        median(&mut write),
        median(&mut share)
    )
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--std") {
        let Some(name) = argv.get(1) else {
            eprintln!("usage: examples-bench --std <example> [args]");
            return ExitCode::from(2);
        };
        return run_std(name, argv[2..].to_vec());
    }
    let rounds: usize = arg("--rounds", 3).max(3);
    let only: String = arg("--only", String::new());
    let quick = argv.iter().any(|a| a == "--quick");
    let exe = std::env::current_exe().expect("current_exe");
    let examples: PathBuf = exe.parent().expect("the binary's directory").join("examples");
    println!("multithreaded examples: std threads + glibc malloc vs crthreads (every-release; interval 1 s)");
    println!("median wall time of {rounds} rounds, each round running the three variants in rotating order");
    for &(name, small) in EXAMPLES {
        if !only.is_empty() && only != name {
            continue;
        }
        if !examples.join(name).is_file() {
            eprintln!("{} is missing: run `cargo build --release --examples` first", examples.join(name).display());
            return ExitCode::FAILURE;
        }
        let args: &[&str] = if quick { small } else { &[] };
        let mut samples: [Vec<Sample>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for r in 0..rounds {
            for k in 0..VARIANTS.len() {
                let i = (r + k) % VARIANTS.len();
                samples[i].push(run_once(VARIANTS[i], name, args, &examples));
            }
        }
        let expected = &samples[0][0].result;
        for (v, s) in VARIANTS.iter().zip(&samples) {
            for x in s {
                assert_eq!(&x.result, expected, "{name}: {} printed another result than std", label(*v));
            }
        }
        let t: Vec<f64> = samples.iter().map(|s| median(&mut s.iter().map(|x| x.secs).collect::<Vec<_>>())).collect();
        println!(
            "\n{name} {} (result {expected})",
            if args.is_empty() { "(default arguments)".into() } else { args.join(" ") }
        );
        println!("  {:<14} {:>8.3} s  {:>11}  {}", label(Variant::Std), t[0], "", spread(&samples[0]));
        for i in 1..3 {
            println!(
                "  {:<14} {:>8.3} s  {:>5.3}x std  {}  checkpoints {}",
                label(VARIANTS[i]),
                t[i],
                t[i] / t[0],
                spread(&samples[i]),
                checkpoint_figures(&samples[i])
            );
        }
    }
    ExitCode::SUCCESS
}
