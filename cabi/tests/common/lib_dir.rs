//! Finding the built C library: `libcrthreads.so` and `libcrthreads.a`, which `make lib`
//! (`cargo build -p crthreads-cabi --release`) puts in `<target dir>/release`.
//!
//! Shared by the C suite's drivers (through `common/mod.rs`) and by the core crate's README
//! test (`tests/readme.rs`, which includes this file by path), so it works from either package.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The directory holding `libcrthreads.so` and `libcrthreads.a`: `$CRTHREADS_LIB_DIR`, else
/// `<target dir>/release`, the target dir being found from the test's executable path
/// (`<target dir>/<profile>/deps/<test>-…`). Fails with instructions if the library is missing,
/// and warns when it is older than its sources.
pub fn lib_dir() -> PathBuf {
    let dir = match std::env::var_os("CRTHREADS_LIB_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("the test executable's path");
            // <target dir>/<profile>/deps/<test>-<hash>
            let target = exe.parent().and_then(Path::parent).and_then(Path::parent);
            target.expect("the test executable lies in <target dir>/<profile>/deps").join("release")
        }
    };
    for name in ["libcrthreads.so", "libcrthreads.a"] {
        assert!(
            dir.join(name).is_file(),
            "{} is missing: run `make lib` first (it runs `cargo build -p crthreads-cabi --release`), \
             or set CRTHREADS_LIB_DIR to the directory that holds libcrthreads.so and libcrthreads.a",
            dir.join(name).display()
        );
    }
    warn_if_stale(&dir.join("libcrthreads.so"));
    dir
}

/// The repository root: the including package's directory (the core crate) or its parent
/// (`cabi/`).
fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("cabi").is_dir() { manifest.to_path_buf() } else { manifest.join("..") }
}

/// Warns (on the test's captured output, shown on failure) when the library is older than the
/// sources it is built from: the run then tests an old build.
fn warn_if_stale(lib: &Path) {
    fn newest(dir: &Path, newest_seen: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                // The `crthreads` command's sources (src/bin) are not the library's.
                if p.ends_with("src/bin") {
                    continue;
                }
                newest(&p, newest_seen);
            } else if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                    *newest_seen = (*newest_seen).max(t);
                }
            }
        }
    }
    let repo = repo_root();
    let mut src = SystemTime::UNIX_EPOCH;
    newest(&repo.join("src"), &mut src);
    newest(&repo.join("cabi/src"), &mut src);
    if let Ok(built) = std::fs::metadata(lib).and_then(|m| m.modified()) {
        if built < src {
            eprintln!("warning: {} is older than its sources; run `make lib` to test the current code", lib.display());
        }
    }
}
