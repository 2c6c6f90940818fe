//! The process-wide runtime: initialisation (fresh or restored), the persistent root, the
//! checkpoint entry point and retirement at a clean exit.
//!
//! Everything here runs in [`heap::internal`] sections, so the runtime's own bookkeeping lives
//! in volatile memory and never changes the persistent heap behind the program's back; only
//! [`root`]'s initialiser, which is the program's code, allocates persistently.
#![allow(unsafe_code)] // Hands out the root object and installs the exit hook.

use std::ffi::CString;
use std::fs::File;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::ckpt::{self, Stats};
use crate::config::{Config, Durability, Overrides};
use crate::error::{Error, Result};
use crate::heap::{self, internal};
use crate::identity::Identity;
use crate::region::Region;
use crate::store::Store;
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
    pub(crate) stats_file: Option<File>,
    retired: bool,
}

/// The initialised runtime.
pub(crate) struct Runtime {
    pub(crate) config: Config,
    pub(crate) region: Region,
    pub(crate) tracker: Box<dyn Tracker>,
    pub(crate) meta: Vec<u8>,
    pub(crate) state: Mutex<State>,
    start: Start,
    root_taken: AtomicBool,
    keep: AtomicBool,
    /// The process that initialised the runtime: a child it forks shares the checkpoint
    /// directory's lock and must neither checkpoint into it nor delete it.
    pid: u32,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INITIALISING: AtomicBool = AtomicBool::new(false);

pub(crate) fn get() -> Result<&'static Runtime> {
    RUNTIME.get().ok_or(Error::NotInitialised)
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

/// Environment variable marking a process that re-executed itself: `<pid>:<dev>:<inode>` of
/// the process and its executable, so that a program it later `exec`s (same pid, other
/// executable) is not mistaken for it.
const REEXEC_MARK: &str = "CRTHREADS_REEXECED";

/// Re-executes the program once with address-space randomisation off, so that the executable
/// and libraries load where they did in the run that wrote the checkpoint. Returns only if no
/// re-execution is needed (or possible); the re-executed process turns randomisation back on for
/// its children.
pub(crate) fn reexec_if_needed(cfg: &Config, argv: Vec<CString>) {
    if !cfg.reexec || argv.is_empty() {
        return;
    }
    let pers = proc::personality();
    let me = match crate::sys::fs::stat(std::path::Path::new("/proc/self/exe")) {
        Ok(st) => format!("{}:{}:{}", std::process::id(), st.dev, st.ino),
        Err(_) => return,
    };
    if pers & proc::ADDR_NO_RANDOMIZE != 0 {
        if std::env::var(REEXEC_MARK).is_ok_and(|v| v == me) {
            // We are the re-executed image: our layout is fixed; children get ASLR back.
            let _ = proc::set_personality(pers & !proc::ADDR_NO_RANDOMIZE);
        }
        return;
    }
    if std::env::var(REEXEC_MARK).is_ok_and(|v| v == me) {
        // We already re-executed and randomisation is still on: the kernel refused.
        sys::write_stderr(&[
            b"crthreads: warning: cannot disable address-space randomisation; restores may be refused\n",
        ]);
        return;
    }
    if proc::set_personality(pers | proc::ADDR_NO_RANDOMIZE).is_err() {
        return;
    }
    // The marker travels in execve's environment, not through set_var (unsound once other
    // threads may read the environment).
    let e = proc::reexec_self_with(&argv, REEXEC_MARK, &me);
    let _ = proc::set_personality(pers);
    sys::write_stderr(&[format!(
        "crthreads: warning: cannot re-execute the program ({e}); continuing with randomisation on\n"
    )
    .as_bytes()]);
}

/// Initialises crthreads: maps the persistent region and restores the newest checkpoint in the
/// configured directory, if there is one. Call it first thing in `main`, before anything is
/// allocated that should persist (it may re-execute the program once; see
/// [`Config::reexec`]).
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
    let cfg = internal(Config::from_env)?;
    init(cfg)
}

