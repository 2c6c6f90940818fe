//! Thread-specific data (`pthread_key_create` and friends).

/// Runs the calling persistent thread's thread-specific data destructors (before it ends).
pub fn thread_exit() {}
