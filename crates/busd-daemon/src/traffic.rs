//! One connection's traffic, for `busd ctl clients` and the metrics.
//!
//! The session counts what it reads and publishes in plain fields of its
//! own ([`Unsettled`]) and adds them here when it runs out of frames to
//! handle, as it settles its route's counts; the writer adds per batch.
//! So the counters cost a busy connection nothing per message beyond a
//! few additions to fields it owns.

use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's counters since it was welcomed.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Frames read from the client after its handshake.
    frames_in: AtomicU64,
    /// Bytes read from the client, its handshake included.
    bytes_in: AtomicU64,
    /// Messages it published.
    published: AtomicU64,
    /// Deliveries of its publishes that the access rules denied.
    denied: AtomicU64,
    /// Messages delivered to it: `Msg` frames written to its socket.
    received: AtomicU64,
    /// Bytes written to it, every frame.
    bytes_out: AtomicU64,
    /// Deliveries to it that its `drop-oldest` subscriptions dropped.
    dropped: AtomicU64,
}

/// What a session counted since it last settled.
#[derive(Debug, Default)]
pub(crate) struct Unsettled {
    pub(crate) frames_in: u64,
    pub(crate) published: u64,
    pub(crate) denied: u64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct TrafficDoc {
    pub(crate) frames_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) published: u64,
    pub(crate) denied: u64,
    pub(crate) received: u64,
    pub(crate) bytes_out: u64,
    pub(crate) dropped: u64,
    /// Deliveries it lost when it was cut off or closed (kept by its
    /// handle, beside these counters).
    pub(crate) discarded: u64,
}

impl Traffic {
    /// Adds what the session counted, and sets the bytes read so far
    /// (`consumed`, as the frame reader keeps it).
    pub(crate) fn settle(&self, counts: &mut Unsettled, consumed: u64) {
        let Unsettled {
            frames_in,
            published,
            denied,
        } = std::mem::take(counts);
        // A request-reply connection settles after every frame: the
        // counts that did not move cost no read-modify-write.
        for (counter, n) in [
            (&self.frames_in, frames_in),
            (&self.published, published),
            (&self.denied, denied),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.bytes_in.store(consumed, Ordering::Relaxed);
    }

    /// `n` deliveries were written to it.
    pub(crate) fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// A write of `bytes` completed (deliveries and every other frame).
    pub(crate) fn wrote_bytes(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `n` deliveries to it were dropped by drop-oldest.
    pub(crate) fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now, with the `discarded` its handle counted.
    pub(crate) fn snapshot(&self, discarded: u64) -> TrafficDoc {
        TrafficDoc {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            denied: self.denied.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            discarded,
        }
    }
}

impl TrafficDoc {
    /// What was counted after `earlier`, a snapshot of the same counters.
    pub(crate) fn since(self, earlier: Self) -> Self {
        Self {
            frames_in: self.frames_in.saturating_sub(earlier.frames_in),
            bytes_in: self.bytes_in.saturating_sub(earlier.bytes_in),
            published: self.published.saturating_sub(earlier.published),
            denied: self.denied.saturating_sub(earlier.denied),
            received: self.received.saturating_sub(earlier.received),
            bytes_out: self.bytes_out.saturating_sub(earlier.bytes_out),
            dropped: self.dropped.saturating_sub(earlier.dropped),
            discarded: self.discarded.saturating_sub(earlier.discarded),
        }
    }
}

impl std::ops::AddAssign for TrafficDoc {
    fn add_assign(&mut self, other: Self) {
        self.frames_in += other.frames_in;
        self.bytes_in += other.bytes_in;
        self.published += other.published;
        self.denied += other.denied;
        self.received += other.received;
        self.bytes_out += other.bytes_out;
        self.dropped += other.dropped;
        self.discarded += other.discarded;
    }
}
