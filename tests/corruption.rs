//! Restore from damaged checkpoint directories.
//!
//! Every case starts the same way: a `create` child (this binary, run as a child process)
//! initialises crthreads in a fresh directory, keeps a `Vec<u64>` of known values in the
//! persistent root and commits three checkpoints, each with another generation of the values.
//! Checkpoint 1 goes to slot 0 and is mirrored into slot 1, checkpoint 2 to slot 1 and
//! checkpoint 3 to slot 0, so slot 0 ends up holding the newest checkpoint (3) and slot 1 the
//! older one (2). The child keeps the directory (`Config::keep`) and exits.
//!
//! The parent then damages the directory (bit flips in each part of the newest slot, truncation,
//! deletion, swapped files, a meta block from another build, foreign ownership, loose modes) and
//! runs a `verify` child, which restores and prints one line saying what it found:
//! `restored seq=<n> data=gen<g>` (the generation whose values the root holds), `fresh`, or
//! `error kind=<Error variant>` (and the error's text on stderr, exit status 3). Each case
//! asserts that exact outcome, and the text of the warning or error. Before each restore, the
//! parent verifies the directory read-only (`store::verify`) and asserts that the verification
//! predicts the restore's outcome.
//!
//! Only one crthreads runtime may exist per process, which is why every restore runs in a child.
//! Children re-execute themselves once with address-space randomisation off (the library's
//! default), so that the create and verify children load at the same addresses.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crthreads::identity::Identity;
use crthreads::store::format::{self, Geometry, HEADER_LEN, Header, META_OFF, SUMMARY_OFF};
use crthreads::store::verify;
use crthreads::{Config, CrAlloc, Error, Start};

mod common;
use common::{Rng, TempDir, child, role, run_tests, wait_or_kill};

#[global_allocator]
static A: CrAlloc = CrAlloc;

/// Region size: the smallest crthreads accepts, so slot files stay small.
const CAPACITY: usize = 32 << 20;
/// Checkpoints the `create` child commits.
const GENERATIONS: u64 = 3;
/// Values in the root vector (80 KB: a large allocation spanning 20 pages).
const VALUES: usize = 10_000;
/// Exit status of a `verify` child whose `init` failed.
const INIT_FAILED: i32 = 3;
/// Environment variable passing the checkpoint directory to the children.
const DIR_VAR: &str = "CRT_CORRUPTION_DIR";
/// Longest a child may run before it is killed (a hang is a failure, not a timing assertion).
const CHILD_LIMIT: Duration = Duration::from_secs(120);

/// The values generation `gen` stores (checkpoint `gen` holds generation `gen`).
fn values(generation: u64) -> Vec<u64> {
    let mut r = Rng(0xC0FF_EE00 ^ generation.wrapping_mul(0x9E37_79B9));
    (0..VALUES).map(|_| r.next()).collect()
}

fn config(dir: &Path) -> Config {
    Config::default().dir(dir).capacity(CAPACITY).keep(true)
}

// ---------------------------------------------------------------------------------------------
// Children.

fn child_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(DIR_VAR).expect("the parent sets the checkpoint directory"))
}

/// Commits checkpoints 1..=GENERATIONS, checkpoint `g` holding `values(g)`.
fn create_child() {
    let start = crthreads::init(config(&child_dir())).expect("init of the create child");
    assert_eq!(start, Start::Fresh, "the create child must start from an empty directory");
    // SAFETY: the root holds a Vec whose buffer lives in the persistent heap (CrAlloc).
    let mut data = unsafe { crthreads::root(Vec::<u64>::new) }.expect("root");
    for g in 1..=GENERATIONS {
        data.clear();
        data.extend(values(g));
        let st = crthreads::checkpoint().expect("checkpoint");
        assert_eq!(st.seq, g, "checkpoint sequence number");
    }
    println!("created {GENERATIONS}");
}

/// Restores checkpoint GENERATIONS, stores generation GENERATIONS + 1 and commits it.
fn resume_child() {
    let start = crthreads::init(config(&child_dir())).expect("init of the resume child");
    assert_eq!(start, Start::Restored { seq: GENERATIONS }, "the resume child restores the newest checkpoint");
    // SAFETY: as in `create_child`.
    let mut data = unsafe { crthreads::root(Vec::<u64>::new) }.expect("root");
    assert!(*data == values(GENERATIONS), "restored data");
    data.clear();
    data.extend(values(GENERATIONS + 1));
    let st = crthreads::checkpoint().expect("checkpoint");
    assert_eq!(st.seq, GENERATIONS + 1, "checkpoint sequence number");
    println!("resumed {GENERATIONS} -> {}", st.seq);
}

