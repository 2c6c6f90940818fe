//! Machine-specific context switching (one file per target; x86-64 only for now).

#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::{Context, canary, init_context, switch};
