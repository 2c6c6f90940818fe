//! Small-object malloc/free throughput of a C program: glibc's malloc against crthreads'
//! through `LD_PRELOAD=libcrthreads.so` (the drop-in mode, where thread-local access goes
//! through the dynamic TLS of a shared library), measured in the same run, 1 and 2 threads.
//!
//! Needs `make lib` and a C compiler.
//! `cargo run --release -p crthreads-benches --bin cmalloc -- [--rounds 7]`

use std::path::PathBuf;
use std::process::Command;

use crthreads_benches::{arg, median, temp_dir};

fn main() {
    let rounds: usize = arg("--rounds", 7);
    let ops: usize = arg("--ops", 2_000_000);
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let src = here.join("c/malloc_bench.c");
    let lib = std::env::var_os("CRTHREADS_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_exe().unwrap().parent().unwrap().to_path_buf())
        .join("libcrthreads.so");
    assert!(lib.is_file(), "{} is missing: run `make lib` first", lib.display());
    let dir = temp_dir("cmalloc");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("malloc_bench");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let st = Command::new(&cc).args(["-O2", "-pthread", "-o"]).arg(&exe).arg(&src).status().unwrap();
    assert!(st.success(), "compiling {}", src.display());
    let run = |threads: usize, preload: bool| -> f64 {
        let mut c = Command::new(&exe);
        c.args([threads.to_string(), ops.to_string(), "1000".into(), "512".into()]);
        c.env("CRTHREADS_DIR", dir.join("ckpt")).env("CRTHREADS_REEXEC", "0");
        if preload {
            c.env("LD_PRELOAD", &lib);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    println!("C program, malloc/free of 16..=512 B, 1000 live slots, {ops} ops/thread, median of {rounds}");
    println!("{:<10} {:>14} {:>20} {:>8}", "threads", "glibc Mops/s", "crthreads (preload)", "ratio");
    for threads in [1, 2] {
        let (mut g, mut c) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            g.push(run(threads, false));
            c.push(run(threads, true));
        }
        let (gm, cm) = (median(&mut g), median(&mut c));
        println!("{threads:<10} {gm:>14.1} {cm:>20.1} {:>7.2}x", cm / gm);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
