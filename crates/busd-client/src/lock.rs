//! [`lock`]: the one way this crate takes a std mutex.
//!
//! The SDK's mutexes (the routing state, each delivery queue, the current
//! connection's limits) guard data whose every update completes before
//! anything can panic, so a poisoned lock holds consistent data and is
//! taken over rather than turned into a second panic. It sits below every
//! other module so that the queues and the shared state can use it without
//! reaching each other.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking over the data of a poisoned one: every update of
/// the guarded data is complete before anything can panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
