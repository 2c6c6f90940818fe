//! The process-wide runtime: initialisation (fresh, restored, or plain), the persistent root,
//! the checkpoint entry point, and what happens to the checkpoint when the process exits.
//!
//! Everything here runs in [`heap::internal`] sections, so the runtime's own bookkeeping lives
//! in volatile memory and never changes the persistent heap behind the program's back; only
//! [`root`]'s initialiser, which is the program's code, allocates persistently.
//!
//! Start-up, in order: refuse what cannot work (setuid, page size, a statically linked program,
//! whose libc functions crthreads cannot find behind its own); run
//! *plain* if this process descends from a persistent one (see below); resolve the directory;
//! re-execute once without address-space randomisation; claim the directory (a lock that tells
//! a second instance at once which process holds it); take the region's base and capacity from
//! the checkpoint unless they were set; reserve the region; restore; start the tracker.
//!
//! **Plain runs.** A persistent process marks its environment with `CRTHREADS_OWNER=<pid>:<start
//! time>`. A process that inherits the mark but is not that process (a child run by `system`,
//! `popen`, a shell, `exec` of another program) runs as a plain program: the heap stays
//! volatile, nothing is restored, `checkpoint()` writes nothing, and the parent's checkpoint is
//! never touched. A program that `exec`s itself keeps its pid and start time, and stays the
//! persistent program.
//!
//! **At exit.** A clean exit (status 0) retires the checkpoint only if this run used it: it
//! committed a checkpoint, or it restored one and took the root (carried on with the data). A
//! run that restored and left without touching its data (`prog --version`) keeps the
//! checkpoint. A run that neither restored nor wrote anything leaves the directory as it found
//! it (a directory crthreads created for it is removed again).
//!
//! No checkpoint is written once the exit began (one being written is waited for), nor, in a
//! program run through [`main`], once its main persistent thread ended: such a checkpoint would
//! recreate a retired directory, or hold a program with no main thread to resume, which a
//! restore would start over from the beginning. (The exit is refused here, in [`take_now`]; the
//! end of the main thread in the coordinator, `thread::coord::stop`.)
#![allow(unsafe_code)] // Hands out the root object and edits the environment at start-up.

use std::ffi::CString;
use std::marker::PhantomData;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::ckpt::{self, Parts, Scratch, Stats};
use crate::config::{self, Config, Durability, Overrides, TrackerKind};
use crate::error::{Errno, Error, Result};
use crate::heap::{self, internal, meta::RegionLayout};
use crate::identity::Identity;
use crate::region::Region;
use crate::store::file::Dir;
use crate::store::{self, Store};
use crate::sys::{self, proc};
use crate::track::{self, PageSet, Tracker};

/// How this run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No checkpoint existed: the heap is empty.
    Fresh,
    /// The heap was restored from checkpoint `seq`.
    Restored {
        /// Sequence number of the restored checkpoint.
        seq: u64,
    },
    /// This process descends from a persistent program (it inherited `CRTHREADS_OWNER`): it
    /// runs as a plain program, with a volatile heap, and never touches the checkpoint.
    Plain,
}

impl Start {
    /// Whether the heap was restored.
    pub fn is_restored(&self) -> bool {
        matches!(self, Start::Restored { .. })
    }
}

/// Mutable runtime state, serialised by a mutex (one checkpoint at a time).
pub(crate) struct State {
    pub(crate) store: Store,
    stats_file: Option<OwnedFd>,
    scratch: Scratch,
    /// A checkpoint was committed since start (or since the last retire).
    wrote: bool,
}

/// The initialised runtime.
pub(crate) struct Runtime {
    pub(crate) config: Config,
    /// Owns the mapping (never dropped: the runtime lives as long as the process).
    _region: Region,
    /// Where the heap's metadata and area lie in the region.
    pub(crate) layout: RegionLayout,
    pub(crate) tracker: Box<dyn Tracker>,
    /// Why `auto` did not get the userfaultfd tracker, if it did not.
    tracker_fallback: Option<String>,
    pub(crate) meta: Vec<u8>,
    pub(crate) state: Mutex<State>,
    start: Start,
    root_taken: AtomicBool,
    keep: AtomicBool,
    /// The process that initialised the runtime: a child it forks shares the checkpoint
    /// directory and must neither checkpoint into it nor delete it.
    pid: u32,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INITIALISING: AtomicBool = AtomicBool::new(false);
/// This process runs plain (see the module docs).
static PLAIN: AtomicBool = AtomicBool::new(false);
/// The root was taken in a plain run.
static PLAIN_ROOT_TAKEN: AtomicBool = AtomicBool::new(false);
/// The process exits ([`on_exit`] ran): no checkpoint is written any more, so that none
/// recreates the directory the exit retired or replaces the checkpoint the exit kept.
static EXITING: AtomicBool = AtomicBool::new(false);

pub(crate) fn get() -> Result<&'static Runtime> {
    RUNTIME.get().ok_or(Error::NotInitialised)
}

/// Whether this process runs plain.
pub fn is_plain() -> bool {
    PLAIN.load(Ordering::Relaxed)
}

