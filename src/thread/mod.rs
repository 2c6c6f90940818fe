//! Persistent threads: threads whose stacks, records and results live in the persistent region,
//! so that a restore resumes every one of them where the last checkpoint found it.
//!
//! The API follows `std::thread` ([`spawn`], [`Builder`], [`JoinHandle`], [`scope`],
//! [`current`], [`sleep`]). A program opts in by running its main logic through
//! [`crate::main`], which makes it a persistent thread too.
//!
//! # How a thread runs
//!
//! Each persistent thread has a record in the region's thread table (`table`) and a stack
//! allocated from the persistent heap, whose lowest page is a guard (`PROT_NONE`). An OS thread,
//! created with the C library's own `pthread_create`, serves it (`native`): it switches to the
//! persistent stack (`arch`) and back whenever the thread stops at a safepoint. Spawn, exit,
//! join and detach are changes of the record, made by running threads only, so a checkpoint
//! sees each of them whole.
//!
//! # Stacks and the trackers
//!
//! Stacks are not write-tracked. A system call writing into a write-protected stack would fail
//! with EFAULT, a tracking fault on the stack would need a second stack to be handled on, and
//! most of a stack below the stack pointer holds nothing. Instead, at each checkpoint every
//! thread is parked and its stack frozen: the live part (from its saved stack pointer to the
//! top) is written whole, and the rest is recorded as a hole. The guard page stays `PROT_NONE`
//! (the mprotect tracker is told to leave stacks and guards alone), so running off the end of a
//! stack still kills the process.
//!
//! # Safepoints
//!
//! A thread stops for a checkpoint when it releases its last crthreads lock while one is due
//! (`park::released`), when it blocks in a crthreads call at lock depth 0 (`park::wait`,
//! [`JoinHandle::join`], [`sleep`]), or when the coordinator preempts it with a signal while it
//! runs the program's own code at depth 0 (`preempt`). After a restore, a thread resumes from
//! that safepoint: a blocking call returns as a spurious wake-up, a release returns normally.
//! A call that blocks outside crthreads can be made a safepoint with [`blocking`]: it runs on the
//! native side while the thread counts as parked, and is repeated after a restore.
//!
//! # Rollback
//!
//! [`crate::rollback`] parks every thread as for a checkpoint, reads the checkpoint back into
//! the region in place, and lets every native side resume the region side it finds in its
//! record (a generation number tells them a rollback happened): threads of the checkpoint that
//! have no OS thread get one, OS threads whose thread did not exist then retire.
#![allow(unsafe_code)] // Context switches and raw thread records.

pub(crate) mod arch;
pub mod c;
pub(crate) mod coord;
#[doc(hidden)] // public for the loom models only
pub mod handshake;
pub(crate) mod native;
pub(crate) mod park;
pub(crate) mod preempt;
mod symbols;
pub(crate) mod table;

use core::sync::atomic::{AtomicU32, Ordering};
use std::any::Any;
use std::marker::PhantomData;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

pub use coord::Policy;
use native::{Request, Resume};
use park::Wake;
pub use preempt::request_signal;
use table::{DETACHED, EXITED, LIVE, Table};

use crate::sys::PAGE;

/// Default stack size of a persistent thread (as Rust's default).
pub const DEFAULT_STACK: usize = 2 << 20;
/// Smallest stack a persistent thread gets.
pub const MIN_STACK: usize = 64 << 10;

/// The persistent threads a checkpoint image holds, read from its thread table (for tools that
/// inspect slot files, such as `crthreads status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageThreads {
    /// Threads that were alive (running or parked) when the checkpoint was taken, the main
    /// thread of `crate::main` included.
    pub live: usize,
    /// Threads whose closure had returned and whose result nobody had joined yet.
    pub exited: usize,
}

impl ImageThreads {
    /// Where the thread table lies in every region: its first page (a region page index) and
    /// its length in pages; these are the pages to read from an image.
    pub fn table_pages() -> (u64, u64) {
        table::image_pages()
    }

