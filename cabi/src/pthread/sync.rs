//! Mutexes, condition variables, once, spin locks, barriers and semaphores, with their
//! attribute objects: each export turns the C object into crthreads' layout of it
//! (`crthreads::posix`, same size) and calls the core.

use core::ffi::c_int;
use core::sync::atomic::AtomicU32;
use libc::{
    clockid_t, pthread_barrier_t, pthread_barrierattr_t, pthread_cond_t, pthread_condattr_t, pthread_mutex_t,
    pthread_mutexattr_t, pthread_once_t, pthread_spinlock_t, sem_t, timespec,
};

use super::rc;
use crthreads::posix::cond::{Cond, CondAttr};
use crthreads::posix::misc::{self, Barrier, Sem};
use crthreads::posix::mutex::{Mutex, MutexAttr};
use crthreads::posix::rwlock::{RwLock, RwLockAttr};
use libc::{pthread_rwlock_t, pthread_rwlockattr_t};

/// Declares an export that is crthreads' in threads mode and forwards to the C library's
/// function of the same name otherwise.
macro_rules! export {
    (fn $name:ident($($a:ident: $t:ty),* $(,)?) -> $ret:ty $body:block) => {
        /// # Safety
        /// As the C function of the same name.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($a: $t),*) -> $ret {
            crthreads::real_fn!(unsafe fn real = $name($($a: $t),*) -> $ret);
            if !super::ours() {
                // SAFETY: the caller's arguments, passed on to the C library.
                return unsafe { real($($a),*) };
            }
            $body
        }
    };
}

/// The object behind a C pointer, in crthreads' layout.
///
/// # Safety
/// `p` points at a live C object of `T`'s size (checked in `check.rs`), used only through
/// atomics or by its owner.
unsafe fn obj<'a, T, C>(p: *const C) -> &'a mut T {
    // SAFETY: the caller's contract.
    unsafe { &mut *(p as *mut T) }
}

/// For the semaphore functions: 0, or -1 with errno set.
fn sem_rc(r: Result<(), crthreads::Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => {
            crthreads::sys::set_errno(e.0);
            -1
        }
    }
}

// ---- mutexes --------------------------------------------------------------------------------

export!(
    fn pthread_mutex_init(m: *mut pthread_mutex_t, a: *const pthread_mutexattr_t) -> c_int {
        // SAFETY: the caller's mutex and (non-null) attr.
        let (m, a) = unsafe { (obj::<Mutex, _>(m), (!a.is_null()).then(|| obj::<MutexAttr, _>(a))) };
        m.init(a.as_deref());
        0
    }
);
export!(
    fn pthread_mutex_destroy(m: *mut pthread_mutex_t) -> c_int {
        // SAFETY: the caller's mutex.
        rc(unsafe { obj::<Mutex, _>(m) }.destroy())
    }
);
export!(
    fn pthread_mutex_lock(m: *mut pthread_mutex_t) -> c_int {
        // SAFETY: the caller's mutex.
        rc(unsafe { obj::<Mutex, _>(m) }.lock())
    }
);
export!(
    fn pthread_mutex_trylock(m: *mut pthread_mutex_t) -> c_int {
        // SAFETY: the caller's mutex.
        rc(unsafe { obj::<Mutex, _>(m) }.try_lock())
    }
);
export!(
    fn pthread_mutex_timedlock(m: *mut pthread_mutex_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's mutex and time.
        rc(unsafe { obj::<Mutex, _>(m).lock_until(&*ts, libc::CLOCK_REALTIME) })
    }
);
export!(
    fn pthread_mutex_clocklock(m: *mut pthread_mutex_t, c: clockid_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's mutex and time.
        rc(unsafe { obj::<Mutex, _>(m).lock_until(&*ts, c) })
    }
);
export!(
    fn pthread_mutex_unlock(m: *mut pthread_mutex_t) -> c_int {
        // SAFETY: the caller's mutex.
        rc(unsafe { obj::<Mutex, _>(m) }.unlock())
    }
);
export!(
    fn pthread_mutexattr_init(a: *mut pthread_mutexattr_t) -> c_int {
        // SAFETY: the caller's attr.
        *unsafe { obj::<MutexAttr, _>(a) } = MutexAttr(0);
        0
    }
);
export!(
    fn pthread_mutexattr_destroy(a: *mut pthread_mutexattr_t) -> c_int {
        let _ = a;
        0
    }
);
export!(
    fn pthread_mutexattr_settype(a: *mut pthread_mutexattr_t, t: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<MutexAttr, _>(a) }.set_type(t))
    }
);
export!(
    fn pthread_mutexattr_gettype(a: *const pthread_mutexattr_t, t: *mut c_int) -> c_int {
        // SAFETY: the caller's attr and out-pointer.
        unsafe { *t = obj::<MutexAttr, _>(a).get_type() };
        0
    }
);
export!(
    fn pthread_mutexattr_setpshared(a: *mut pthread_mutexattr_t, v: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<MutexAttr, _>(a) }.set_pshared(v))
    }
);
export!(
    fn pthread_mutexattr_getpshared(a: *const pthread_mutexattr_t, v: *mut c_int) -> c_int {
        let _ = a;
        // SAFETY: the caller's out-pointer.
        unsafe { *v = libc::PTHREAD_PROCESS_PRIVATE };
        0
    }
);
export!(
    fn pthread_mutexattr_setrobust(a: *mut pthread_mutexattr_t, v: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<MutexAttr, _>(a) }.set_robust(v))
    }
);
export!(
    fn pthread_mutexattr_setprotocol(a: *mut pthread_mutexattr_t, v: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<MutexAttr, _>(a) }.set_protocol(v))
    }
);