impl Runtime {
    /// Refuses to act on the checkpoint from a forked child.
    fn check_owner(&self) -> Result<()> {
        if std::process::id() != self.pid {
            return Err(Error::Unsupported {
                what: "checkpointing in a forked child".into(),
                why: format!(
                    "the checkpoint in {} belongs to process {}; a child may only exec or exit",
                    self.config.dir.display(),
                    self.pid
                ),
            });
        }
        Ok(())
    }
}

/// Counts the runtime's state lock among the locks this thread holds, so that a checkpoint
/// requested from a signal handler that interrupted one is refused instead of deadlocking.
struct Held;

impl Held {
    fn new() -> Held {
        sys::tls::held_add(1);
        Held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        sys::tls::held_add(-1);
    }
}

// ---------------------------------------------------------------------------------------------
// Ownership marks in the environment.

/// Marks the environment of a persistent process (inherited by everything it runs).
const OWNER_VAR: &str = "CRTHREADS_OWNER";
/// Marks a process that re-executed itself without ASLR: `<pid>:<dev>:<inode>:<comm>` of the
/// process, its executable and its name before the re-execution.
const REEXEC_MARK: &str = "CRTHREADS_REEXECED";

/// This process, as the owner mark names it: pid and start time, which `exec` keeps.
fn owner_mark() -> String {
    format!("{}:{}", std::process::id(), proc::start_time())
}

/// Whether this process inherited the mark of a persistent process it is not.
fn is_descendant() -> bool {
    std::env::var_os(OWNER_VAR).is_some_and(|v| v.to_str() != Some(owner_mark().as_str()))
}

/// Runs `f` on the environment if that is sound: only while this process has one thread
/// (C code may call `getenv` from any thread without a lock).
fn edit_env(f: impl FnOnce()) -> bool {
    let alone = proc::thread_count() == 1;
    if alone {
        f();
    }
    alone
}

/// Re-executes the program once with address-space randomisation off, so that the executable
/// and libraries load where they did in the run that wrote the checkpoint. Returns only if no
/// re-execution is needed (or possible); the re-executed process turns randomisation back on for
/// its children and takes back the name `ps` showed before (an exec of `/proc/self/exe` would
/// show as `exe`).
pub(crate) fn reexec_if_needed(cfg: &Config, argv: Vec<CString>) {
    let pers = proc::personality();
    let Ok(st) = sys::fs::stat(std::path::Path::new("/proc/self/exe")) else { return };
    let me = format!("{}:{}:{}", std::process::id(), st.dev, st.ino);
    let mark = std::env::var(REEXEC_MARK).ok();
    let ours = mark.as_deref().and_then(|m| m.strip_prefix(me.as_str())).and_then(|r| r.strip_prefix(':'));
    if let Some(comm) = ours {
        edit_env(|| {
            // SAFETY: `edit_env` runs this only while the process has a single thread.
            unsafe { proc::remove_env(REEXEC_MARK) }
        });
        if pers & proc::ADDR_NO_RANDOMIZE != 0 {
            // We are the re-executed image: our layout is fixed; children get ASLR back.
            let _ = proc::set_personality(pers & !proc::ADDR_NO_RANDOMIZE);
            proc::set_comm(comm.as_bytes());
            return;
        }
        // Randomisation is on again: the program executed itself since. Fix the layout again.
    }
    if !cfg.reexec || argv.is_empty() || pers & proc::ADDR_NO_RANDOMIZE != 0 {
        return;
    }
    if proc::set_personality(pers | proc::ADDR_NO_RANDOMIZE).is_err()
        || proc::personality() & proc::ADDR_NO_RANDOMIZE == 0
    {
        sys::warn("cannot disable address-space randomisation; this run's checkpoints may not be restorable");
        return;
    }
    let comm = String::from_utf8_lossy(&proc::comm()).into_owned();
    // The marker travels in execve's environment, not through set_var.
    let e = proc::reexec_self_with(&argv, REEXEC_MARK, &format!("{me}:{comm}"));
    let _ = proc::set_personality(pers);
    sys::warn(&format!("cannot re-execute the program ({e}); continuing with randomisation on"));
}

// ---------------------------------------------------------------------------------------------
// Initialisation.

/// Initialises crthreads: maps the persistent region and restores the newest checkpoint in the
/// configured directory, if there is one. Call it first thing in `main`, before anything is
/// allocated that should persist and before starting threads (it may re-execute the program
/// once; see [`Config::reexec`]).
pub fn init(cfg: Config) -> Result<Start> {
    let argv: Vec<CString> = internal(|| {
        std::env::args_os()
            .filter_map(|a| CString::new(std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str())).ok())
            .collect()
    });
    init_with_argv(cfg, argv)
}

/// [`init`] with the configuration read from the `CRTHREADS_*` environment variables.
pub fn init_from_env() -> Result<Start> {
    if is_descendant() {
        return init(Config::default());
    }
    let cfg = internal(Config::from_env)?;
    init(cfg)
}

/// [`init`] for callers that provide the argument vector (the C library's constructor).
pub fn init_with_argv(cfg: Config, argv: Vec<CString>) -> Result<Start> {
    internal(|| {
        if RUNTIME.get().is_some() || is_plain() || INITIALISING.swap(true, Ordering::AcqRel) {
            return Err(Error::AlreadyInitialised);
        }
        let r = init_inner(cfg, argv);
        if r.is_err() {
            INITIALISING.store(false, Ordering::Release);
        }
        r
    })
}

