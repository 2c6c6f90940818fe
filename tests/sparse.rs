//! Sparse memory is checkpointed and restored sparse: pages never touched are not written, all
//! zero pages are recorded as holes, and a restore leaves holes unpopulated.
//!
//! The child allocates a 4 GiB zeroed block and writes one byte per MiB (4096 pages touched,
//! 16 MiB resident), once before its first checkpoint and once, in a second block, between two
//! later checkpoints, under each tracker. Before holes, the first checkpoint wrote 8 GB (the
//! block in both slots) and a restore made all of it resident.

mod common;

use common::{TempDir, child, killed, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

const BLOCK: usize = 4 << 30;
const STRIDE: usize = 1 << 20;

struct State {
    a: Vec<u8>,
    b: Vec<u8>,
}

fn touch(v: &mut [u8], salt: u8) {
    for i in (0..v.len()).step_by(STRIDE) {
        v[i] = (i / STRIDE) as u8 ^ salt | 1;
    }
}

fn touched_ok(v: &[u8], salt: u8) -> bool {
    v.len() == BLOCK && (0..v.len()).step_by(STRIDE).all(|i| v[i] == (i / STRIDE) as u8 ^ salt | 1)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap()
}

fn child_write() {
    crthreads::init_from_env().unwrap();
    // SAFETY: State holds only persistent data.
    let mut s = unsafe { crthreads::root(|| State { a: vec![0u8; BLOCK], b: Vec::new() }) }.unwrap();
    touch(&mut s.a, 0);
    let c1 = crthreads::checkpoint().unwrap();
    println!("ckpt1 bytes={} holes={}", c1.bytes_written, c1.holes);
    s.b = vec![0u8; BLOCK];
    touch(&mut s.b, 7);
    let c2 = crthreads::checkpoint().unwrap();
    println!("ckpt2 bytes={} holes={}", c2.bytes_written, c2.holes);
    let c3 = crthreads::checkpoint().unwrap();
    println!("ckpt3 bytes={} holes={}", c3.bytes_written, c3.holes);
    // SAFETY: crash as a killed process would.
    unsafe { libc::raise(libc::SIGKILL) };
}

fn child_verify() {
    let start = crthreads::init_from_env().unwrap();
    let rss = rss_kib();
    // SAFETY: as the writer.
    let s = unsafe { crthreads::root(|| State { a: Vec::new(), b: Vec::new() }) }.unwrap();
    println!("{start:?} rss_kib={rss} a_ok={} b_ok={}", touched_ok(&s.a, 0), touched_ok(&s.b, 7));
}

fn field(s: &str, line: &str, key: &str) -> u64 {
    let l = s.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no {line} in {s}"));
    l.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap().parse().unwrap()
}

fn sparse_blocks_are_written_and_restored_sparse() {
    for tracker in ["uffd", "mprotect"] {
        let t = TempDir::new("sparse");
        let dir = t.join("ck");
        let o = child("write").env("CRTHREADS_DIR", &dir).env("CRTHREADS_TRACKER", tracker).output().unwrap();
        let s = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(killed(&o.status), "{tracker}: {s} {}", String::from_utf8_lossy(&o.stderr));
        // 4096 touched pages are 16 MiB, and the table of a 4 GiB block 8 MiB (8 bytes a page,
        // holes included); each checkpoint writes them once, the first twice (it mirrors). A
        // dense write would be 4 GiB per block and slot.
        let limit = 64 << 20;
        for c in ["ckpt1", "ckpt2", "ckpt3"] {
            let bytes = field(&s, c, "bytes=");
            assert!(bytes < limit, "{tracker}: {c} wrote {bytes} bytes: {s}");
        }
        assert!(field(&s, "ckpt1", "holes=") > 1_000_000, "{tracker}: the untouched pages are holes: {s}");
        assert!(field(&s, "ckpt2", "holes=") > 1_000_000, "{tracker}: {s}");
        let used: u64 = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let m = e.unwrap().metadata().unwrap();
                std::os::unix::fs::MetadataExt::blocks(&m) * 512
            })
            .sum();
        assert!(used < 4 * limit, "{tracker}: the slot files occupy {used} bytes of disk");
        let o = child("verify").env("CRTHREADS_DIR", &dir).env("CRTHREADS_TRACKER", tracker).output().unwrap();
        let v = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(v.contains("Restored { seq: 3 }") && v.contains("a_ok=true b_ok=true"), "{tracker}: {v}");
        let rss = field(&v, "Restored", "rss_kib=");
        assert!(rss < 256 << 10, "{tracker}: {rss} KiB resident after restoring 8 GiB of mostly holes");
    }
}

fn main() {
    match role().as_deref() {
        Some("write") => return child_write(),
        Some("verify") => return child_verify(),
        _ => {}
    }
    run_tests(&[("sparse_blocks_are_written_and_restored_sparse", sparse_blocks_are_written_and_restored_sparse)]);
}
