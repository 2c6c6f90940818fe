//! The smallest persistent program: a counter that survives kill -9.
//!
//! `cargo run --example counter -- 1000` counts to 1000, checkpointing after every step; kill
//! it and run it again, and it continues where the last checkpoint left it.

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

struct State {
    count: u64,
    history: Vec<u64>,
}

fn main() -> Result<(), crthreads::Error> {
    let target: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let start = crthreads::init_from_env()?;
    // SAFETY: State holds only persistent data (a Vec allocated after init).
    let mut st = unsafe { crthreads::root(|| State { count: 0, history: Vec::new() }) }?;
    eprintln!("start: {start:?} at count {}", st.count);
    while st.count < target {
        st.count += 1;
        let c = st.count;
        st.history.push(c * c);
        crthreads::checkpoint()?;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let sum: u64 = st.history.iter().sum();
    println!("count {} sum {}", st.count, sum);
    Ok(())
}
