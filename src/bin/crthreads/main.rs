//! `crthreads`: run programs under crthreads and inspect their checkpoints.
//!
//! ```text
//! crthreads run [options] [--] PROGRAM [ARGS...]   start PROGRAM with the library preloaded
//! crthreads checkpoint [options] DIR|PID           ask a running program for a checkpoint
//! crthreads status [options] DIR                   what the checkpoint directory holds
//! crthreads verify [options] DIR                   check both slots completely
//! crthreads clean [options] DIR                    remove the checkpoint files
//! ```
//!
//! One module per command; `args` parses command lines by hand from each command's table of
//! options (which also writes its `--help`), `out` formats tables, JSON and progress, `procfs`
//! inspects other processes through `/proc`. Every command reads checkpoint files through the
//! library's own code (`crthreads::store`), so what it reports is what a restore would find.
//!
//! Errors are one line on stderr, `crthreads <command>: <what was wrong; what to do>`, and the
//! exit status says what kind of failure it was ([`exit`]; listed by `crthreads --help`).

mod args;
mod checkpoint;
mod clean;
mod out;
mod procfs;
mod run;
mod status;
mod verify;

use std::ffi::OsString;

use args::Spec;

/// Exit statuses: 2 for bad input, as most command-line tools have it; `verify`'s verdicts
/// below it; the BSD `sysexits.h` numbers for failures that are not the input's fault; and the
/// shell's 126 and 127 for a program `run` cannot start.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// verify: a problem was found (a damaged slot, a slot of another checkpoint series, a
    /// missing slot that may have held the newest checkpoint), but a checkpoint is usable.
    pub const PROBLEM: u8 = 1;
    /// Bad input: the command line is wrong, or names a directory, process, file or setting that
    /// does not exist or is not what the command needs.
    pub const BAD_INPUT: u8 = 2;
    /// verify: no checkpoint is usable.
    pub const NONE: u8 = 3;
    /// The process cannot take a checkpoint request, or the library was not found.
    pub const UNAVAILABLE: u8 = 69;
    /// A system call failed.
    pub const OS: u8 = 71;
    /// Try again later: a timeout, or a running program holds the directory.
    pub const TEMP: u8 = 75;
    /// Permission denied, or the checkpoint files are not private to this user.
    pub const PERM: u8 = 77;
    /// run: the program exists but cannot be executed.
    pub const CANNOT_EXEC: u8 = 126;
    /// run: the program was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// The exit statuses the inspecting commands share, for `--help`.
pub const COMMON_EXITS: &[&str] = &[
    "2    bad input: the command line is wrong (an unknown option, a missing argument), or the directory or \
     process it names does not exist",
    "71   a system call failed",
    "77   permission denied, or the checkpoint files are not private to you",
];

/// Why a command failed: the message (one line: what was wrong, what to do) and exit status.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub code: u8,
    /// The message, without the `crthreads <command>: ` prefix.
    pub msg: String,
}

impl Failure {
    /// A failure with exit status `code`.
    pub fn new(code: u8, msg: impl Into<String>) -> Failure {
        Failure { code, msg: msg.into() }
    }
}

impl From<crthreads::Error> for Failure {
    fn from(e: crthreads::Error) -> Failure {
        use crthreads::Error as E;
        let code = match &e {
            E::Config { .. } => exit::BAD_INPUT,
            E::Insecure { .. } => exit::PERM,
            E::DirectoryBusy { .. } => exit::TEMP,
            E::Os { errno, .. } => match errno.0 {
                libc::ENOENT | libc::ENOTDIR => exit::BAD_INPUT,
                libc::EACCES | libc::EPERM => exit::PERM,
                _ => exit::OS,
            },
            _ => exit::OS,
        };
        Failure::new(code, e.to_string().replace('\n', " "))
    }
}

/// What a command returns: its exit status, or why it failed.
pub type Outcome = Result<u8, Failure>;

const COMMANDS: &[&Spec] = &[&run::SPEC, &checkpoint::SPEC, &status::SPEC, &verify::SPEC, &clean::SPEC];

fn usage() -> String {
    let mut s = String::from(
        "crthreads: run programs that survive crashes, and inspect their checkpoints\n\n\
         usage: crthreads COMMAND [options] [arguments]\n\ncommands:\n",
    );
    for c in COMMANDS {
        s.push_str(&format!("  {:<11} {}\n", c.name, c.summary));
    }
    s.push_str("\n`crthreads COMMAND --help` (or `crthreads help COMMAND`) describes a command and its options.\n");
    s.push_str("\nexit status:\n");
    let lines = [
        "0    success",
        "1    verify: a problem was found (damage, a slot of another series), but a checkpoint is usable",
        "2    bad input: a command-line mistake, or a directory, process, file or setting that is not usable",
        "3    verify: no checkpoint is usable",
        "69   checkpoint: the process cannot take checkpoint requests; run: libcrthreads.so was not found",
        COMMON_EXITS[1],
        "75   checkpoint: timed out; clean: a running program holds the directory",
        COMMON_EXITS[2],
        "126  run: the program cannot be executed",
        "127  run: the program was not found",
        "     (run: once the program starts, the exit status is the program's own)",
    ];
    for l in lines {
        s.push_str(&format!("  {l}\n"));
    }
    s
}

fn main() {
    let mut argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = dispatch(&mut argv);
    std::process::exit(i32::from(code));
}

fn dispatch(argv: &mut Vec<OsString>) -> u8 {
    let Some(first) = argv.first().cloned() else {
        eprint!("{}", usage());
        return exit::BAD_INPUT;
    };
    let name = first.to_string_lossy().into_owned();
    match name.as_str() {
        "-h" | "--help" => {
            print!("{}", usage());
            return exit::OK;
        }
        "-V" | "--version" => {
            println!("crthreads {}", env!("CARGO_PKG_VERSION"));
            return exit::OK;
        }
        "help" => {
            match argv.get(1).map(|a| a.to_string_lossy().into_owned()) {
                None => print!("{}", usage()),
                Some(c) => match COMMANDS.iter().find(|s| s.name == c) {
                    Some(spec) => print!("{}", spec.help()),
                    None => return fail("help", Failure::new(exit::BAD_INPUT, unknown_command(&c))),
                },
            }
            return exit::OK;
        }
        _ => {}
    }
    let Some(spec) = COMMANDS.iter().find(|s| s.name == name) else {
        return fail("crthreads", Failure::new(exit::BAD_INPUT, unknown_command(&name)));
    };
    argv.remove(0);
    let parsed = match args::parse(spec, std::mem::take(argv)) {
        Ok(p) => p,
        Err(f) => return fail(spec.name, f),
    };
    if parsed.flag("help") {
        print!("{}", spec.help());
        return exit::OK;
    }
    let r = match spec.name {
        "run" => run::main(parsed),
        "checkpoint" => checkpoint::main(parsed),
        "status" => status::main(parsed),
        "verify" => verify::main(parsed),
        "clean" => clean::main(parsed),
        _ => unreachable!("every command in COMMANDS is dispatched"),
    };
    match r {
        Ok(code) => code,
        Err(f) => fail(spec.name, f),
    }
}

fn unknown_command(name: &str) -> String {
    let names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    format!("unknown command `{name}`; the commands are {} (see crthreads --help)", names.join(", "))
}

/// Prints the failure as one line on stderr and returns its exit status.
fn fail(cmd: &str, f: Failure) -> u8 {
    let prefix = if cmd == "crthreads" { "crthreads".to_string() } else { format!("crthreads {cmd}") };
    eprintln!("{prefix}: {}", f.msg);
    f.code
}
