//! Restoring a checkpoint sets code addresses, so crthreads refuses to run in a privileged
//! (setuid/setgid) process and refuses checkpoint directories reached through symlinks.
//! (Ownership and permission checks on the directory and slot files are in corruption.rs.)

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{TempDir, child, role, run_tests};

#[global_allocator]
static A: crthreads::CrAlloc = crthreads::CrAlloc;

fn child_init() {
    let dir = std::env::var("DIR").unwrap();
    match crthreads::init(crthreads::Config::default().dir(dir).reexec(false)) {
        Ok(s) => println!("started {s:?}"),
        Err(e) => println!("refused: {e}"),
    }
}

fn a_setuid_process_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: making a setuid-root binary needs root");
        return;
    }
    let t = TempDir::new("suid");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = t.join("suid-test");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let o = Command::new(&exe)
        .env("CRT_TEST_ROLE", "init")
        .env("DIR", t.join("ckpt"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("refused: refusing to checkpoint or restore a setuid/setgid process"),
        "{s} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!t.join("ckpt").exists());
}

fn a_symlinked_directory_is_refused() {
    let t = TempDir::new("link");
    std::fs::create_dir(t.join("real")).unwrap();
    std::os::unix::fs::symlink(t.join("real"), t.join("link")).unwrap();
    let o = child("init").env("DIR", t.join("link")).output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("refused: refusing to use") && s.contains("symlink"), "{s}");
}

fn main() {
    if role().as_deref() == Some("init") {
        return child_init();
    }
    run_tests(&[
        ("a_setuid_process_is_refused", a_setuid_process_is_refused),
        ("a_symlinked_directory_is_refused", a_symlinked_directory_is_refused),
    ]);
}