// ---- condition variables ---------------------------------------------------------------------

export!(
    fn pthread_cond_init(c: *mut pthread_cond_t, a: *const pthread_condattr_t) -> c_int {
        // SAFETY: the caller's condvar and (non-null) attr.
        let (c, a) = unsafe { (obj::<Cond, _>(c), (!a.is_null()).then(|| obj::<CondAttr, _>(a))) };
        c.init(a.as_deref());
        0
    }
);
export!(
    fn pthread_cond_destroy(c: *mut pthread_cond_t) -> c_int {
        let _ = c;
        0
    }
);
export!(
    fn pthread_cond_wait(c: *mut pthread_cond_t, m: *mut pthread_mutex_t) -> c_int {
        // SAFETY: the caller's condvar and mutex.
        rc(unsafe { obj::<Cond, _>(c).wait(obj::<Mutex, _>(m), None) })
    }
);
export!(
    fn pthread_cond_timedwait(c: *mut pthread_cond_t, m: *mut pthread_mutex_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's condvar, mutex and time.
        rc(unsafe { obj::<Cond, _>(c).wait(obj::<Mutex, _>(m), Some((&*ts, None))) })
    }
);
export!(
    fn pthread_cond_clockwait(
        c: *mut pthread_cond_t,
        m: *mut pthread_mutex_t,
        k: clockid_t,
        ts: *const timespec,
    ) -> c_int {
        // SAFETY: the caller's condvar, mutex and time.
        rc(unsafe { obj::<Cond, _>(c).wait(obj::<Mutex, _>(m), Some((&*ts, Some(k)))) })
    }
);
export!(
    fn pthread_cond_signal(c: *mut pthread_cond_t) -> c_int {
        // SAFETY: the caller's condvar.
        unsafe { obj::<Cond, _>(c) }.signal();
        0
    }
);
export!(
    fn pthread_cond_broadcast(c: *mut pthread_cond_t) -> c_int {
        // SAFETY: the caller's condvar.
        unsafe { obj::<Cond, _>(c) }.broadcast();
        0
    }
);
export!(
    fn pthread_condattr_init(a: *mut pthread_condattr_t) -> c_int {
        // SAFETY: the caller's attr.
        *unsafe { obj::<CondAttr, _>(a) } = CondAttr(libc::CLOCK_REALTIME);
        0
    }
);
export!(
    fn pthread_condattr_destroy(a: *mut pthread_condattr_t) -> c_int {
        let _ = a;
        0
    }
);
export!(
    fn pthread_condattr_setclock(a: *mut pthread_condattr_t, k: clockid_t) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<CondAttr, _>(a) }.set_clock(k))
    }
);
export!(
    fn pthread_condattr_getclock(a: *const pthread_condattr_t, k: *mut clockid_t) -> c_int {
        // SAFETY: the caller's attr and out-pointer.
        unsafe { *k = obj::<CondAttr, _>(a).0 };
        0
    }
);
export!(
    fn pthread_condattr_setpshared(a: *mut pthread_condattr_t, v: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<CondAttr, _>(a) }.set_pshared(v))
    }
);

