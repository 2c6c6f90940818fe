//! Large-block churn: crthreads' persistent heap against glibc's malloc, measured in the same
//! run.
//!
//! Workload: a working set of `--slots` blocks; each operation picks a random slot, frees its
//! block, allocates a new one of a random size uniform in `--min..=--max` MiB and fills it
//! with a non-zero byte (a zero fill would let the compiler turn malloc+memset into calloc).
//! Each allocator keeps its working set across rounds (the first, untimed round fills it), and
//! rounds of the two alternate so that machine noise hits both alike. Reported: the median
//! time per operation over `--rounds` rounds of `--ops` operations, the ratio, and the median
//! page faults per operation (the process's minor faults during a round: fresh pages faulted
//! in, which is where an allocator that gives freed memory back loses its time).
//!
//! Then the memory each allocator holds: resident bytes with its working set live, and after
//! the working set is freed (what it retains). crthreads' figure is the resident part of its
//! region, glibc's the rest of the process's resident memory, less what was resident before
//! the first round.
//!
//! `cargo run --release -p crthreads-benches --bin large`

use crthreads_benches::{Rng, arg, median, temp_dir, time};

const MIB: usize = 1 << 20;

type Alloc = (fn(usize) -> *mut u8, unsafe fn(*mut u8));

fn glibc_malloc(n: usize) -> *mut u8 {
    // SAFETY: plain libc malloc.
    unsafe { libc::malloc(n).cast() }
}
unsafe fn glibc_free(p: *mut u8) {
    // SAFETY: `p` came from glibc_malloc (or is null).
    unsafe { libc::free(p.cast()) }
}
unsafe fn cr_free(p: *mut u8) {
    // SAFETY: `p` came from crthreads::heap::malloc (or is null).
    unsafe { crthreads::heap::free(p) }
}

/// One allocator's working set.
struct Set {
    a: Alloc,
    slots: Vec<*mut u8>,
    rng: Rng,
}

impl Set {
    fn new(a: Alloc, slots: usize, seed: u64) -> Set {
        Set { a, slots: vec![std::ptr::null_mut(); slots], rng: Rng(seed) }
    }

    /// Replaces the block in a random slot with a fresh, filled one of `min..=max` bytes.
    fn op(&mut self, min: usize, max: usize) {
        let r = self.rng.next_u64();
        let i = (r % self.slots.len() as u64) as usize;
        let size = min + (self.rng.next_u64() % (max - min + 1) as u64) as usize;
        // SAFETY: the slot holds null or a live block of this allocator.
        unsafe { (self.a.1)(self.slots[i]) };
        let p = (self.a.0)(size);
        assert!(!p.is_null(), "out of memory allocating {size} bytes");
        // SAFETY: the block has `size` bytes. The byte is never zero (see the module docs).
        unsafe { std::ptr::write_bytes(p, (r >> 56) as u8 | 1, size) };
        self.slots[i] = p;
    }

    /// Seconds per operation over `ops` operations, and page faults per operation.
    fn round(&mut self, ops: usize, min: usize, max: usize) -> (f64, f64) {
        let f0 = minor_faults();
        let t = time(|| (0..ops).for_each(|_| self.op(min, max))) / ops as f64;
        (t, (minor_faults() - f0) as f64 / ops as f64)
    }

    fn free_all(&mut self) {
        for p in &mut self.slots {
            // SAFETY: null or a live block of this allocator.
            unsafe { (self.a.1)(*p) };
            *p = std::ptr::null_mut();
        }
    }
}

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_minflt
    }
}

/// Resident bytes of the process inside `base..base+len`, and outside it (from smaps).
fn resident(base: usize, len: usize) -> (usize, usize) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let (mut inside, mut outside) = (0, 0);
    let mut in_region = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((Ok(s), Ok(e))) =
            first.split_once('-').map(|(s, e)| (usize::from_str_radix(s, 16), usize::from_str_radix(e, 16)))
        {
            in_region = s < base + len && e > base;
            continue;
        }
        if let Some(kb) = line.strip_prefix("Rss:") {
            let kb: usize = kb.trim().trim_end_matches("kB").trim().parse().expect("Rss field");
            if in_region {
                inside += kb * 1024;
            } else {
                outside += kb * 1024;
            }
        }
    }
    (inside, outside)
}

fn main() {
    let slots: usize = arg("--slots", 8);
    let ops: usize = arg("--ops", 200);
    let rounds: usize = arg("--rounds", 7);
    let min = arg::<usize>("--min", 5) * MIB;
    let max = arg::<usize>("--max", 25) * MIB;
    assert!(slots > 0 && min > 0 && max >= min);
    let dir = temp_dir("large");
    let cfg = crthreads::Config::default().dir(&dir).reexec(false).keep(false);
    crthreads::init(cfg).expect("init");
    let (base, cap) = crthreads::region().expect("region");
    let rss = || resident(base, cap);
    let (cr0, gl0) = rss();

    let mut gl = Set::new((glibc_malloc, glibc_free), slots, 42);
    let mut cr = Set::new((crthreads::heap::malloc, cr_free), slots, 42);
    // Fill both working sets (untimed).
    gl.round(ops, min, max);
    cr.round(ops, min, max);
    let (mut g, mut c, mut gf, mut cf) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (t, f) = gl.round(ops, min, max);
        g.push(t);
        gf.push(f);
        let (t, f) = cr.round(ops, min, max);
        c.push(t);
        cf.push(f);
    }
    let (gm, cm) = (median(&mut g) * 1e3, median(&mut c) * 1e3);
    let (gf, cf) = (median(&mut gf), median(&mut cf));
    let (cr_live, gl_live) = rss();
    gl.free_all();
    cr.free_all();
    let (cr_kept, gl_kept) = rss();
    let mb = |b: usize, b0: usize| b.saturating_sub(b0) as f64 / MIB as f64;

    println!(
        "large blocks: {slots} slots, sizes {}..={} MiB filled, {ops} ops/round, median of {rounds} rounds",
        min / MIB,
        max / MIB
    );
    println!("{:<12} {:>10} {:>12} {:>14} {:>16}", "", "ms/op", "faults/op", "RSS live MiB", "RSS freed MiB");
    println!("{:<12} {gm:>10.3} {gf:>12.0} {:>14.1} {:>16.1}", "glibc", mb(gl_live, gl0), mb(gl_kept, gl0));
    println!("{:<12} {cm:>10.3} {cf:>12.0} {:>14.1} {:>16.1}", "crthreads", mb(cr_live, cr0), mb(cr_kept, cr0));
    println!("ratio (crthreads / glibc time): {:.2}x", cm / gm);
    let _ = std::fs::remove_dir_all(&dir);
}
