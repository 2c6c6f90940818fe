//! Smoke test of persistent threads (temporary).
use crthreads::sync::Mutex;
use std::sync::Arc;

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3_000);
    let r = crthreads::main(move || {
        let pair = Arc::new(Mutex::new((0u64, 0u64)));
        let hs: Vec<_> = (0..4u64)
            .map(|i| {
                let pair = pair.clone();
                crthreads::thread::spawn(move || {
                    for k in 0..n {
                        let mut g = pair.lock().unwrap();
                        g.0 += i + k;
                        let mut x = 0u64;
                        for j in 0..20_000u64 {
                            x = x.wrapping_mul(31).wrapping_add(j ^ k);
                        }
                        g.1 += i + k + (x & 0);
                        assert_eq!(g.0, g.1);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let g = pair.lock().unwrap();
        g.0
    });
    println!("result {:?}", r.map_err(|e| e.to_string()));
}