/// Restores and prints what it found (see the module docs).
fn verify_child() {
    match crthreads::init(config(&child_dir())) {
        Ok(Start::Fresh) => println!("fresh"),
        Ok(Start::Plain) => println!("plain"),
        Ok(Start::Restored { seq }) => {
            // SAFETY: as in `create_child`; the type is the one the checkpoint was taken with.
            let data = unsafe { crthreads::root(Vec::<u64>::new) }.expect("root after restore");
            let generation = (1..=GENERATIONS + 1).find(|&g| *data == values(g));
            match generation {
                Some(g) => println!("restored seq={seq} data=gen{g}"),
                None => println!("restored seq={seq} data=unknown (len {})", data.len()),
            }
        }
        Err(e) => {
            let kind = match e {
                Error::NoValidCheckpoint { .. } => "NoValidCheckpoint",
                Error::Mismatch { .. } => "Mismatch",
                Error::Insecure { .. } => "Insecure",
                Error::Corrupt { .. } => "Corrupt",
                _ => "other",
            };
            println!("error kind={kind}");
            eprintln!("{e}");
            std::process::exit(INIT_FAILED);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parent helpers.

/// A checkpoint directory made by a `create` child, inside a temporary directory.
struct Ckpt {
    _tmp: TempDir,
    dir: PathBuf,
}

impl Ckpt {
    fn new(tag: &str) -> Ckpt {
        let tmp = TempDir::new(tag);
        let dir = tmp.join("ckpt");
        let out = run_child("create", &dir);
        assert!(out.status.success(), "create child failed: {out:?}");
        assert_eq!(out.stdout.trim(), format!("created {GENERATIONS}"), "create child output: {out:?}");
        let c = Ckpt { _tmp: tmp, dir };
        // The premise of every case: slot 0 holds checkpoint 3, slot 1 checkpoint 2.
        assert_eq!(c.header(0).seq, GENERATIONS, "newest checkpoint in slot-0");
        assert_eq!(c.header(1).seq, GENERATIONS - 1, "older checkpoint in slot-1");
        c
    }

    /// An empty directory (mode 0700), as crthreads would create it.
    fn empty(tag: &str) -> Ckpt {
        let tmp = TempDir::new(tag);
        let dir = tmp.join("ckpt");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        Ckpt { _tmp: tmp, dir }
    }

    fn slot(&self, s: usize) -> PathBuf {
        self.dir.join(format!("slot-{s}"))
    }

    fn header(&self, s: usize) -> Header {
        let b = fs::read(self.slot(s)).unwrap();
        format::decode_header(&b, s as u32).unwrap_or_else(|e| panic!("slot-{s} header: {e}"))
    }

    /// Restores in a `verify` child; first, verifies the directory read-only in this process
    /// (`store::verify`, the checks `crthreads verify` makes) and asserts that it predicts the
    /// restore: the same checkpoint, the same fall-back, the same kind of failure.
    fn verify(&self) -> Outcome {
        let opts = verify::Options { pages: true, ..Default::default() };
        let predicted = verify::verify(&self.dir, &opts);
        let o = run_child("verify", &self.dir);
        let restored = o.stdout.trim().strip_prefix("restored seq=").and_then(|r| r.split(' ').next()?.parse().ok());
        match (&predicted, restored, o.stdout.trim()) {
            (Ok(r), Some(seq), _) => {
                assert_eq!(
                    r.chosen_header().map(|h| h.seq),
                    Some(seq),
                    "verify predicts another checkpoint: {r:?}\n{o:?}"
                );
                let fell_back = o.stderr.contains("restored the older checkpoint");
                assert_eq!(r.fell_back, fell_back, "verify predicts another fall-back: {r:?}\n{o:?}");
            }
            (Ok(r), None, "fresh") => assert!(r.chosen.is_none() && r.error.is_none(), "{r:?}\n{o:?}"),
            (Ok(r), None, "error kind=NoValidCheckpoint") => {
                assert!(matches!(r.error, Some(Error::NoValidCheckpoint { .. })) && r.chosen.is_none(), "{r:?}\n{o:?}")
            }
            (Ok(r), None, "error kind=Corrupt") => {
                assert!(matches!(r.error, Some(Error::Corrupt { .. })) && r.chosen.is_none(), "{r:?}\n{o:?}")
            }
            (Err(Error::Insecure { .. }), None, "error kind=Insecure") => {}
            // The binary's identity is the restoring program's to judge, not the files'.
            (Ok(r), None, "error kind=Mismatch") => assert!(r.chosen.is_some(), "{r:?}\n{o:?}"),
            _ => panic!("verify predicted {predicted:?}, the restore did: {o:?}"),
        }
        o
    }

    /// Slot `s`'s table entry for page `p`.
    fn entry(&self, s: usize, p: u64) -> format::Entry {
        let f = File::open(self.slot(s)).unwrap();
        let mut b = [0u8; 8];
        let at = geometry().chunk_off(p / format::GROUP_PAGES as u64) + (p % format::GROUP_PAGES as u64) * 8;
        f.read_exact_at(&mut b, at).unwrap();
        format::Entry::unpack(u64::from_le_bytes(b))
    }

    /// Flips bit `bit` of byte `at` of slot `s`.
    fn flip(&self, s: usize, at: u64, bit: u8) {
        let f = OpenOptions::new().read(true).write(true).open(self.slot(s)).unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 1 << bit;
        f.write_all_at(&b, at).unwrap();
    }

    fn truncate(&self, s: usize, len: u64) {
        OpenOptions::new().write(true).open(self.slot(s)).unwrap().set_len(len).unwrap();
    }

    fn files(&self) -> [Vec<u8>; 2] {
        [fs::read(self.slot(0)).unwrap(), fs::read(self.slot(1)).unwrap()]
    }
}

#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn run_child(role: &str, dir: &Path) -> Outcome {
    let mut c = child(role)
        .env(DIR_VAR, dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = c.stdout.take().unwrap();
    let mut err = c.stderr.take().unwrap();
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let t_out = std::thread::spawn(move || std::io::read_to_string(&mut out).unwrap());
    let t_err = std::thread::spawn(move || std::io::read_to_string(&mut err).unwrap());
    let (status, was_killed) = wait_or_kill(&mut c, CHILD_LIMIT);
    let stdout = t_out.join().unwrap();
    let stderr = t_err.join().unwrap();
    assert!(!was_killed, "{role} child did not finish in {CHILD_LIMIT:?}; stdout {stdout:?}, stderr {stderr:?}");
    Outcome { status, stdout, stderr }
}

/// The older checkpoint (2) was restored in place of the damaged newest one (3), with a warning
/// on stderr that names slot-0 and says `why`.
fn assert_fell_back(o: &Outcome, why: &str) {
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "restored seq=2 data=gen2", "restored checkpoint and data: {o:?}");
    assert!(o.stderr.contains("crthreads: warning:"), "no warning on stderr: {o:?}");
    assert!(o.stderr.contains("slot-0"), "the warning does not name slot-0: {o:?}");
    assert!(o.stderr.contains(why), "the warning does not say {why:?}: {o:?}");
    assert!(o.stderr.contains("restored the older checkpoint 2"), "the warning does not name checkpoint 2: {o:?}");
}

/// Checkpoint `seq` (holding generation `seq`) was restored, without any warning.
fn assert_restored_quietly(o: &Outcome, seq: u64) {
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), format!("restored seq={seq} data=gen{seq}"), "restored checkpoint and data: {o:?}");
    assert!(!o.stderr.contains("warning"), "unexpected warning: {o:?}");
}

