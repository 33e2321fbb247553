//! The bounded outbound queue of one connection.
//!
//! Every frame for a connection waits here until its writer task sends it.
//! The bound is in messages and in bytes; what happens past it is the
//! subscription's [`Overflow`] policy, decided by [`Outbox::push`]. Nothing
//! leaves the queue uncounted: drop-oldest losses are tallied per
//! subscription for the `Dropped` notice.

use std::collections::{HashMap, VecDeque};

use busd_proto::{Overflow, SegmentFd};
use bytes::Bytes;

/// One encoded frame: the head (lengths and MessagePack header) and the
/// payload, kept apart so a payload shared by many receivers is never copied.
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// Both length fields and the encoded header.
    pub head: Bytes,
    /// The raw payload (may be empty).
    pub payload: Bytes,
    /// The subscription a `Msg` belongs to, for drop-oldest accounting.
    pub sid: Option<u64>,
    /// Whether this frame may be dropped to make room (drop-oldest `Msg`).
    pub droppable: bool,
    /// A payload passed beside the stream (shm receivers): the writer sends
    /// this fd before the frame, whose head announces its length.
    pub segment: Option<(SegmentFd, usize)>,
}

impl OutFrame {
    /// A frame that is never dropped (replies, errors, pongs, calls).
    pub fn control(head: Bytes, payload: Bytes) -> Self {
        Self {
            head,
            payload,
            sid: None,
            droppable: false,
            segment: None,
        }
    }

    /// A `Msg` delivery for subscription `sid` under policy `overflow`.
    pub fn message(head: Bytes, payload: Bytes, sid: u64, overflow: Overflow) -> Self {
        Self {
            head,
            payload,
            sid: Some(sid),
            droppable: overflow == Overflow::DropOldest,
            segment: None,
        }
    }

    /// The same frame with its payload passed as `segment`, of `len` bytes,
    /// beside the stream (`head` must announce it).
    pub fn with_segment(mut self, segment: SegmentFd, len: usize) -> Self {
        self.segment = Some((segment, len));
        self
    }

    /// Bytes this frame holds while queued: on the wire, plus its segment's
    /// (a receiver that does not read pins segments as surely as bytes).
    pub fn queued_len(&self) -> usize {
        self.head.len() + self.payload.len() + self.segment.as_ref().map_or(0, |s| s.1)
    }
}

/// The outcome of [`Outbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pushed {
    /// Queued; `was_empty` tells whether the writer needs a wake-up.
    Queued {
        /// The queue was empty before this frame.
        was_empty: bool,
    },
    /// Queued after dropping older droppable frames, or dropped itself
    /// (drop-oldest policy); either way counted for a `Dropped` notice.
    Dropped,
    /// No room: the caller applies the disconnect or block policy.
    Full,
}

/// A connection's bounded outbound queue.
#[derive(Debug)]
pub struct Outbox {
    frames: VecDeque<OutFrame>,
    bytes: usize,
    max_msgs: usize,
    max_bytes: usize,
    /// Messages dropped per sid since the last [`Outbox::take_dropped`].
    dropped: HashMap<u64, u64>,
}

