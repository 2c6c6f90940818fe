//! Building an example as the README says, and running it with a checkpoint directory, its
//! checkpoints watched through `CRTHREADS_STATS` (inotify) and its exit through a pidfd, killing
//! its process group with SIGKILL when told to.
#![allow(unsafe_code)] // inotify, pidfd_open, ppoll and kill(2) on a process group.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::LIMIT;
use crate::lib_dir;
use crate::parse::{Build, Example};

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `sh -c line` in `dir` with `env`, without the inherited variables that would change what it
/// builds or runs.
fn shell(line: &str, dir: &Path, env: &[(&str, &OsStr)]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(line).current_dir(dir).env("PWD", dir).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        // cargo test puts target/<profile> on LD_LIBRARY_PATH; make passes its jobserver.
        if k.starts_with("CRTHREADS_")
            || ["LD_PRELOAD", "LD_LIBRARY_PATH", "MAKEFLAGS", "MFLAGS", "CARGO_MAKEFLAGS", "CARGO_TARGET_DIR"]
                .contains(&k.as_str())
        {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().map(|&(k, v)| (k, v)));
    c
}

/// A built example, ready to run.
pub struct Built {
    /// Where the run line runs.
    dir: PathBuf,
    /// Environment of the run line.
    env: Vec<(&'static str, OsString)>,
}

fn build_output(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot start {cmd:?}: {e}"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("{what} failed ({}): {cmd:?}\n{text}", out.status));
    }
    Ok(text)
}

/// `p` quoted for `sh`.
fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Builds `ex` in `tmp` as the README says.
pub fn build(ex: &Example, tmp: &Path) -> Result<Built, String> {
    match &ex.build {
        Build::C { cc, source, output } => build_c(ex, tmp, cc, source, output),
        Build::Rust { dependency } => build_rust(ex, tmp, dependency),
    }
}

/// Runs the README's `cc` line from the repository root, with the source and output in `tmp`.
fn build_c(ex: &Example, tmp: &Path, cc: &str, source: &str, output: &str) -> Result<Built, String> {
    let src = tmp.join(source);
    std::fs::write(&src, &ex.code).map_err(|e| format!("write {}: {e}", src.display()))?;
    let words: Vec<&str> = cc.split_whitespace().collect();
    let mut line = Vec::new();
    for (i, &w) in words.iter().enumerate() {
        line.push(if w == source {
            quote(&src)
        } else if i > 0 && words[i - 1] == "-o" && w == output {
            quote(&tmp.join(output))
        } else {
            w.to_string()
        });
    }
    let line = line.join(" ");
    let root = build_root(tmp)?;
    let text = build_output(&format!("{}: the cc line", ex.name()), &mut shell(&line, &root, &[]))?;
    if !text.trim().is_empty() {
        return Err(format!("{}: the cc line printed warnings: {line}\n{text}", ex.name()));
    }
    Ok(Built { dir: tmp.to_path_buf(), env: Vec::new() })
}

/// Where the `cc` line runs: the repository root if the library `make lib` built is in its
/// `target/release`; else (another target dir, or CRTHREADS_LIB_DIR) a stand-in root in `tmp`
/// whose `target/release` is the library's directory and whose other entries are links to the
/// repository's, so that the line runs unchanged.
fn build_root(tmp: &Path) -> Result<PathBuf, String> {
    let lib = lib_dir::lib_dir();
    let lib = lib.canonicalize().unwrap_or(lib);
    if repo().join("target/release").canonicalize().ok() == Some(lib.clone()) {
        return Ok(repo().to_path_buf());
    }
    let root = tmp.join("root");
    let link = |from: &Path, to: PathBuf| {
        std::os::unix::fs::symlink(from, &to).map_err(|e| format!("symlink {}: {e}", to.display()))
    };
    std::fs::create_dir_all(root.join("target")).map_err(|e| format!("create {}: {e}", root.display()))?;
    link(&lib, root.join("target/release"))?;
    for e in std::fs::read_dir(repo()).map_err(|e| format!("read {}: {e}", repo().display()))?.flatten() {
        if e.file_name() != "target" {
            link(&e.path(), root.join(e.file_name()))?;
        }
    }
    Ok(root)
}

