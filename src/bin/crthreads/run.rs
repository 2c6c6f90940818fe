//! `crthreads run [options] [--] PROGRAM [ARGS...]`: starts PROGRAM under crthreads.
//!
//! The options become `CRTHREADS_*` variables (checked here with the library's own parser, so a
//! mistake is reported before the program starts), `libcrthreads.so` is put in front of
//! `LD_PRELOAD`, and this process is replaced by PROGRAM (`exec`, after a `PATH` search as
//! `execvp` does): the program keeps this process's pid, so signals sent to it, `crthreads
//! checkpoint PID` included, reach the program itself.
//!
//! The library is `--lib`, else `$CRTHREADS_LIB`, else `libcrthreads.so` next to this executable
//! (a build tree: `target/release/`), else in `../lib/` from it (an install: `bin/` and `lib/`).
//! A program that has crthreads linked in (a Rust program using the crate, a C program linked
//! with `libcrthreads.a`: its symbol table names crthreads' functions) gets the environment but
//! no preload, which would start a second runtime in it.
//!
//! `CRTHREADS_OWNER` and `CRTHREADS_REEXECED`, which crthreads sets in a persistent program's
//! environment, are removed: a program started with `crthreads run` is persistent even when it
//! is started from inside another one.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::args::{Opt, Parsed, Spec};
use super::{Failure, Outcome, exit};

pub const SPEC: Spec = Spec {
    name: "run",
    args: "PROGRAM [ARGS...]",
    program: true,
    summary: "run PROGRAM under crthreads (preloaded library, options as CRTHREADS_* variables)",
    about: "Runs PROGRAM with libcrthreads.so preloaded and the options below turned into CRTHREADS_* \
            environment variables. PROGRAM replaces this process (same pid), so its exit status is this \
            command's. Options end at PROGRAM (or at --); what follows is PROGRAM's.\n\n\
            libcrthreads.so is taken from --lib, else $CRTHREADS_LIB, else next to this executable, else \
            from ../lib relative to it. A program with crthreads linked in (a Rust program using the crate, \
            a C program linked with libcrthreads.a) is given the settings only, without the preload.",
    opts: &[
        Opt {
            name: "dir",
            value: Some("DIR"),
            help: "checkpoint directory (CRTHREADS_DIR; default ./PROGRAM.crthreads)",
        },
        Opt {
            name: "policy",
            value: Some("POLICY"),
            help: "with persistent threads: every-release, interval or manual (CRTHREADS_POLICY)",
        },
        Opt {
            name: "interval",
            value: Some("SECS"),
            help: "seconds between checkpoints, interval policy (CRTHREADS_INTERVAL)",
        },
        Opt { name: "durability", value: Some("LEVEL"), help: "process or sync (CRTHREADS_DURABILITY)" },
        Opt { name: "tracker", value: Some("KIND"), help: "auto, uffd, mprotect or full (CRTHREADS_TRACKER)" },
        Opt {
            name: "capacity",
            value: Some("SIZE"),
            help: "size of the persistent region, e.g. 8G (CRTHREADS_CAPACITY)",
        },
        Opt { name: "base", value: Some("ADDR"), help: "address of the persistent region (CRTHREADS_BASE)" },
        Opt { name: "keep", value: None, help: "keep the checkpoint after a clean exit (CRTHREADS_KEEP=1)" },
        Opt {
            name: "stats",
            value: Some("FILE"),
            help: "append one JSON line per checkpoint to FILE (CRTHREADS_STATS)",
        },
        Opt {
            name: "no-reexec",
            value: None,
            help: "do not re-execute without address randomisation (CRTHREADS_REEXEC=0)",
        },
        Opt { name: "lib", value: Some("PATH"), help: "the libcrthreads.so to preload (default: see above)" },
    ],
    exits: &[
        "2    bad input: the command line is wrong, an option's value or a CRTHREADS_* variable in the \
         environment is not valid, or --lib or CRTHREADS_LIB names no file",
        "69   libcrthreads.so was not found next to this executable or in ../lib",
        "126  PROGRAM cannot be executed",
        "127  PROGRAM was not found",
        "otherwise PROGRAM's own exit status",
    ],
};

