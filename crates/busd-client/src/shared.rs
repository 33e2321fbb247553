//! [`Shared`]: what every handle, the reader and writer tasks and the
//! connection task of one client share.
//!
//! The hot paths (publish, request, respond, flush) do not go through the
//! connection task: the caller locks the [`State`] briefly, encodes its frame
//! straight into the outgoing buffer and, only when that buffer was empty,
//! wakes the writer task. Past [`HIGH_WATER`] buffered bytes callers wait for
//! the writer to take the buffer, which pushes back onto publishers. The lock
//! is a std mutex, held for a few hundred nanoseconds and never across an
//! `.await` (the mini-redis `Db` reasoning).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::os::fd::OwnedFd;

use busd_proto::{Body, Fds, Limits, Pfn, SegmentFd, Welcome};
use busd_transport::PoolOut;
use bytes::BytesMut;
use tokio::sync::Notify;

use crate::error::Error;
use crate::lock::lock;
use crate::state::{Outside, State};

/// Past this many buffered bytes (sealed segments' payloads included)
/// callers wait for the writer task (one more buffer of up to this size may
/// be in flight on the socket meanwhile).
pub(crate) const HIGH_WATER: usize = 1024 * 1024;

/// How long a large payload waits for a block of the connection's pool
/// before it goes as a segment instead: long enough for the daemon to hand
/// blocks back under load, short enough that a connection lost meanwhile
/// (whose pool gets none back) costs little.
pub(crate) const POOL_PATIENCE: Duration = Duration::from_millis(200);

/// What passes beside (or with) the bytes of one outgoing buffer, by the
/// offset of the frame each belongs to.
#[derive(Debug, Default)]
pub(crate) struct Side {
    /// Payload segments (shm).
    pub(crate) segments: Vec<(usize, SegmentFd)>,
    /// Attached fds (unix and shm).
    pub(crate) fds: Vec<(usize, Fds)>,
}

/// State shared by every handle of one client and its tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Next subscription or service id; ids stay valid across reconnects.
    pub(crate) next_sid: AtomicU64,
    /// Next request id; unique per client, hence per connection.
    pub(crate) next_rid: AtomicU64,
    /// The current connection's id, from its `Welcome`.
    pub(crate) client_id: AtomicU64,
    /// `limits.max_frame` of the current connection, read on every publish.
    pub(crate) max_frame: AtomicU32,
    /// All limits of the current connection. A std mutex: held for a copy only.
    limits: Mutex<Limits>,
    /// The package the daemon proved for the current connection. A std
    /// mutex: held for a clone only.
    pfn: Mutex<Option<Pfn>>,
    /// Default timeout of `request`.
    pub(crate) request_timeout: Duration,
    /// Payloads at least this long go as sealed memfds (`usize::MAX` when
    /// the transport cannot pass them).
    segment_threshold: usize,
    /// The current connection's own payload pool, for [`seal`](Self::seal)
    /// to write large payloads into outside the state's lock.
    pool: Mutex<Option<Arc<PoolOut>>>,
    /// Whether fds pass on the current connection (its `Welcome` says so:
    /// asked for, over unix or shm).
    takes_fds: AtomicBool,
    /// Routing state and the outgoing buffer. A std mutex: held to append a
    /// frame or route one, never across an `.await`.
    state: Mutex<State>,
    /// Wakes the writer task when the outgoing buffer goes from empty to
    /// non-empty (a stored permit covers a writer that is busy meanwhile).
    pub(crate) wake_writer: Notify,
    /// Wakes callers waiting for room in the outgoing buffer.
    room: Notify,
}

impl Shared {
    /// Shared state for a client whose first connection got `welcome`,
    /// sending payloads from `segment_threshold` bytes as segments.
    pub(crate) fn new(
        welcome: &Welcome,
        request_timeout: Duration,
        segment_threshold: usize,
    ) -> Self {
        Self {
            next_sid: AtomicU64::new(1),
            next_rid: AtomicU64::new(1),
            client_id: AtomicU64::new(welcome.client_id),
            max_frame: AtomicU32::new(welcome.limits.max_frame),
            limits: Mutex::new(welcome.limits),
            pfn: Mutex::new(welcome.pfn.clone()),
            request_timeout,
            segment_threshold,
            takes_fds: AtomicBool::new(welcome.fds),
            pool: Mutex::new(None),
            state: Mutex::new(State::default()),
            wake_writer: Notify::new(),
            room: Notify::new(),
        }
    }

