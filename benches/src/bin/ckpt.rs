//! Checkpoint and restore time against heap size, and checkpoint time against dirty pages at a
//! fixed heap size, for each tracker; with the machine's `pwrite` bandwidth measured in the
//! same run as the baseline for bytes written per second.
//!
//! Each measurement runs in a child process (one runtime per process): the child fills a heap
//! of the given size, takes the first checkpoint (full, mirrored into both slots), then
//! dirties a fraction of the pages and checkpoints, several rounds; a second child restores
//! and reports how long `init` took.
//!
//! `cargo run --release -p crthreads-benches --bin ckpt -- [--sizes 64,256,1024] [--rounds 5]`

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use crthreads_benches::{Rng, arg, median, temp_dir};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const PAGE: usize = 4096;

fn child_fill(mib: usize, fractions: &[f64], rounds: usize) {
    let start = Instant::now();
    crthreads::init_from_env().expect("init");
    let init_s = start.elapsed().as_secs_f64();
    let pages = mib * 256;
    // SAFETY: the root holds only persistent data.
    let mut root = unsafe { crthreads::root(|| vec![0u8; pages * PAGE]) }.expect("root");
    let mut rng = Rng(7);
    for p in 0..pages {
        root[p * PAGE] = rng.next_u64() as u8;
    }
    let first = crthreads::checkpoint().expect("checkpoint");
    let first_gbs = first.pages_written as f64 * PAGE as f64 / (first.copy_us.max(1) as f64 / 1e6) / 1e9;
    println!("first {} {} {} {first_gbs}", first.duration_us, first.pages_written, first.bytes_written);
    // A checkpoint with nothing written.
    let mut zero = Vec::new();
    for _ in 0..rounds {
        zero.push(crthreads::checkpoint().expect("checkpoint").duration_us as f64);
    }
    println!("zero {}", median(&mut zero));
    for &f in fractions {
        // Steady state: each round dirties n random pages, then checkpoints. A checkpoint writes
        // what its slot lacks: this round's pages and the previous round's.
        let n = ((pages as f64) * f / 100.0).round().max(1.0) as usize;
        let (mut dur, mut written, mut bw) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds + 1 {
            for _ in 0..n {
                let p = (rng.next_u64() as usize) % pages;
                root[p * PAGE + 8] = root[p * PAGE + 8].wrapping_add(1);
            }
            let s = crthreads::checkpoint().expect("checkpoint");
            if round == 0 {
                continue; // the first round's other slot still lacks the previous fraction's pages
            }
            dur.push(s.duration_us as f64);
            written.push(s.pages_written as f64);
            if s.copy_us > 0 {
                bw.push(s.pages_written as f64 * PAGE as f64 / (s.copy_us as f64 / 1e6) / 1e9);
            }
        }
        println!("dirty{f} {n} {} {} {}", median(&mut dur), median(&mut written), median(&mut bw));
    }
    println!("init {init_s}");
    std::io::stdout().flush().unwrap();
    // CRTHREADS_KEEP=1 keeps the checkpoint for the restore measurement.
}

fn child_restore() {
    let t = Instant::now();
    let start = crthreads::init_from_env().expect("init");
    let secs = t.elapsed().as_secs_f64();
    assert!(start.is_restored(), "expected a restore, got {start:?}");
    println!("restore {secs}");
}