/// `init` failed with the error `kind`, whose text contains every string of `texts`.
fn assert_error(o: &Outcome, kind: &str, texts: &[&str]) {
    assert_eq!(o.status.code(), Some(INIT_FAILED), "verify child exit status (not a crash): {o:?}");
    assert_eq!(o.stdout.trim(), format!("error kind={kind}"), "error kind: {o:?}");
    for t in texts {
        assert!(o.stderr.contains(t), "the error does not say {t:?}: {o:?}");
    }
}

fn assert_no_valid_checkpoint(o: &Outcome, c: &Ckpt, slot0: &str, slot1: &str) {
    let dir = format!("no valid checkpoint in {}", c.dir.display());
    assert_error(o, "NoValidCheckpoint", &[&dir, "remove", "to start fresh"]);
    assert!(
        o.stderr.lines().any(|l| l.contains("slot-0") && l.contains(slot0)),
        "slot-0 is not reported as {slot0:?}: {o:?}"
    );
    assert!(
        o.stderr.lines().any(|l| l.contains("slot-1") && l.contains(slot1)),
        "slot-1 is not reported as {slot1:?}: {o:?}"
    );
}

fn geometry() -> Geometry {
    Geometry::new(CAPACITY as u64)
}

// ---------------------------------------------------------------------------------------------
// Bit flips in the newest slot: restore falls back to the older one.