fn init_inner(cfg: Config, argv: Vec<CString>) -> Result<Start> {
    sys::check_stderr();
    if proc::secure_execution() {
        return Err(Error::SecureExecution);
    }
    if proc::page_size() != sys::PAGE {
        return Err(Error::Unsupported {
            what: "this machine".into(),
            why: format!("page size {} (crthreads needs 4096)", proc::page_size()),
        });
    }
    if sys::elf::is_static_executable() {
        return Err(Error::Unsupported {
            what: "a statically linked program".into(),
            why: "crthreads interposes libc functions and finds libc's own through the dynamic loader; \
                  link the program dynamically (without -static): cc prog.c -lcrthreads"
                .into(),
        });
    }
    if is_descendant() {
        PLAIN.store(true, Ordering::Relaxed);
        return Ok(Start::Plain);
    }
    cfg.validate()?;
    let cfg = cfg.resolved()?;
    for v in config::unknown_vars() {
        sys::warn(&format!("{v} is not a crthreads setting and is ignored (known: {})", config::KNOWN_VARS.join(", ")));
    }
    reexec_if_needed(&cfg, argv);
    let mark = owner_mark();
    edit_env(|| {
        // SAFETY: `edit_env` runs this only while the process has a single thread.
        unsafe { proc::set_env(OWNER_VAR, &mark) }
    });
    crate::failpoint::arm();
    let identity = Identity::current();
    let meta = identity.encode();
    let stats_file = match &cfg.stats {
        Some(p) => Some(open_stats(p)?),
        None => None,
    };
    // From here on, every failure gives the claim up and leaves the directory as it was found
    // (a directory holding a checkpoint is kept).
    let dir = Dir::claim(&cfg.dir, cfg.durability == Durability::Sync)?;
    let (base, capacity, origin) = match region_size(&cfg, &dir) {
        Ok(r) => r,
        Err(e) => {
            dir.release_unused();
            return Err(e);
        }
    };
    let region = match Region::reserve(base, capacity) {
        Ok(r) => r,
        Err(e) => {
            dir.release_unused();
            return Err(over_limit(e, capacity, origin));
        }
    };
    let mut store = Store::new(dir, base, capacity, cfg.durability)?;
    let started = start_region(&cfg, &region, &mut store, &identity).and_then(|(start, discarded)| {
        let layout = RegionLayout::new(region.base(), region.len());
        let live = ckpt::live_extents(&layout);
        let scratch = Scratch::new(region.pages(), live, start == Start::Fresh)?;
        // Last fallible step: a started tracker (a signal handler, protected pages) is not undone.
        let tracker = track::start(cfg.tracker, layout.base, layout.capacity, &live)?;
        Ok((start, discarded, scratch, tracker))
    });
    match started {
        Ok((start, discarded, scratch, tracker)) => {
            let start = finish_init(
                cfg,
                region,
                State { store, stats_file, scratch, wrote: false },
                tracker,
                meta,
                start,
                discarded,
            )?;
            if let Start::Restored { seq } = start {
                // The program's code: what it allocates is the program's.
                heap::program(|| crate::hooks::run_restored(seq));
            }
            Ok(start)
        }
        Err(e) => {
            store.release_unused();
            Err(e)
        }
    }
}

/// The region's base and capacity: as configured, else the checkpoint's, else the defaults (the
/// capacity fitted under a finite address-space or data limit). Also says where the capacity
/// came from, for error messages.
fn region_size(cfg: &Config, dir: &Dir) -> Result<(usize, usize, &'static str)> {
    let saved = store::peek_region(dir);
    let base = cfg.base.or(saved.map(|s| s.0 as usize)).unwrap_or(config::DEFAULT_BASE);
    if let Some(c) = cfg.capacity {
        return Ok((base, c, "CRTHREADS_CAPACITY"));
    }
    if let Some((_, c)) = saved {
        return Ok((base, c as usize, "the checkpoint"));
    }
    let Some((headroom, limit, which)) = headroom() else {
        return Ok((base, config::DEFAULT_CAPACITY, "the default"));
    };
    // Half of what is left, so the rest of the program keeps room of its own.
    let fitted =
        (headroom / 2).min(config::DEFAULT_CAPACITY as u64) as usize / config::REGION_ALIGN * config::REGION_ALIGN;
    if fitted < config::MIN_CAPACITY {
        return Err(Error::OverLimit { capacity: config::MIN_CAPACITY * 2, limit, which, origin: "the default" });
    }
    Ok((base, fitted, "the default"))
}

/// The smaller room left under `RLIMIT_AS` and `RLIMIT_DATA`: `(bytes, limit, which)`, or
/// `None` if both are unlimited.
fn headroom() -> Option<(u64, u64, &'static str)> {
    let (vm, data) = proc::vm_usage();
    let a = proc::soft_limit(libc::RLIMIT_AS).map(|l| (l.saturating_sub(vm), l, "ulimit -v"));
    let d = proc::soft_limit(libc::RLIMIT_DATA).map(|l| (l.saturating_sub(data), l, "ulimit -d"));
    match (a, d) {
        (Some(a), Some(d)) => Some(if a.0 <= d.0 { a } else { d }),
        (a, d) => a.or(d),
    }
}

