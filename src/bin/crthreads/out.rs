//! Output: sizes, times and hex for people, JSON for programs (written by hand), and progress on
//! stderr for commands that take long.
//!
//! Progress ([`Progress`]) is shown with `--progress`, never with `--no-progress`, and by default
//! once the work has lasted a second. On a terminal one line is redrawn in place; otherwise a
//! line is written at every tenth of the work (or every ten seconds of waiting), so logs stay
//! short.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::args::{Opt, Parsed};

/// A byte count in the largest binary unit that keeps it readable (`4.0 MiB`, `512 bytes`).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} bytes") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// A time in ns since the epoch, to the second, in UTC.
pub fn time(ns: u64) -> String {
    let full = crthreads::identity::time_text(i64::try_from(ns).unwrap_or(i64::MAX));
    // `YYYY-MM-DD hh:mm:ss.nnnnnnnnn UTC`: drop the fraction.
    match full.split_once('.') {
        Some((secs, _)) => format!("{secs} UTC"),
        None => full,
    }
}

/// How long ago a time in ns since the epoch was, in the largest unit that fits (`42 s`, `5 min`,
/// `3 h`, `2 days`), or `in the future` (a clock set back since).
pub fn age(ns: u64, now_ns: u64) -> String {
    let Some(secs) = now_ns.checked_sub(ns).map(|d| d / 1_000_000_000) else {
        return "in the future".into();
    };
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

/// The time now, in ns since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// A JSON value.
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer.
    Num(u64),
    /// A signed integer.
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, its keys in order.
    Obj(Vec<(&'static str, Json)>),
}

impl Json {
    /// A string, or `null`.
    pub fn opt_str(s: Option<impl Into<String>>) -> Json {
        s.map_or(Json::Null, |s| Json::Str(s.into()))
    }

    /// A number, or `null`.
    pub fn opt_num(n: Option<u64>) -> Json {
        n.map_or(Json::Null, Json::Num)
    }

    /// The value as compact JSON text.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.write(&mut s);
        s
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => escape(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    escape(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Writes `s` as a JSON string literal.
fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The options that choose whether progress is shown.
pub const PROGRESS_OPTS: [Opt; 2] = [
    Opt { name: "progress", value: None, help: "always show progress on stderr" },
    Opt { name: "no-progress", value: None, help: "never show progress (default: once it takes over a second)" },
];

/// When progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Show {
    /// Once the work has lasted a second.
    Auto,
    /// From the start.
    Always,
    /// Never.
    Never,
}

impl Show {
    /// What `--progress` / `--no-progress` ask for (the last one given wins).
    pub fn from_args(p: &Parsed) -> Show {
        p.given()
            .filter_map(|(n, _)| match n {
                "progress" => Some(Show::Always),
                "no-progress" => Some(Show::Never),
                _ => None,
            })
            .last()
            .unwrap_or(Show::Auto)
    }
}

/// Progress of one piece of work, on stderr. Safe to update from several threads.
pub struct Progress {
    show: Show,
    tty: bool,
    prefix: String,
    start: Instant,
    state: Mutex<State>,
}

struct State {
    /// Something was drawn.
    shown: bool,
    /// The last step written (a tenth of the work, or ten seconds of waiting).
    step: u64,
    /// When a terminal line was last redrawn.
    drawn: Option<Instant>,
}

impl Progress {
    /// Progress of `what` (for example `crthreads verify: slot-0`).
    pub fn new(show: Show, what: impl Into<String>) -> Progress {
        Progress {
            show,
            tty: std::io::stderr().is_terminal(),
            prefix: what.into(),
            start: Instant::now(),
            state: Mutex::new(State { shown: false, step: u64::MAX, drawn: None }),
        }
    }

    /// `done` of `total` pages checked.
    pub fn pages(&self, done: u64, total: u64) {
        let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        let text = format!("{pct}% of {} checked", human(total * 4096));
        self.draw(pct / 10, text);
    }

    /// Still waiting, with `what` to say about it.
    pub fn waiting(&self, what: &str) {
        let secs = self.start.elapsed().as_secs();
        self.draw(secs / 10, format!("{what} ({secs} s)"));
    }

    fn draw(&self, step: u64, text: String) {
        let due = match self.show {
            Show::Never => false,
            Show::Always => true,
            Show::Auto => self.start.elapsed() >= Duration::from_secs(1),
        };
        if !due {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut err = std::io::stderr().lock();
        if self.tty {
            if st.drawn.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
                return;
            }
            let _ = write!(err, "\r\x1b[K{}: {text}", self.prefix);
            st.drawn = Some(Instant::now());
        } else {
            if st.step == step {
                return;
            }
            let _ = writeln!(err, "{}: {text}", self.prefix);
            st.step = step;
        }
        st.shown = true;
        let _ = err.flush();
    }

    /// Ends the progress display (a terminal line is closed).
    pub fn finish(&self, text: &str) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.shown {
            let mut err = std::io::stderr().lock();
            let _ = if self.tty {
                writeln!(err, "\r\x1b[K{}: {text}", self.prefix)
            } else {
                writeln!(err, "{}: {text}", self.prefix)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_nests() {
        let j = Json::Obj(vec![
            ("a", Json::Str("q\"\\\n\u{1}é".into())),
            ("b", Json::Arr(vec![Json::Num(1), Json::Int(-2), Json::Null, Json::Bool(true)])),
        ]);
        assert_eq!(j.render(), r#"{"a":"q\"\\\n\u0001é","b":[1,-2,null,true]}"#);
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(4 << 20), "4.0 MiB");
        assert_eq!(time(951_782_400_123_456_789), "2000-02-29 00:00:00 UTC");
        assert_eq!(hex(&[0, 0xab]), "00ab");
        let s = 1_000_000_000;
        assert_eq!(age(100 * s, 142 * s), "42 s");
        assert_eq!(age(0, 3599 * s), "59 min");
        assert_eq!(age(0, 7300 * s), "2 h");
        assert_eq!(age(0, 3 * 86_400 * s), "3 days");
        assert_eq!(age(2 * s, s), "in the future");
    }
}
