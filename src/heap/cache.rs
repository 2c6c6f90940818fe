//! Thread caches: the allocation fast path.
//!
//! Each thread that allocates from the persistent heap claims one [`Cache`] in the region (a
//! CAS on its `owner` word) and keeps a pointer to it in a thread-local. Allocation pops from
//! the cache's per-class list, free pushes onto it; only when a list runs empty or overflows
//! does the thread take a central lock, moving a batch at once.
//!
//! The thread-local pointer is null whenever the fast path must not be used: before the heap
//! is live, while the thread runs runtime code that must allocate volatile memory
//! ([`internal`]), while the cache is being claimed (claiming registers the thread-exit hook,
//! which allocates), and after the thread's cache was given back at thread exit (later frees in
//! that thread go to the central lists). The thread-exit hook is a C++-style thread-local
//! destructor (`__cxa_thread_atexit_impl`), so the program keeps all `PTHREAD_KEYS_MAX` pthread
//! keys for itself.
//!
//! The fast paths hold no lock and may be interrupted by a signal at any instruction; a
//! checkpoint taken from that signal handler sees a bin whose head and count disagree by one.
//! Nothing relies on the count beyond its being a bound: [`Ctx::flush_bin`] stops at the end of
//! the list, so such a bin costs at most one leaked object.
//!
//! A cache given back at thread exit keeps its objects; the next thread to claim it adopts
//! them. Caches live in the region, so their contents survive a restore too; restore marks
//! every cache free, and the new process's threads adopt them with their objects.

use core::cell::Cell;
use core::sync::atomic::Ordering;

use super::Ctx;
use super::meta::{Cache, FreeObj, MAX_CACHES};
use super::size_class::{batch, cache_max};

/// Thread-local allocator state, in the thread block of [`crate::sys::tls`] (zeroed at thread
/// start, which is the initial state; no destructor).
#[repr(C)]
pub(crate) struct ThreadState {
    /// This thread's cache, or null when the fast path is off.
    pub cache: Cell<*mut Cache>,
    /// The owned cache while the fast path is disabled by [`internal`].
    pub saved: Cell<*mut Cache>,
    /// Depth of [`internal`] sections.
    pub internal: Cell<u32>,
    /// One of the `ST_*` constants.
    pub state: Cell<u8>,
}

const _: () = assert!(core::mem::size_of::<ThreadState>() <= crate::sys::tls::HELD_OFF);
const _: () = assert!(core::mem::align_of::<ThreadState>() <= 16);

/// No cache yet.
pub(crate) const ST_NONE: u8 = 0;
/// Claiming a cache right now.
pub(crate) const ST_CLAIMING: u8 = 1;
/// A cache is owned.
pub(crate) const ST_ACTIVE: u8 = 2;
/// No cache available (all taken) or already given back: use the central lists.
pub(crate) const ST_NO_CACHE: u8 = 3;

/// Access to the calling thread's [`ThreadState`].
pub(crate) struct Tls;

/// The calling thread's allocator state.
pub(crate) static TLS: Tls = Tls;

impl Tls {
    /// Runs `f` with the calling thread's state.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&ThreadState) -> R) -> R {
        // SAFETY: the block is this thread's, large and aligned enough (checked above), and an
        // all-zero ThreadState is valid (null pointers, zero counters). The reference does not
        // escape `f`, so it never reaches another thread.
        f(unsafe { &*(crate::sys::tls::block() as *const ThreadState) })
    }
}

/// Runs `f` with this thread's allocations going to volatile memory (runtime bookkeeping that
/// must not land in, or change, the persistent heap).
pub fn internal<R>(f: impl FnOnce() -> R) -> R {
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            TLS.with(|t| {
                let d = t.internal.get() - 1;
                t.internal.set(d);
                if d == 0 && t.state.get() == ST_ACTIVE {
                    // Re-enable the fast path with the cache this thread still owns.
                    t.cache.set(t.saved.get());
                }
            });
        }
    }
    TLS.with(|t| {
        if t.internal.get() == 0 {
            t.saved.set(t.cache.get());
            t.cache.set(core::ptr::null_mut());
        }
        t.internal.set(t.internal.get() + 1);
    });
    let _exit = Exit;
    f()
}