/// A failed reservation, explained by the limits if one is in the way.
fn over_limit(e: Error, capacity: usize, origin: &'static str) -> Error {
    match (&e, headroom()) {
        (Error::Os { errno: Errno(libc::ENOMEM), .. }, Some((room, limit, which))) if room < capacity as u64 => {
            Error::OverLimit { capacity, limit, which, origin }
        }
        _ => e,
    }
}

/// Restores the checkpoint into `region` or formats an empty heap there. Returns how the run
/// starts and the set of pages that differ from the image without a tracked write.
fn start_region(
    cfg: &Config,
    region: &Region,
    store: &mut Store,
    identity: &Identity,
) -> Result<(Start, &'static PageSet)> {
    let layout = RegionLayout::new(region.base(), region.len());
    let dir = cfg.dir.clone();
    let mut accept = |m: &[u8]| -> Result<()> {
        let saved = Identity::decode(m).map_err(|why| Error::Mismatch { dir: dir.clone(), what: why })?;
        match identity.mismatch(&saved) {
            Some(what) => Err(Error::Mismatch { dir: dir.clone(), what }),
            None => Ok(()),
        }
    };
    let mut notes = Vec::new();
    // SAFETY: the region was just mapped; nothing references it yet.
    let restored = unsafe { store.restore(&mut accept, &mut notes) }?;
    for n in &notes {
        sys::warn(n);
    }
    let discarded: &'static PageSet = Box::leak(Box::new(PageSet::new(region.pages())?));
    let start = match restored {
        Some(r) => {
            // SAFETY: the region holds a verified image; no thread uses the heap yet.
            unsafe { heap::adopt(&layout) }.map_err(|what| Error::Mismatch { dir: cfg.dir.clone(), what })?;
            // Restore reset locks and cache owners in these pages: they differ from the image.
            discarded.insert_range(0, layout.pagemap_start);
            for w in &r.warnings {
                sys::warn(w);
            }
            if r.fell_back {
                sys::warn(&format!("restored the older checkpoint {} instead", r.seq));
            }
            Start::Restored { seq: r.seq }
        }
        None => {
            // SAFETY: the region was just mapped and is zeroed.
            unsafe { heap::format(&layout) };
            Start::Fresh
        }
    };
    Ok((start, discarded))
}

/// Publishes the runtime and makes the heap live: nothing here fails.
fn finish_init(
    cfg: Config,
    region: Region,
    state: State,
    tracker: track::Started,
    meta: Vec<u8>,
    start: Start,
    discarded: &'static PageSet,
) -> Result<Start> {
    // The standard library's stdout buffer is process state, not the program's: created here
    // in volatile memory, it is never part of an image, so a rollback cannot free it under std
    // (it would be freed if std created it on first use after a checkpoint).
    let _ = std::io::stdout();
    let layout = RegionLayout::new(region.base(), region.len());
    track::set_discard_sink(layout.base, discarded);
    static EVENTS: heap::events::PageEvents =
        heap::events::PageEvents { fresh: track::note_fresh, discarded: track::note_discarded };
    heap::events::set_page_events(&EVENTS);
    heap::go_live(&layout);
    let keep = cfg.keep;
    let rt = Runtime {
        config: cfg,
        _region: region,
        layout,
        tracker: tracker.tracker,
        tracker_fallback: tracker.fallback.map(|e| e.to_string()),
        meta,
        state: Mutex::new(state),
        start,
        root_taken: AtomicBool::new(false),
        keep: AtomicBool::new(keep),
        pid: std::process::id(),
    };
    if RUNTIME.set(rt).is_err() {
        return Err(Error::AlreadyInitialised);
    }
    if let Err(e) = proc::on_exit(on_exit) {
        sys::warn(&format!(
            "cannot register the exit hook ({e}): a clean exit will keep the checkpoint instead of retiring it"
        ));
    }
    Ok(start)
}

/// Opens the statistics file for appending: a regular file (created 0600) or a character
/// device; a FIFO or socket is refused instead of waited on.
fn open_stats(p: &std::path::Path) -> Result<OwnedFd> {
    let refuse = || Error::Config {
        var: "CRTHREADS_STATS",
        value: p.display().to_string(),
        expected: "a regular file (not a FIFO, socket or directory)".into(),
    };
    let fd = match sys::fs::open_append(p, 0o600) {
        Ok(fd) => fd,
        // A FIFO nobody reads refuses a non-blocking open for writing.
        Err(Errno(libc::ENXIO)) if sys::fs::stat(p).is_ok_and(|st| st.is_fifo_or_socket()) => return Err(refuse()),
        Err(e) => return Err(Error::os_at("open (CRTHREADS_STATS)", p, e)),
    };
    let st = sys::fs::fstat(fd.as_fd()).map_err(|e| Error::os_at("stat (CRTHREADS_STATS)", p, e))?;
    if !(st.is_file() || st.is_char_device()) {
        return Err(refuse());
    }
    Ok(fd)
}

