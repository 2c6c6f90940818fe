//! The README's examples, built and run as a user would, then killed and resumed.
//!
//! Every ```` ```c ```` and ```` ```rust ```` block of `README.md` is a program, read from the
//! file at test time. Its instructions are the blocks that follow it, before the next program:
//!
//! - C: an `sh` block with `make lib`, then a `cc … <file>.c … -o <name>` line, then a
//!   `./<name>` line that runs it. The test runs the `cc` line itself through `sh` from the
//!   repository root, with the file names replaced by temporary paths, against the library
//!   [`lib_dir::lib_dir`] finds (built elsewhere, it runs from a stand-in root whose
//!   `target/release` is that library's directory); then the run line, unchanged, from the
//!   temporary directory.
//! - Rust: a `toml` block with a `crthreads = { path = "…" }` dependency line, and an `sh` block
//!   with a `cargo run …` line. The test writes a project with that line, the path pointing at
//!   this checkout (and this checkout's `Cargo.lock`, so no network is needed), builds it with the
//!   run line's `run` turned into `build`, then runs the run line unchanged, all with one
//!   `CARGO_TARGET_DIR` under the target dir, so the library is compiled once.
//!
//! A build must succeed without warnings. A program must print a line ending in `at step <n>`
//! on stderr when it starts (`n` = where its work resumes), its result on stdout at the end, and
//! checkpoint often enough to be killed between checkpoints ([`MIN_CHECKPOINTS`]). A program
//! that resumes as a whole (its threads carry on where they were, through `crthreads::main`)
//! says `… at step 0` when it starts fresh and `… resumed from checkpoint <seq>` when restored;
//! `seq` must be the last checkpoint its killed predecessor committed.
//!
//! Each program runs once to completion in a fresh checkpoint directory (its stdout is the
//! expected result), then in another fresh directory it is killed with SIGKILL [`KILLS`] times,
//! the first time right after its first checkpoint, then after a random number of checkpoints
//! plus a random part of the time between two, and each time run again with the same command
//! until it completes. A run's checkpoints are seen through `CRTHREADS_STATS` (one line per
//! committed checkpoint, watched with inotify; the run's exit is watched with a pidfd). The
//! run command is started in its own process group, and the kill goes to the group (under
//! `cargo run`, cargo has exec'd the program). Checks: every kill lands mid-run; a resumed run
//! starts past the step its killed predecessor started at (never over from zero) and continues
//! the checkpoint sequence; the final stdout equals the uninterrupted run's; the checkpoint
//! directory is gone after the clean exit.
//!
//! Blocks labelled `text`, `sh`, `toml` (or anything but `c` and `rust`) are not programs. A C
//! or Rust block that is not meant to be built must say so with the word `fragment` in its info
//! string (```` ```c,fragment ````); an unlabelled block (which rustdoc would compile as Rust)
//! and a program without its instructions fail the test. `README_TEST_SEED=<n>` replays a kill
//! schedule.

#[path = "../common/mod.rs"]
mod common;
#[path = "../../cabi/tests/common/lib_dir.rs"]
mod lib_dir;
mod parse;
mod run;

use std::time::Duration;

use common::{Rng, TempDir, run_tests};
use parse::{Build, Example, examples};
use run::{Kill, build, repo, run};

/// How many times each program is killed before it may complete.
const KILLS: usize = 5;
/// The fewest checkpoints an uninterrupted run must take for [`KILLS`] kills to land mid-run.
const MIN_CHECKPOINTS: usize = 50;
/// A run longer than this is killed and reported as hung.
const LIMIT: Duration = Duration::from_secs(120);

fn main() {
    run_tests(&[
        ("readme_blocks_and_their_instructions_are_found", parse::blocks_and_instructions_are_found),
        ("readme_blocks_without_language_or_instructions_fail", parse::unlabelled_or_uninstructed_blocks_fail),
        ("readme_examples_build_and_resume_after_kills", readme_examples_resume_after_kills),
        ("a_checkpoint_between_state_and_position_is_caught", double_count_is_caught),
    ]);
}