fn intact_directory_restores_the_newest() {
    let c = Ckpt::new("corrupt-intact");
    let before = c.files();
    assert_restored_quietly(&c.verify(), GENERATIONS);
    assert!(c.files() == before, "a restore without checkpoint() changed the slot files");
}

fn flipped_header_bit_falls_back() {
    let c = Ckpt::new("corrupt-header");
    c.flip(0, 24, 0); // the low bit of the sequence number
    assert_fell_back(&c.verify(), "header checksum mismatch");
}

fn flipped_meta_bit_falls_back() {
    let c = Ckpt::new("corrupt-meta");
    let h = c.header(0);
    assert!(h.meta_len > 20, "meta block of {} bytes", h.meta_len);
    c.flip(0, META_OFF + 20, 3);
    assert_fell_back(&c.verify(), "meta block is truncated or its checksum does not match");
}

fn flipped_summary_bit_falls_back() {
    let c = Ckpt::new("corrupt-summary");
    assert!(c.header(0).ngroups >= 1);
    c.flip(0, SUMMARY_OFF + 1, 5); // group 0's chunk crc
    assert_fell_back(&c.verify(), "summary checksum mismatch");
}

fn flipped_table_chunk_bit_falls_back() {
    let c = Ckpt::new("corrupt-table");
    c.flip(0, geometry().chunk_off(0) + 3, 7); // page 0's crc in group 0's chunk
    assert_fell_back(&c.verify(), "table chunk 0 is truncated or its checksum does not match");
}

fn flipped_data_page_bit_falls_back() {
    let c = Ckpt::new("corrupt-page");
    let h = c.header(0);
    // The heap area is the last live extent; damage a stored page (not a hole) in its middle.
    let heap = *h.extents.last().unwrap();
    assert!(heap.npages >= 2, "heap extent {heap:?}");
    let mid = heap.first + heap.npages / 2;
    let p = (mid..heap.end()).chain(heap.first..mid).find(|&p| !c.entry(0, p).hole).expect("a stored heap page");
    c.flip(0, geometry().page_off(p) + 1000, 1);
    assert_fell_back(&c.verify(), &format!("page {p} checksum mismatch"));
}

fn flipped_table_chunk_bit_in_older_slot_keeps_the_newest() {
    let c = Ckpt::new("corrupt-older-table");
    c.flip(1, geometry().chunk_off(0) + 3, 7);
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "restored seq=3 data=gen3", "restored checkpoint and data: {o:?}");
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("slot-1") && o.stderr.contains("table chunk 0"),
        "no warning naming slot-1's damaged table chunk: {o:?}"
    );
    // The newest checkpoint was restored: a warning must not claim that an older one was.
    assert!(!o.stderr.contains("restored the older checkpoint"), "the warning misreports the restore: {o:?}");
}

fn damaged_page_in_older_slot_is_rewritten_by_the_next_checkpoint() {
    let c = Ckpt::new("corrupt-older-heal");
    // A page no later checkpoint changes: one of the thread-cache pages of the first extent.
    let first = c.header(1).extents[0];
    assert!(first.npages > 40, "first extent {first:?}");
    let p = first.first + 40;
    c.flip(1, geometry().page_off(p) + 64, 2);
    let out = run_child("resume", &c.dir);
    assert!(out.status.success(), "resume child failed: {out:?}");
    assert_eq!(out.stdout.trim(), format!("resumed {GENERATIONS} -> {}", GENERATIONS + 1), "{out:?}");
    // Checkpoint 4 went to slot-1, over the damaged page: it must restore as committed.
    assert_eq!(c.header(1).seq, GENERATIONS + 1, "checkpoint 4 in slot-1");
    assert_restored_quietly(&c.verify(), GENERATIONS + 1);
}