/// Writes a project in `tmp` with the README's dependency line pointing at this checkout, and
/// builds it with the README's `cargo run` line turned into `cargo build`.
fn build_rust(ex: &Example, tmp: &Path, dependency: &str) -> Result<Built, String> {
    let project = tmp.join("project");
    std::fs::create_dir_all(project.join("src")).map_err(|e| format!("create the project: {e}"))?;
    let (head, rest) = dependency.split_once("path = \"").expect("parsed with a path");
    let (_, tail) = rest.split_once('"').ok_or_else(|| format!("{}: unterminated path", ex.name()))?;
    let dependency = format!("{head}path = \"{}\"{tail}", repo().display());
    let manifest = format!(
        "[package]\nname = \"readme-example-{}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\n{dependency}\n\n[workspace]\n",
        ex.line
    );
    let write = |p: PathBuf, s: &str| std::fs::write(&p, s).map_err(|e| format!("write {}: {e}", p.display()));
    write(project.join("Cargo.toml"), &manifest)?;
    write(project.join("src/main.rs"), &ex.code)?;
    // The checkout's versions of the dependencies: no registry look-up needed.
    if let Ok(lock) = std::fs::read_to_string(repo().join("Cargo.lock")) {
        write(project.join("Cargo.lock"), &lock)?;
    }
    // One target dir for every run of this test, so crthreads is compiled once.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-examples");
    let mut path = OsString::new();
    if let Some(bin) = std::env::var_os("CARGO").as_deref().map(Path::new).and_then(Path::parent) {
        path.push(bin); // the cargo running this test first
        path.push(":");
    }
    path.push(std::env::var_os("PATH").unwrap_or_default());
    let env = vec![("CARGO_TARGET_DIR", target.into_os_string()), ("PATH", path)];
    let line = ex.run.replacen("cargo run", "cargo build", 1);
    let envs: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let text = build_output(&format!("{}: `{line}`", ex.name()), &mut shell(&line, &project, &envs))?;
    if let Some(w) = text.lines().find(|l| l.starts_with("warning")) {
        return Err(format!("{}: `{line}` printed a warning: {w}\n{text}", ex.name()));
    }
    Ok(Built { dir: project, env })
}

/// An inotify instance watching one file for writes.
struct Inotify(File);