// ---- read-write locks ------------------------------------------------------------------------

export!(
    fn pthread_rwlock_init(l: *mut pthread_rwlock_t, a: *const pthread_rwlockattr_t) -> c_int {
        // SAFETY: the caller's rwlock and (non-null) attr.
        let (l, a) = unsafe { (obj::<RwLock, _>(l), (!a.is_null()).then(|| obj::<RwLockAttr, _>(a))) };
        l.init(a.as_deref());
        0
    }
);
export!(
    fn pthread_rwlock_destroy(l: *mut pthread_rwlock_t) -> c_int {
        let _ = l;
        0
    }
);
export!(
    fn pthread_rwlock_rdlock(l: *mut pthread_rwlock_t) -> c_int {
        // SAFETY: the caller's rwlock.
        rc(unsafe { obj::<RwLock, _>(l) }.read(None))
    }
);
export!(
    fn pthread_rwlock_tryrdlock(l: *mut pthread_rwlock_t) -> c_int {
        // SAFETY: the caller's rwlock.
        rc(unsafe { obj::<RwLock, _>(l) }.try_read())
    }
);
export!(
    fn pthread_rwlock_timedrdlock(l: *mut pthread_rwlock_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's rwlock and time.
        rc(unsafe { obj::<RwLock, _>(l).read(Some((&*ts, libc::CLOCK_REALTIME))) })
    }
);
export!(
    fn pthread_rwlock_clockrdlock(l: *mut pthread_rwlock_t, k: clockid_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's rwlock and time.
        rc(unsafe { obj::<RwLock, _>(l).read(Some((&*ts, k))) })
    }
);
export!(
    fn pthread_rwlock_wrlock(l: *mut pthread_rwlock_t) -> c_int {
        // SAFETY: the caller's rwlock.
        rc(unsafe { obj::<RwLock, _>(l) }.write(None))
    }
);
export!(
    fn pthread_rwlock_trywrlock(l: *mut pthread_rwlock_t) -> c_int {
        // SAFETY: the caller's rwlock.
        rc(unsafe { obj::<RwLock, _>(l) }.try_write())
    }
);
export!(
    fn pthread_rwlock_timedwrlock(l: *mut pthread_rwlock_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's rwlock and time.
        rc(unsafe { obj::<RwLock, _>(l).write(Some((&*ts, libc::CLOCK_REALTIME))) })
    }
);
export!(
    fn pthread_rwlock_clockwrlock(l: *mut pthread_rwlock_t, k: clockid_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's rwlock and time.
        rc(unsafe { obj::<RwLock, _>(l).write(Some((&*ts, k))) })
    }
);
export!(
    fn pthread_rwlock_unlock(l: *mut pthread_rwlock_t) -> c_int {
        // SAFETY: the caller's rwlock.
        rc(unsafe { obj::<RwLock, _>(l) }.unlock())
    }
);
export!(
    fn pthread_rwlockattr_init(a: *mut pthread_rwlockattr_t) -> c_int {
        // SAFETY: the caller's attr.
        *unsafe { obj::<RwLockAttr, _>(a) } = RwLockAttr::DEFAULT;
        0
    }
);
export!(
    fn pthread_rwlockattr_destroy(a: *mut pthread_rwlockattr_t) -> c_int {
        let _ = a;
        0
    }
);
export!(
    fn pthread_rwlockattr_setkind_np(a: *mut pthread_rwlockattr_t, k: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<RwLockAttr, _>(a) }.set_kind(k))
    }
);
export!(
    fn pthread_rwlockattr_getkind_np(a: *const pthread_rwlockattr_t, k: *mut c_int) -> c_int {
        // SAFETY: the caller's attr and out-pointer.
        unsafe { *k = obj::<RwLockAttr, _>(a).kind };
        0
    }
);
export!(
    fn pthread_rwlockattr_setpshared(a: *mut pthread_rwlockattr_t, v: c_int) -> c_int {
        // SAFETY: the caller's attr.
        rc(unsafe { obj::<RwLockAttr, _>(a) }.set_pshared(v))
    }
);
export!(
    fn pthread_rwlockattr_getpshared(a: *const pthread_rwlockattr_t, v: *mut c_int) -> c_int {
        let _ = a;
        // SAFETY: the caller's out-pointer.
        unsafe { *v = libc::PTHREAD_PROCESS_PRIVATE };
        0
    }
);