// ---------------------------------------------------------------------------------------------
// Both slots damaged: no valid checkpoint, a clear error, no crash.

fn both_headers_flipped_is_no_valid_checkpoint() {
    let c = Ckpt::new("corrupt-both-headers");
    c.flip(0, 24, 0);
    c.flip(1, 40, 4);
    let o = c.verify();
    assert_no_valid_checkpoint(&o, &c, "header checksum mismatch", "header checksum mismatch");
}

fn both_pages_flipped_is_no_valid_checkpoint() {
    let c = Ckpt::new("corrupt-both-pages");
    let p = c.header(0).extents[0].first;
    c.flip(0, geometry().page_off(p) + 8, 0);
    c.flip(1, geometry().page_off(p) + 8, 0);
    let o = c.verify();
    let why = format!("page {p} checksum mismatch");
    assert_no_valid_checkpoint(&o, &c, &why, &why);
}

// ---------------------------------------------------------------------------------------------
// Truncation and deletion.

fn slot_truncated_in_its_pages_falls_back() {
    let c = Ckpt::new("corrupt-trunc-pages");
    let h = c.header(0);
    let last = h.extents.last().unwrap();
    let p = last.end() - 1; // the last live page
    c.truncate(0, geometry().page_off(p) + 100);
    assert_fell_back(&c.verify(), &format!("truncated: page {p} is missing"));
}

fn slot_truncated_in_its_header_falls_back() {
    let c = Ckpt::new("corrupt-trunc-header");
    c.truncate(0, 100);
    assert_fell_back(&c.verify(), "header truncated: 100 of 4096 bytes");
}

fn both_slots_truncated_is_no_valid_checkpoint() {
    let c = Ckpt::new("corrupt-trunc-both");
    c.truncate(0, 100);
    c.truncate(1, 2000);
    let o = c.verify();
    assert_no_valid_checkpoint(&o, &c, "header truncated: 100 of 4096", "header truncated: 2000 of 4096");
}

fn deleted_newest_slot_falls_back() {
    let c = Ckpt::new("corrupt-del-newest");
    fs::remove_file(c.slot(0)).unwrap();
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "restored seq=2 data=gen2", "restored checkpoint and data: {o:?}");
    // The fall-back is not silent: the missing slot may have held a newer checkpoint.
    assert!(
        o.stderr
            .contains("slot-0 is missing (deleted?); restored checkpoint 2 from slot-1, which may not be the newest"),
        "{o:?}"
    );
}

fn deleted_older_slot_restores_the_newest() {
    let c = Ckpt::new("corrupt-del-older");
    fs::remove_file(c.slot(1)).unwrap();
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert!(o.stderr.contains("slot-1 is missing (deleted?)"), "{o:?}");
    assert_eq!(o.stdout.trim(), "restored seq=3 data=gen3", "restored checkpoint and data: {o:?}");
}

fn both_slots_deleted_is_a_fresh_start() {
    let c = Ckpt::new("corrupt-del-both");
    fs::remove_file(c.slot(0)).unwrap();
    fs::remove_file(c.slot(1)).unwrap();
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "fresh", "an emptied directory: {o:?}");
}

// ---------------------------------------------------------------------------------------------
// Swapped and copied slot files.

fn swapped_slots_are_detected() {
    let c = Ckpt::new("corrupt-swap");
    let tmp = c.dir.join("swap");
    fs::rename(c.slot(0), &tmp).unwrap();
    fs::rename(c.slot(1), c.slot(0)).unwrap();
    fs::rename(&tmp, c.slot(1)).unwrap();
    let o = c.verify();
    assert_eq!(o.stdout.trim(), "error kind=Corrupt", "error kind: {o:?}");
    assert!(
        o.stderr.contains("the two slot files were swapped")
            && o.stderr.contains("rename them back (slot-0 to slot-1 and slot-1 to slot-0) to recover"),
        "the message says how to recover, not that the state is lost: {o:?}"
    );
    assert!(!o.stderr.contains("cannot be recovered"), "{o:?}");
    // Renaming them back indeed recovers the newest checkpoint.
    fs::rename(c.slot(0), &tmp).unwrap();
    fs::rename(c.slot(1), c.slot(0)).unwrap();
    fs::rename(&tmp, c.slot(1)).unwrap();
    let o = c.verify();
    assert_eq!(o.stdout.trim(), "restored seq=3 data=gen3", "after renaming back: {o:?}");
}

