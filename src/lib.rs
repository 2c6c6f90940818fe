#![doc = include_str!("../README.md")]
//!
//! ## Glossary
//!
//! - **region**: the fixed-address mapping holding the persistent heap and its metadata.
//! - **page**: 4 KiB of the region; the unit of tracking and of checkpoint I/O.
//! - **slot**: one of the two checkpoint files; a checkpoint writes the inactive one.
//! - **seq / epoch**: checkpoint sequence number; a page's epoch in a slot is the seq of the
//!   checkpoint that last wrote it there.
//! - **pending**: per slot, the pages it lacks relative to memory.
//! - **extent**: a run of live pages (metadata, page map, heap area in use).
//! - **volatile**: memory outside the region (never checkpointed).
//!
#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(loom))]
pub mod ckpt;
#[cfg(not(loom))]
pub mod config;
#[cfg(not(loom))]
pub mod error;
#[cfg(not(loom))]
pub mod failpoint;
#[cfg(not(loom))]
pub mod heap;
#[cfg(not(loom))]
pub mod hooks;
#[cfg(not(loom))]
pub mod identity;
mod loom;
#[cfg(not(loom))]
pub mod pages;
#[cfg(not(loom))]
pub mod posix;
#[cfg(not(loom))]
pub mod region;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
pub mod store;
pub mod sync;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod sys;
#[cfg(not(loom))]
pub mod thread;
/// Under loom only the thread runtime's handshake is compiled, for its models.
#[cfg(loom)]
#[doc(hidden)]
pub mod thread {
    pub mod handshake;
}
#[cfg(not(loom))]
pub mod track;

#[cfg(not(loom))]
pub use ckpt::Stats;
#[cfg(not(loom))]
pub use config::{Config, Durability, Overrides, Policy, TrackerKind};
#[cfg(not(loom))]
pub use error::{Errno, Error, Result};
#[cfg(not(loom))]
pub use heap::{CrAlloc, volatile};
#[cfg(not(loom))]
pub use runtime::{
    Root, Start, auto_init, checkpoint, config, init, init_from_env, init_or_adopt, init_with_argv, is_initialised,
    is_plain, main, region, retire, rollback, root, root_bytes, set_durability, start, tracker,
};
