//! The bounded outbound queue of one connection.
//!
//! Every frame for a connection waits here until its writer task sends it.
//! The bound is in frames and in bytes; what happens past it is the
//! subscription's [`Overflow`] policy, decided by [`Outbox::push`]. Nothing
//! leaves the queue uncounted: drop-oldest losses are tallied per
//! subscription for the `Dropped` notice, and returned by `push` so the
//! daemon can add them up; every frame says how many `Msg` deliveries it
//! carries, so that what is written or discarded can be counted too.
//!
//! Small frames that are never dropped are copied in as they come, one
//! after another, into a run of bytes that the writer takes whole (as the
//! NATS server fills a client's outbound buffer). The writer copied them
//! into one buffer anyway; copying at push time saves each of them its own
//! head allocation, two reference-counted `Bytes` and three moves of an
//! [`OutFrame`].

use std::collections::{HashMap, VecDeque};

use busd_proto::{Fds, Overflow, PoolFd, SegmentFd};
use bytes::{Bytes, BytesMut};

/// The least room a new run is allocated with: a few dozen small frames.
const RUN_MIN: usize = 4096;
/// The most room a new run is allocated with ahead of need (see
/// `Outbox::run_hint`).
const RUN_MAX: usize = 64 * 1024;

/// One encoded frame: the head (lengths and MessagePack header) and the
/// payload, kept apart so a payload shared by many receivers is never copied.
/// Or a run of whole small frames, copied one after another into `head`.
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// Both length fields and the encoded header (or a run of frames).
    pub head: Bytes,
    /// The raw payload (may be empty).
    pub payload: Bytes,
    /// The subscription a `Msg` belongs to, for drop-oldest accounting.
    pub sid: Option<u64>,
    /// Whether this frame may be dropped to make room (drop-oldest `Msg`).
    pub droppable: bool,
    /// An fd the writer passes beside the stream before the frame (shm
    /// receivers): its payload's segment, or the set pool it lies in.
    pub beside: Option<Beside>,
    /// Open files attached (unix and shm receivers): the writer passes them
    /// with the frame, whose head announces them. Shared with the other
    /// receivers' frames; closed once the last is written or dropped.
    pub fds: Fds,
    /// Frames on the wire: 1, or a run's count. (This and `msgs` are
    /// `u32`s so that the whole frame stays within 128 bytes, which the
    /// compiler moves inline rather than by calling `memcpy`: a frame is
    /// moved a few times on its way into a queue.)
    pub frames: u32,
    /// `Msg` deliveries among them: 1 for a message, a run's count (runs
    /// hold only deliveries), 0 for a control frame. What the daemon's
    /// delivery counters count.
    pub msgs: u32,
}

impl OutFrame {
    /// A frame that is never dropped (replies, errors, pongs, calls).
    pub fn control(head: Bytes, payload: Bytes) -> Self {
        Self {
            head,
            payload,
            sid: None,
            droppable: false,
            beside: None,
            fds: Fds::default(),
            frames: 1,
            msgs: 0,
        }
    }

    /// A `Msg` delivery for subscription `sid` under policy `overflow`.
    pub fn message(head: Bytes, payload: Bytes, sid: u64, overflow: Overflow) -> Self {
        Self {
            head,
            payload,
            sid: Some(sid),
            droppable: overflow == Overflow::DropOldest,
            beside: None,
            fds: Fds::default(),
            frames: 1,
            msgs: 1,
        }
    }

    /// The same frame with its payload passed as `segment`, of `len` bytes,
    /// beside the stream (`head` must announce it).
    pub fn with_segment(mut self, segment: SegmentFd, len: usize) -> Self {
        // Payloads are at most `max_frame` (a u32) long.
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.beside = Some(Beside::Segment(segment, len));
        self
    }

    /// The same frame with its payload in the set pool `pool` (`head` must
    /// say where): the writer passes the pool's fd first unless the
    /// receiver has it already.
    pub fn with_set_pool(mut self, pool: PoolFd) -> Self {
        self.beside = Some(Beside::Pool(pool));
        self
    }