fn older_slot_copied_over_newest_is_detected() {
    let c = Ckpt::new("corrupt-copy-older");
    fs::copy(c.slot(1), c.slot(0)).unwrap();
    // slot-0 now holds slot 1's checkpoint 2: rejected as swapped; slot-1 still restores.
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "restored seq=2 data=gen2", "restored checkpoint and data: {o:?}");
}

fn newest_slot_copied_over_older_is_detected() {
    let c = Ckpt::new("corrupt-copy-newest");
    fs::copy(c.slot(0), c.slot(1)).unwrap();
    // slot-1 now holds slot 0's header: rejected; slot-0's checkpoint 3 restores.
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "restored seq=3 data=gen3", "restored checkpoint and data: {o:?}");
}

// ---------------------------------------------------------------------------------------------
// A checkpoint written by another build.

/// Rewrites slot `s`'s meta block as if another build of the executable had written it, and
/// re-seals the header (meta crc, header crc) so that only the identity differs.
fn forge_other_build(c: &Ckpt, s: usize) {
    let path = c.slot(s);
    let mut h = c.header(s);
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let mut meta = vec![0u8; h.meta_len as usize];
    f.read_exact_at(&mut meta, META_OFF).unwrap();
    let mut id = Identity::decode(&meta).expect("the meta block of an intact slot decodes");
    let exe = id.objects.first_mut().expect("the identity lists the executable");
    assert!(!exe.build_id.is_empty(), "the test binary has no build-id; the case needs one");
    for b in exe.build_id.iter_mut() {
        *b = !*b;
    }
    let forged = id.encode();
    assert_eq!(forged.len(), meta.len(), "same-length build-id, same-length meta");
    f.write_all_at(&forged, META_OFF).unwrap();
    h.meta_len = forged.len() as u32;
    h.meta_crc = crc32c::crc32c(&forged);
    f.write_all_at(&format::encode_header(&h)[..], 0).unwrap();
    format::decode_header(&fs::read(&path).unwrap(), s as u32).expect("the forged header validates");
}

fn checkpoint_of_another_build_is_a_mismatch() {
    let c = Ckpt::new("corrupt-other-build");
    forge_other_build(&c, 0);
    forge_other_build(&c, 1);
    let before = c.files();
    let o = c.verify();
    assert_error(
        &o,
        "Mismatch",
        &["cannot be restored by this process", "it was written by another build of the program", "build-id"],
    );
    assert!(c.files() == before, "a refused restore changed the slot files");
}

// ---------------------------------------------------------------------------------------------
// Ownership and modes: refused before anything is read.

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), None).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_insecure(c: &Ckpt, path: &Path, reason: &str) {
    let before = c.files();
    let o = c.verify();
    assert_error(&o, "Insecure", &[&format!("refusing to use {}", path.display()), reason, "must be private"]);
    assert!(c.files() == before, "a refused restore changed the slot files");
}

fn foreign_owner_is_insecure() {
    if !is_root() {
        println!("notice: foreign_owner_is_insecure skipped: chown needs root");
        return;
    }
    let c = Ckpt::new("corrupt-owner-dir");
    chown(&c.dir, NOBODY);
    assert_insecure(&c, &c.dir, "it is owned by uid 65534, not by you (uid 0)");
    for s in 0..2 {
        let c = Ckpt::new("corrupt-owner-slot");
        chown(&c.slot(s), NOBODY);
        assert_insecure(&c, &c.slot(s), "it is owned by uid 65534, not by you (uid 0)");
    }
}

fn writable_by_group_or_others_is_insecure() {
    for (mode, what) in [(0o720, "720"), (0o702, "702"), (0o777, "777")] {
        let c = Ckpt::new("corrupt-mode-dir");
        chmod(&c.dir, mode);
        assert_insecure(&c, &c.dir, &format!("its mode {what} lets group or others write it"));
    }
    for (s, mode, what) in [(0, 0o620, "620"), (1, 0o602, "602"), (0, 0o666, "666")] {
        let c = Ckpt::new("corrupt-mode-slot");
        chmod(&c.slot(s), mode);
        assert_insecure(&c, &c.slot(s), &format!("its mode {what} lets group or others write it"));
    }
}