/// Initialises from the environment with `ov` applied, or, if crthreads is already running
/// (the C library initialises itself when it is loaded), confirms the fixed settings (directory,
/// base, capacity) and applies the others. This is what C's `crinit` does.
pub fn init_or_adopt(ov: &Overrides) -> Result<Start> {
    internal(|| {
        if is_plain() {
            return Ok(Start::Plain);
        }
        // Bad fields are reported as such (naming the crattr field) before anything else.
        ov.apply(Config::default())?;
        let Some(rt) = RUNTIME.get() else {
            if is_descendant() {
                return init(Config::default());
            }
            let cfg = ov.apply(Config::from_env()?)?;
            return init(cfg);
        };
        let c = &rt.config;
        let conflict = |setting: &'static str, active: String, requested: String| {
            Err(Error::Conflict { setting, active, requested })
        };
        if let Some(d) = ov.dir.as_ref() {
            let d = Config::default().dir(d).resolved()?.dir;
            if d != c.dir {
                return conflict("dir", c.dir.display().to_string(), d.display().to_string());
            }
        }
        let layout = &rt.layout;
        if let Some(b) = ov.base.filter(|&b| b != layout.base) {
            return conflict("base", format!("{:#x}", layout.base), format!("{b:#x}"));
        }
        if let Some(n) = ov.capacity.filter(|&n| n != layout.capacity) {
            return conflict("capacity", layout.capacity.to_string(), n.to_string());
        }
        if let Some(k) = ov.keep {
            rt.keep.store(k, Ordering::Relaxed);
        }
        let _held = Held::new();
        let mut st = rt.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = ov.durability {
            st.store.set_durability(d);
        }
        if let Some(p) = &ov.stats {
            let p = Config::default().stats(p).resolved()?.stats.unwrap_or_default();
            st.stats_file = Some(open_stats(&p)?);
        }
        Ok(rt.start)
    })
}

/// Initialisation when the C library is loaded: from the environment, unless
/// `CRTHREADS_AUTO=0` asks the program to call `crinit` itself. A configuration error or an
/// unusable checkpoint ends the process with status 1 and a message, since running without
/// the checkpoint would silently lose the program's progress.
pub fn auto_init(argv: Vec<CString>) {
    heap::install_fork_handlers();
    internal(|| {
        if is_descendant() {
            PLAIN.store(true, Ordering::Relaxed);
            return;
        }
        let r = config::auto_from_env().and_then(|auto| match auto {
            true => Config::from_env().and_then(|cfg| init_with_argv(cfg, argv)).map(drop),
            false => Ok(()),
        });
        if let Err(e) = r {
            sys::write_stderr(&[format!("crthreads: cannot start: {e}\n").as_bytes()]);
            proc::exit_now(1);
        }
    });
}

/// Changes the durability of later checkpoints.
pub fn set_durability(d: Durability) -> Result<()> {
    if is_plain() {
        return Ok(());
    }
    let rt = get()?;
    let _held = Held::new();
    rt.state.lock().unwrap_or_else(|p| p.into_inner()).store.set_durability(d);
    Ok(())
}

/// How this run started, once initialised.
pub fn start() -> Result<Start> {
    if is_plain() {
        return Ok(Start::Plain);
    }
    Ok(get()?.start)
}

/// Whether [`init`] has completed.
pub fn is_initialised() -> bool {
    RUNTIME.get().is_some() || is_plain()
}

/// The persistent region of this run: its base address and its size in bytes (from the
/// configuration, the checkpoint, or the defaults).
pub fn region() -> Result<(usize, usize)> {
    let l = &get()?.layout;
    Ok((l.base, l.capacity))
}

/// The tracker this run uses, and, if `CRTHREADS_TRACKER=auto` could not use userfaultfd, the
/// kernel's reason (it then uses mprotect).
pub fn tracker() -> Result<(TrackerKind, Option<String>)> {
    let rt = get()?;
    Ok((rt.tracker.kind(), rt.tracker_fallback.clone()))
}

/// The active configuration.
pub fn config() -> Result<Config> {
    internal(|| Ok(get()?.config.clone()))
}

/// Takes a checkpoint now. On failure the previous checkpoint stays valid and the error is
/// returned (and reported on stderr, repeated failures rate-limited).
///
/// In a program run through [`main`], the calling persistent thread parks and the coordinator
/// gathers every thread at a safepoint first; the call returns once a checkpoint including the
/// caller's state was attempted. Without persistent threads, the checkpoint is taken on the
/// calling thread at once, and no other thread may write the persistent heap meanwhile. In a
/// plain run (see [`Start::Plain`]) it writes nothing. Called from a signal handler that
/// interrupted crthreads in the same thread (inside `malloc`, `free` or a checkpoint), it is
/// refused with [`Error::Reentered`] rather than deadlocking.
pub fn checkpoint() -> Result<Stats> {
    if is_plain() {
        return Ok(Stats::default());
    }
    if sys::tls::held() > 0 || sys::tls::busy() > 0 {
        return Err(Error::Reentered { call: "checkpoint()" });
    }
    if crate::thread::coord::active() {
        if crate::thread::native::slot().is_none() {
            return Err(Error::Unsupported {
                what: "checkpoint() from a thread crthreads did not create".into(),
                why: "only persistent threads take part in checkpoints: start it with crthreads::thread::spawn".into(),
            });
        }
        return crate::thread::checkpoint_from_thread();
    }
    let rt = get()?;
    crate::hooks::run_before();
    let r = internal(|| take_now(rt, &[], &|_| {}));
    crate::hooks::run_after(r.as_ref());
    r
}

/// Takes a checkpoint on the calling thread, with the stacks of the parked persistent threads,
/// and reports it (statistics file, or a rate-limited warning on failure).
/// A check made before each checkpoint (the C runtime's: no descriptor it cannot restore is
/// open); an error refuses the checkpoint like a failed one.
static VETO: std::sync::OnceLock<fn() -> Result<()>> = std::sync::OnceLock::new();