    /// Counts the threads in the bytes of the table pages ([`ImageThreads::table_pages`]) as a
    /// checkpoint holds them. A program that never started persistent threads has none.
    pub fn count(table: &[u8]) -> ImageThreads {
        let (live, exited) = table::count_image(table);
        ImageThreads { live, exited }
    }
}

/// A thread's result: its return value, or the payload of the panic that ended it.
pub type Result<T> = std::thread::Result<T>;

/// A persistent thread's identifier: the same before and after a restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(NonZeroU64);

impl ThreadId {
    fn new(slot: usize, generation: u32) -> ThreadId {
        ThreadId(NonZeroU64::new(((generation as u64) << 32) | (slot as u64 + 1)).expect("non-zero"))
    }
    /// The id as a number (stable across restores).
    pub fn as_u64(&self) -> NonZeroU64 {
        self.0
    }
}

/// A handle to a persistent thread.
#[derive(Clone, Debug)]
pub struct Thread {
    id: ThreadId,
    name: Option<String>,
}

impl Thread {
    /// The thread's id.
    pub fn id(&self) -> ThreadId {
        self.id
    }
    /// The thread's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The calling thread. Panics if the caller is not a persistent thread.
pub fn current() -> Thread {
    let Some(i) = native::slot() else { panic!("crthreads::thread::current() called outside a persistent thread") };
    let r = native::table().rec(i);
    let g = r.generation.load(Ordering::Relaxed);
    let n = (r.name_len as usize).min(r.name.len());
    let name = (n > 0).then(|| String::from_utf8_lossy(&r.name[..n]).into_owned());
    Thread { id: ThreadId::new(i, g), name }
}

/// Puts the calling thread to sleep for at least `d` (a safepoint at lock depth 0). The time
/// is wall-clock time: a sleep interrupted by a restore ends when it would have ended.
pub fn sleep(d: Duration) {
    let deadline = crate::sys::realtime_ns().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64);
    let word = AtomicU32::new(0);
    while crate::sys::realtime_ns() < deadline {
        if park::wait(&word, 0, Some(deadline)) == Wake::TimedOut {
            break;
        }
    }
}

/// Whether the preemption handler may park a thread interrupted at `pc` (the program's own
/// code, not the runtime's; see the `preempt` module). Meaningful once threads run; for tests.
#[doc(hidden)]
pub fn preemptible_address(pc: usize) -> bool {
    preempt::preemptible(pc)
}

/// Offers a checkpoint that is due a chance to take this thread (a safepoint at lock depth 0),
/// for long loops that hold no lock and call nothing that blocks.
pub fn safepoint() {
    if coord::active() && coord::due() && park::depth() == 0 && native::slot().is_some() {
        let _ = native::to_native(Request::Park);
    }
}