    /// The same frame with `fds` attached (`head` must announce them).
    pub fn with_fds(mut self, fds: Fds) -> Self {
        self.fds = fds;
        self
    }

    /// Bytes this frame holds while queued: on the wire, plus its segment's
    /// (a receiver that does not read pins segments as surely as bytes).
    pub fn queued_len(&self) -> usize {
        let segment = match &self.beside {
            Some(Beside::Segment(_, len)) => *len as usize,
            _ => 0,
        };
        self.head.len() + self.payload.len() + segment
    }
}

/// An fd passed beside the stream before a frame.
#[derive(Debug, Clone)]
pub enum Beside {
    /// The frame's payload, a segment of this many bytes (a `u32`, which
    /// keeps an [`OutFrame`] within 128 bytes).
    Segment(SegmentFd, u32),
    /// The set pool the frame's payload lies in.
    Pool(PoolFd),
}

/// What a pusher hands [`Outbox::push`].
#[derive(Debug)]
pub enum Outgoing<'a> {
    /// A frame queued as it is: large payloads, segments, drop-oldest
    /// messages (each must be droppable alone).
    Frame(OutFrame),
    /// A small `Msg` delivery that is never dropped, copied into the
    /// queue: its `head`, then its `payload`.
    Copy {
        /// Both length fields and the encoded header.
        head: &'a [u8],
        /// The raw payload.
        payload: &'a [u8],
    },
}

impl Outgoing<'_> {
    /// Bytes it will hold while queued.
    pub fn queued_len(&self) -> usize {
        match self {
            Self::Frame(frame) => frame.queued_len(),
            Self::Copy { head, payload } => head.len() + payload.len(),
        }
    }

    /// `Msg` deliveries it carries (see [`OutFrame::msgs`]).
    pub fn msgs(&self) -> usize {
        match self {
            Self::Frame(frame) => frame.msgs as usize,
            Self::Copy { .. } => 1,
        }
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
    Dropped {
        /// Messages dropped: older ones, or this one.
        count: u64,
    },
    /// No room: the caller applies the disconnect or block policy.
    Full,
}

