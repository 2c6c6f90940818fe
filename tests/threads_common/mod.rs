//! Helpers shared by the crash tests of persistent threads (`threads_*.rs`): a child process
//! whose output is read line by line while it runs (so the parent can kill it at a line it
//! printed), and the checkpoint statistics file the children append to.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{killed, wait_or_kill};

/// A running child whose stdout arrives line by line.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    err: Option<JoinHandle<String>>,
}

/// How a child ended.
#[derive(Debug)]
pub struct Ended {
    pub status: ExitStatus,
    /// It ran past the limit and was killed by the parent.
    pub hung: bool,
    /// Every line it printed.
    pub out: Vec<String>,
    pub err: String,
}

impl Ended {
    /// Died by SIGKILL (a failpoint, or the parent), not by running past the limit.
    pub fn killed(&self) -> bool {
        !self.hung && killed(&self.status)
    }

    /// The output, for failure messages.
    pub fn show(&self) -> String {
        format!(
            "status {:?} hung {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.hung,
            self.out.join("\n"),
            self.err
        )
    }
}

impl Running {
    /// Starts `cmd` with piped stdout and stderr.
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn the child");
        let out = child.stdout.take().unwrap();
        let mut errp = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = errp.read_to_string(&mut s);
            s
        });
        Running { child, lines, seen: Vec::new(), err: Some(err) }
    }

    /// Waits at most `limit` for a line for which `pred` holds; returns it (`None` if the child
    /// closed its output or the time ran out first). Lines read meanwhile are kept.
    pub fn wait_line(&mut self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let t = Instant::now();
        loop {
            let left = limit.checked_sub(t.elapsed())?;
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return Some(l);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// A line printed so far for which `pred` holds, without waiting for more.
    pub fn seen_line(&mut self, pred: impl Fn(&str) -> bool) -> Option<String> {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.iter().find(|l| pred(l)).cloned()
    }

    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGKILL (if the child still runs).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits at most `limit` for the child to end (killing it past that), and collects its
    /// output.
    pub fn finish(mut self, limit: Duration) -> Ended {
        let (status, hung) = wait_or_kill(&mut self.child, limit);
        let mut out = std::mem::take(&mut self.seen);
        // The writer is gone: the reader thread ends once it has passed on every line.
        while let Ok(l) = self.lines.recv() {
            out.push(l);
        }
        let err = self.err.take().unwrap().join().unwrap_or_default();
        Ended { status, hung, out, err }
    }
}

/// One line of the statistics file (`CRTHREADS_STATS`), as numbers by key.
#[derive(Clone, Debug, Default)]
pub struct StatLine(pub Vec<(String, u64)>);

impl StatLine {
    /// The value of a numeric field (0 if absent).
    pub fn get(&self, key: &str) -> u64 {
        self.0.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
    }
}

/// Parses the statistics file: one JSON object per line, numeric fields only (nested objects
/// are flattened by their inner keys, which do not collide with the outer ones).
pub fn stats(path: &Path) -> Vec<StatLine> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| {
            let mut v = Vec::new();
            for part in l.split(',') {
                let part = part.trim_start_matches('{').trim_end_matches('}');
                let Some((k, val)) = part.rsplit_once(':') else { continue };
                let k = k.rsplit('"').nth(1).unwrap_or("").to_string();
                if let Ok(n) = val.trim_end_matches('}').parse::<u64>() {
                    v.push((k, n));
                }
            }
            StatLine(v)
        })
        .collect()
}

/// The value after `key=` in a line of `key=value` words.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// The numeric value after `key=` in a line; panics with the line if there is none.
pub fn num(line: &str, key: &str) -> u64 {
    field(line, key).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no number {key}= in {line:?}"))
}

/// The stack-protector canary of the calling thread (`%fs:0x28` on x86-64 with glibc).
pub fn canary() -> u64 {
    let v: u64;
    // SAFETY: reads the thread control block's stack_guard word; the TCB is always mapped.
    unsafe { core::arch::asm!("mov {v}, fs:[0x28]", v = out(reg) v, options(nostack, readonly, preserves_flags)) };
    v
}

/// Prints `line` and a newline to stdout with one `write(2)` (lines stay whole in a pipe).
///
/// Children print this way rather than with `println!`: `println!` holds std's stdout lock
/// while it formats, and formatting runs code a preempted thread may be parked in (a `Display`
/// impl, `core::fmt`); another thread printing then blocks on that lock outside any safepoint,
/// and every checkpoint attempt is abandoned until the parked thread runs again.
pub fn say(line: &str) {
    let mut b = Vec::with_capacity(line.len() + 1);
    b.extend_from_slice(line.as_bytes());
    b.push(b'\n');
    let mut off = 0;
    while off < b.len() {
        // SAFETY: writes initialised bytes of `b` to fd 1.
        let n = unsafe { libc::write(1, b[off..].as_ptr().cast(), b.len() - off) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        assert!(n > 0, "write to stdout failed: {}", std::io::Error::last_os_error());
        off += n as usize;
    }
}

/// How much longer than by default the crash tests run (`CRT_SOAK`, a multiplier; 1 if unset):
/// more cases, rounds and kills, for a soak.
pub fn soak() -> u64 {
    std::env::var("CRT_SOAK").ok().and_then(|v| v.parse().ok()).filter(|&n| n >= 1).unwrap_or(1)
}
