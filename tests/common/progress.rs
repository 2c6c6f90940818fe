//! Running an example program that reports progress as `iter <i>` lines and ends with a
//! `result <checksum>` line, and killing it with SIGKILL in the middle of a chosen unit.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often a kill waiting for the run's first checkpoint looks at its statistics file.
const GATE_POLL: Duration = Duration::from_millis(5);

/// When to kill: once `iter target` (or a later one) appears, after `fraction` of a unit, or at
/// the next `iter` line, whichever comes first; but not before the run committed a checkpoint
/// if `gate` names its statistics file (`CRTHREADS_STATS`).
pub struct Kill {
    pub target: u64,
    pub fraction: f64,
    pub gate: Option<PathBuf>,
}

impl Kill {
    /// Whether the kill may be sent now.
    fn ready(&self) -> bool {
        self.gate.as_deref().is_none_or(|stats| !committed(stats).is_empty())
    }
}

/// Sequence numbers of the checkpoints a statistics file reports.
pub fn committed(stats: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let at = l.find("\"seq\":")? + 6;
            l[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

/// How a run ended and what it printed.
pub struct Outcome {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
    /// From the start to the last stdout line.
    pub elapsed: Duration,
    pub kill_sent: bool,
}

impl Outcome {
    pub fn iters(&self) -> Vec<u64> {
        self.lines.iter().filter_map(|l| l.strip_prefix("iter ")?.parse().ok()).collect()
    }
    pub fn result(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix("result "))
    }
    /// Consecutive `iter` lines, then at most one `result` line, last; nothing else.
    pub fn assert_shape(&self, what: &str) {
        let iters = self.iters();
        for w in iters.windows(2) {
            assert_eq!(w[1], w[0] + 1, "{what}: units not consecutive: {:?}\n{}", self.lines, self.stderr);
        }
        let results = self.lines.iter().filter(|l| l.starts_with("result ")).count();
        assert_eq!(iters.len() + results, self.lines.len(), "{what}: unexpected stdout lines: {:?}", self.lines);
        assert!(results <= 1, "{what}: several result lines: {:?}", self.lines);
        if results == 1 {
            assert!(self.lines.last().is_some_and(|l| l.starts_with("result ")), "{what}: {:?}", self.lines);
        }
    }
}

/// Runs `cmd` (stdout and stderr piped) to its end, killing it according to `kill`; a run
/// longer than `limit` is killed and fails the test.
pub fn run(mut cmd: Command, kill: Option<&Kill>, per_unit: Duration, limit: Duration) -> Outcome {
    let mut child = cmd.spawn().expect("start the example");
    let start = Instant::now();
    let out = child.stdout.take().expect("stdout pipe");
    let err = child.stderr.take().expect("stderr pipe");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    let stderr = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let mut lines = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut deadline: Option<Instant> = None;
    let mut kill_sent = false;
    loop {
        let give_up = start + limit;
        let until = deadline.filter(|_| !kill_sent).map_or(give_up, |d| d.min(give_up));
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok((t, l)) => {
                let unit: Option<u64> = l.strip_prefix("iter ").and_then(|i| i.parse().ok());
                if let (Some(k), false, Some(i)) = (kill, kill_sent, unit) {
                    if deadline.is_some() {
                        deadline = Some(t); // the aimed-at unit is over: kill now
                    } else if i >= k.target {
                        deadline = Some(t + per_unit.mul_f64(k.fraction));
                    }
                }
                elapsed = t - start;
                lines.push(l);
            }
            Err(RecvTimeoutError::Timeout) => {
                if Instant::now() >= give_up {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the example ran longer than {limit:?}; output so far: {lines:?}");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let (Some(k), Some(d), false) = (kill, deadline, kill_sent) {
            let now = Instant::now();
            if now >= d && k.ready() {
                child.kill().expect("send SIGKILL");
                kill_sent = true;
            } else if now >= d {
                // No checkpoint yet: look again shortly (statistics lines have no other signal).
                deadline = Some(now + GATE_POLL);
            }
        }
    }
    let status = child.wait().expect("wait for the example");
    let stderr = stderr.join().unwrap_or_default();
    Outcome { status, lines, stderr, elapsed, kill_sent }
}