/// Runs `f`, a call that may block outside crthreads (reading a socket or stdin, waiting for a
/// child process), with the calling thread counting as parked, so that checkpoints need not wait
/// for it. At lock depth 0 only; with locks held (or outside a persistent thread) `f` simply
/// runs.
///
/// A checkpoint taken meanwhile holds the thread as it was *before* the call, so after a
/// restore the thread calls `f` again: use it for calls that may be repeated (re-reading a
/// request is fine; writing a record twice may not be). While `f` runs:
/// - it runs on the OS thread's own stack; what it allocates comes from volatile memory (not
///   part of any checkpoint): return plain values, not collections;
/// - what it writes into persistent memory (the buffer it reads into) may be saved half-done by
///   a checkpoint taken meanwhile; the call is repeated after a restore, so only its completed
///   result counts;
/// - it must not take crthreads locks or call other crthreads thread functions.
///
/// ```no_run
/// # fn demo(fd: i32, buf: &mut [u8]) -> isize {
/// // SAFETY: reading into a buffer we own.
/// crthreads::thread::blocking(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
/// # }
/// ```
pub fn blocking<R>(mut f: impl FnMut() -> R) -> R {
    if park::depth() != 0 || native::slot().is_none() || !coord::active() {
        return f();
    }
    loop {
        let mut out: Option<Result<R>> = None;
        let r = {
            let mut call = || out = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut f)));
            let dynf: &mut dyn FnMut() = &mut call;
            // SAFETY: only the lifetime is erased; the native side calls the closure before it
            // answers, and this frame waits for the answer.
            let f: *mut (dyn FnMut() + 'static) = unsafe { core::mem::transmute(dynf as *mut dyn FnMut()) };
            crate::sys::tls::busy_add(1);
            let r = native::to_native(Request::Run { f });
            crate::sys::tls::busy_add(-1);
            r
        };
        if r == Resume::Restored {
            // Resumed from a checkpoint taken during the call: call again.
            continue;
        }
        match out {
            Some(Ok(v)) => return v,
            Some(Err(p)) => std::panic::resume_unwind(p),
            None => crate::sys::fatal("crthreads: a blocking call was answered without running"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Safepoints, for `park`.

/// The calling thread released its last lock: if a checkpoint is due, it is taken here, and
/// the release returns once a checkpoint including it was attempted.
#[inline]
fn released_last() {
    if coord::due() && native::slot().is_some() {
        released_last_slow();
    }
}

#[cold]
fn released_last_slow() {
    crate::sys::tls::busy_add(1);
    let _ = native::to_native(Request::Cover);
    crate::sys::tls::busy_add(-1);
}

// ---------------------------------------------------------------------------------------------
// Threads crthreads did not create.

std::thread_local! {
    /// This OS thread was already told about (or is the runtime's own, or the program's main
    /// thread, which starts the main persistent thread and carries on after it): no warnings.
    static QUIET: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Exempts the calling OS thread from [`check_allocator`]'s warning.
pub(crate) fn quiet() {
    QUIET.with(|q| q.set(true));
}

/// Called by the heap on allocations that miss the thread's cache: a thread that is not a
/// persistent one allocating from the persistent heap while persistent threads run breaks the
/// consistent cut (checkpoints do not stop it). Says so once per thread, with what to do.
pub(crate) fn check_allocator() {
    if native::slot().is_some() || !coord::active() || QUIET.with(|q| q.replace(true)) {
        return;
    }
    crate::sys::warn_limited(
        "foreign-thread",
        "a thread that crthreads::thread::spawn did not start allocates from the persistent heap \
         while persistent threads run: checkpoints do not stop it, so what it writes there may be \
         saved half-done, and it is not resumed after a restore. Start it with \
         crthreads::thread::spawn, or give it volatile memory with crthreads::volatile",
    );
}

/// A wait at depth 0: a safepoint.
fn wait_at_safepoint(word: &AtomicU32, expected: u32, deadline: Option<u64>) -> Wake {
    if native::slot().is_none() {
        return if crate::sys::futex::wait_until(word, expected, deadline) { Wake::Woken } else { Wake::TimedOut };
    }
    crate::sys::tls::busy_add(1);
    let r = native::to_native(Request::Wait { word, expected, deadline });
    crate::sys::tls::busy_add(-1);
    match r {
        Resume::TimedOut => Wake::TimedOut,
        _ => Wake::Woken,
    }
}

/// A checkpoint requested by a persistent thread: it parks until an attempt that includes its
/// state finished, and returns that attempt's outcome.
pub(crate) fn checkpoint_from_thread() -> crate::error::Result<crate::ckpt::Stats> {
    crate::sys::tls::busy_add(1);
    let r = native::to_native(Request::Cover);
    let i = native::slot().expect("a persistent thread");
    // SAFETY: the slot's cover ticket is written by its native side, on this OS thread.
    let ticket = unsafe { *native::NATIVES[i].cover.get() };
    let out = if r == Resume::Restored {
        // This process was restored (or rolled back) from the very checkpoint the call asked for.
        Ok(crate::ckpt::Stats { seq: coord::resumed_from(), restored: true, ..Default::default() })
    } else {
        // Still busy: the outcome ring's lock must not be held by a preempted thread.
        match coord::outcome(ticket).result {
            Some(r) => r,
            None => Err(crate::error::Error::Unsupported {
                what: "this checkpoint's outcome".into(),
                why: "more than 64 attempts finished since; it is no longer known".into(),
            }),
        }
    };
    crate::sys::tls::busy_add(-1);
    out
}

// ---------------------------------------------------------------------------------------------
// Spawning.

/// What a thread runs, boxed in the persistent heap (its record points at it).
type Body = Box<dyn FnOnce() + Send>;

/// The shared result slot of a thread and its join handle, in the persistent heap.
struct Packet<T> {
    result: std::cell::UnsafeCell<Option<Result<T>>>,
}

// SAFETY: the result is written once by the thread before it is marked exited, and read by
// the joiner after it saw the thread exited (the record's `exited` word orders the two).
unsafe impl<T: Send> Sync for Packet<T> {}

/// Options for a new thread, as `std::thread::Builder`.
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
    stack_size: Option<usize>,
}

impl Builder {
    /// A builder with the default settings.
    pub fn new() -> Builder {
        Builder::default()
    }
    /// Names the thread.
    pub fn name(mut self, name: String) -> Builder {
        self.name = Some(name);
        self
    }
    /// Sets the stack size (at least [`MIN_STACK`]).
    pub fn stack_size(mut self, size: usize) -> Builder {
        self.stack_size = Some(size);
        self
    }

    /// Spawns a persistent thread running `f`.
    pub fn spawn<F, T>(self, f: F) -> std::io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `f` and `T` are 'static.
        unsafe { self.spawn_unchecked(f) }
    }

    /// Spawns a thread whose closure may borrow from the caller (for [`scope`]).
    ///
    /// # Safety
    /// The caller must join the thread before anything `f` borrows goes away.
    unsafe fn spawn_unchecked<'a, F, T>(self, f: F) -> std::io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        if !coord::active() {
            return Err(std::io::Error::other(
                "persistent threads need crthreads::main (the program's main logic must run as a persistent thread)",
            ));
        }
        let packet: Arc<Packet<T>> = Arc::new(Packet { result: std::cell::UnsafeCell::new(None) });
        let theirs = packet.clone();
        let body = move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // SAFETY: only this thread writes the result, before it is marked exited.
            unsafe { *theirs.result.get() = Some(r) };
        };
        let body: Box<dyn FnOnce() + Send + 'a> = Box::new(body);
        // SAFETY: the caller guarantees the borrow outlives the thread (see the # Safety).
        let body: Body = unsafe { core::mem::transmute::<Box<dyn FnOnce() + Send + 'a>, Body>(body) };
        let (slot, generation) = create(Entry::Rust(body), self.stack_size, self.name.as_deref(), false)?;
        start_os_thread(slot, Resume::Woken)?;
        Ok(JoinHandle {
            thread: Thread { id: ThreadId::new(slot, generation), name: self.name },
            slot,
            packet,
            _not_sync: PhantomData,
        })
    }
}

