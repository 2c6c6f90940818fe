//! Helpers for the loom models.
