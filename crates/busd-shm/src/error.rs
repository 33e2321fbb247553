//! Errors of the shared-memory layer.
//!
//! Two families: [`ShmError`] for setting a ring or segment up (syscalls,
//! sizes, seals, header), and the per-message [`PushError`] and [`RingError`].
//! A [`Corrupt`] anywhere means the peer broke the ring's invariants (or is
//! hostile): the caller must disconnect it; the ring is never read again.

use std::io;

/// The peer wrote something into the shared ring that an honest peer never
/// writes: positions out of order, a length past its bound or past the written
/// region. Nothing was read out of bounds; the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("peer corrupted the shared ring: {reason}")]
pub struct Corrupt {
    reason: &'static str,
}

impl Corrupt {
    pub(crate) const fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// A stable, human-readable description of the violated invariant.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Why a ring or segment could not be created or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// A system call failed.
    #[error("{op} failed: {source}")]
    Sys {
        /// The call, e.g. `mmap`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A ring capacity that is not a power of two within the supported range.
    #[error("ring capacity {0} is not a power of two in {min}..={max}", min = crate::MIN_CAPACITY, max = crate::MAX_CAPACITY)]
    BadCapacity(u64),
    /// A received memfd whose size does not match what it must hold.
    #[error("memfd holds {actual} bytes, which does not fit: {expected}")]
    BadSize {
        /// The size reported by `fstat`.
        actual: u64,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// A received memfd lacks seals it must carry.
    #[error("memfd seals {actual:?} lack the required {required:?}")]
    MissingSeals {
        /// The seals required.
        required: rustix::fs::SealFlags,
        /// The seals present.
        actual: rustix::fs::SealFlags,
    },
    /// A received ring whose header is not a busd ring of this version.
    #[error("ring header invalid: {0}")]
    BadHeader(&'static str),
    /// A received file descriptor that is not an eventfd.
    #[error("file descriptor is not an eventfd")]
    NotAnEventFd,
}

impl ShmError {
    pub(crate) fn sys(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> Self {
        move |errno| Self::Sys {
            op,
            source: errno.into(),
        }
    }
}

/// Why a message was not pushed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// No room now; retry after the consumer has caught up.
    #[error("ring full")]
    Full,
    /// The message can never fit: over `max_message` (or the ring's capacity − 4).
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The largest length this ring accepts.
        max: usize,
    },
    /// The consumer corrupted the ring's read position.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// The message was pushed but the consumer could not be woken: the
    /// connection is broken.
    #[error("waking the consumer failed: {0}")]
    Wake(#[source] io::Error),
}

/// Why a message could not be popped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The producer corrupted the ring: disconnect it.
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// Waiting on, or signalling, an eventfd failed.
    #[error("eventfd wake-up failed: {0}")]
    Wake(#[source] io::Error),
}