/// [`init`] for callers that provide the argument vector (the C library's constructor).
pub fn init_with_argv(cfg: Config, argv: Vec<CString>) -> Result<Start> {
    internal(|| {
        if RUNTIME.get().is_some() || INITIALISING.swap(true, Ordering::AcqRel) {
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
    if proc::secure_execution() {
        return Err(Error::SecureExecution);
    }
    if proc::page_size() != sys::PAGE {
        return Err(Error::Unsupported {
            what: "this machine".into(),
            why: format!("page size {} (crthreads needs 4096)", proc::page_size()),
        });
    }
    cfg.validate()?;
    reexec_if_needed(&cfg, argv);
    crate::failpoint::arm();
    let identity = Identity::current();
    let meta = identity.encode();
    let region = Region::reserve(cfg.base, cfg.capacity)?;
    let mut store = Store::new(&cfg.dir, cfg.base, cfg.capacity, cfg.durability)?;
    let layout = *region.layout();
    let dir = cfg.dir.clone();
    let mut accept = |m: &[u8]| -> Result<()> {
        let saved = Identity::decode(m).map_err(|why| Error::Mismatch { dir: dir.clone(), what: why })?;
        match identity.mismatch(&saved) {
            Some(what) => Err(Error::Mismatch { dir: dir.clone(), what }),
            None => Ok(()),
        }
    };
    // SAFETY: the region was just mapped; nothing references it yet.
    let restored = unsafe { store.restore(&mut accept) }?;
    let discarded: &'static PageSet = Box::leak(Box::new(PageSet::new(region.pages())?));
    let start = match restored {
        Some(r) => {
            // SAFETY: the region holds a verified image; no thread uses the heap yet.
            unsafe { heap::adopt(&layout) }.map_err(|what| Error::Mismatch { dir: cfg.dir.clone(), what })?;
            // Restore reset locks and cache owners in these pages: they differ from the image.
            discarded.insert_range(0, layout.pagemap_start);
            for w in &r.warnings {
                sys::write_stderr(&[format!("crthreads: warning: {w}\n").as_bytes()]);
            }
            if r.fell_back {
                sys::write_stderr(&[
                    format!("crthreads: warning: restored the older checkpoint {} instead\n", r.seq).as_bytes()
                ]);
            }
            Start::Restored { seq: r.seq }
        }
        None => {
            // SAFETY: the region was just mapped and is zeroed.
            unsafe { heap::format(&layout) };
            Start::Fresh
        }
    };
    track::set_discard_sink(layout.base, discarded);
    let stats_file = match &cfg.stats {
        Some(p) => Some(open_stats(p)?),
        None => None,
    };
    // Last fallible step: a started tracker (a signal handler, protected pages) is not undone.
    let tracker = track::start(cfg.tracker, layout.base, layout.capacity, &ckpt::live_extents(&layout))?;
    heap::go_live(&layout);
    let rt = Runtime {
        config: cfg,
        region,
        tracker,
        meta,
        state: Mutex::new(State { store, stats_file, retired: false }),
        start,
        root_taken: AtomicBool::new(false),
        keep: AtomicBool::new(false),
        pid: std::process::id(),
    };
    rt.keep.store(rt.config.keep, Ordering::Relaxed);
    if RUNTIME.set(rt).is_err() {
        return Err(Error::AlreadyInitialised);
    }
    let _ = proc::on_exit(on_exit);
    Ok(start)
}

fn open_stats(p: &std::path::Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(p).map_err(|e| {
        Error::os_at("open (CRTHREADS_STATS)", p, crate::error::Errno(e.raw_os_error().unwrap_or(libc::EIO)))
    })
}

/// Initialises from the environment with `ov` applied, or, if crthreads is already running
/// (the C library initialises itself when it is loaded), confirms the fixed settings (directory,
/// base, capacity) and applies the others. This is what C's `crinit` does.
pub fn init_or_adopt(ov: &Overrides) -> Result<Start> {
    internal(|| {
        let Some(rt) = RUNTIME.get() else {
            let cfg = ov.apply(Config::from_env()?);
            cfg.validate()?;
            return init(cfg);
        };
        let c = &rt.config;
        let conflict = |setting: &'static str, active: String, requested: String| {
            Err(Error::Conflict { setting, active, requested })
        };
        if let Some(d) = ov.dir.as_ref().filter(|d| **d != c.dir) {
            return conflict("dir", c.dir.display().to_string(), d.display().to_string());
        }
        if let Some(b) = ov.base.filter(|&b| b != c.base) {
            return conflict("base", format!("{:#x}", c.base), format!("{b:#x}"));
        }
        if let Some(n) = ov.capacity.filter(|&n| n != c.capacity) {
            return conflict("capacity", c.capacity.to_string(), n.to_string());
        }
        if let Some(k) = ov.keep {
            rt.keep.store(k, Ordering::Relaxed);
        }
        let mut st = rt.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = ov.durability {
            st.store.set_durability(d);
        }
        if let Some(p) = &ov.stats {
            st.stats_file = Some(open_stats(p)?);
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
        if std::env::var_os("CRTHREADS_AUTO").is_some_and(|v| v == "0") {
            return;
        }
        let r = Config::from_env().and_then(|cfg| init_with_argv(cfg, argv));
        if let Err(e) = r {
            sys::write_stderr(&[format!("crthreads: cannot start: {e}\n").as_bytes()]);
            proc::exit_now(1);
        }
    });
}

/// Changes the durability of later checkpoints.
pub fn set_durability(d: Durability) -> Result<()> {
    let rt = get()?;
    rt.state.lock().unwrap_or_else(|p| p.into_inner()).store.set_durability(d);
    Ok(())
}

/// How this run started, once initialised.
pub fn start() -> Result<Start> {
    Ok(get()?.start)
}

/// Whether [`init`] has completed.
pub fn is_initialised() -> bool {
    RUNTIME.get().is_some()
}

/// The active configuration.
pub fn config() -> Result<Config> {
    internal(|| Ok(get()?.config.clone()))
}

/// Takes a checkpoint now. The program must not write the persistent heap from other threads
/// during the call. On failure the previous checkpoint stays valid and the error is returned
/// (and reported on stderr).
pub fn checkpoint() -> Result<Stats> {
    internal(|| {
        let rt = get()?;
        rt.check_owner()?;
        ckpt::take(rt)
    })
}

/// Deletes the checkpoint: the program's work is complete. Called automatically when the
/// program exits with status 0, unless `CRTHREADS_KEEP=1`.
pub fn retire() -> Result<()> {
    internal(|| {
        let rt = get()?;
        rt.check_owner()?;
        let mut st = rt.state.lock().unwrap_or_else(|p| p.into_inner());
        st.retired = true;
        st.store.retire()
    })
}

extern "C" fn on_exit(status: libc::c_int, _arg: *mut libc::c_void) {
    let Some(rt) = RUNTIME.get() else { return };
    if status != 0 || rt.keep.load(Ordering::Relaxed) || std::process::id() != rt.pid {
        return;
    }
    internal(|| {
        let Ok(mut st) = rt.state.try_lock() else { return };
        if st.retired {
            return;
        }
        st.retired = true;
        if let Err(e) = st.store.retire() {
            sys::write_stderr(&[format!("crthreads: warning: cannot remove the checkpoint: {e}\n").as_bytes()]);
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
    let rt = get()?;
    let _ = &rt.root_taken;
    const C_ROOT: u64 = 0xC0C0_C0C0_0000_0001;
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