impl Outbox {
    /// An empty queue holding at most `max_msgs` frames and `max_bytes` bytes.
    pub fn new(max_msgs: usize, max_bytes: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            bytes: 0,
            max_msgs: max_msgs.max(1),
            max_bytes: max_bytes.max(1),
            dropped: HashMap::new(),
        }
    }

    /// Whether a frame of `len` bytes would be queued now without dropping
    /// anything (what a `block` publisher waits for).
    pub fn fits(&self, len: usize) -> bool {
        // An empty queue always takes one frame, however large (frames are
        // bounded by max_frame already), so a big message is never stuck.
        self.frames.is_empty()
            || (self.frames.len() < self.max_msgs && self.bytes + len <= self.max_bytes)
    }

    /// Queues `frame`, applying drop-oldest where the frame allows it.
    pub fn push(&mut self, frame: OutFrame) -> Pushed {
        let len = frame.queued_len();
        if self.fits(len) {
            let was_empty = self.frames.is_empty();
            self.bytes += len;
            self.frames.push_back(frame);
            return Pushed::Queued { was_empty };
        }
        if !frame.droppable {
            return Pushed::Full;
        }
        // Make room by dropping the oldest droppable frames.
        while !self.fits(len) {
            let Some(i) = self.frames.iter().position(|f| f.droppable) else {
                break;
            };
            if let Some(old) = self.frames.remove(i) {
                self.bytes -= old.queued_len();
                self.count_drop(old.sid);
            }
        }
        if self.fits(len) {
            self.bytes += len;
            self.frames.push_back(frame);
        } else {
            self.count_drop(frame.sid);
        }
        Pushed::Dropped
    }

    fn count_drop(&mut self, sid: Option<u64>) {
        if let Some(sid) = sid {
            *self.dropped.entry(sid).or_default() += 1;
        }
    }

    /// Moves up to `max` frames into `out`, oldest first.
    pub fn drain_into(&mut self, out: &mut Vec<OutFrame>, max: usize) {
        let n = self.frames.len().min(max);
        for frame in self.frames.drain(..n) {
            self.bytes -= frame.queued_len();
            out.push(frame);
        }
    }

    /// The drop counts per sid since the last call, to tell the subscriber.
    pub fn take_dropped(&mut self) -> Vec<(u64, u64)> {
        self.dropped.drain().collect()
    }

    /// Whether nothing waits, drop notices included.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.dropped.is_empty()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sid: u64, len: usize, overflow: Overflow) -> OutFrame {
        OutFrame::message(Bytes::from(vec![0; len]), Bytes::new(), sid, overflow)
    }

    #[test]
    fn bounded_in_messages_and_bytes() {
        let mut q = Outbox::new(2, 100);
        assert_eq!(
            q.push(msg(1, 10, Overflow::Disconnect)),
            Pushed::Queued { was_empty: true }
        );
        assert_eq!(
            q.push(msg(1, 10, Overflow::Disconnect)),
            Pushed::Queued { was_empty: false }
        );
        assert_eq!(q.push(msg(1, 10, Overflow::Disconnect)), Pushed::Full);
        let mut q = Outbox::new(10, 100);
        assert!(matches!(
            q.push(msg(1, 60, Overflow::Disconnect)),
            Pushed::Queued { .. }
        ));
        assert_eq!(q.push(msg(1, 60, Overflow::Disconnect)), Pushed::Full);
        assert_eq!(q.bytes(), 60);
    }

    #[test]
    fn oversized_frame_fits_an_empty_queue() {
        let mut q = Outbox::new(10, 100);
        assert!(matches!(
            q.push(msg(1, 1000, Overflow::Disconnect)),
            Pushed::Queued { .. }
        ));
    }

    #[test]
    fn drop_oldest_drops_and_counts() {
        let mut q = Outbox::new(2, 1000);
        let _ = q.push(msg(7, 1, Overflow::DropOldest));
        let _ = q.push(msg(7, 2, Overflow::DropOldest));
        assert_eq!(q.push(msg(7, 3, Overflow::DropOldest)), Pushed::Dropped);
        let mut out = Vec::new();
        q.drain_into(&mut out, 10);
        let lens: Vec<usize> = out.iter().map(OutFrame::queued_len).collect();
        assert_eq!(lens, vec![2, 3], "the oldest went");
        assert_eq!(q.take_dropped(), vec![(7, 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn control_frames_are_never_dropped() {
        let mut q = Outbox::new(1, 1000);
        let _ = q.push(OutFrame::control(Bytes::from_static(b"pong"), Bytes::new()));
        assert_eq!(q.push(msg(3, 1, Overflow::DropOldest)), Pushed::Dropped);
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.take_dropped(),
            vec![(3, 1)],
            "the new message was dropped and counted"
        );
    }
}
