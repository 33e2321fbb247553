//! The routing state of one client and its outgoing buffer, shared by the
//! handles, the reader task and the connection task under one std mutex
//! (see [`Shared`](crate::shared::Shared)).
//!
//! Nothing here waits: a call, a frame or a command changes the state and
//! appends to [`State::out`] while the lock is held, which is what keeps a
//! `Ping` and its waiter, or a `Req` and its pending entry, in step. A
//! delivery that finds its queue full is handed back to the reader task
//! (see [`dispatch`](crate::dispatch)), which waits without the lock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use busd_proto::{
    Body, Fds, LENGTH_PREFIX, Op, SegmentFd, announce_fds, encode_head, encode_head_with,
};
use busd_transport::{PoolOut, SetPoolsIn};
use bytes::BytesMut;
use tokio::sync::oneshot;

use crate::command::{Command, Registration};
use crate::error::{Error, ErrorKind};
use crate::inbound::Observed;
use crate::inbound::{IncomingCall, Message, Response};
use crate::target::Target;

/// How a large payload travels outside the stream.
#[derive(Debug)]
pub(crate) enum Outside {
    /// A sealed memfd, passed beside the frame.
    Segment(SegmentFd),
    /// A block of the connection's own pool, already written.
    Pooled {
        offset: u64,
        len: u64,
        /// The pool it was lent from: the frame goes as pooled only on the
        /// connection that pool belongs to.
        pool: Arc<PoolOut>,
    },
}

/// A delivery that was waiting for room when its session ended. The state
/// keeps it between sessions; [`dispatch`](crate::dispatch) parks and
/// resumes it.
pub(crate) struct Blocked {
    pub(crate) sid: u64,
    pub(crate) item: Pending,
}

/// What a subscription or a service is handed.
pub(crate) enum Pending {
    Msg(Message),
    Call(IncomingCall),
    /// Boxed: an event is several times the size of a message.
    Observed(Box<Observed>),
}

/// Someone waiting for the daemon's next `Pong`.
pub(crate) enum PongWaiter {
    Flush(oneshot::Sender<Result<(), Error>>),
    /// Confirms the registration `sid`, unless an error about it came first.
    Confirm {
        sid: u64,
        done: oneshot::Sender<Result<(), Error>>,
    },
}

/// A request waiting for its `Resp`.
pub(crate) struct PendingRequest {
    pub(crate) target: Target,
    pub(crate) reply: oneshot::Sender<Result<Response, Error>>,
}

