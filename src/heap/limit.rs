//! The process's `RLIMIT_AS` and `RLIMIT_DATA`, honoured by the heap itself, and the messages
//! for an allocation that cannot be served.
//!
//! The region is reserved once, at start-up, before the program can lower its limits, and the
//! kernel checks limits only when a mapping is made, not when its pages are touched. So the heap
//! checks them whenever it hands out never-touched pages (raises `top`): the process counts as
//! using what it would without the reservation, `VmSize - capacity + region bytes in use` (and
//! the same with `VmData` for the data limit). An allocation that would pass a limit fails as
//! it would under glibc: `malloc` returns NULL with ENOMEM, Rust takes its out-of-memory path.
//!
//! Reading `/proc/self/status` costs microseconds, so a check grants a margin of at most
//! [`MARGIN`] bytes and the next read happens when it is used up or a limit changes; getting
//! the limits is one system call per growth. All of this runs under the page-heap lock and
//! allocates nothing.

use core::sync::atomic::{AtomicU64, Ordering};

use super::Ctx;
use crate::sys::{PAGE, proc};

/// The most the heap grows between two reads of the process's usage.
const MARGIN: u64 = 64 << 20;

/// `top` (in pages) up to which growth was found to fit, and the limits it was found under.
static ALLOWED_TOP: AtomicU64 = AtomicU64::new(0);
static SEEN_AS: AtomicU64 = AtomicU64::new(u64::MAX);
static SEEN_DATA: AtomicU64 = AtomicU64::new(u64::MAX);

/// Whether the heap may raise `top` from `top` to `new_top` pages under the process's limits.
/// Caller holds the page-heap lock.
pub(super) fn may_grow(ctx: &Ctx, top: u32, new_top: u32) -> bool {
    let lim_as = proc::soft_limit(libc::RLIMIT_AS).unwrap_or(u64::MAX);
    let lim_data = proc::soft_limit(libc::RLIMIT_DATA).unwrap_or(u64::MAX);
    if lim_as == u64::MAX && lim_data == u64::MAX {
        return true;
    }
    let unchanged = SEEN_AS.load(Ordering::Relaxed) == lim_as && SEEN_DATA.load(Ordering::Relaxed) == lim_data;
    if unchanged && u64::from(new_top) <= ALLOWED_TOP.load(Ordering::Relaxed) {
        return true;
    }
    let (vm, data) = proc::vm_usage();
    let capacity = super::G.capacity.load(Ordering::Relaxed) as u64;
    // Header and caches, the page map's used part, the heap area's used part.
    let entry = core::mem::size_of::<super::meta::PageEntry>() as u64;
    let in_use = (ctx.pagemap - ctx.base) as u64 + u64::from(top) * (entry + PAGE as u64);
    let effective = |usage: u64| usage.saturating_sub(capacity).saturating_add(in_use);
    let room = lim_as.saturating_sub(effective(vm)).min(lim_data.saturating_sub(effective(data)));
    let allowed = u64::from(top) + room.min(MARGIN) / PAGE as u64;
    SEEN_AS.store(lim_as, Ordering::Relaxed);
    SEEN_DATA.store(lim_data, Ordering::Relaxed);
    ALLOWED_TOP.store(allowed, Ordering::Relaxed);
    if u64::from(new_top) <= allowed {
        return true;
    }
    let msg = if lim_as.saturating_sub(effective(vm)) <= lim_data.saturating_sub(effective(data)) {
        "an allocation failed: it would pass the address-space limit (ulimit -v, RLIMIT_AS)"
    } else {
        "an allocation failed: it would pass the data-segment limit (ulimit -d, RLIMIT_DATA)"
    };
    crate::sys::warn_limited("heap-limit", msg);
    false
}

/// Reports (rate-limited) that the region has no room left.
pub(super) fn report_full() {
    crate::sys::warn_limited(
        "heap-full",
        "an allocation failed: the persistent heap is full (its region is CRTHREADS_CAPACITY bytes of \
         address space); a larger CRTHREADS_CAPACITY takes effect on a fresh start",
    );
}