/// Sets the check made before each checkpoint (once).
pub(crate) fn set_checkpoint_veto(f: fn() -> Result<()>) {
    let _ = VETO.set(f);
}

/// Whether C programs' checkpoints ignore descriptors they cannot restore
/// (`CRTHREADS_UNSUPPORTED_FDS=ignore`).
pub(crate) fn ignores_unsupported_fds() -> bool {
    get().is_ok_and(|rt| rt.config.ignore_unsupported_fds)
}

fn take_now(rt: &Runtime, stacks: &[ckpt::StackRange], fill: &dyn Fn(&mut Stats)) -> Result<Stats> {
    rt.check_owner()?;
    let _held = Held::new();
    let mut guard = rt.state.lock().unwrap_or_else(|p| p.into_inner());
    // Acquire: pairs with the Release in `on_exit`, which then waits for this lock.
    if EXITING.load(Ordering::Acquire) {
        return Err(Error::Unsupported { what: "a checkpoint".into(), why: "the process is exiting".into() });
    }
    let st = &mut *guard;
    let prev = st.store.seq();
    let r = VETO.get().map_or(Ok(()), |f| f()).and_then(|()| {
        ckpt::take(Parts {
            layout: &rt.layout,
            store: &mut st.store,
            tracker: &*rt.tracker,
            meta: &rt.meta,
            scratch: &mut st.scratch,
            stacks,
        })
    });
    match r {
        Ok(mut stats) => {
            fill(&mut stats);
            st.wrote = true;
            if let Some(f) = st.stats_file.as_ref() {
                let line = stats.to_json(rt.tracker.kind()) + "\n";
                if let Err(e) = sys::fs::write_all(f.as_fd(), line.as_bytes()) {
                    sys::warn(&format!("cannot write statistics: {e}; no more statistics will be written"));
                    st.stats_file = None;
                }
            }
            Ok(stats)
        }
        Err(e) => {
            sys::warn_limited(
                "checkpoint-failed",
                &format!(
                    "checkpoint {} failed: {e}; {}; the program continues and the next checkpoint retries",
                    prev + 1,
                    if prev > 0 {
                        format!("checkpoint {prev} stays intact")
                    } else {
                        "no checkpoint exists yet".into()
                    }
                ),
            );
            Err(e)
        }
    }
}

/// Rolls the program back to its last checkpoint, in this process.
///
/// In a program run through [`main`], every persistent thread is gathered at a safepoint (as
/// for a checkpoint), the heap, the thread table and every thread's stack are read back from
/// the newest valid checkpoint, and every thread of the checkpoint resumes where it was parked
/// then; threads started since are gone. The call does not return: the caller resumes at its
/// own safepoint of the checkpoint (a `checkpoint()` call there returns statistics with
/// `restored` set).
/// The `after_restore` hooks run before any thread resumes. Threads crthreads did not create
/// must not use the persistent heap meanwhile (they are not rolled back, and memory they hold
/// from it is rolled back under them).
///
/// Without persistent threads, the heap alone is rolled back on the calling thread, and the
/// call returns the checkpoint's sequence number: pointers into the heap kept outside it (on
/// the stack, in statics) must be read again from the root. No other thread may use the heap
/// meanwhile.
///
/// Fails, changing nothing, if there is no checkpoint, in a plain run, from a thread crthreads
/// did not create (threads mode), or if the threads cannot be gathered in time
/// ([`Error::Abandoned`]). A checkpoint that cannot be read once memory was overwritten ends
/// the process (its memory is no longer whole): run the program again to restore from the
/// other slot.
pub fn rollback() -> Result<u64> {
    if is_plain() {
        return Err(Error::Unsupported {
            what: "rollback() in a plain run".into(),
            why: "this process descends from a persistent program and has no checkpoint of its own".into(),
        });
    }
    if sys::tls::held() > 0 || sys::tls::busy() > 0 {
        return Err(Error::Reentered { call: "rollback()" });
    }
    let rt = get()?;
    if crate::thread::coord::active() {
        if crate::thread::native::slot().is_none() {
            return Err(Error::Unsupported {
                what: "rollback() from a thread crthreads did not create".into(),
                why: "call it from a persistent thread (started with crthreads::thread::spawn)".into(),
            });
        }
        return crate::thread::rollback_from_thread();
    }
    let seq = internal(|| {
        let _held = Held::new();
        rollback_memory(rt)
    })?;
    crate::heap::forget_cache();
    crate::hooks::run_restored(seq);
    Ok(seq)
}

