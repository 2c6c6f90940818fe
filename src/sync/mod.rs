//! Synchronisation used by the runtime itself, and the one lock order of the runtime.
//!
//! # Lock order
//!
//! A thread that holds a lock of rank *n* may take only locks of higher rank. Every path follows
//! it: a checkpoint, the `fork` handlers (`heap::before_fork`), the allocator's slow paths.
//!
//! | rank | lock | taken by |
//! |------|------|----------|
//! | 1 | the runtime's state (`runtime::State`, a `Mutex`) | `checkpoint`, `retire`, settings |
//! | 2 | the checkpoint coordinator | checkpoint requests |
//! | 3 | the mprotect tracker's signal-disposition flag | `sigaction` interposers, `fork` |
//! | 4 | the central lists, in size-class order | allocator slow paths, `heap::lock_all` |
//! | 5 | the page heap | large allocations, new spans, `heap::lock_all` |
//! | 6 | the userfaultfd tracker's state | the tracker's `collect` |
//! | 7 | the volatile allocator | the runtime's own allocations, `fork` |
//! | 8 | glibc's stdio list lock | the mprotect tracker's `collect`, glibc's `fork` |
//!
//! Between taking the heap's locks and releasing them (ranks 4 and 5), a checkpoint allocates
//! nothing at all: not even from the volatile allocator, whose lock ranks after them, so that
//! no path can ever wait for rank 7 while a `fork` holding it waits for ranks 4 and 5. Debug
//! builds abort on such an allocation (`sys::tls::set_no_alloc`).
//!
//! [`RawLock`] guards the allocator's shared structures. It is not a crthreads lock in the sense
//! of the consistency model: it is never held across a safepoint and does not count towards a
//! thread's lock depth. Its state word may live inside the persistent region; restore resets it,
//! since no thread of the new process can hold it.

pub(crate) mod raw_lock;

pub use raw_lock::RawLock;