    /// Records the `Welcome` facts of a new connection.
    pub(crate) fn welcome(&self, welcome: &Welcome) {
        self.client_id.store(welcome.client_id, Ordering::Relaxed);
        self.max_frame
            .store(welcome.limits.max_frame, Ordering::Relaxed);
        *lock(&self.limits) = welcome.limits;
        lock(&self.pfn).clone_from(&welcome.pfn);
        self.takes_fds.store(welcome.fds, Ordering::Relaxed);
    }

    /// The limits of the current connection.
    pub(crate) fn limits(&self) -> Limits {
        *lock(&self.limits)
    }

    /// The package of the current connection.
    pub(crate) fn pfn(&self) -> Option<Pfn> {
        lock(&self.pfn).clone()
    }

    /// The payload outside the stream when it is long enough to go so,
    /// made before the state is locked (a copy, or a few syscalls): in a
    /// block of the connection's pool, waiting briefly for one as the
    /// daemon hands blocks back (which paces the caller to the daemon), or
    /// when none comes (or the connection has no pool) as a sealed memfd
    /// if it is at least [`SEGMENTS_FROM`](crate::SEGMENTS_FROM) long.
    /// A payload that can go neither way (out of fds or memory) goes in
    /// the stream.
    pub(crate) async fn seal(&self, payload: &[u8]) -> Option<Outside> {
        if payload.len() < self.segment_threshold {
            return None;
        }
        let pool = lock(&self.pool).clone();
        if let Some(pool) = pool {
            let lent = pool.lend_waiting(payload, POOL_PATIENCE).await;
            if let Some(Body::Pooled { offset, len }) = lent {
                return Some(Outside::Pooled { offset, len, pool });
            }
        }
        if payload.len() < crate::SEGMENTS_FROM {
            return None;
        }
        busd_transport::seal_payload(payload)
            .inspect_err(
                |e| tracing::debug!(cause = %e, "cannot seal a payload; sending it inline"),
            )
            .ok()
            .map(Outside::Segment)
    }

    /// The current connection's own payload pool, if it has one.
    pub(crate) fn pool(&self) -> Option<Arc<PoolOut>> {
        lock(&self.pool).clone()
    }

    /// Sets the current connection's own payload pool.
    pub(crate) fn set_pool(&self, pool: Option<Arc<PoolOut>>) {
        *lock(&self.pool) = pool;
    }

    /// `fds` to attach to a frame, or `Unsupported` (the fds closed) on a
    /// connection that does not pass them: refused here, before anything
    /// is sent, rather than by the daemon as a protocol violation.
    pub(crate) fn attachable(&self, fds: Vec<OwnedFd>) -> Result<Fds, Error> {
        if !fds.is_empty() && !self.takes_fds.load(Ordering::Relaxed) {
            return Err(Error::new(
                crate::ErrorKind::Unsupported,
                format!(
                    "{} fds cannot be attached: files pass only on a client built with \
                     pass_fds(true), over unix:// or shm://; nothing was sent",
                    fds.len()
                ),
            ));
        }
        if fds.len() > busd_proto::MAX_FDS_PER_FRAME {
            return Err(Error::new(
                crate::ErrorKind::LimitExceeded,
                format!(
                    "{} fds attached; at most {} pass in one message; nothing was sent",
                    fds.len(),
                    busd_proto::MAX_FDS_PER_FRAME
                ),
            ));
        }
        Ok(Fds::new(fds))
    }

    /// Whether payloads go as segments at all (shm, segments not turned off).
    pub(crate) fn passes_segments(&self) -> bool {
        self.segment_threshold != usize::MAX
    }

    /// `limits.max_frame` of the current connection.
    pub(crate) fn max_frame(&self) -> u32 {
        self.max_frame.load(Ordering::Relaxed)
    }