/// The machine's `pwrite` bandwidth into the page cache, in GB/s (medians of 5): whole 2 MiB
/// writes, 64 KiB writes (the store's largest), and 4 KiB writes at random page offsets of a
/// file with the store's access hint (the pattern of a checkpoint of scattered pages).
fn pwrite_bandwidth(mib: usize) -> (f64, f64, f64) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    let buf = vec![7u8; 2 << 20];
    let bytes = mib << 20;
    // Each pattern gets a fresh file: how a file was written decides how the kernel caches it,
    // which changes the cost of later writes.
    let file = |tag: &str| {
        let path = temp_dir(tag);
        let f = std::fs::File::create(&path).unwrap();
        // SAFETY: a hint on our own file, as the store gives it.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
        (f, path)
    };
    let seq = |f: &std::fs::File, chunk: usize| {
        let mut v = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for off in (0..bytes).step_by(chunk) {
                f.write_all_at(&buf[..chunk], off as u64).unwrap();
            }
            v.push(bytes as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        median(&mut v)
    };
    let (a, pa) = file("pwrite-2m");
    let big = seq(&a, 2 << 20);
    let _ = std::fs::remove_file(&pa);
    let (b, pb) = file("pwrite-64k");
    let mid = seq(&b, 64 << 10);
    let pages = bytes / PAGE;
    let mut rng = Rng(3);
    let mut v = Vec::new();
    for _ in 0..5 {
        let n = pages / 10;
        let t = Instant::now();
        for _ in 0..n {
            let p = (rng.next_u64() as usize) % pages;
            b.write_all_at(&buf[..PAGE], (p * PAGE) as u64).unwrap();
        }
        v.push((n * PAGE) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    let _ = std::fs::remove_file(&pb);
    (big, mid, median(&mut v))
}

fn run(role: &str, dir: &std::path::Path, tracker: &str, args: &[String]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .env("CRT_BENCH_ROLE", role)
        .env("CRTHREADS_DIR", dir)
        .env("CRTHREADS_TRACKER", tracker)
        .env("CRTHREADS_KEEP", "1")
        .env("CRTHREADS_CAPACITY", "8G")
        .output()
        .unwrap();
    if !out.status.success() {
        panic!("{role} child failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    String::from_utf8(out.stdout).unwrap()
}

fn field<'a>(out: &'a str, key: &str) -> Vec<&'a str> {
    out.lines().find(|l| l.starts_with(key)).map(|l| l.split_whitespace().skip(1).collect()).unwrap_or_default()
}

fn main() {
    let sizes: String = arg("--sizes", "64,256,1024".to_string());
    let rounds: usize = arg("--rounds", 5);
    let trackers: String = arg("--trackers", "uffd,mprotect,full".to_string());
    let fractions = [0.1, 1.0, 10.0];
    match std::env::var("CRT_BENCH_ROLE").as_deref() {
        Ok("fill") => {
            let mib: usize = arg("--mib", 64);
            return child_fill(mib, &fractions, rounds);
        }
        Ok("restore") => return child_restore(),
        _ => {}
    }
    let sizes: Vec<usize> = sizes.split(',').map(|s| s.parse().expect("--sizes")).collect();
    let max = *sizes.iter().max().unwrap();
    let (pw_big, pw_mid, pw_rand) = pwrite_bandwidth(max.min(1024));
    println!(
        "pwrite bandwidth into the page cache (median of 5): 2 MiB writes {pw_big:.2} GB/s, 64 KiB writes \
         {pw_mid:.2} GB/s, 4 KiB writes at random pages {pw_rand:.2} GB/s\n"
    );
    println!(
        "{:<9} {:>7} {:>16} {:>10} {:>11} | {:>12} {:>12} {:>14} | {:>9}",
        "tracker", "heap", "first ms (GB/s)", "0-dirty us", "restore ms", "0.1%", "1%", "10%", "10% GB/s"
    );
    for tracker in trackers.split(',') {
        for &mib in &sizes {
            let dir = temp_dir(&format!("ckpt-{tracker}-{mib}"));
            let _ = std::fs::remove_dir_all(&dir);
            let args = vec!["--mib".to_string(), mib.to_string(), "--rounds".to_string(), rounds.to_string()];
            let out = run("fill", &dir, tracker, &args);
            let mut restores: Vec<f64> = (0..3)
                .map(|_| field(&run("restore", &dir, tracker, &args), "restore")[0].parse::<f64>().unwrap() * 1e3)
                .collect();
            let _ = std::fs::remove_dir_all(&dir);
            let first = field(&out, "first");
            let zero = field(&out, "zero");
            let d: Vec<Vec<&str>> = fractions.iter().map(|f| field(&out, &format!("dirty{f} "))).collect();
            println!(
                "{:<9} {:>5}Mi {:>16} {:>10} {:>11.1} | {:>12} {:>12} {:>14} | {:>9.2}",
                tracker,
                mib,
                format!("{:.1} ({:.2})", first[0].parse::<f64>().unwrap() / 1e3, first[3].parse::<f64>().unwrap()),
                zero[0],
                median(&mut restores),
                format!("{} ({})", d[0][1], d[0][2]),
                format!("{} ({})", d[1][1], d[1][2]),
                format!("{} ({})", d[2][1], d[2][2]),
                d[2][3].parse::<f64>().unwrap_or(f64::NAN),
            );
        }
    }
    println!(
        "\nµs per checkpoint (pages written) at each dirty fraction; restore = init() in a new process, page cache warm"
    );
}