// ---- once, spin locks, barriers ----------------------------------------------------------------

export!(
    fn pthread_once(o: *mut pthread_once_t, f: extern "C" fn()) -> c_int {
        // SAFETY: the caller's once word.
        misc::once(unsafe { obj::<AtomicU32, _>(o) }, || f());
        0
    }
);
export!(
    fn pthread_spin_init(s: *mut pthread_spinlock_t, pshared: c_int) -> c_int {
        let _ = pshared; // a spin lock is one word: shared or not, it works alike
        // SAFETY: the caller's spin lock.
        *unsafe { obj::<AtomicU32, _>(s) } = AtomicU32::new(0);
        0
    }
);
export!(
    fn pthread_spin_destroy(s: *mut pthread_spinlock_t) -> c_int {
        let _ = s;
        0
    }
);
export!(
    fn pthread_spin_lock(s: *mut pthread_spinlock_t) -> c_int {
        // SAFETY: the caller's spin lock.
        misc::spin_lock(unsafe { obj::<AtomicU32, _>(s) });
        0
    }
);
export!(
    fn pthread_spin_trylock(s: *mut pthread_spinlock_t) -> c_int {
        // SAFETY: the caller's spin lock.
        rc(misc::spin_trylock(unsafe { obj::<AtomicU32, _>(s) }))
    }
);
export!(
    fn pthread_spin_unlock(s: *mut pthread_spinlock_t) -> c_int {
        // SAFETY: the caller's spin lock.
        misc::spin_unlock(unsafe { obj::<AtomicU32, _>(s) });
        0
    }
);
export!(
    fn pthread_barrier_init(b: *mut pthread_barrier_t, a: *const pthread_barrierattr_t, n: libc::c_uint) -> c_int {
        let _ = a;
        // SAFETY: the caller's barrier.
        rc(unsafe { obj::<Barrier, _>(b) }.init(n))
    }
);
export!(
    fn pthread_barrier_destroy(b: *mut pthread_barrier_t) -> c_int {
        let _ = b;
        0
    }
);
export!(
    fn pthread_barrier_wait(b: *mut pthread_barrier_t) -> c_int {
        // SAFETY: the caller's barrier.
        if unsafe { obj::<Barrier, _>(b) }.wait() { libc::PTHREAD_BARRIER_SERIAL_THREAD } else { 0 }
    }
);

// ---- semaphores ----------------------------------------------------------------------------

export!(
    fn sem_init(s: *mut sem_t, pshared: c_int, v: libc::c_uint) -> c_int {
        // SAFETY: the caller's semaphore.
        sem_rc(unsafe { obj::<Sem, _>(s) }.init(pshared != 0, v))
    }
);
export!(
    fn sem_destroy(s: *mut sem_t) -> c_int {
        let _ = s;
        0
    }
);
export!(
    fn sem_wait(s: *mut sem_t) -> c_int {
        // SAFETY: the caller's semaphore.
        sem_rc(unsafe { obj::<Sem, _>(s) }.wait(None))
    }
);
export!(
    fn sem_timedwait(s: *mut sem_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's semaphore and time.
        sem_rc(unsafe { obj::<Sem, _>(s).wait(Some((&*ts, libc::CLOCK_REALTIME))) })
    }
);
export!(
    fn sem_clockwait(s: *mut sem_t, k: clockid_t, ts: *const timespec) -> c_int {
        // SAFETY: the caller's semaphore and time.
        sem_rc(unsafe { obj::<Sem, _>(s).wait(Some((&*ts, k))) })
    }
);
export!(
    fn sem_trywait(s: *mut sem_t) -> c_int {
        // SAFETY: the caller's semaphore.
        sem_rc(unsafe { obj::<Sem, _>(s) }.try_wait())
    }
);
export!(
    fn sem_post(s: *mut sem_t) -> c_int {
        // SAFETY: the caller's semaphore.
        sem_rc(unsafe { obj::<Sem, _>(s) }.post())
    }
);
export!(
    fn sem_getvalue(s: *mut sem_t, v: *mut c_int) -> c_int {
        // SAFETY: the caller's semaphore and out-pointer.
        unsafe { *v = obj::<Sem, _>(s).value() };
        0
    }
);
