//! Where the deliveries the router made ended, added up daemon-wide.
//!
//! The router counts each delivery it routes (`delivered`: one per
//! receiving subscription). Each then ends in exactly one of these
//! counters, or still waits in a queue, so an operator can check that
//! nothing accepted was lost silently:
//!
//! `delivered = written + dropped + discarded + failed + queued`
//!
//! (exactly once the daemon is idle; while messages flow, a delivery may be
//! in a write, or with a connection that is closing, and in none of them).
//! The counters are added to per batch or on paths that are already slow
//! (an overflow, a connection that closes), never per message.

use std::sync::atomic::{AtomicU64, Ordering};

/// The daemon-wide counters, shared by every connection's handle.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    written: AtomicU64,
    dropped: AtomicU64,
    discarded: AtomicU64,
    failed: AtomicU64,
    /// Connections cut off as slow consumers (for the metrics): their
    /// queue full, a `block` wait run out, or a write stalled.
    slow_consumers: AtomicU64,
}

impl Tally {
    /// `n` deliveries the socket took.
    pub(crate) fn written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` deliveries a `drop-oldest` subscription lost.
    pub(crate) fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` deliveries lost with their connection.
    pub(crate) fn discarded(&self, n: u64) {
        self.discarded.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` deliveries that could not be made at all.
    pub(crate) fn failed(&self, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
    }

    /// A connection was cut off as a slow consumer.
    pub(crate) fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections cut off as slow consumers since start.
    pub(crate) fn slow_consumers(&self) -> u64 {
        self.slow_consumers.load(Ordering::Relaxed)
    }

    /// The counters now, with `queued` as the caller counted it.
    pub(crate) fn snapshot(&self, queued: u64) -> Deliveries {
        Deliveries {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            discarded: self.discarded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            queued,
        }
    }
}

/// Where the router's deliveries (`busd_core::Stats::delivered`) went,
/// since the daemon started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Deliveries {
    /// Taken by the receiver's socket (or shm ring): in a write that
    /// completed. A write that fails counts its whole batch as discarded,
    /// even the part the socket may have taken before it failed.
    pub written: u64,
    /// Dropped to make room by a `drop-oldest` subscription; the
    /// subscriber is told how many (`Dropped`).
    pub dropped: u64,
    /// Lost with their connection: queued or being written when it was cut
    /// off (a slow consumer, a package removed by a reload, a `block`
    /// subscriber that made no room in time, over its memory budget),
    /// failed or left, or that did not take them within its closing grace;
    /// or routed to it as it closed.
    pub discarded: u64,
    /// Never queued: a segment the daemon could not map for a receiver
    /// that takes no fds (the publisher is told `LimitExceeded`).
    pub failed: u64,
    /// Waiting in the queues of the connections registered now.
    pub queued: u64,
}

impl Deliveries {
    /// Every delivery accounted for: what `delivered` must equal once the
    /// daemon is idle.
    pub fn total(&self) -> u64 {
        self.written + self.dropped + self.discarded + self.failed + self.queued
    }
}
