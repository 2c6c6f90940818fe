//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the fuzz targets' own
//! checks (`fuzz/harness.rs`), so every `cargo test` on stable Rust exercises them without
//! libFuzzer. A failure names the corpus file that triggered it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

#[path = "../fuzz/harness.rs"]
mod harness;

/// The files of `fuzz/corpus/<target>`, sorted by name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

/// Runs `check` on every input of `target`'s corpus, which must hold at least `min` files.
fn replay(target: &str, min: usize, check: fn(&[u8])) {
    let inputs = corpus(target);
    assert!(inputs.len() >= min, "corpus {target} holds {} files, expected at least {min}", inputs.len());
    for (path, data) in &inputs {
        if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(data))) {
            let msg = e.downcast_ref::<String>().map(String::as_str).or_else(|| e.downcast_ref::<&str>().copied());
            panic!("{}: {}", path.display(), msg.unwrap_or("(non-string panic)"));
        }
    }
}

#[test]
fn store_decode_corpus() {
    replay("store_decode", 10, harness::store_decode);
}

#[test]
fn heap_ops_corpus() {
    replay("heap_ops", 10, harness::heap_ops);
}

/// The seed-building encoder and the decoder agree, so seeds mean what they were built to mean.
#[test]
fn heap_ops_encoding_round_trips() {
    use harness::Op;
    let ops = vec![
        Op::Alloc { size: 0, align: 1, zero: false },
        Op::Alloc { size: 200, align: 64, zero: true },
        Op::Alloc { size: 40_000, align: 16, zero: false },
        Op::Alloc { size: 1 << 20, align: 1 << 21, zero: true },
        Op::Alloc { size: 3 << 20, align: 4096, zero: false },
        Op::Realloc { index: 1, size: 33_000 },
        Op::Free { index: 3 },
        Op::Check,
    ];
    assert_eq!(harness::decode_ops(&harness::encode_ops(&ops)), ops);
}