/// Spawns a persistent thread running `f` (as `std::thread::spawn`; panics if it cannot).
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Builder::new().spawn(f).expect("failed to spawn a persistent thread")
}

/// What a new thread runs.
pub(crate) enum Entry {
    /// A Rust closure, boxed in the persistent heap by the global allocator (a Rust program's
    /// is crthreads' heap).
    Rust(Body),
    /// A C start routine and its argument, kept in the record itself (the C library's Rust
    /// allocator is volatile, so nothing of the thread may come from it).
    C { start: c::StartFn, arg: usize },
}

/// Creates the record and stack of a new thread running `entry`. Returns its slot and
/// generation.
fn create(entry: Entry, stack: Option<usize>, name: Option<&str>, main: bool) -> std::io::Result<(usize, u32)> {
    if !coord::active() {
        return Err(std::io::Error::other(
            "persistent threads run only in a program started through crthreads::main (and not in \
             a child it forked): use std::thread here",
        ));
    }
    let table = native::table();
    // A slot freed by an exiting thread is reused only once its OS thread let go of it (the
    // gatherer reads the OS thread's state by slot).
    let usable = |i: usize| native::NATIVES[i].state.load(Ordering::SeqCst) == native::NONE;
    let (slot, generation) = table.alloc(main, usable).ok_or_else(|| {
        std::io::Error::other(format!("too many persistent threads (at most {})", table::MAX_THREADS))
    })?;
    let size = stack.unwrap_or(DEFAULT_STACK).max(MIN_STACK).next_multiple_of(PAGE) + PAGE;
    let base = crate::heap::alloc(size, PAGE, false);
    if base.is_null() {
        table.free(slot);
        return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
    }
    guard(base as usize, size, true);
    let (entry, packet) = match entry {
        Entry::Rust(body) => (Box::into_raw(Box::new(body)) as u64, 0),
        Entry::C { start, arg } => {
            table.rec(slot).flags.fetch_or(table::C_ENTRY, Ordering::Relaxed);
            (start as usize as u64, arg as u64)
        }
    };
    // SAFETY: the slot was just allocated to us; nobody else touches its fields.
    unsafe {
        let r = &mut *table.rec_mut(slot);
        r.stack_base = base as u64;
        r.stack_len = size as u64;
        r.entry = entry;
        r.preempt_frame = 0;
        r.errno = 0;
        r.packet = packet;
        r.specific = 0;
        // The thread and its handle.
        r.refs.store(2, Ordering::Relaxed);
        let name = name.unwrap_or("").as_bytes();
        let n = name.len().min(r.name.len());
        r.name[..n].copy_from_slice(&name[..n]);
        r.name_len = n as u32;
        r.ctx = arch::init_context(base as usize + size, entry_point, slot, arch::canary());
    }
    Ok((slot, generation))
}