/// A connection's bounded outbound queue.
#[derive(Debug)]
pub struct Outbox {
    frames: VecDeque<OutFrame>,
    /// Copied frames that came after everything in `frames`; taken whole
    /// by the writer (so a connection that is not sent to holds no room).
    run: BytesMut,
    /// Frames in `run`.
    run_frames: u32,
    /// How long the last run grew (at most [`RUN_MAX`]): the next starts
    /// with that much room, so a busy connection's runs are not grown, and
    /// their bytes copied, a doubling at a time.
    run_hint: usize,
    /// Frames queued, in `frames` and `run`.
    count: usize,
    /// `Msg` deliveries among them.
    msgs: usize,
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
            run: BytesMut::new(),
            run_frames: 0,
            run_hint: RUN_MIN,
            count: 0,
            msgs: 0,
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
        self.count == 0 || (self.count < self.max_msgs && self.bytes + len <= self.max_bytes)
    }

    /// Queues `item`, applying drop-oldest where the frame allows it. A
    /// frame that may not be dropped (a reply, an error, a delivery under
    /// another policy) takes the place of droppable ones when that makes
    /// room: a drop-oldest subscription's backlog must not cost its
    /// connection a reply.
    pub fn push(&mut self, item: Outgoing<'_>) -> Pushed {
        let len = item.queued_len();
        if self.fits(len) {
            let was_empty = self.count == 0;
            self.queue(item, len);
            return Pushed::Queued { was_empty };
        }
        let droppable = matches!(&item, Outgoing::Frame(f) if f.droppable);
        if !droppable && !self.fits_without_droppable(len) {
            return Pushed::Full;
        }
        // Make room by dropping the oldest droppable frames.
        let mut count = 0;
        while !self.fits(len) {
            let Some(i) = self.frames.iter().position(|f| f.droppable) else {
                break;
            };
            if let Some(old) = self.frames.remove(i) {
                self.count -= old.frames as usize;
                self.msgs -= old.msgs as usize;
                self.bytes -= old.queued_len();
                self.count_drop(old.sid);
                count += 1;
            }
        }
        if self.fits(len) {
            self.queue(item, len);
        } else if let Outgoing::Frame(frame) = item {
            // Only a droppable frame gets here: it is dropped itself.
            self.count_drop(frame.sid);
            count += 1;
        }
        Pushed::Dropped { count }
    }

    /// Whether a frame of `len` bytes would fit once every droppable frame
    /// was dropped.
    fn fits_without_droppable(&self, len: usize) -> bool {
        let (frames, bytes) = self
            .frames
            .iter()
            .filter(|f| f.droppable)
            .fold((0, 0), |(n, b), f| {
                (n + f.frames as usize, b + f.queued_len())
            });
        let (count, queued) = (self.count - frames, self.bytes - bytes);
        count == 0 || (count < self.max_msgs && queued + len <= self.max_bytes)
    }

    /// Queues `item`, which fits.
    fn queue(&mut self, item: Outgoing<'_>, len: usize) {
        self.count += 1;
        self.msgs += item.msgs();
        self.bytes += len;
        match item {
            Outgoing::Frame(frame) => {
                self.end_run();
                self.frames.push_back(frame);
            }
            Outgoing::Copy { head, payload } => {
                if self.run.capacity() - self.run.len() < len {
                    self.run.reserve(len.max(self.run_hint));
                }
                self.run.extend_from_slice(head);
                self.run.extend_from_slice(payload);
                self.run_frames += 1;
            }
        }
    }

    /// Closes the run of copied frames, so that what is queued next goes
    /// after it. The writer gets the run's buffer itself: no reference
    /// count, and the next run starts in a new one.
    fn end_run(&mut self) {
        if self.run_frames > 0 {
            self.run_hint = self.run.len().clamp(RUN_MIN, RUN_MAX);
            let head = std::mem::take(&mut self.run).freeze();
            let mut run = OutFrame::control(head, Bytes::new());
            run.frames = std::mem::take(&mut self.run_frames);
            run.msgs = run.frames;
            self.frames.push_back(run);
        }
    }

    fn count_drop(&mut self, sid: Option<u64>) {
        if let Some(sid) = sid {
            *self.dropped.entry(sid).or_default() += 1;
        }
    }

    /// Moves up to `max` frames (a run counting as one) into `out`, oldest
    /// first.
    pub fn drain_into(&mut self, out: &mut Vec<OutFrame>, max: usize) {
        if self.frames.len() < max {
            self.end_run();
        }
        let n = self.frames.len().min(max);
        for frame in self.frames.drain(..n) {
            self.count -= frame.frames as usize;
            self.msgs -= frame.msgs as usize;
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
        self.count == 0 && self.dropped.is_empty()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.count
    }

    /// `Msg` deliveries waiting (control frames not counted).
    pub fn msgs(&self) -> usize {
        self.msgs
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(sid: u64, len: usize, overflow: Overflow) -> Outgoing<'static> {
        Outgoing::Frame(OutFrame::message(
            Bytes::from(vec![0; len]),
            Bytes::new(),
            sid,
            overflow,
        ))
    }

    #[test]
    fn a_frame_stays_within_128_bytes() {
        // Moved inline, not through `memcpy`, only up to this size.
        assert!(std::mem::size_of::<OutFrame>() <= 128);
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
    fn a_reply_takes_the_place_of_drop_oldest_deliveries_not_of_others() {
        let reply = || Outgoing::Frame(OutFrame::control(Bytes::from(vec![0; 4]), Bytes::new()));
        let mut q = Outbox::new(2, 1000);
        let _ = q.push(msg(7, 1, Overflow::DropOldest));
        let _ = q.push(msg(7, 2, Overflow::DropOldest));
        assert_eq!(q.push(reply()), Pushed::Dropped { count: 1 });
        let mut out = Vec::new();
        q.drain_into(&mut out, 10);
        let lens: Vec<usize> = out.iter().map(OutFrame::queued_len).collect();
        assert_eq!(lens, vec![2, 4], "the oldest delivery made way");
        assert_eq!(q.take_dropped(), vec![(7, 1)]);

        // Once nothing droppable is left to make way: full, and nothing
        // dropped.
        let mut q = Outbox::new(2, 1000);
        let _ = q.push(msg(7, 1, Overflow::Disconnect));
        let _ = q.push(msg(8, 1, Overflow::DropOldest));
        assert_eq!(q.push(reply()), Pushed::Dropped { count: 1 });
        assert_eq!(q.take_dropped(), vec![(8, 1)]);
        assert_eq!(q.push(reply()), Pushed::Full);
        assert!(q.take_dropped().is_empty(), "nothing dropped in vain");
    }

    #[test]
    fn drop_oldest_drops_and_counts() {
        let mut q = Outbox::new(2, 1000);
        let _ = q.push(msg(7, 1, Overflow::DropOldest));
        let _ = q.push(msg(7, 2, Overflow::DropOldest));
        assert_eq!(
            q.push(msg(7, 3, Overflow::DropOldest)),
            Pushed::Dropped { count: 1 }
        );
        let mut out = Vec::new();
        q.drain_into(&mut out, 10);
        let lens: Vec<usize> = out.iter().map(OutFrame::queued_len).collect();
        assert_eq!(lens, vec![2, 3], "the oldest went");
        assert_eq!(q.take_dropped(), vec![(7, 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn deliveries_are_counted_apart_from_control_frames() {
        let mut q = Outbox::new(3, 1000);
        let _ = q.push(framed(b"pong"));
        let _ = q.push(copy(b"h", b"p"));
        let _ = q.push(copy(b"h", b"p"));
        assert_eq!((q.len(), q.msgs()), (3, 2));
        let mut out = Vec::new();
        q.drain_into(&mut out, 10);
        let msgs: Vec<u32> = out.iter().map(|f| f.msgs).collect();
        assert_eq!(msgs, vec![0, 2], "the pong, then a run of two");
        assert_eq!(q.msgs(), 0);

        // Two small droppable messages make room for one large one.
        let mut q = Outbox::new(10, 10);
        let _ = q.push(msg(1, 4, Overflow::DropOldest));
        let _ = q.push(msg(1, 4, Overflow::DropOldest));
        assert_eq!(
            q.push(msg(1, 9, Overflow::DropOldest)),
            Pushed::Dropped { count: 2 }
        );
        assert_eq!((q.len(), q.msgs()), (1, 1));
    }

    #[test]
    fn control_frames_are_never_dropped() {
        let mut q = Outbox::new(1, 1000);
        let _ = q.push(Outgoing::Frame(OutFrame::control(
            Bytes::from_static(b"pong"),
            Bytes::new(),
        )));
        assert_eq!(
            q.push(msg(3, 1, Overflow::DropOldest)),
            Pushed::Dropped { count: 1 }
        );
        assert_eq!(q.len(), 1);
        assert_eq!(
            q.take_dropped(),
            vec![(3, 1)],
            "the new message was dropped and counted"
        );
    }

    /// What the writer would send: every drained frame's bytes, in order.
    fn wire(out: &[OutFrame]) -> Vec<u8> {
        out.iter()
            .flat_map(|f| f.head.iter().chain(f.payload.iter()).copied())
            .collect()
    }

    fn copy<'a>(head: &'a [u8], payload: &'a [u8]) -> Outgoing<'a> {
        Outgoing::Copy { head, payload }
    }

    fn framed(head: &'static [u8]) -> Outgoing<'static> {
        Outgoing::Frame(OutFrame::control(Bytes::from_static(head), Bytes::new()))
    }

    #[test]
    fn copied_and_whole_frames_leave_in_the_order_they_came() {
        let mut q = Outbox::new(100, 1000);
        assert_eq!(
            q.push(copy(b"h1", b"p1")),
            Pushed::Queued { was_empty: true }
        );
        assert_eq!(
            q.push(copy(b"h2", b"")),
            Pushed::Queued { was_empty: false }
        );
        let _ = q.push(framed(b"F3"));
        let _ = q.push(copy(b"h4", b"p4"));
        assert_eq!((q.len(), q.bytes()), (4, 12));
        let mut out = Vec::new();
        q.drain_into(&mut out, 10);
        assert_eq!(wire(&out), b"h1p1h2F3h4p4");
        let frames: Vec<u32> = out.iter().map(|f| f.frames).collect();
        assert_eq!(frames, vec![2, 1, 1], "two runs around the whole frame");
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn copied_frames_count_against_both_bounds() {
        let mut q = Outbox::new(2, 100);
        let _ = q.push(copy(b"h", b"p"));
        let _ = q.push(copy(b"h", b"p"));
        assert_eq!(q.push(copy(b"h", b"p")), Pushed::Full, "frame bound");
        let mut q = Outbox::new(10, 10);
        let _ = q.push(copy(b"head", b"body"));
        assert!(!q.fits(3));
        assert_eq!(q.push(copy(b"h", b"pp")), Pushed::Full, "byte bound");
        // Once drained, there is room again.
        q.drain_into(&mut Vec::new(), 10);
        assert_eq!(
            q.push(copy(b"h", b"pp")),
            Pushed::Queued { was_empty: true }
        );
    }

    #[test]
    fn a_partial_drain_keeps_the_run_behind_older_frames() {
        let mut q = Outbox::new(100, 1000);
        let _ = q.push(framed(b"A"));
        let _ = q.push(framed(b"B"));
        let _ = q.push(copy(b"c", b"C"));
        let mut out = Vec::new();
        q.drain_into(&mut out, 1);
        assert_eq!(wire(&out), b"A");
        let _ = q.push(copy(b"d", b"D"));
        q.drain_into(&mut out, 1);
        assert_eq!(
            wire(&out),
            b"AB",
            "the run stays open while older frames wait"
        );
        q.drain_into(&mut out, 1);
        assert_eq!(wire(&out), b"ABcCdD");
        assert_eq!(out[2].frames, 2);
        assert!(q.is_empty());
    }

    #[test]
    fn dropping_the_oldest_never_drops_copied_frames() {
        let mut q = Outbox::new(3, 1000);
        let _ = q.push(copy(b"h", b"p"));
        let _ = q.push(copy(b"h", b"p"));
        let _ = q.push(copy(b"h", b"p"));
        // Nothing droppable to make room with: the new one is dropped.
        assert_eq!(
            q.push(msg(5, 1, Overflow::DropOldest)),
            Pushed::Dropped { count: 1 }
        );
        assert_eq!(q.take_dropped(), vec![(5, 1)]);
        assert_eq!(q.len(), 3);

        let mut q = Outbox::new(3, 1000);
        let _ = q.push(msg(5, 1, Overflow::DropOldest));
        let _ = q.push(copy(b"h", b"p"));
        let _ = q.push(copy(b"h", b"p"));
        // Full: the one droppable frame goes, the run stays.
        assert_eq!(
            q.push(msg(5, 2, Overflow::DropOldest)),
            Pushed::Dropped { count: 1 }
        );
        assert_eq!(q.take_dropped(), vec![(5, 1)]);
        // And again: the run is never what makes room.
        assert_eq!(
            q.push(msg(5, 3, Overflow::DropOldest)),
            Pushed::Dropped { count: 1 }
        );
        assert_eq!(q.take_dropped(), vec![(5, 1)]);
        let mut out = Vec::new();
        q.drain_into(&mut out, 10);
        assert_eq!(wire(&out), b"hphp\0\0\0", "the run and the newest");
        assert!(q.is_empty());
    }
}