// ---------------------------------------------------------------------------------------------
// Directories that never held a committed checkpoint: a fresh start.

fn empty_directory_is_a_fresh_start() {
    let c = Ckpt::empty("corrupt-empty");
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "fresh", "an empty directory: {o:?}");
    assert!(!o.stderr.contains("warning"), "unexpected warning: {o:?}");
}

fn first_checkpoint_never_committed_is_a_fresh_start() {
    let c = Ckpt::empty("corrupt-writing-first");
    let writing = Header::writing(0, 1, 7, crthreads::config::DEFAULT_BASE as u64, CAPACITY as u64);
    let b = format::encode_header(&writing);
    assert_eq!(b.len(), HEADER_LEN);
    let mut f = File::options().write(true).create_new(true).open(c.slot(0)).unwrap();
    std::io::Write::write_all(&mut f, &b[..]).unwrap();
    chmod(&c.slot(0), 0o600);
    let o = c.verify();
    assert!(o.status.success(), "verify child failed: {o:?}");
    assert_eq!(o.stdout.trim(), "fresh", "a slot-0 holding only checkpoint 1's WRITING header: {o:?}");
    assert!(
        o.stderr.contains("holds no committed checkpoint (the first checkpoint was interrupted); starting fresh"),
        "the fresh start is explained: {o:?}"
    );
}

fn main() {
    match role().as_deref() {
        Some("create") => return create_child(),
        Some("verify") => return verify_child(),
        Some("resume") => return resume_child(),
        Some(r) => panic!("unknown role {r}"),
        None => {}
    }
    run_tests(&[
        ("intact_directory_restores_the_newest", intact_directory_restores_the_newest),
        ("flipped_header_bit_falls_back", flipped_header_bit_falls_back),
        ("flipped_meta_bit_falls_back", flipped_meta_bit_falls_back),
        ("flipped_summary_bit_falls_back", flipped_summary_bit_falls_back),
        ("flipped_table_chunk_bit_falls_back", flipped_table_chunk_bit_falls_back),
        ("flipped_data_page_bit_falls_back", flipped_data_page_bit_falls_back),
        (
            "flipped_table_chunk_bit_in_older_slot_keeps_the_newest",
            flipped_table_chunk_bit_in_older_slot_keeps_the_newest,
        ),
        (
            "damaged_page_in_older_slot_is_rewritten_by_the_next_checkpoint",
            damaged_page_in_older_slot_is_rewritten_by_the_next_checkpoint,
        ),
        ("both_headers_flipped_is_no_valid_checkpoint", both_headers_flipped_is_no_valid_checkpoint),
        ("both_pages_flipped_is_no_valid_checkpoint", both_pages_flipped_is_no_valid_checkpoint),
        ("slot_truncated_in_its_pages_falls_back", slot_truncated_in_its_pages_falls_back),
        ("slot_truncated_in_its_header_falls_back", slot_truncated_in_its_header_falls_back),
        ("both_slots_truncated_is_no_valid_checkpoint", both_slots_truncated_is_no_valid_checkpoint),
        ("deleted_newest_slot_falls_back", deleted_newest_slot_falls_back),
        ("deleted_older_slot_restores_the_newest", deleted_older_slot_restores_the_newest),
        ("both_slots_deleted_is_a_fresh_start", both_slots_deleted_is_a_fresh_start),
        ("swapped_slots_are_detected", swapped_slots_are_detected),
        ("older_slot_copied_over_newest_is_detected", older_slot_copied_over_newest_is_detected),
        ("newest_slot_copied_over_older_is_detected", newest_slot_copied_over_older_is_detected),
        ("checkpoint_of_another_build_is_a_mismatch", checkpoint_of_another_build_is_a_mismatch),
        ("foreign_owner_is_insecure", foreign_owner_is_insecure),
        ("writable_by_group_or_others_is_insecure", writable_by_group_or_others_is_insecure),
        ("empty_directory_is_a_fresh_start", empty_directory_is_a_fresh_start),
        ("first_checkpoint_never_committed_is_a_fresh_start", first_checkpoint_never_committed_is_a_fresh_start),
    ]);
}
