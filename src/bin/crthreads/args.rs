//! Command-line parsing, by hand, from each command's [`Spec`]: the same table writes the
//! command's `--help`, so the two never disagree.
//!
//! Accepted forms: `--name VALUE`, `--name=VALUE`, `--flag`, `-h`/`--help`, and `--`, after which
//! everything is an argument. A command that runs a program (`run`) stops reading options at
//! the program's name: what follows belongs to the program. Anything else that starts with `-`
//! is an error naming the option and listing the valid ones. A repeated option keeps its last
//! value.

use std::ffi::{OsStr, OsString};

use super::{Failure, exit};

/// One option of a command.
#[derive(Clone, Copy)]
pub struct Opt {
    /// The name without the leading `--`.
    pub name: &'static str,
    /// The value's placeholder in `--help` (`DIR`, `SECS`); `None` for a flag.
    pub value: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
}

/// A command: its name, arguments, options and help.
pub struct Spec {
    /// The command's name.
    pub name: &'static str,
    /// Its arguments after the options, as `--help` shows them (`DIR`, `DIR|PID`).
    pub args: &'static str,
    /// Whether the first argument is a program to run, after which nothing is an option.
    pub program: bool,
    /// One line for `crthreads --help`.
    pub summary: &'static str,
    /// What the command does, for its `--help`.
    pub about: &'static str,
    /// Its options (`--help` is implied).
    pub opts: &'static [Opt],
    /// Its own exit statuses, for its `--help`, one per line (`code   meaning`); the inspecting
    /// commands (all but `run`, which lists its own) add the common ones.
    pub exits: &'static [&'static str],
}

impl Spec {
    /// The command's `--help` text.
    pub fn help(&self) -> String {
        let mut s = format!("usage: crthreads {} [options] {}\n\n", self.name, self.args);
        for para in self.about.split("\n\n") {
            s.push_str(&wrap(para, 96, "", ""));
            s.push('\n');
        }
        s.push_str("options:\n");
        let width = self.opts.iter().map(|o| o.name.len() + o.value.map_or(0, |v| v.len() + 1)).max().unwrap_or(0);
        for o in self.opts.iter().chain([&HELP]) {
            let left = match o.value {
                Some(v) => format!("{} {v}", o.name),
                None => o.name.to_string(),
            };
            s.push_str(&format!("  --{left:<width$}  {}\n", o.help));
        }
        s.push_str("\nexit status:\n");
        let common: &[&str] = if self.program { &[] } else { super::COMMON_EXITS };
        let mut lines: Vec<&str> = self.exits.iter().chain(common).copied().collect();
        // In numeric order; the program's own status (no number) last.
        lines.sort_by_key(|l| l.split_whitespace().next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX));
        for l in lines {
            match l.split_once(char::is_whitespace) {
                Some((code, text)) if code.parse::<u32>().is_ok() => {
                    s.push_str(&wrap(text, 96, &format!("  {code:<5}"), "       "));
                }
                _ => s.push_str(&wrap(l, 96, "  ", "  ")),
            }
        }
        s
    }

    fn valid_options(&self) -> String {
        let names: Vec<String> = self.opts.iter().chain([&HELP]).map(|o| format!("--{}", o.name)).collect();
        names.join(", ")
    }
}

/// `text` as lines of at most `width` columns, the first starting with `first`, the others with
/// `rest`.
fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > width {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
    out
}

const HELP: Opt = Opt { name: "help", value: None, help: "show this help (also -h)" };

/// A parsed command line.
#[derive(Debug, Default)]
pub struct Parsed {
    opts: Vec<(&'static str, Option<OsString>)>,
    /// The arguments, in order (for `run`: the program, then its arguments).
    pub args: Vec<OsString>,
}

impl Parsed {
    /// Whether flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| *n == name)
    }

    /// The last value given to option `name`.
    pub fn value(&self, name: &str) -> Option<&OsStr> {
        self.opts.iter().rev().find(|(n, _)| *n == name).and_then(|(_, v)| v.as_deref())
    }

    /// The options given, in order, with their values (flags have none).
    pub fn given(&self) -> impl Iterator<Item = (&'static str, Option<&OsStr>)> {
        self.opts.iter().map(|(n, v)| (*n, v.as_deref()))
    }
}