/// Reads the newest valid checkpoint back into the region, in place; returns its sequence
/// number. Nothing else may touch the region meanwhile (threads parked, or none). Fails
/// without changing memory if there is no checkpoint; ends the process if reading fails after
/// memory was cleared.
pub(crate) fn rollback_memory(rt: &Runtime) -> Result<u64> {
    rt.check_owner()?;
    let mut guard = rt.state.lock().unwrap_or_else(|p| p.into_inner());
    let st = &mut *guard;
    if !st.store.has_checkpoint() {
        return Err(Error::NoValidCheckpoint { dir: rt.config.dir.clone(), reasons: Vec::new() });
    }
    // Everything live now is rewritten or cleared: the checkpoint's extents lie within them
    // (the heap only grows).
    let live = ckpt::live_extents(&rt.layout);
    let end = live.iter().map(|e| e.end() as usize).max().unwrap_or(0) * sys::PAGE;
    // With the mprotect tracker the pages are opened (and recorded written) first: the reads
    // below write them from inside the kernel.
    track::prepare_rewrite(rt.layout.base, end);
    // SAFETY: region memory nobody uses meanwhile (see above); its contents are replaced.
    if let Err(e) = unsafe { sys::mman::discard(rt.layout.base, end) } {
        return Err(Error::os("madvise (rollback)", e));
    }
    let identity = Identity::current();
    let dir = rt.config.dir.clone();
    let mut accept = |m: &[u8]| -> Result<()> {
        let saved = Identity::decode(m).map_err(|why| Error::Mismatch { dir: dir.clone(), what: why })?;
        match identity.mismatch(&saved) {
            Some(what) => Err(Error::Mismatch { dir: dir.clone(), what }),
            None => Ok(()),
        }
    };
    let mut notes = Vec::new();
    // SAFETY: the region is mapped and was just cleared; nobody references it meanwhile.
    let restored = match unsafe { st.store.restore_in_place(&mut accept, &mut notes) } {
        Ok(Some(r)) => r,
        Ok(None) => sys::fatal("rollback: the checkpoint vanished while memory was being replaced"),
        Err(e) => sys::fatal(&format!(
            "rollback: reading the checkpoint failed after memory was cleared ({e}); the process \
             cannot continue: run the program again to restore"
        )),
    };
    for n in notes.iter().chain(&restored.warnings) {
        sys::warn(n);
    }
    // SAFETY: the region holds a verified image; nobody uses the heap meanwhile.
    if let Err(what) = unsafe { heap::adopt(&rt.layout) } {
        sys::fatal(&format!("rollback: the restored heap does not fit this process: {what}"));
    }
    let live = ckpt::live_extents(&rt.layout);
    match Scratch::new(rt._region.pages(), live, false) {
        Ok(s) => st.scratch = s,
        Err(e) => sys::fatal(&format!("rollback: {e}")),
    }
    Ok(restored.seq)
}