/// Makes the guard page at `base` inaccessible (or accessible again), and tells the tracker to
/// leave the stack above it alone.
fn guard(base: usize, len: usize, on: bool) {
    crate::track::set_stack(base, len, on);
}

/// Starts an OS thread to serve slot `slot`, resuming it with `first`.
fn start_os_thread(slot: usize, first: Resume) -> std::io::Result<()> {
    extern "C" fn os_main(arg: *mut libc::c_void) -> *mut libc::c_void {
        let v = arg as usize;
        let (slot, restored) = (v >> 1, v & 1 == 1);
        crate::failpoint::start_delay();
        native::run(slot, if restored { Resume::Restored } else { Resume::Woken });
        core::ptr::null_mut()
    }
    let arg = (slot << 1) | (first == Resume::Restored) as usize;
    native::mark_starting(slot);
    // The native side needs little: the program runs on the persistent stack.
    crate::heap::internal(|| crate::sys::thread::spawn_raw(os_main, arg as *mut libc::c_void, 256 << 10)).map_err(|e| {
        native::unmark_starting(slot);
        std::io::Error::from_raw_os_error(e.0)
    })
}

/// Where a new thread starts, on its persistent stack.
extern "sysv64" fn entry_point(slot: usize) -> ! {
    let table = native::table();
    if table.rec(slot).flags.load(Ordering::Relaxed) & table::C_ENTRY != 0 {
        c::entry(slot);
    }
    // SAFETY: the record's body was boxed by `create` and is taken exactly once, here.
    let body = unsafe {
        let r = &mut *table.rec_mut(slot);
        let b = Box::from_raw(r.entry as *mut Body);
        r.entry = 0;
        b
    };
    body();
    // Retire: the native side marks the record exited. After a restore taken right here the
    // request is simply made again.
    loop {
        let _ = native::to_native(Request::Exit);
    }
}

