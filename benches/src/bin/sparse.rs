//! The first checkpoint of a sparse block, and its restore: a 4 GiB zeroed block with one byte
//! written per MiB (4096 pages, 16 MiB, touched). Reported per tracker, medians of `--rounds`
//! rounds: the checkpoint's time and bytes written, the writer's resident memory, the restore's
//! time and the restored process's resident memory. The baseline measured in the same run is
//! the data itself: the touched pages written with `pwrite` to a fresh file (what the
//! checkpoint must at least write, once per slot).
//!
//! `cargo run --release -p crthreads-benches --bin sparse -- [--gib 4] [--rounds 5]`

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use crthreads_benches::{arg, median, temp_dir};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const STRIDE: usize = 1 << 20;

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 =
        s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kib / 1024.0
}

fn child_write(gib: usize) {
    crthreads::init_from_env().expect("init");
    // SAFETY: the root holds only persistent data.
    let mut v = unsafe { crthreads::root(|| vec![0u8; gib << 30]) }.expect("root");
    for i in (0..v.len()).step_by(STRIDE) {
        v[i] = 1;
    }
    let t = Instant::now();
    let s = crthreads::checkpoint().expect("checkpoint");
    let secs = t.elapsed().as_secs_f64();
    println!("write {secs} {} {} {}", s.bytes_written, s.holes, rss_mib());
    std::io::stdout().flush().unwrap();
}

fn child_restore(gib: usize) {
    let t = Instant::now();
    let start = crthreads::init_from_env().expect("init");
    let secs = t.elapsed().as_secs_f64();
    assert!(start.is_restored());
    // SAFETY: as the writer.
    let v = unsafe { crthreads::root(Vec::<u8>::new) }.expect("root");
    assert!(v.len() == gib << 30 && v[STRIDE] == 1);
    println!("restore {secs} {}", rss_mib());
}

/// Baseline: the touched pages' worth of data, written as 4 KiB pieces 1 MiB apart into a
/// fresh sparse file (seconds).
fn baseline(gib: usize) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = temp_dir("sparse-base");
    let f = std::fs::File::create(&path).unwrap();
    let page = [1u8; 4096];
    let t = Instant::now();
    for off in (0..(gib << 30)).step_by(STRIDE) {
        f.write_all_at(&page, off as u64).unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    secs
}

fn field(out: &str, tag: &str, i: usize) -> f64 {
    let l = out.lines().find(|l| l.starts_with(tag)).unwrap_or_else(|| panic!("no {tag} in {out}"));
    l.split_whitespace().nth(i).unwrap().parse().unwrap()
}

fn main() {
    let gib: usize = arg("--gib", 4);
    match std::env::var("SPARSE_ROLE").as_deref() {
        Ok("write") => return child_write(gib),
        Ok("restore") => return child_restore(gib),
        _ => {}
    }
    let rounds: usize = arg("--rounds", 5);
    let exe = std::env::current_exe().unwrap();
    println!("first checkpoint of a {gib} GiB zeroed block with one byte per MiB written, medians of {rounds}");
    let mut base: Vec<f64> = (0..rounds).map(|_| baseline(gib)).collect();
    let base = median(&mut base);
    let touched_mib = (gib << 10) as f64 * 4096.0 / (1 << 20) as f64;
    println!("  baseline: pwrite of the {touched_mib} MiB touched, 1 MiB apart: {:.1} ms", base * 1e3);
    for tracker in ["uffd", "mprotect"] {
        let mut cols: [Vec<f64>; 6] = Default::default();
        for r in 0..rounds {
            let dir = temp_dir(&format!("sparse-{tracker}-{r}"));
            let _ = std::fs::remove_dir_all(&dir);
            let run = |role: &str| {
                let o = Command::new(&exe)
                    .args(["--gib", &gib.to_string()])
                    .env("SPARSE_ROLE", role)
                    .env("CRTHREADS_DIR", &dir)
                    .env("CRTHREADS_TRACKER", tracker)
                    .env("CRTHREADS_KEEP", "1")
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{role}: {}", String::from_utf8_lossy(&o.stderr));
                String::from_utf8_lossy(&o.stdout).into_owned()
            };
            let w = run("write");
            let rs = run("restore");
            cols[0].push(field(&w, "write", 1));
            cols[1].push(field(&w, "write", 2));
            cols[2].push(field(&w, "write", 4));
            cols[3].push(field(&rs, "restore", 1));
            cols[4].push(field(&rs, "restore", 2));
            cols[5].push(field(&w, "write", 3));
            let _ = std::fs::remove_dir_all(&dir);
        }
        let [t, b, rss_w, tr, rss_r, holes] = cols.map(|mut c| median(&mut c));
        println!(
            "  {tracker:8} checkpoint {:.1} ms ({:.1}x the baseline), {:.1} MiB written ({holes:.0} holes), writer RSS \
             {rss_w:.0} MiB; restore {:.1} ms, restored RSS {rss_r:.0} MiB",
            t * 1e3,
            t / base,
            b / (1 << 20) as f64,
            tr * 1e3
        );
    }
}