/// Options and the variables they set (flags set the value given here).
const VARS: &[(&str, &str, Option<&str>)] = &[
    ("dir", "CRTHREADS_DIR", None),
    ("policy", "CRTHREADS_POLICY", None),
    ("interval", "CRTHREADS_INTERVAL", None),
    ("durability", "CRTHREADS_DURABILITY", None),
    ("tracker", "CRTHREADS_TRACKER", None),
    ("capacity", "CRTHREADS_CAPACITY", None),
    ("base", "CRTHREADS_BASE", None),
    ("keep", "CRTHREADS_KEEP", Some("1")),
    ("stats", "CRTHREADS_STATS", None),
    ("no-reexec", "CRTHREADS_REEXEC", Some("0")),
];

/// Variables crthreads sets in a persistent program's environment; a new program starts
/// without them.
const MARKS: [&str; 2] = ["CRTHREADS_OWNER", "CRTHREADS_REEXECED"];

pub fn main(p: Parsed) -> Outcome {
    let mut vars: Vec<(&'static str, &'static str, OsString)> = Vec::new();
    for (opt, value) in p.given() {
        if let Some(&(_, var, fixed)) = VARS.iter().find(|(o, _, _)| *o == opt) {
            let v = fixed.map_or_else(|| value.unwrap_or_default().to_os_string(), OsString::from);
            vars.retain(|(_, v2, _)| *v2 != var);
            vars.push((opt, var, v));
        }
    }
    check_settings(&vars)?;
    let program = &p.args[0];
    let exe = find_program(program)?;
    let lib = if links_crthreads(&exe) {
        if p.value("lib").is_some() {
            eprintln!(
                "crthreads run: note: {} has crthreads linked in: it gets the settings, --lib is not preloaded",
                exe.display()
            );
        }
        None
    } else {
        Some(find_library(p.value("lib"))?)
    };
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg0(program).args(&p.args[1..]);
    for m in MARKS {
        cmd.env_remove(m);
    }
    for (_, var, v) in &vars {
        cmd.env(var, v);
    }
    if let Some(lib) = lib {
        cmd.env("LD_PRELOAD", preload_value(&lib, std::env::var_os("LD_PRELOAD")));
    }
    let e = cmd.exec();
    let code = if e.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { exit::CANNOT_EXEC };
    Err(Failure::new(code, format!("cannot execute {}: {e}", exe.display())))
}

/// Checks the settings the program will see (the options over the inherited environment) with
/// the library's own parser; an error names the option, or the variable if it was inherited.
fn check_settings(vars: &[(&str, &str, OsString)]) -> Result<(), Failure> {
    let get = |k: &str| match vars.iter().find(|(_, var, _)| *var == k) {
        Some((_, _, v)) => Some(v.clone()),
        None => std::env::var_os(k),
    };
    match crthreads::Config::default().with_env_from(get) {
        Ok(_) => Ok(()),
        Err(crthreads::Error::Config { var, value, expected }) => match vars.iter().find(|(_, v, _)| *v == var) {
            Some((opt, _, _)) => {
                Err(Failure::new(exit::BAD_INPUT, format!("--{opt} {value:?} is not valid: expected {expected}")))
            }
            None => Err(Failure::new(
                exit::BAD_INPUT,
                format!("{var}={value:?} in the environment is not valid: expected {expected} (fix or unset it)"),
            )),
        },
        Err(e) => Err(Failure::new(exit::BAD_INPUT, e.to_string())),
    }
}

/// The program's path: as given if it names a path, else the first executable file of that
/// name in `PATH` (as `execvp` searches it).
fn find_program(program: &OsStr) -> Result<PathBuf, Failure> {
    let name = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return match std::fs::metadata(name) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(name.to_path_buf()),
            Ok(m) if m.is_dir() => {
                Err(Failure::new(exit::CANNOT_EXEC, format!("{} is a directory, not a program", name.display())))
            }
            Ok(_) => Err(Failure::new(exit::CANNOT_EXEC, format!("{} is not executable (chmod +x?)", name.display()))),
            Err(e) => Err(Failure::new(exit::NOT_FOUND, format!("cannot run {}: {e}", name.display()))),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    for d in std::env::split_paths(&path) {
        let d = if d.as_os_str().is_empty() { PathBuf::from(".") } else { d };
        let cand = d.join(name);
        if std::fs::metadata(&cand).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(cand);
        }
    }
    Err(Failure::new(
        exit::NOT_FOUND,
        format!("program `{}` was not found in PATH (give its path, such as ./{})", name.display(), name.display()),
    ))
}