/// Parses `argv` (after the command's name) by `spec`.
pub fn parse(spec: &Spec, argv: Vec<OsString>) -> Result<Parsed, Failure> {
    let usage = |msg: String| Failure::new(exit::BAD_INPUT, format!("{msg} (see crthreads {} --help)", spec.name));
    let mut p = Parsed::default();
    let mut it = argv.into_iter();
    let mut only_args = false;
    while let Some(a) = it.next() {
        if only_args {
            p.args.push(a);
            continue;
        }
        let text = a.to_str().unwrap_or("");
        if text == "--" {
            only_args = true;
            continue;
        }
        if text == "-h" {
            p.opts.push(("help", None));
            continue;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(OsString::from(v))),
                None => (body, None),
            };
            let Some(opt) = spec.opts.iter().chain([&HELP]).find(|o| o.name == name) else {
                return Err(usage(format!(
                    "unknown option --{name}; the options of {} are {}",
                    spec.name,
                    spec.valid_options()
                )));
            };
            let value = match (opt.value, inline) {
                (Some(_), Some(v)) => Some(v),
                (Some(placeholder), None) => match it.next() {
                    Some(v) => Some(v),
                    None => return Err(usage(format!("option --{name} needs a value ({placeholder})"))),
                },
                (None, Some(_)) => return Err(usage(format!("option --{name} takes no value"))),
                (None, None) => None,
            };
            p.opts.push((opt.name, value));
            continue;
        }
        if text.len() > 1 && text.starts_with('-') {
            return Err(usage(format!(
                "unknown option {text}; the options of {} are {}",
                spec.name,
                spec.valid_options()
            )));
        }
        p.args.push(a);
        only_args |= spec.program;
    }
    if p.flag("help") {
        return Ok(p);
    }
    let wanted = spec.args.split_whitespace().next().unwrap_or("");
    if p.args.is_empty() {
        return Err(usage(format!("missing {wanted}")));
    }
    if !spec.program && p.args.len() > 1 {
        return Err(usage(format!("unexpected argument `{}` after {wanted}", p.args[1].to_string_lossy())));
    }
    Ok(p)
}

/// A number of seconds given to option `name` (`0.5`, `60`).
pub fn seconds(name: &str, v: &OsStr) -> Result<std::time::Duration, Failure> {
    v.to_str()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 1e9)
        .map(std::time::Duration::from_secs_f64)
        .ok_or_else(|| {
            Failure::new(
                exit::BAD_INPUT,
                format!("option --{name} needs a positive number of seconds, not `{}`", v.to_string_lossy()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        name: "t",
        args: "DIR",
        program: false,
        summary: "",
        about: "",
        opts: &[Opt { name: "json", value: None, help: "" }, Opt { name: "timeout", value: Some("SECS"), help: "" }],
        exits: &[],
    };

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_values_and_arguments() {
        let p = parse(&SPEC, argv(&["--json", "--timeout", "3", "d"])).unwrap();
        assert!(p.flag("json") && p.value("timeout") == Some(OsStr::new("3")) && p.args == argv(&["d"]));
        let p = parse(&SPEC, argv(&["--timeout=4", "--timeout=5", "--", "-d"])).unwrap();
        assert_eq!(p.value("timeout"), Some(OsStr::new("5")));
        assert_eq!(p.args, argv(&["-d"]));
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(&SPEC, argv(&["--jsn", "d"])).unwrap_err();
        assert!(e.code == exit::BAD_INPUT && e.msg.contains("--jsn") && e.msg.contains("--json, --timeout"), "{e:?}");
        let e = parse(&SPEC, argv(&["d", "--timeout"])).unwrap_err();
        assert!(e.msg.contains("--timeout needs a value (SECS)"), "{e:?}");
        assert!(parse(&SPEC, argv(&["--json=1", "d"])).unwrap_err().msg.contains("takes no value"));
        assert!(parse(&SPEC, argv(&[])).unwrap_err().msg.contains("missing DIR"));
        assert!(parse(&SPEC, argv(&["a", "b"])).unwrap_err().msg.contains("unexpected argument `b`"));
        assert!(parse(&SPEC, argv(&["-x", "d"])).unwrap_err().msg.contains("unknown option -x"));
        assert!(parse(&SPEC, argv(&["-h"])).unwrap().flag("help"));
    }

    #[test]
    fn a_program_ends_the_options() {
        let spec = Spec { program: true, args: "PROGRAM [ARGS...]", ..SPEC };
        let p = parse(&spec, argv(&["--json", "prog", "--json", "-x"])).unwrap();
        assert_eq!(p.args, argv(&["prog", "--json", "-x"]));
        assert!(parse(&spec, argv(&["--json"])).unwrap_err().msg.contains("missing PROGRAM"));
    }

    #[test]
    fn seconds_must_be_positive_numbers() {
        assert_eq!(seconds("t", OsStr::new("1.5")).unwrap(), std::time::Duration::from_millis(1500));
        assert!(seconds("t", OsStr::new("0")).is_err() && seconds("t", OsStr::new("x")).is_err());
    }
}