/// The native side's part of a thread's exit (the thread is running, not safe: this changes
/// its record): mark it exited, free its stack, wake its joiners; a detached thread's slot is
/// freed at once.
fn finish(table: Table, slot: usize) {
    let r = table.rec(slot);
    // SAFETY: the thread's region side is gone; its stack is not in use.
    let (base, len) = unsafe {
        let r = &*table.rec_mut(slot);
        (r.stack_base as usize, r.stack_len as usize)
    };
    guard(base, len, false);
    // SAFETY: the stack was allocated by `create` from the persistent heap and is unused now.
    unsafe { crate::heap::free(base as *mut u8) };
    // Release: the result (written by the thread) is visible to whoever sees it exited.
    r.state.store(EXITED, Ordering::Release);
    r.exited.store(1, Ordering::Release);
    crate::sys::futex::wake(&r.exited, i32::MAX);
    release_ref(&table, slot);
}

/// Drops one of the record's two references (the thread's, its handle's); the last frees it.
fn release_ref(table: &Table, slot: usize) {
    // AcqRel: whoever frees the slot sees everything the other side did with the record.
    if table.rec(slot).refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        table.free(slot);
    }
}

/// An owned permission to join a persistent thread (as `std::thread::JoinHandle`). Dropping it
/// detaches the thread.
pub struct JoinHandle<T> {
    thread: Thread,
    slot: usize,
    packet: Arc<Packet<T>>,
    _not_sync: PhantomData<*const ()>,
}

// SAFETY: the handle only names the thread and shares its packet, which is Sync for Send T.
unsafe impl<T: Send> Send for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        &self.thread
    }

    /// Whether the thread has finished.
    pub fn is_finished(&self) -> bool {
        native::table().rec(self.slot).exited.load(Ordering::Acquire) == 1
    }

    /// Waits for the thread to finish (a safepoint while it waits) and returns its result.
    pub fn join(self) -> Result<T> {
        let table = native::table();
        let r = table.rec(self.slot);
        while r.exited.load(Ordering::Acquire) == 0 {
            park::wait(&r.exited, 0, None);
        }
        // SAFETY: the thread wrote the result before it was marked exited (Acquire above).
        let res = unsafe { (*self.packet.result.get()).take() };
        // The handle's reference goes with the handle (its Drop gives it up).
        drop(self);
        res.unwrap_or_else(|| Err(Box::new("the persistent thread ended without a result") as Box<dyn Any + Send>))
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        let table = native::table();
        table.rec(self.slot).flags.fetch_or(DETACHED, Ordering::Relaxed);
        release_ref(&table, self.slot);
    }
}

// ---------------------------------------------------------------------------------------------
// Scoped threads.

/// A scope for spawning threads that borrow from the caller (as `std::thread::scope`).
pub struct Scope<'scope, 'env: 'scope> {
    running: AtomicU32,
    panicked: std::sync::atomic::AtomicBool,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// A handle to a scoped thread.
pub struct ScopedJoinHandle<'scope, T> {
    inner: JoinHandle<T>,
    _scope: PhantomData<&'scope ()>,
}

impl<'scope, T> ScopedJoinHandle<'scope, T> {
    /// Waits for the thread and returns its result.
    pub fn join(self) -> Result<T> {
        self.inner.join()
    }
    /// The thread's handle.
    pub fn thread(&self) -> &Thread {
        self.inner.thread()
    }
    /// Whether the thread has finished.
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Spawns a persistent thread that may borrow from outside the scope.
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.running.fetch_add(1, Ordering::Relaxed);
        let scope = self as *const Scope<'scope, 'env> as usize;
        let body = move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // SAFETY: the scope outlives every thread spawned in it (`scope` waits for them).
            let s = unsafe { &*(scope as *const Scope<'scope, 'env>) };
            if r.is_err() {
                s.panicked.store(true, Ordering::Relaxed);
            }
            // Release: the thread's work is visible to the scope's end (its Acquire).
            if s.running.fetch_sub(1, Ordering::Release) == 1 {
                crate::sys::futex::wake(&s.running, i32::MAX);
            }
            match r {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        };
        // SAFETY: `scope` joins every thread before the borrows it may hold end.
        let inner =
            unsafe { Builder::new().spawn_unchecked(body) }.expect("failed to spawn a scoped persistent thread");
        ScopedJoinHandle { inner, _scope: PhantomData }
    }
}