fn seed() -> u64 {
    match std::env::var("README_TEST_SEED") {
        Ok(v) => v.trim().parse().expect("README_TEST_SEED must be an integer"),
        Err(_) => {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            t.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    }
}

/// Builds `ex`, runs it uninterrupted, then killed [`KILLS`] times and resumed. `Err` lists
/// every check that failed.
fn check_example(ex: &Example, rng: &mut Rng) -> Result<(), String> {
    let tmp = TempDir::new("readme");
    let name = ex.name();
    let t = std::time::Instant::now();
    let built = build(ex, tmp.path())?;
    println!("  {name}: built in {:.1?}", t.elapsed());

    let plain = tmp.join("uninterrupted.ckpt");
    let base = run(ex, &built, tmp.path(), "uninterrupted", &plain, None)?;
    let what = format!("{name}, uninterrupted run");
    if !base.status.success() {
        return Err(format!("{what} failed\n{}", base.report()));
    }
    let expected = base.stdout.clone();
    if expected.trim().is_empty() {
        return Err(format!("{what} printed no result on stdout\n{}", base.report()));
    }
    let c = base.seqs.len();
    if c < MIN_CHECKPOINTS {
        return Err(format!(
            "{what} took {c} checkpoints; it needs at least {MIN_CHECKPOINTS} to be killed {KILLS} times mid-run \
             (make it run longer or checkpoint more often)"
        ));
    }
    let mut problems = Vec::new();
    let start = base.start_step(&what)?;
    if start != 0 || base.seqs.first() != Some(&1) {
        problems.push(format!("{what}: a fresh run starts at step {start} with checkpoint {:?}", base.seqs.first()));
    }
    if plain.exists() {
        problems.push(format!("{what}: the checkpoint directory survived a clean exit"));
    }
    let interval = (base.times[c - 1] - base.times[0]) / (c as u32 - 1);
    println!("  {name}: uninterrupted: {c} checkpoints, one every {interval:.1?}, stdout {:?}", expected.trim());

    let ckpt = tmp.join("killed.ckpt");
    let per_run = c / (KILLS + 1);
    let mut prev: Option<(u64, u64)> = None; // the killed run's start step and last checkpoint seen
    for n in 0..=KILLS {
        // The first kill right after the first checkpoint; then after 1..=per_run checkpoints,
        // at once or a random part of a checkpoint interval later.
        let kill = (n < KILLS).then(|| match n {
            0 => Kill { after: 1, delay: Duration::ZERO },
            _ => Kill {
                after: 1 + rng.below(per_run as u64) as usize,
                delay: if rng.below(2) == 0 {
                    Duration::ZERO
                } else {
                    interval.mul_f64(rng.below(1000) as f64 / 1000.0)
                },
            },
        });
        let label = format!("run{n}");
        let out = run(ex, &built, tmp.path(), &label, &ckpt, kill)?;
        let what = format!("{name}, run {n} (after {n} kills)");
        let resumed = out.resumed_from();
        // A whole-program resume has no step of its own: its position is the checkpoint it
        // resumed from (which must lie past where the killed run started, as a step must).
        let step = match (resumed, prev) {
            (Some(seq), Some((_, prev_seq))) => {
                // The last checkpoint seen, or one committed just before the kill whose
                // statistics line was not written.
                if seq != prev_seq && seq != prev_seq + 1 {
                    problems.push(format!(
                        "{what}: resumed from checkpoint {seq}, but the killed run's last was {prev_seq}"
                    ));
                }
                seq
            }
            _ => out.start_step(&what)?,
        };
        if out.seqs.windows(2).any(|w| w[1] != w[0] + 1) {
            problems.push(format!("{what}: checkpoints not consecutive: {:?}", out.seqs));
        }
        match prev {
            None if step != 0 => problems.push(format!("{what}: a fresh run starts at step {step}")),
            None => {}
            Some((prev_step, prev_seq)) => {
                if step <= prev_step {
                    problems.push(format!(
                        "{what}: resumed at step {step}, not past step {prev_step}, where the killed run started \
                         and then checkpointed: its progress was lost, or the program started over"
                    ));
                }
                if let Some(&first) = out.seqs.first() {
                    // The restored checkpoint is the last one seen, or one committed just before
                    // the kill whose statistics line was not written.
                    if first != prev_seq + 1 && first != prev_seq + 2 {
                        problems.push(format!(
                            "{what}: its first checkpoint is {first}, but the killed run's last was {prev_seq}: not restored"
                        ));
                    }
                }
            }
        }
        match kill {
            Some(k) => {
                if !out.killed() {
                    return Err(format!(
                        "{what}: ended before the kill {:?} after its checkpoint {} could land\n{}",
                        k.delay,
                        k.after,
                        out.report()
                    ));
                }
                let last = *out.seqs.last().ok_or_else(|| format!("{what}: killed, but no checkpoint seen"))?;
                println!(
                    "  {name}: run {n} started at step {step}, killed {:?} after its checkpoint {} (last seen: {last})",
                    k.delay, k.after
                );
                prev = Some((step, last));
            }
            None => {
                if !out.status.success() {
                    return Err(format!("{what} failed\n{}", out.report()));
                }
                println!("  {name}: run {n} started at step {step} and completed: stdout {:?}", out.stdout.trim());
                if out.stdout != expected {
                    problems.push(format!(
                        "{what}: the result differs from the uninterrupted run's: {:?}, expected {:?}",
                        out.stdout, expected
                    ));
                }
                if ckpt.exists() {
                    problems.push(format!("{what}: the checkpoint directory survived a clean exit"));
                }
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

fn readme_examples_resume_after_kills() {
    let md = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let (examples, fragments) = examples(&md).unwrap_or_else(|e| panic!("{e}"));
    assert!(!examples.is_empty(), "README.md has no C or Rust program");
    if !fragments.is_empty() {
        println!("  fragments (not built) at README.md lines {fragments:?}");
    }
    let seed = seed();
    println!("  kill schedule seed {seed} (replay with README_TEST_SEED={seed})");
    let mut rng = Rng(seed);
    let failures: Vec<String> = examples.iter().filter_map(|ex| check_example(ex, &mut rng).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} README examples failed:\n\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n\n")
    );
}

/// The README's C example as it once was: the checkpoint comes after the sum but before the
/// position advances, so a resumed run adds the step it resumes at a second time.
const DOUBLE_COUNT: &str = r#"#include <stdio.h>
#include <checkpoint_restore.h>

struct state { long next; double sum; };

static double work(long i) {
    double x = 0;
    for (long k = 1; k <= 10000; k++) x += 1.0 / (double)(i + k);
    return x;
}

int main(void) {
    struct state *s = crthreads_root_get(sizeof *s);
    if (!s) return 1;
    fprintf(stderr, "%s at step %ld\n", restore() ? "resumed" : "started", s->next);
    for (; s->next < 100000; s->next++) {
        s->sum += work(s->next);
        if (s->next % 1000 == 0) checkpoint();
    }
    printf("sum %.17g\n", s->sum);
    return 0;
}
"#;

/// The kill schedule catches a program that checkpoints its state apart from its position:
/// built and run with the README's C instructions, the double-counting program fails with a
/// result that differs.
fn double_count_is_caught() {
    let md = std::fs::read_to_string(repo().join("README.md")).expect("read README.md");
    let (examples, _) = examples(&md).unwrap_or_else(|e| panic!("{e}"));
    let c = examples.into_iter().find(|e| matches!(e.build, Build::C { .. })).expect("README.md has a C program");
    let mutant = Example { code: DOUBLE_COUNT.to_string(), ..c };
    let seed = seed();
    println!("  kill schedule seed {seed} (replay with README_TEST_SEED={seed})");
    match check_example(&mutant, &mut Rng(seed)) {
        Ok(()) => panic!("the double-counting program passed the kill and resume checks"),
        Err(e) => {
            println!("  caught:\n{e}");
            assert!(e.contains("the result differs"), "caught, but not by its result: {e}");
        }
    }
}