/// Everything a client routes by, and the bytes it will write next.
#[derive(Default)]
pub(crate) struct State {
    /// The current connection's own payload pool (shm with pools): large
    /// payloads are written into it, and the daemon's `Release`s give its
    /// blocks back.
    pub(crate) pool: Option<Arc<PoolOut>>,
    /// The daemon's set pools the current connection mapped (shm): one is
    /// forgotten when the daemon's `PoolGone` names it.
    pub(crate) set_pools: Option<Arc<SetPoolsIn>>,
    /// Live subscriptions and services; kept across reconnects.
    pub(crate) registry: BTreeMap<u64, Registration>,
    /// A delivery that was waiting for room when its session ended; the next
    /// session's reader delivers it before reading anything else.
    pub(crate) blocked: Option<Blocked>,
    /// Bytes to write next; the writer task swaps it out whole. Calls made
    /// while disconnected append here and go out on the next connection.
    pub(crate) out: BytesMut,
    /// The sealed payloads of segment frames in `out`, by the offset where
    /// each frame starts: the writer passes each fd before writing on.
    pub(crate) out_segments: Vec<(usize, SegmentFd)>,
    /// The payload bytes of `out_segments`. They count towards the
    /// high-water mark like bytes in `out`: a segment frame is a few bytes
    /// in the stream but a whole payload in memory, and without this a
    /// publisher could seal payloads far faster than they are passed on.
    pub(crate) out_segment_bytes: usize,
    /// The fds attached to frames in `out`, by the offset where each frame
    /// starts: the writer passes them with their frame.
    pub(crate) out_fds: Vec<(usize, Fds)>,
    /// The live connection's number (counting from 1), or 0 while
    /// disconnected: a call's answer must go back on its own connection, and
    /// a reader of an ended session must not route anything.
    pub(crate) epoch: u64,
    /// The connection task is gone for good: every call fails with `Closed`.
    pub(crate) closed: bool,
    pub(crate) requests: HashMap<u64, PendingRequest>,
    /// Waiters in the order their Pings were appended to `out`; Pongs come
    /// in that order.
    pub(crate) pongs: VecDeque<PongWaiter>,
    /// Registrations awaiting their Pong, with the error that came first.
    pub(crate) unconfirmed: HashMap<u64, Option<Error>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("epoch", &self.epoch)
            .field("buffered", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl State {
    /// What waits to be written, segments' payloads included.
    pub(crate) fn queued(&self) -> usize {
        self.out.len() + self.out_segment_bytes
    }

    /// Starts a session on connection `epoch`: registers everything again,
    /// ahead of what was appended while disconnected.
    pub(crate) fn begin(
        &mut self,
        epoch: u64,
        pool: Option<Arc<PoolOut>>,
        set_pools: Option<Arc<SetPoolsIn>>,
    ) {
        self.epoch = epoch;
        self.pool = pool;
        self.set_pools = set_pools;
        let pending = std::mem::take(&mut self.out);
        let ops: Vec<Op> = self.registry.iter().map(|(sid, r)| r.op(*sid)).collect();
        for op in &ops {
            self.write(op);
        }
        let shift = self.out.len();
        for (at, _) in &mut self.out_segments {
            *at += shift;
        }
        for (at, _) in &mut self.out_fds {
            *at += shift;
        }
        if self.out.is_empty() {
            self.out = pending;
        } else {
            self.out.extend_from_slice(&pending);
        }
    }

    /// Fails everything in flight with `lost` (a
    /// [`Disconnected`](ErrorKind::Disconnected) error) and drops what was
    /// not written yet.
    pub(crate) fn fail_in_flight(&mut self, lost: &Error) {
        self.epoch = 0;
        self.pool = None;
        self.set_pools = None;
        for (_, pending) in self.requests.drain() {
            let _ = pending.reply.send(Err(lost.clone()));
        }
        for waiter in self.pongs.drain(..) {
            let done = match waiter {
                PongWaiter::Flush(done) | PongWaiter::Confirm { done, .. } => done,
            };
            let _ = done.send(Err(lost.clone()));
        }
        // Their callers got an error and hold no handle, so nothing to restore.
        for (sid, _) in self.unconfirmed.drain() {
            self.registry.remove(&sid);
        }
        self.out.clear();
        self.out_segments.clear();
        self.out_segment_bytes = 0;
        self.out_fds.clear();
    }

    /// Marks the client gone for good: waiters get `Closed` (their senders
    /// are dropped) and every subscription's stream ends.
    pub(crate) fn shut(&mut self) {
        self.closed = true;
        self.epoch = 0;
        self.pool = None;
        self.set_pools = None;
        self.registry.clear();
        self.blocked = None;
        self.requests.clear();
        self.pongs.clear();
        self.unconfirmed.clear();
        self.out = BytesMut::new();
        self.out_segments.clear();
        self.out_segment_bytes = 0;
        self.out_fds.clear();
    }

    /// Applies a command from a handle (the connection task does, while a
    /// session is up).
    pub(crate) fn handle_command(&mut self, command: Command) {
        match command {
            Command::Register {
                sid,
                registration,
                done,
            } => {
                self.write(&registration.op(sid));
                self.write(&Op::Ping);
                self.registry.insert(sid, registration);
                self.unconfirmed.insert(sid, None);
                self.pongs.push_back(PongWaiter::Confirm { sid, done });
            }
            Command::Unregister { sid, done } => {
                self.unregister(sid);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Appends a Ping; `done` is answered at its Pong.
    pub(crate) fn flush(&mut self, done: oneshot::Sender<Result<(), Error>>) {
        self.write(&Op::Ping);
        self.pongs.push_back(PongWaiter::Flush(done));
    }

    /// Appends a frame carrying `payload`, refusing it (nothing appended)
    /// when the whole frame would exceed the daemon's `max_frame`. With an
    /// `outside` payload (a segment or a pool block: see `Shared::seal`)
    /// only the frame's head is appended; a segment is queued to pass
    /// beside it.
    pub(crate) fn write_frame(
        &mut self,
        op: &Op,
        payload: &[u8],
        outside: Option<Outside>,
        max: u32,
    ) -> Result<(), Error> {
        self.write_with(op.name(), payload, outside, max, |body, out| {
            encode_head_with(op, body, out)
        })
    }

    /// As [`write_frame`](Self::write_frame), with the head of the op
    /// named `name` written by `encode` (for ops encoded from borrowed
    /// parts).
    pub(crate) fn write_with(
        &mut self,
        name: &str,
        payload: &[u8],
        outside: Option<Outside>,
        max: u32,
        encode: impl FnOnce(Body, &mut BytesMut) -> Result<(), busd_proto::CodecError>,
    ) -> Result<(), Error> {
        // A block of a pool from before a reconnect goes back; the bytes
        // then go in the stream.
        let outside = match outside {
            Some(Outside::Pooled { offset, pool, .. })
                if !self.pool.as_ref().is_some_and(|p| Arc::ptr_eq(p, &pool)) =>
            {
                let _ = pool.handed_back(&[offset]);
                None
            }
            other => other,
        };
        let start = self.out.len();
        // Outside the stream, `payload` is unused.
        let (body, out_of_band) = match &outside {
            None => (Body::Inline(payload.len()), 0),
            Some(Outside::Segment(s)) => (Body::Segment(s.len()), busd_proto::SEGMENT_LEN_FIELD),
            Some(Outside::Pooled { offset, len, .. }) => (
                Body::Pooled {
                    offset: *offset,
                    len: *len,
                },
                busd_proto::POOL_REF_FIELD,
            ),
        };
        let payload_len = match body {
            Body::Inline(len) => len as u64,
            Body::Segment(len) | Body::Pooled { len, .. } => len,
        };
        let give_back = |outside: Option<Outside>| {
            if let Some(Outside::Pooled { offset, pool, .. }) = outside {
                let _ = pool.handed_back(&[offset]);
            }
        };
        if let Err(e) = encode(body, &mut self.out) {
            self.out.truncate(start);
            give_back(outside);
            let err = match e {
                busd_proto::CodecError::FrameTooLarge { .. } => {
                    frame_too_large(name, u64::MAX, max)
                }
                ref other => Error::new(
                    ErrorKind::Protocol,
                    format!("cannot encode {name}: {other}"),
                ),
            };
            return Err(err.with_source(e));
        }
        // The field saying where the payload is, is not part of the frame's size.
        let head = self.out.len() - start - out_of_band;
        let len = (head - LENGTH_PREFIX) as u64 + payload_len;
        if len > u64::from(max) {
            self.out.truncate(start);
            give_back(outside);
            return Err(frame_too_large(name, len, max));
        }
        match outside {
            Some(Outside::Segment(segment)) => {
                self.out_segments.push((start, segment));
                self.out_segment_bytes += usize::try_from(payload_len).unwrap_or(usize::MAX);
            }
            // Written into the pool already; the pool bounds what waits.
            Some(Outside::Pooled { .. }) => {}
            None => self.out.extend_from_slice(payload),
        }
        Ok(())
    }

    /// Appends a frame as [`write_frame`](Self::write_frame) does, with
    /// `fds` attached: its head announces them, and the writer passes them
    /// with it.
    pub(crate) fn write_frame_with_fds(
        &mut self,
        op: &Op,
        payload: &[u8],
        outside: Option<Outside>,
        max: u32,
        fds: Fds,
    ) -> Result<(), Error> {
        let start = self.out.len();
        self.write_frame(op, payload, outside, max)?;
        if fds.is_empty() {
            return Ok(());
        }
        if let Err(e) = announce_fds(&mut self.out, start, fds.len()) {
            // The frame goes whole or not at all.
            self.out.truncate(start);
            if self.out_segments.last().is_some_and(|(at, _)| *at == start) {
                if let Some((_, segment)) = self.out_segments.pop() {
                    self.out_segment_bytes -= usize::try_from(segment.len()).unwrap_or(0);
                }
            }
            let msg = format!("cannot attach fds to {}: {e}", op.name());
            return Err(Error::new(ErrorKind::Protocol, msg).with_source(e));
        }
        self.out_fds.push((start, fds));
        Ok(())
    }

    /// Removes `sid` and tells the daemon, if it is still registered.
    pub(crate) fn unregister(&mut self, sid: u64) {
        if self.forget(sid) {
            self.write(&Op::Unsub { sid });
        }
    }

    /// Removes `sid` locally; returns whether it was registered.
    pub(crate) fn forget(&mut self, sid: u64) -> bool {
        if self.blocked.as_ref().is_some_and(|b| b.sid == sid) {
            self.blocked = None;
        }
        self.registry.remove(&sid).is_some()
    }

    /// Answers the oldest Pong waiter.
    pub(crate) fn pong(&mut self) {
        match self.pongs.pop_front() {
            Some(PongWaiter::Flush(done)) => {
                let _ = done.send(Ok(()));
            }
            Some(PongWaiter::Confirm { sid, done }) => {
                let result = match self.unconfirmed.remove(&sid) {
                    Some(Some(err)) => Err(err),
                    _ => Ok(()),
                };
                if done.send(result).is_err() {
                    // The caller stopped waiting, so no handle will ever unregister it.
                    self.unregister(sid);
                }
            }
            None => tracing::debug!("unexpected Pong from busd ignored"),
        }
    }

    /// Appends a payload-less frame.
    pub(crate) fn write(&mut self, op: &Op) {
        let start = self.out.len();
        if let Err(err) = encode_head(op, 0, &mut self.out) {
            self.out.truncate(start);
            tracing::error!(op = op.name(), cause = %err, "cannot encode frame");
        }
    }
}

fn frame_too_large(name: &str, len: u64, max: u32) -> Error {
    let what = if len == u64::MAX {
        "more than 4 GiB".to_owned()
    } else {
        format!("{len} bytes")
    };
    Error::new(
        ErrorKind::FrameTooLarge,
        format!(
            "{name} frame of {what} is over the daemon's limit of {max} bytes; it was not sent"
        ),
    )
}