/// Runs `f` with a [`Scope`] in which threads borrowing from the caller can be spawned; waits for
/// all of them before returning (as `std::thread::scope`).
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    let s = Scope {
        running: AtomicU32::new(0),
        panicked: std::sync::atomic::AtomicBool::new(false),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&s)));
    loop {
        // Acquire: pairs with the Release of each finishing thread.
        let n = s.running.load(Ordering::Acquire);
        if n == 0 {
            break;
        }
        park::wait(&s.running, n, None);
    }
    match r {
        Err(p) => std::panic::resume_unwind(p),
        Ok(_) if s.panicked.load(Ordering::Relaxed) => panic!("a scoped thread panicked"),
        Ok(v) => v,
    }
}

/// `crate::rollback` from a persistent thread: parks it until a rollback attempt finished.
/// Returns only if the rollback failed (on success the thread resumes at its checkpointed
/// safepoint instead).
pub(crate) fn rollback_from_thread() -> crate::error::Result<u64> {
    crate::sys::tls::busy_add(1);
    let r = native::to_native(Request::Rollback);
    let i = native::slot().expect("a persistent thread");
    // SAFETY: the slot's ticket is written by its native side, on this OS thread.
    let ticket = unsafe { *native::NATIVES[i].cover.get() };
    let out = if r == Resume::Restored {
        // Rolled back (or restored) to a checkpoint taken while this very call was parked.
        Ok(coord::resumed_from())
    } else {
        // Still busy: as in `checkpoint_from_thread`.
        match coord::outcome(ticket).result {
            Some(Err(e)) => Err(e),
            Some(Ok(_)) | None => Err(crate::error::Error::Unsupported {
                what: "this rollback's outcome".into(),
                why: "it is no longer known".into(),
            }),
        }
    };
    crate::sys::tls::busy_add(-1);
    out
}

/// Rolls every persistent thread back (the coordinator, with every thread parked): gives the
/// current stacks back to the tracker, has `roll` replace memory with the last checkpoint,
/// takes the checkpoint's stacks, and starts OS threads for its threads that have none.
/// Native sides notice the rollback when they next leave their safepoint. Nothing changes if
/// `roll` fails.
pub(crate) fn rollback_all(roll: impl FnOnce() -> crate::error::Result<u64>) -> crate::error::Result<u64> {
    if native::NATIVES[0].state.load(Ordering::SeqCst) == native::NONE {
        return Err(crate::error::Error::Unsupported {
            what: "rollback() after the main thread ended".into(),
            why: "the checkpoint's main thread could not be resumed on the program's main thread".into(),
        });
    }
    let table = native::table();
    let stacks = |on: bool| {
        for i in table.live() {
            // SAFETY: every thread is parked: the records do not change meanwhile.
            let (base, len) =
                unsafe { ((*table.rec_mut(i)).stack_base as usize, (*table.rec_mut(i)).stack_len as usize) };
            guard(base, len, on);
        }
    };
    stacks(false);
    let seq = match roll() {
        Ok(seq) => seq,
        Err(e) => {
            stacks(true);
            return Err(e);
        }
    };
    // The table is the checkpoint's now. OS threads whose thread it does not hold retire;
    // decided here, while nobody runs, so that a thread spawned into such a slot after the
    // rollback is never mistaken for theirs.
    stacks(true);
    for (i, n) in native::NATIVES.iter().enumerate() {
        let live = table.rec(i).state.load(Ordering::SeqCst) == LIVE;
        n.retire.store(!live && n.state.load(Ordering::SeqCst) != native::NONE, Ordering::SeqCst);
    }
    for i in table.live() {
        if native::NATIVES[i].state.load(Ordering::SeqCst) == native::NONE {
            start_os_thread(i, Resume::Restored).unwrap_or_else(|e| {
                crate::sys::fatal(&format!("rollback: cannot resume persistent thread {i}: {e}"));
            });
        }
    }
    Ok(seq)
}