/// Runs `f` with this thread's allocations going to the persistent heap again, inside an
/// [`internal`] section: for the program's own code that the runtime calls (checkpoint hooks).
pub fn program<R>(f: impl FnOnce() -> R) -> R {
    struct Back(u32);
    impl Drop for Back {
        fn drop(&mut self) {
            TLS.with(|t| {
                if self.0 > 0 {
                    t.saved.set(t.cache.get());
                    t.cache.set(core::ptr::null_mut());
                }
                t.internal.set(self.0);
            });
        }
    }
    let depth = TLS.with(|t| {
        let d = t.internal.get();
        if d > 0 {
            t.internal.set(0);
            if t.state.get() == ST_ACTIVE {
                t.cache.set(t.saved.get());
            }
        }
        d
    });
    let _back = Back(depth);
    f()
}

/// Whether this thread is inside an [`internal`] section.
#[inline]
pub(crate) fn in_internal() -> bool {
    TLS.with(|t| t.internal.get() > 0)
}

impl Ctx {
    /// Address of cache `i`.
    #[inline]
    pub(crate) fn cache(&self, i: usize) -> *mut Cache {
        (self.base + crate::sys::PAGE + i * core::mem::size_of::<Cache>()) as *mut Cache
    }

    /// Claims a free cache for this thread. Returns it, or null if every cache is owned.
    pub(crate) fn claim_cache(&self) -> *mut Cache {
        TLS.with(|t| t.state.set(ST_CLAIMING));
        let mut found = core::ptr::null_mut();
        for i in 0..MAX_CACHES {
            let c = self.cache(i);
            // SAFETY: cache `i` lies in the region's metadata pages; `owner` is an atomic.
            let owner = unsafe { &(*c).owner };
            // Acquire: pairs with the Release in `release_cache`, so the previous owner's
            // writes to the cache are visible before we use it.
            if owner.load(Ordering::Relaxed) == 0
                && owner.compare_exchange(0, owner_token(), Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                found = c;
                break;
            }
        }
        if !found.is_null() {
            // The hook's list node comes from volatile memory: it is libc's, not the program's.
            if internal(|| crate::sys::proc::on_thread_exit(release_on_exit, found.cast())).is_err() {
                // Without the hook the cache would stay owned after the thread exits: give it
                // back now and use the central lists.
                // SAFETY: this thread claimed `found` above and has not used it.
                unsafe { Ctx::release_cache(found) };
                found = core::ptr::null_mut();
            }
        }
        TLS.with(|t| {
            if found.is_null() {
                t.state.set(ST_NO_CACHE);
            } else {
                t.state.set(ST_ACTIVE);
                if t.internal.get() == 0 {
                    t.cache.set(found);
                } else {
                    t.saved.set(found);
                }
            }
        });
        found
    }

    /// Marks cache `c` free; its objects stay in it for the next thread that claims it.
    ///
    /// This is one atomic operation on purpose. It runs at thread exit, whose timing the
    /// program does not control, so it may run while a checkpoint copies the heap: a single
    /// word changes, and a checkpoint sees the cache either owned or free, both consistent
    /// (restore frees every cache anyway). Draining the bins into the central lists instead
    /// would leave a window in which a checkpoint could capture an object both in a bin and in
    /// a central list. The owner word holds the claiming thread's id, and only that thread
    /// frees it: after a rollback gave the cache to another thread, a late release by the old
    /// owner (its exit hook) changes nothing.
    ///
    /// # Safety
    /// The calling thread claimed `c` and stops using it.
    pub(crate) unsafe fn release_cache(c: *mut Cache) {
        // SAFETY: `c` is a cache of the live heap; `owner` is an atomic.
        // Release: publishes the bins to the next claimer (its Acquire CAS).
        let _ = unsafe { &(*c).owner }.compare_exchange(owner_token(), 0, Ordering::Release, Ordering::Relaxed);
    }

