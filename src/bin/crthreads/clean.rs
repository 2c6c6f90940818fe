//! `crthreads clean DIR`: removes a checkpoint directory's files (both slots and the lock file),
//! then the directory if that left it empty.
//!
//! It refuses a directory that does not look like a checkpoint directory (none of crthreads'
//! files, or a file of that name that is not crthreads'), and one that a running program holds,
//! naming its pid: it takes the directory's lock itself, as a starting program would, so a
//! program cannot start using the files while they are removed. `--force` removes them from
//! under a running program, whose next checkpoints are then written into files nobody can see.

use std::path::Path;

use crthreads::store::file::{Dir, LOCK_NAME, slot_name};

use super::args::{Opt, Parsed, Spec};
use super::procfs::Proc;
use super::{Failure, Outcome, exit};

pub const SPEC: Spec = Spec {
    name: "clean",
    args: "DIR",
    program: false,
    summary: "remove the checkpoint files in DIR (and DIR, if then empty)",
    about: "Removes slot-0, slot-1 and crthreads.lock from the checkpoint directory DIR, then DIR itself if \
            nothing else is left in it. The program then starts fresh on its next run.\n\n\
            Refuses a directory that holds none of these files or holds a file of one of these names that \
            crthreads did not write, and refuses while a running program holds the directory (naming its \
            pid), unless --force.",
    opts: &[Opt {
        name: "force",
        value: None,
        help: "remove the files even while a running program holds DIR (its later checkpoints are lost)",
    }],
    exits: &[
        "0    the files were removed",
        "65   DIR does not look like a crthreads checkpoint directory",
        "75   a running program holds DIR (see --force)",
    ],
};

pub fn main(p: Parsed) -> Outcome {
    let path = Path::new(&p.args[0]);
    let force = p.flag("force");
    let Some(dir) = Dir::open_existing(path)? else {
        return Err(Failure::new(exit::BAD_INPUT, format!("{} does not exist (nothing to clean)", path.display())));
    };
    let inv = dir.inventory()?;
    if !inv.any() {
        return Err(Failure::new(
            exit::BAD_INPUT,
            format!(
                "{} does not look like a crthreads checkpoint directory (it holds no slot-0, slot-1 or {LOCK_NAME}); \
                 nothing was removed",
                path.display()
            ),
        ));
    }
    let foreign = [(slot_name(0), inv.slots[0]), (slot_name(1), inv.slots[1]), (LOCK_NAME, inv.lock)]
        .into_iter()
        .find(|(_, ours)| *ours == Some(false));
    if let Some((name, _)) = foreign {
        return Err(Failure::new(
            exit::BAD_INPUT,
            format!(
                "{} was not written by crthreads (it is not a regular file or does not start as crthreads' \
                 files do); {} may not be a checkpoint directory, nothing was removed",
                path.join(name).display(),
                path.display()
            ),
        ));
    }
    let dir = if force {
        if let Some(pid) = dir.lock_holder()? {
            eprintln!(
                "crthreads clean: warning: {} is held by {}; removing its files anyway (--force)",
                path.display(),
                who(pid)
            );
        }
        dir
    } else {
        drop(dir);
        match Dir::claim(path, false) {
            Ok(d) => d,
            Err(crthreads::Error::DirectoryBusy { pid, .. }) => {
                let holder = pid.map_or_else(|| "a running process".to_string(), who);
                return Err(Failure::new(
                    exit::TEMP,
                    format!(
                        "refusing to clean {}: {holder} is using it (it holds the directory's lock); stop it \
                         first, or pass --force to remove its checkpoint anyway",
                        path.display()
                    ),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (removed, dir_gone) = dir.remove_all()?;
    // Claiming the directory made a lock file if there was none: only name what was there.
    let existed = |p: &&std::path::PathBuf| p.file_name().is_none_or(|n| n != LOCK_NAME || inv.lock.is_some());
    let names: Vec<String> = removed.iter().filter(existed).map(|p| p.display().to_string()).collect();
    if !names.is_empty() {
        println!("removed {}", names.join(", "));
    }
    if dir_gone {
        println!("removed {}", path.display());
    } else {
        println!("kept {}: it holds other files", path.display());
    }
    Ok(exit::OK)
}

fn who(pid: u32) -> String {
    match (pid, Proc::open(pid)) {
        (0, _) => "a process in another PID namespace".into(),
        (_, Some(p)) => format!("process {pid} ({})", p.name()),
        (_, None) => format!("process {pid}"),
    }
}