// ---------------------------------------------------------------------------------------------
// The program's main thread, and resuming threads after a restore.

/// The stacks of all parked threads, for the checkpoint (called while every thread is safe).
pub(crate) fn parked_stacks() -> Vec<crate::ckpt::StackRange> {
    let table = native::table();
    let mut out = Vec::with_capacity(native::count());
    for i in table.live() {
        // SAFETY: every thread is parked: their records do not change during the checkpoint.
        let r = unsafe { &*table.rec_mut(i) };
        let lo = r.stack_base as usize;
        let hi = lo + r.stack_len as usize;
        let sp = (r.ctx.rsp as usize).clamp(lo + PAGE, hi) & !(PAGE - 1);
        out.push(crate::ckpt::StackRange { lo, sp, hi });
    }
    out
}

/// After a restore, before any thread runs: every live thread but the main one gets an OS thread
/// again, and every stack its guard (the region was mapped afresh). The checkpoint's threads are
/// listed before any of them is started: a started thread runs at once and may spawn, and a slot
/// it takes must not look like one of the checkpoint's (two OS threads would run it).
fn resume_live(table: &Table) {
    let mut listed = [0u64; table::MAX_THREADS.div_ceil(64)];
    for i in table.live() {
        // SAFETY: no thread runs yet.
        let (base, len) = unsafe { ((*table.rec_mut(i)).stack_base as usize, (*table.rec_mut(i)).stack_len as usize) };
        guard(base, len, true);
        listed[i / 64] |= 1 << (i % 64);
    }
    for i in (1..table::MAX_THREADS).filter(|&i| listed[i / 64] & (1 << (i % 64)) != 0) {
        start_os_thread(i, Resume::Restored).unwrap_or_else(|e| {
            crate::sys::fatal(&format!("cannot resume persistent thread {i}: {e}"));
        });
    }
}

/// Runs `f` as the program's main persistent thread, or, after a restore, resumes every thread
/// of the checkpoint (the main one on the calling OS thread); returns the main thread's result.
pub(crate) fn run_main<F, T>(table_base: usize, restored: bool, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The program's own main thread: what it allocates before the main persistent thread starts
    // and after it ended is the program's, legitimately.
    quiet();
    let table = Table::at(table_base);
    let packet_addr;
    if restored && table.rec(0).state.load(Ordering::Acquire) == LIVE {
        drop(f);
        resume_live(&table);
        packet_addr = table.rec(0).packet_addr();
    } else {
        let packet: Arc<Packet<T>> = Arc::new(Packet { result: std::cell::UnsafeCell::new(None) });
        let theirs = packet.clone();
        let body: Body = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // SAFETY: written once, before the thread is marked exited.
            unsafe { *theirs.result.get() = Some(r) };
        });
        packet_addr = Arc::into_raw(packet) as usize;
        let (slot, _) = create(Entry::Rust(body), Some(8 << 20), Some("main"), true).unwrap_or_else(|e| {
            crate::sys::fatal(&format!("cannot create the main persistent thread: {e}"));
        });
        // SAFETY: the main record was just created by this thread; nothing else runs.
        unsafe { (*table.rec_mut(slot)).packet = packet_addr as u64 };
    }
    native::run(0, if restored { Resume::Restored } else { Resume::Woken });
    // SAFETY: the packet was leaked from an Arc<Packet<T>> by the run that created the main
    // thread (this one, or the one that wrote the checkpoint: same program, same T).
    let packet = unsafe { Arc::from_raw(packet_addr as *const Packet<T>) };
    // SAFETY: the main thread exited: its result is written.
    let r = unsafe { (*packet.result.get()).take() };
    release_ref(&table, 0);
    r.unwrap_or_else(|| Err(Box::new("the main persistent thread ended without a result") as Box<dyn Any + Send>))
}
