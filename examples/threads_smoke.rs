//! Smoke test of persistent threads (temporary).
#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn work(i: u64, n: u64) -> u64 {
    let mut acc = 0u64;
    for k in 0..n {
        // Some arithmetic the compiler cannot fold away.
        acc = acc.wrapping_mul(6364136223846793005).wrapping_add(k ^ i);
        if k % 200_000 == 0 {
            eprintln!("worker {i} at {k}");
        }
    }
    acc
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3_000_000);
    let r = crthreads::main(move || {
        let hs: Vec<_> = (0..4u64).map(|i| crthreads::thread::spawn(move || work(i, n))).collect();
        let mut done = false;
        let watcher = crthreads::thread::spawn(move || {
            for _ in 0..1000 {
                crthreads::thread::sleep(std::time::Duration::from_millis(20));
                match crthreads::checkpoint() {
                    Ok(s) => eprintln!("checkpoint {} parked {} gather {}us", s.seq, s.threads_parked, s.gather_us),
                    Err(e) => eprintln!("checkpoint failed: {e}"),
                }
            }
        });
        let s = hs.into_iter().fold(0u64, |a, h| a ^ h.join().unwrap());
        done |= true;
        drop(watcher);
        let _ = done;
        s
    });
    println!("result {:?}", r.map_err(|e| e.to_string()));
}
