//! Synchronisation used by the runtime itself.
//!
//! [`RawLock`] guards the allocator's shared structures. It is not a crthreads lock in the sense
//! of the consistency model: it is never held across a safepoint and does not count towards a
//! thread's lock depth. Its state word may live inside the persistent region; restore resets it,
//! since no thread of the new process can hold it.

pub(crate) mod raw_lock;

pub use raw_lock::RawLock;
