//! Thread-specific data (`pthread_key_create`, `pthread_setspecific` and friends).
//!
//! The registry of keys (for each, a generation and the destructor) is a block of the
//! persistent heap found through the heap header, so keys made before a checkpoint stay valid
//! after a restore. A persistent thread's values are a block of the persistent heap too, found
//! through its thread record (`specific`), made at its first `pthread_setspecific` and freed
//! when it ends, after its destructors ran (up to `PTHREAD_DESTRUCTOR_ITERATIONS` rounds, as
//! glibc). A value remembers the key generation it was set under, so a deleted key's values
//! read as NULL if the key number is reused.
//!
//! Key numbers start at [`BASE`], apart from the C library's (which hands out small numbers),
//! so a key the C library made (before `main`, or for a thread crthreads did not start) keeps
//! going to the C library. A thread that is not persistent keeps its values of crthreads' keys
//! in volatile thread-local memory, and its destructors are not run.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::error::Errno;

/// Keys there are: `PTHREAD_KEYS_MAX` (1024) for the program, and some room for the keys the
/// libraries it loads make for themselves (the C library's own Rust code among them), so that
/// a program may still make `PTHREAD_KEYS_MAX` keys of its own.
pub const KEYS: usize = 1024 + 64;
/// The first key number crthreads hands out.
pub const BASE: u32 = 0x4000_0000;
/// Destructor rounds at thread exit (`PTHREAD_DESTRUCTOR_ITERATIONS`).
const ROUNDS: usize = 4;

/// A key's destructor.
pub type Dtor = unsafe extern "C" fn(*mut core::ffi::c_void);

/// The registry, in the persistent heap (part of `super::process::State`).
#[repr(C)]
pub(crate) struct Registry {
    /// Per key: odd while it exists; bumped by create and delete.
    generation: [AtomicU32; KEYS],
    /// Per key: its destructor, or 0.
    dtor: [AtomicUsize; KEYS],
}

/// One value of a thread.
#[repr(C)]
#[derive(Clone, Copy)]
struct Value {
    generation: u32,
    value: usize,
}

fn registry() -> Option<&'static Registry> {
    // SAFETY: the registry's fields are atomics; the state block lives as long as the process.
    super::process::state().map(|p| unsafe { &(*p).keys })
}

/// Whether `k` is one of crthreads' keys (else it is the C library's).
pub fn is_ours(k: u32) -> bool {
    (BASE..BASE + KEYS as u32).contains(&k)
}

/// `pthread_key_create`: `EAGAIN` when every key is taken.
pub fn create(dtor: Option<Dtor>) -> Result<u32, Errno> {
    let r = registry().ok_or(Errno(libc::ENOMEM))?;
    for i in 0..KEYS {
        let g = r.generation[i].load(Ordering::Relaxed);
        if g % 2 == 0 && r.generation[i].compare_exchange(g, g + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            r.dtor[i].store(dtor.map_or(0, |d| d as usize), Ordering::Release);
            return Ok(BASE + i as u32);
        }
    }
    Err(Errno(libc::EAGAIN))
}

/// `pthread_key_delete`: `EINVAL` for a key that does not exist.
pub fn delete(k: u32) -> Result<(), Errno> {
    let r = registry().ok_or(Errno(libc::EINVAL))?;
    let i = (k - BASE) as usize;
    let g = r.generation[i].load(Ordering::Relaxed);
    if g % 2 == 0 || r.generation[i].compare_exchange(g, g + 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return Err(Errno(libc::EINVAL));
    }
    Ok(())
}

std::thread_local! {
    /// Values of threads that are not persistent.
    static VOLATILE: [core::cell::Cell<(u32, usize)>; KEYS] = const { [const { core::cell::Cell::new((0, 0)) }; KEYS] };
}

/// The calling persistent thread's values (made if `make`), or `None`.
fn values(make: bool) -> Option<&'static mut [Value; KEYS]> {
    let slot = crate::thread::native::slot()?;
    let table = crate::thread::native::table();
    // SAFETY: the record's non-atomic fields are the running thread's own.
    let r = unsafe { &mut *table.rec_mut(slot) };
    if r.specific == 0 {
        if !make {
            return None;
        }
        let p = crate::heap::program(|| crate::heap::alloc(core::mem::size_of::<[Value; KEYS]>(), 16, true));
        if p.is_null() {
            return None;
        }
        r.specific = p as usize as u64;
    }
    // SAFETY: a block of this size made here for this thread, used only by it.
    Some(unsafe { &mut *(r.specific as usize as *mut [Value; KEYS]) })
}

/// The key's index and current generation, if it exists.
fn live(k: u32) -> Option<(usize, u32)> {
    let i = (k - BASE) as usize;
    let g = registry()?.generation[i].load(Ordering::Acquire);
    (g % 2 == 1).then_some((i, g))
}

/// `pthread_getspecific`.
pub fn get(k: u32) -> usize {
    let Some((i, g)) = live(k) else { return 0 };
    if crate::thread::native::slot().is_none() {
        let (vg, v) = VOLATILE.with(|t| t[i].get());
        return if vg == g { v } else { 0 };
    }
    match values(false) {
        Some(v) if v[i].generation == g => v[i].value,
        _ => 0,
    }
}

/// `pthread_setspecific`: `EINVAL` for a key that does not exist, `ENOMEM` if the thread's
/// values cannot be made.
pub fn set(k: u32, value: usize) -> Result<(), Errno> {
    let (i, g) = live(k).ok_or(Errno(libc::EINVAL))?;
    if crate::thread::native::slot().is_none() {
        VOLATILE.with(|t| t[i].set((g, value)));
        return Ok(());
    }
    let v = values(true).ok_or(Errno(libc::ENOMEM))?;
    v[i] = Value { generation: g, value };
    Ok(())
}

/// Runs the calling persistent thread's destructors (before it ends) and frees its values.
pub fn thread_exit() {
    let Some(v) = values(false) else { return };
    let Some(r) = registry() else { return };
    for _ in 0..ROUNDS {
        let mut ran = false;
        for (i, slot) in v.iter_mut().enumerate() {
            let g = r.generation[i].load(Ordering::Acquire);
            let (vg, val) = (slot.generation, slot.value);
            if g % 2 == 1 && vg == g && val != 0 {
                slot.value = 0;
                let d = r.dtor[i].load(Ordering::Acquire);
                if d != 0 {
                    // SAFETY: the program registered this destructor for this key.
                    unsafe { core::mem::transmute::<usize, Dtor>(d)(val as *mut core::ffi::c_void) };
                    ran = true;
                }
            }
        }
        if !ran {
            break;
        }
    }
    let slot = crate::thread::native::slot().expect("a persistent thread");
    let table = crate::thread::native::table();
    // SAFETY: the thread's own record and its own values block, no longer used.
    unsafe {
        let rec = &mut *table.rec_mut(slot);
        let p = rec.specific as usize as *mut u8;
        rec.specific = 0;
        crate::heap::free(p);
    }
}