/// Runs the program's main logic `f` as a persistent thread, so that the whole program resumes
/// after a crash, not just its heap: initialises crthreads from the environment (see
/// [`init_from_env`]), starts the checkpoint coordinator with the configured policy, and runs
/// `f` on a persistent stack; after a restore, it resumes every thread of the checkpoint where
/// it was parked instead (`f` is not called again). Returns `f`'s value; a panic in the main
/// thread continues in the caller.
///
/// The heap becomes persistent here: memory allocated before this call (a `String` from
/// `std::env::args`, say) is volatile, and a restored run has none of it. So `f` must not
/// capture values that own such memory; read arguments and the environment inside `f`.
/// (Freeing such a pointer after a restore stops the program with a message saying this.)
///
/// ```no_run
/// #[global_allocator]
/// static A: crthreads::CrAlloc = crthreads::CrAlloc;
///
/// fn main() {
///     let sum = crthreads::main(|| {
///         let hs: Vec<_> = (0..4u64).map(|i| crthreads::thread::spawn(move || i * i)).collect();
///         hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
///     })
///     .unwrap_or_else(|e| {
///         eprintln!("crthreads: {e}");
///         std::process::exit(1)
///     });
///     println!("{sum}");
/// }
/// ```
pub fn main<F, T>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let start = init_from_env()?;
    if start == Start::Plain {
        return Ok(f());
    }
    let table = start_threads()?;
    match crate::thread::run_main(table, start.is_restored(), f) {
        Ok(v) => Ok(v),
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Starts threads mode (the checkpoint coordinator, with the configured policy) on an
/// initialised runtime; returns the thread table's address. After a restore, the program
/// carries on with the restored threads: a clean exit retires the checkpoint.
pub(crate) fn start_threads() -> Result<usize> {
    let rt = get()?;
    let table = crate::thread::table::Table::new(&rt.layout).base();
    // The coordinator takes no checkpoint once the main persistent thread returned
    // (`coord::stop`): one would hold no main thread to resume, and a restore would start the
    // program over.
    let take: Box<crate::thread::coord::TakeFn> = Box::new(|stacks, fill| internal(|| take_now(get()?, stacks, fill)));
    let roll: Box<crate::thread::coord::RollFn> = Box::new(|| internal(|| rollback_memory(get()?)));
    internal(|| crate::thread::coord::start(table, rt.config.policy, rt.config.checkpoint_on_term, take, roll))?;
    if let Start::Restored { seq } = rt.start {
        rt.root_taken.store(true, Ordering::Relaxed);
        crate::thread::coord::set_resumed_from(seq);
    }
    Ok(table)
}

/// Deletes the checkpoint: the program's work is complete. Called automatically when the
/// program exits with status 0 after using its checkpoint, unless `CRTHREADS_KEEP=1`. A later
/// [`checkpoint`] starts a new, complete one.
pub fn retire() -> Result<()> {
    if is_plain() {
        return Ok(());
    }
    internal(|| {
        let rt = get()?;
        rt.check_owner()?;
        let _held = Held::new();
        let mut st = rt.state.lock().unwrap_or_else(|p| p.into_inner());
        st.wrote = false;
        st.scratch.forget();
        st.store.retire()
    })
}

extern "C" fn on_exit(status: libc::c_int, _arg: *mut libc::c_void) {
    let Some(rt) = RUNTIME.get() else { return };
    if std::process::id() != rt.pid {
        return;
    }
    // Release: a checkpoint that takes the state lock after this sees it (see `take_now`).
    EXITING.store(true, Ordering::Release);
    internal(|| {
        // Wait for a checkpoint being written to finish; but not on a lock this thread holds
        // (an exit from a hook, or from a signal handler that interrupted a checkpoint).
        let guard = match sys::tls::held() {
            0 => Some(rt.state.lock().unwrap_or_else(|p| p.into_inner())),
            _ => rt.state.try_lock().ok(),
        };
        let Some(mut st) = guard else { return };
        let used = st.wrote || (rt.start.is_restored() && rt.root_taken.load(Ordering::Relaxed));
        if status == 0 && used && !rt.keep.load(Ordering::Relaxed) && st.store.has_checkpoint() {
            if let Err(e) = st.store.retire() {
                sys::warn(&format!("cannot remove the checkpoint: {e}"));
            }
        } else if !st.store.has_checkpoint() {
            st.store.release_unused();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The persistent root.

/// The program's persistent root object: found again after a restore.
pub struct Root<T: 'static> {
    ptr: NonNull<T>,
    _not_send: PhantomData<*mut T>,
}

impl<T> core::ops::Deref for Root<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the root object lives in the persistent heap for the rest of the process and
        // this handle is its only access path (the root can be taken once per run).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::DerefMut for Root<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

fn type_hash<T>() -> u64 {
    let name = core::any::type_name::<T>();
    u64::from(crc32c::crc32c(name.as_bytes())) << 32 | crc32c::crc32c_append(0x5eed, name.as_bytes()) as u64
}

/// Takes the persistent root: the object restored from the last checkpoint, or, on a fresh
/// start, `init()` moved into the persistent heap. Can be taken once per run.
///
/// # Safety
/// Everything reachable from the root must live in the persistent heap or in the program's
/// static memory: no pointers to memory allocated before [`init`], to the stack, to
/// thread-locals, and no handles to OS resources (files, sockets, threads), since none of
/// those exist after a restore. The type must be the same one the checkpoint was taken with
/// (checked by name, size and alignment).
pub unsafe fn root<T: 'static>(init: impl FnOnce() -> T) -> Result<Root<T>> {
    if is_plain() {
        if PLAIN_ROOT_TAKEN.swap(true, Ordering::AcqRel) {
            return Err(Error::RootTaken);
        }
        let p = Box::into_raw(Box::new(init()));
        return Ok(Root { ptr: NonNull::new(p).ok_or(Error::OutOfMemory)?, _not_send: PhantomData });
    }
    let rt = get()?;
    if rt.root_taken.swap(true, Ordering::AcqRel) {
        return Err(Error::RootTaken);
    }
    let (size, align, ty) = (core::mem::size_of::<T>(), core::mem::align_of::<T>(), type_hash::<T>());
    match heap::root() {
        Some((addr, s, a, t)) => {
            if (s, a, t) != (size, align, ty) {
                return Err(Error::RootType {
                    expected: format!("{} ({size} bytes, align {align})", core::any::type_name::<T>()),
                    found: format!("an object of {s} bytes, align {a}, of another type"),
                });
            }
            Ok(Root { ptr: NonNull::new(addr as *mut T).ok_or(Error::OutOfMemory)?, _not_send: PhantomData })
        }
        None => {
            let b = Box::new(init());
            let p = Box::into_raw(b);
            heap::set_root(p as usize, size, align, ty);
            Ok(Root { ptr: NonNull::new(p).ok_or(Error::OutOfMemory)?, _not_send: PhantomData })
        }
    }
}

/// The root for C: an untyped block of `size` bytes, zeroed on a fresh start. Returns the
/// existing root if its size matches.
pub fn root_bytes(size: usize) -> Result<NonNull<u8>> {
    const C_ROOT: u64 = 0xC0C0_C0C0_0000_0001;
    if is_plain() {
        static PLAIN_C_ROOT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let cur = PLAIN_C_ROOT.load(Ordering::Acquire);
        if cur != 0 {
            return NonNull::new(cur as *mut u8).ok_or(Error::OutOfMemory);
        }
        let p = heap::oom(heap::alloc(size.max(1), 16, true))?;
        PLAIN_C_ROOT.store(p.as_ptr() as usize, Ordering::Release);
        return Ok(p);
    }
    let rt = get()?;
    rt.root_taken.store(true, Ordering::Relaxed);
    if let Some((addr, s, _, t)) = heap::root() {
        if s != size || t != C_ROOT {
            return Err(Error::RootType {
                expected: format!("block of {size} bytes"),
                found: format!("a block of {s} bytes{}", if t == C_ROOT { "" } else { " of a Rust type" }),
            });
        }
        return NonNull::new(addr as *mut u8).ok_or(Error::OutOfMemory);
    }
    let p = heap::oom(heap::alloc(size.max(1), 16, true))?;
    heap::set_root(p.as_ptr() as usize, size, 16, C_ROOT);
    Ok(p)
}