/// The library to preload (see the module docs), made absolute so that the program finds it
/// from any directory.
fn find_library(given: Option<&OsStr>) -> Result<PathBuf, Failure> {
    let explicit = given.map(|v| ("--lib", PathBuf::from(v))).or_else(|| {
        std::env::var_os("CRTHREADS_LIB").filter(|v| !v.is_empty()).map(|v| ("CRTHREADS_LIB", PathBuf::from(v)))
    });
    if let Some((from, lib)) = explicit {
        let (what, fix) = match from {
            "--lib" => (
                format!("--lib {}", lib.display()),
                "give the path of libcrthreads.so (`make lib` builds it in target/release)",
            ),
            _ => (
                format!("CRTHREADS_LIB={}", lib.display()),
                "point it at libcrthreads.so (`make lib` builds it in target/release), or unset it to use the one \
                 next to this command",
            ),
        };
        return match std::fs::metadata(&lib) {
            Ok(m) if m.is_file() => Ok(std::fs::canonicalize(&lib).unwrap_or(lib)),
            Ok(_) => Err(Failure::new(exit::BAD_INPUT, format!("{what} is not a file: {fix}"))),
            Err(e) => Err(Failure::new(exit::BAD_INPUT, format!("{what}: {e}: {fix}"))),
        };
    }
    let here = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)).unwrap_or_default();
    let candidates = [here.join("libcrthreads.so"), here.join("../lib/libcrthreads.so")];
    for c in &candidates {
        if c.is_file() {
            return Ok(std::fs::canonicalize(c).unwrap_or_else(|_| c.clone()));
        }
    }
    Err(Failure::new(
        exit::UNAVAILABLE,
        format!(
            "libcrthreads.so was not found (looked for {} and {}): build it with `make lib`, or give its path \
             with --lib PATH or CRTHREADS_LIB",
            candidates[0].display(),
            candidates[1].display()
        ),
    ))
}

/// Whether the program has crthreads linked in: its symbol table defines crthreads' functions.
fn links_crthreads(exe: &Path) -> bool {
    let Ok(img) = std::fs::read(exe) else { return false };
    crthreads::sys::elf::function_symbols(&img)
        .is_some_and(|syms| syms.iter().any(|(name, _, size)| *size > 0 && name.starts_with("_ZN9crthreads")))
}

/// `lib` in front of the inherited `LD_PRELOAD` (unless it is there already).
fn preload_value(lib: &Path, inherited: Option<OsString>) -> OsString {
    let mut v = lib.as_os_str().to_os_string();
    if let Some(old) = inherited.filter(|o| !o.is_empty()) {
        let already = old.as_bytes().split(|&b| b == b':' || b == b' ').any(|e| e == lib.as_os_str().as_bytes());
        if already {
            return old;
        }
        v.push(":");
        v.push(old);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_goes_in_front_once() {
        let lib = Path::new("/l/libcrthreads.so");
        assert_eq!(preload_value(lib, None), OsString::from("/l/libcrthreads.so"));
        assert_eq!(preload_value(lib, Some("/x.so".into())), OsString::from("/l/libcrthreads.so:/x.so"));
        assert_eq!(
            preload_value(lib, Some("/x.so /l/libcrthreads.so".into())),
            OsString::from("/x.so /l/libcrthreads.so")
        );
    }

    #[test]
    fn programs_are_searched_in_path() {
        assert!(find_program(OsStr::new("sh")).is_ok_and(|p| p.ends_with("sh")));
        assert_eq!(find_program(OsStr::new("no-such-program-xyz")).unwrap_err().code, exit::NOT_FOUND);
        assert_eq!(find_program(OsStr::new("/")).unwrap_err().code, exit::CANNOT_EXEC);
        assert_eq!(find_program(OsStr::new("./no/such")).unwrap_err().code, exit::NOT_FOUND);
    }

    #[test]
    fn settings_are_checked_by_the_library() {
        let bad = [("policy", "CRTHREADS_POLICY", OsString::from("sometimes"))];
        let e = check_settings(&bad).unwrap_err();
        assert!(e.code == exit::BAD_INPUT && e.msg.contains("--policy") && e.msg.contains("manual"), "{e:?}");
        assert!(check_settings(&[("policy", "CRTHREADS_POLICY", OsString::from("manual"))]).is_ok());
    }
}