    /// Runs `f` on the state, then wakes the writer if `f` made the
    /// outgoing buffer non-empty, and waiting callers if it emptied it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = lock(&self.state);
        let before = state.queued();
        let result = f(&mut state);
        let after = state.queued();
        drop(state);
        if before == 0 && after > 0 {
            self.wake_writer.notify_one();
        } else if before >= HIGH_WATER && after < HIGH_WATER {
            self.room.notify_waiters();
        }
        result
    }

    /// Runs `f` on the state once the outgoing buffer has room (see
    /// [`HIGH_WATER`]), waking the writer as [`with`](Shared::with) does.
    ///
    /// # Errors
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the client is
    /// gone for good; otherwise what `f` returns.
    pub(crate) async fn submit<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut f = Some(f);
        loop {
            if let Some(result) = self.try_submit(&mut f) {
                return result;
            }
            // Register before checking again, so the writer's wake-up
            // between the check and the wait is not missed.
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(result) = self.try_submit(&mut f) {
                return result;
            }
            notified.await;
        }
    }

    /// One attempt of [`submit`](Shared::submit): `None` while the buffer is full.
    fn try_submit<F, R>(&self, f: &mut Option<F>) -> Option<Result<R, Error>>
    where
        F: FnOnce(&mut State) -> Result<R, Error>,
    {
        let mut state = lock(&self.state);
        if state.closed {
            return Some(Err(Error::closed()));
        }
        if state.queued() >= HIGH_WATER {
            return None;
        }
        let f = f.take()?;
        let was_empty = state.out.is_empty();
        let result = f(&mut state);
        let wake = was_empty && !state.out.is_empty();
        drop(state);
        if wake {
            self.wake_writer.notify_one();
        }
        Some(result)
    }

    /// For the writer task: swaps the outgoing buffer for `spare` (emptied)
    /// and returns it, or `None` if there is nothing to write; the segments
    /// and the attached fds of its frames go into `side` (empty), by offset.
    pub(crate) fn take_out(&self, spare: &mut BytesMut, side: &mut Side) -> Option<BytesMut> {
        let mut state = lock(&self.state);
        if state.out.is_empty() {
            return None;
        }
        let queued = state.queued();
        std::mem::swap(&mut state.out_segments, &mut side.segments);
        std::mem::swap(&mut state.out_fds, &mut side.fds);
        state.out_segment_bytes = 0;
        let buf = std::mem::replace(&mut state.out, std::mem::take(spare));
        drop(state);
        if queued >= HIGH_WATER {
            self.room.notify_waiters();
        }
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use busd_proto::{Limits, Op, Subject, Welcome};
    use bytes::BytesMut;
    use futures::FutureExt;

    use super::{HIGH_WATER, Shared};

    #[tokio::test]
    async fn sealed_payloads_count_towards_the_high_water_mark() {
        let welcome = Welcome {
            client_id: 1,
            pfn: None,
            limits: Limits {
                max_frame: u32::MAX,
                max_pending_msgs: 1,
                max_pending_bytes: 1,
            },
            fds: true,
            set_pools: false,
        };
        let shared = Shared::new(&welcome, Duration::from_secs(1), 0);
        let op = Op::Pub {
            subject: Subject::from_static("a"),
            headers: None,
        };
        let segment = busd_transport::seal_payload(&vec![7; HIGH_WATER]).unwrap();
        shared
            .submit(|s| {
                s.write_frame(
                    &op,
                    &[],
                    Some(crate::state::Outside::Segment(segment)),
                    u32::MAX,
                )
            })
            .await
            .unwrap();
        // A few bytes in the stream, but a whole high-water mark of payload
        // waits: the next publish waits for the writer.
        let next = shared.submit(|s| s.write_frame(&op, b"x", None, u32::MAX));
        tokio::pin!(next);
        assert!(next.as_mut().now_or_never().is_none());
        let (mut spare, mut side) = (BytesMut::new(), super::Side::default());
        assert!(shared.take_out(&mut spare, &mut side).is_some());
        assert_eq!(side.segments.len(), 1);
        next.await.unwrap();
    }
}