impl Inotify {
    fn watch(path: &Path) -> Result<Inotify, String> {
        // SAFETY: inotify_init1 takes no pointers; the result is checked before use.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(format!("inotify_init1: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a new descriptor that nothing else owns.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: the descriptor is open and `c` is a NUL-terminated path that outlives the call.
        if unsafe { libc::inotify_add_watch(file.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
            return Err(format!("inotify_add_watch {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        Ok(Inotify(file))
    }

    /// Discards the pending events (the caller re-reads the file).
    fn drain(&mut self) {
        let mut buf = [0u8; 4096];
        let _ = self.0.read(&mut buf);
    }
}

fn pidfd_open(pid: u32) -> Result<OwnedFd, String> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers; the result is checked before use.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(format!("pidfd_open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Which of `fds` are readable, waiting at most `timeout`.
fn wait_readable(fds: [&dyn AsRawFd; 2], timeout: Duration) -> [bool; 2] {
    let mut p = fds.map(|f| libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 });
    let ts = libc::timespec { tv_sec: timeout.as_secs() as libc::time_t, tv_nsec: timeout.subsec_nanos().into() };
    // SAFETY: `p` is an array of two initialised pollfds and `ts` a valid timespec, both live
    // for the call; no signal mask is passed.
    let n = unsafe { libc::ppoll(p.as_mut_ptr(), 2, &ts, std::ptr::null()) };
    if n <= 0 {
        return [false; 2]; // timeout or EINTR: the caller looks again
    }
    p.map(|p| p.revents != 0)
}

/// SIGKILL to the process group `pgid`.
fn kill_group(pgid: u32) {
    // SAFETY: kill takes no pointers; a group that is already gone gives ESRCH, which is fine.
    unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
}

/// When to kill a run: `delay` after its `after`-th checkpoint.
#[derive(Clone, Copy)]
pub struct Kill {
    pub after: usize,
    pub delay: Duration,
}

/// How a run ended and what it printed.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The `seq` of each checkpoint of this run, in order.
    pub seqs: Vec<u64>,
    /// When each checkpoint's statistics line appeared, since the start.
    pub times: Vec<Duration>,
}

impl Outcome {
    /// The step the program said it started at (`… at step <n>` on stderr).
    pub fn start_step(&self, what: &str) -> Result<u64, String> {
        self.stderr
            .lines()
            .find_map(|l| l.trim_end().rsplit_once(" at step ").and_then(|(_, n)| n.parse().ok()))
            .ok_or_else(|| {
                format!(
                    "{what}: no `… at step <n>` line on stderr (the examples say where they start)\n{}",
                    self.report()
                )
            })
    }
    /// The checkpoint a program that resumes as a whole (threads included, through
    /// `crthreads::main`) said it resumed from (`… resumed from checkpoint <seq>` on stderr).
    pub fn resumed_from(&self) -> Option<u64> {
        self.stderr.lines().find_map(|l| {
            let (_, rest) = l.split_once("resumed from checkpoint ")?;
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
    }
    pub fn killed(&self) -> bool {
        self.status.signal() == Some(libc::SIGKILL)
    }
    pub fn report(&self) -> String {
        format!("status: {}\n--- stderr ---\n{}--- stdout ---\n{}", self.status, self.stderr, self.stdout)
    }
}

/// The `seq` of a complete statistics line.
fn seq_of(line: &str) -> Option<u64> {
    let rest = line.split_once("\"seq\":")?.1;
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

/// A started run command, leader of its own process group; killed with its group when dropped
/// unless it was reaped, so that no example outlives a failed test.
struct Group(Child, bool);

impl Group {
    fn kill(&self) {
        kill_group(self.0.id());
    }
    fn reap(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.0.wait()?;
        self.1 = true;
        Ok(status)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !self.1 {
            self.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `ex`'s run line with checkpoint directory `ckpt`, killing it as `kill` says.
pub fn run(
    ex: &Example,
    built: &Built,
    tmp: &Path,
    label: &str,
    ckpt: &Path,
    kill: Option<Kill>,
) -> Result<Outcome, String> {
    let what = format!("{} {label}", ex.name());
    let stats = tmp.join(format!("{label}.stats"));
    let (out_path, err_path) = (tmp.join(format!("{label}.stdout")), tmp.join(format!("{label}.stderr")));
    let create = |p: &Path| File::create(p).map_err(|e| format!("create {}: {e}", p.display()));
    create(&stats)?;
    let mut inotify = Inotify::watch(&stats)?;
    let mut env: Vec<(&str, &OsStr)> = built.env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    env.extend([("CRTHREADS_DIR", ckpt.as_os_str()), ("CRTHREADS_STATS", stats.as_os_str())]);
    let mut cmd = shell(&ex.run, &built.dir, &env);
    cmd.process_group(0).stdout(create(&out_path)?).stderr(create(&err_path)?);
    let mut child = Group(cmd.spawn().map_err(|e| format!("{what}: cannot start {cmd:?}: {e}"))?, false);
    let start = Instant::now();
    let pidfd = pidfd_open(child.0.id())?;
    let mut times = Vec::new();
    let mut kill_at: Option<Instant> = None;
    let mut sent = false;
    loop {
        let now = Instant::now();
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        let complete = text.matches('\n').count();
        times.resize(complete.max(times.len()), now - start);
        if let Some(k) = kill {
            if kill_at.is_none() && complete >= k.after {
                kill_at = Some(now + k.delay);
            }
            if complete > k.after {
                kill_at = Some(now); // the delay outlasted a checkpoint interval
            }
        }
        if !sent && kill_at.is_some_and(|t| now >= t) {
            child.kill();
            sent = true;
        }
        if child.0.try_wait().map_err(|e| format!("{what}: wait: {e}"))?.is_some() {
            break;
        }
        if now - start > LIMIT {
            return Err(format!("{what}: still running after {LIMIT:?}; killed it"));
        }
        let until = kill_at.filter(|_| !sent).unwrap_or(start + LIMIT).min(start + LIMIT);
        let [changed, _] = wait_readable([&inotify.0, &pidfd], until.saturating_duration_since(now));
        if changed {
            inotify.drain();
        }
    }
    let ended = start.elapsed();
    let status = child.reap().map_err(|e| format!("{what}: wait: {e}"))?;
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    let seqs: Vec<u64> = text.lines().take(text.matches('\n').count()).filter_map(seq_of).collect();
    // Lines written after the last look (between it and the exit) were seen at the exit.
    times.resize(seqs.len(), ended);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Ok(Outcome { status, stdout: read(&out_path), stderr: read(&err_path), seqs, times })
}
