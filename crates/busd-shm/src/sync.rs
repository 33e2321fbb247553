//! The loom facade: every atomic the ring algorithm touches comes through here.
//!
//! In the crate's own tests under `--cfg loom` the types are loom's, so the
//! models in `loom_models` explore every interleaving and weak-memory outcome
//! of the same code that runs in production; everywhere else (including a
//! `--cfg loom` build of a dependent crate) they are `std`'s. Loom's atomics
//! carry bookkeeping and cannot live in a shared mapping, so the memfd-backed
//! types are left out of those test builds (see `lib.rs`).
//!
//! Modelled on tokio's `tokio/src/loom/mod.rs` (`cfg(all(test, loom))`).

#[cfg(all(loom, test))]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(all(loom, test)))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// The byte cells of the in-memory ring used by the loom models: loom tracks
/// each access so a missing happens-before edge on the data is reported.
#[cfg(all(loom, test))]
pub(crate) use loom::cell::UnsafeCell;