    /// Refills bin `cls` of cache `c` from the central list and pops one object.
    #[cold]
    pub(crate) unsafe fn refill(&self, c: *mut Cache, cls: usize) -> *mut u8 {
        // SAFETY: this thread owns `c`; central_fetch hands over unreferenced objects.
        unsafe {
            let (list, n) = self.central_fetch(cls, batch(cls));
            if n == 0 {
                return core::ptr::null_mut();
            }
            let b = &mut (*c).bins[cls];
            b.head = (*list).next;
            b.count = n - 1;
            list.cast()
        }
    }

    /// Moves a batch from an overfull bin back to the central list.
    #[cold]
    pub(crate) unsafe fn flush_bin(&self, c: *mut Cache, cls: usize) {
        // SAFETY: this thread owns `c`; the first `n` objects of the list are detached before
        // being handed to the central list.
        unsafe {
            let b = &mut (*c).bins[cls];
            let head = b.head;
            if head.is_null() {
                b.count = 0;
                return;
            }
            // Walk at most a batch, and never past the end: the count may be one more than the
            // list holds after an interrupted push or pop (see the module docs).
            let want = batch(cls).min(b.count).max(1);
            let mut last = head;
            let mut n = 1;
            while n < want && !(*last).next.is_null() {
                last = (*last).next;
                n += 1;
            }
            b.head = (*last).next;
            b.count = b.count.saturating_sub(n);
            if b.count > cache_max(cls) {
                // The count wrapped below zero (an interrupted push, then pops): recount.
                let mut k = 0;
                let mut p = b.head;
                while !p.is_null() {
                    k += 1;
                    p = (*p).next;
                }
                b.count = k;
            }
            (*last).next = core::ptr::null_mut();
            self.central_release(cls, head, n);
        }
    }
}

/// Pushes `obj` of class `cls` (`< NCLASSES`) onto cache `c`, returning whether the bin now
/// holds more than it should (the caller then flushes a batch with [`Ctx::flush_bin`]).
///
/// # Safety
/// This thread owns `c`; `obj` is a freed object of class `cls`.
#[inline(always)]
pub(crate) unsafe fn push(c: *mut Cache, cls: usize, obj: *mut FreeObj) -> bool {
    // SAFETY: forwarded from the caller; cls < NCLASSES.
    unsafe {
        debug_assert!(cls < super::size_class::NCLASSES);
        let b = (*c).bins.get_unchecked_mut(cls);
        (*obj).next = b.head;
        b.head = obj;
        b.count += 1;
        b.count > cache_max(cls)
    }
}

/// Thread-exit hook: the thread is exiting; give its cache back (objects included).
unsafe extern "C" fn release_on_exit(p: *mut libc::c_void) {
    if super::ctx().is_none() {
        return;
    }
    let p: *mut Cache = p.cast();
    // After a rollback (`forget_cache`) the cache this hook was registered with may be owned by
    // another thread: only the cache this thread still holds is given back.
    let mine = TLS.with(|t| {
        let mine = t.state.get() == ST_ACTIVE && (t.cache.get() == p || t.saved.get() == p);
        if mine {
            t.cache.set(core::ptr::null_mut());
            t.saved.set(core::ptr::null_mut());
            t.state.set(ST_NO_CACHE);
        }
        mine
    });
    if mine {
        // SAFETY: this thread owns `p` and is exiting.
        unsafe { Ctx::release_cache(p) };
    }
}

/// The calling thread's mark in a cache's owner word: its kernel thread id (never 0).
fn owner_token() -> u32 {
    crate::sys::thread::gettid() as u32
}

/// Forgets the calling thread's cache without giving it back: the heap was rolled back in
/// place (every cache is free in the restored image, see `adopt`), so the pointer is stale.
/// The thread claims a cache again at its next allocation.
pub(crate) fn forget_cache() {
    TLS.with(|t| {
        t.cache.set(core::ptr::null_mut());
        t.saved.set(core::ptr::null_mut());
        if t.state.get() != ST_CLAIMING {
            t.state.set(ST_NONE);
        }
    });
}
