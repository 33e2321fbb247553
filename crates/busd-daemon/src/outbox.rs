//! One connection's outbound side: the bounded queue and how the daemon
//! closes it; the writer task that drains it is in `writer`.
//!
//! Publishers push encoded frames into a receiver's [`ConnHandle`] and go
//! on; they never wait for a socket. Every delivery pushed here ends in one
//! of the daemon's [`Tally`] counters: written by the writer, dropped by
//! drop-oldest, or discarded with the connection (also when it is pushed
//! to a connection already closed, or left queued when the last handle
//! goes).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use busd_core::{OutFrame, Outbox, Outgoing, Pushed};
use busd_proto::{Body, ErrorCode, Fds, Frame, Op, announce_fds, encode_head_with};
use busd_transport::PoolOut;
use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::budget::{Budget, Credit};
use crate::origin::Origin;
use crate::payload::Payload;
use crate::set_pools::GonePools;
use crate::sync::lock;
use crate::tally::Tally;
use crate::traffic::{Traffic, TrafficDoc};
use crate::withheld;

/// Payloads at least this large travel as their own iovec instead of
/// being copied into the coalescing buffer (or into a queue's run).
pub(crate) const COPY_BELOW: usize = 4096;
/// Frames taken from the queue per write.
pub(crate) const BATCH: usize = 1024;

/// The queue and the budget credit that covers its bytes, under one lock.
#[derive(Debug)]
struct Queue {
    frames: Outbox,
    /// What the connection's owner is charged for the queued bytes.
    credit: Credit,
}

/// How long a publish may wait for room in `block` subscribers' queues:
/// `timeout` from the first time it has to, shared by all its deliveries
/// under the same bound.
#[derive(Debug)]
pub(crate) struct Wait<'d> {
    pub(crate) timeout: std::time::Duration,
    pub(crate) deadline: &'d mut Option<tokio::time::Instant>,
}

/// The daemon's handle to a connection, shared by the router and sessions.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) id: u64,
    /// Whether payload segments can be passed to this connection (shm);
    /// other connections get their bytes in the stream.
    pub(crate) passes_fds: bool,
    /// Its payload pool, the daemon's, which it maps read-only (shm with
    /// pools): large payloads are copied into a block of it (see `pooled`),
    /// each block charged to its owner's budget until handed back.
    pub(crate) pool: Option<(Arc<PoolOut>, Arc<Budget>)>,
    /// Whether it maps set pools (it asked, and has a pool of its own):
    /// payloads fanned out to it and others may come in a pool they share
    /// (see `set_pools`).
    pub(crate) set_pools: bool,
    /// Set pools retired since its writer last looked, for the writer to
    /// tell it about.
    gone_pools: GonePools,
    /// Whether the fds attached to messages can be passed to it (unix and
    /// shm); a tcp receiver gets such messages without them, and a header
    /// saying how many were withheld (see `withheld`).
    pub(crate) takes_fds: bool,
    /// Where it came from, for `busd ctl clients`.
    pub(crate) origin: Origin,
    /// Locked briefly by pushers and by the writer; never across an await.
    outbox: Mutex<Queue>,
    /// Wakes the writer when the queue goes from empty to not empty.
    wake: Notify,
    /// Signalled by the writer after it takes frames: room for publishers
    /// waiting on a `block` subscription.
    room: Notify,
    /// Cancelled when the connection must close now (a slow consumer, the
    /// rules changed): the writer discards what is queued, sends `fatal`
    /// and closes.
    kill: CancellationToken,
    /// `kill` as a plain flag, for the per-message checks (the token's own
    /// check takes a lock).
    killed: AtomicBool,
    /// The session has ended: the writer flushes what is queued, then
    /// `fatal` if set, and stops.
    finishing: AtomicBool,
    /// The last frame the connection gets (an `Error`), after whatever
    /// was queued (a graceful close) or instead of it (a kill).
    fatal: Mutex<Option<Frame>>,
    /// Deliveries this connection lost (queued when it was killed, or
    /// not taken within its closing grace), for its closing log line.
    discarded: AtomicU64,
    /// The daemon's delivery counters.
    tally: Arc<Tally>,
    /// This connection's own counters.
    pub(crate) traffic: Traffic,
}

impl ConnHandle {
    /// A connection's handle, whose queued bytes `credit` charges to its
    /// owner, and whose deliveries end in `tally`.
    pub(crate) fn new(
        id: u64,
        (max_msgs, max_bytes): (usize, usize),
        passes_fds: bool,
        takes_fds: bool,
        credit: Credit,
        tally: Arc<Tally>,
        origin: Origin,
    ) -> Self {
        Self {
            id,
            passes_fds,
            pool: None,
            set_pools: false,
            gone_pools: GonePools::default(),
            takes_fds,
            origin,
            outbox: Mutex::new(Queue {
                frames: Outbox::new(max_msgs, max_bytes),
                credit,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            kill: CancellationToken::new(),
            killed: AtomicBool::new(false),
            finishing: AtomicBool::new(false),
            fatal: Mutex::new(None),
            discarded: AtomicU64::new(0),
            tally,
            traffic: Traffic::default(),
        }
    }

    /// Queues a frame; on overflow, closes this connection with
    /// `SlowConsumer`, and past its owner's memory budget with
    /// `LimitExceeded`.
    pub(crate) fn push(&self, item: Outgoing<'_>) {
        let msgs = item.msgs() as u64;
        if self.killed.load(Ordering::Acquire) {
            self.lose(msgs);
            return;
        }
        let (pushed, covered) = {
            let mut q = lock(&self.outbox);
            let pushed = q.frames.push(item);
            let bytes = q.frames.bytes();
            (pushed, q.credit.cover(bytes))
        };
        if !covered {
            self.over_budget();
            return;
        }
        match pushed {
            Pushed::Queued { was_empty: true } => self.wake.notify_one(),
            Pushed::Queued { was_empty: false } => {}
            Pushed::Dropped { count } => {
                self.tally.dropped(count);
                self.traffic.dropped(count);
                self.wake.notify_one();
            }
            Pushed::Full => {
                self.lose(msgs);
                tracing::warn!(
                    conn = self.id,
                    "slow consumer: outbound queue full, disconnecting"
                );
                self.cut_off_slow("outbound queue full: the client reads too slowly");
            }
        }
    }

    /// Queues a delivery for a `block` subscription, waiting for room as
    /// `wait` says: asked only when there is no room at once (the common
    /// case reads no clock, registers no waiter and asks nothing else), its
    /// deadline is set to now + its timeout the first time a delivery of
    /// the publish waits under it. `Err` with the timeout if the deadline
    /// passed with no room.
    pub(crate) async fn push_blocking<'d>(
        &self,
        item: Outgoing<'_>,
        wait: impl FnOnce() -> Wait<'d>,
    ) -> Result<(), std::time::Duration> {
        let len = item.queued_len();
        let msgs = item.msgs() as u64;
        let mut item = Some(item);
        if !self.killed.load(Ordering::Acquire) && self.push_if_fits(&mut item, len) {
            return Ok(());
        }
        let pushed = self.wait_for_room(&mut item, len, wait).await;
        if item.is_some() {
            // Not queued: the connection is closing, or is cut off now.
            self.lose(msgs);
        }
        pushed
    }

    /// [`push_blocking`](Self::push_blocking) when there was no room at
    /// once; leaves `item` in place unless it was queued.
    async fn wait_for_room<'d>(
        &self,
        item: &mut Option<Outgoing<'_>>,
        len: usize,
        wait: impl FnOnce() -> Wait<'d>,
    ) -> Result<(), std::time::Duration> {
        if self.killed.load(Ordering::Acquire) {
            return Ok(()); // closing anyway: nothing to wait for
        }
        let Wait { timeout, deadline } = wait();
        let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a drain in between is not missed.
            notified.as_mut().enable();
            if self.killed.load(Ordering::Acquire) {
                return Ok(()); // closing anyway: nothing to wait for
            }
            if self.push_if_fits(item, len) {
                return Ok(());
            }
            tokio::select! {
                () = &mut notified => {}
                () = self.kill.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(deadline) => return Err(timeout),
            }
        }
    }

    /// Queues `item` if `len` more bytes fit; whether it did.
    fn push_if_fits(&self, item: &mut Option<Outgoing<'_>>, len: usize) -> bool {
        let mut q = lock(&self.outbox);
        if !q.frames.fits(len) {
            return false;
        }
        if let Some(f) = item.take() {
            if let Pushed::Queued { was_empty: true } = q.frames.push(f) {
                self.wake.notify_one();
            }
            let bytes = q.frames.bytes();
            if !q.credit.cover(bytes) {
                drop(q);
                self.over_budget();
            }
        }
        true
    }

    /// Encodes and queues a frame that is not a subscription delivery.
    pub(crate) fn send(&self, op: &Op, payload: Bytes) {
        if let Some(head) = self.encode(op, Body::Inline(payload.len())) {
            self.push(Outgoing::Frame(OutFrame::control(head, payload)));
        }
    }

    /// As [`send`](Self::send), but waiting for room instead of
    /// overflowing, for a sender that may wait (a monitor's forwarder,
    /// never a publisher); whether it was queued (not if the connection
    /// is killed first).
    pub(crate) async fn send_in_turn(&self, op: &Op, payload: Bytes) -> bool {
        let Some(head) = self.encode(op, Body::Inline(payload.len())) else {
            return true; // logged; the next frame may go
        };
        let frame = OutFrame::control(head, payload);
        let len = frame.queued_len();
        let mut item = Some(Outgoing::Frame(frame));
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a drain in between is not missed.
            notified.as_mut().enable();
            if self.killed.load(Ordering::Acquire) {
                return false;
            }
            if self.push_if_fits(&mut item, len) {
                return true;
            }
            tokio::select! {
                () = &mut notified => {}
                () = self.kill.cancelled() => return false,
            }
        }
    }

    /// As [`send`](Self::send), for a payload that may have come as a
    /// segment: passed on as the same fd if this connection takes fds, else
    /// its bytes go in the stream (the one copy a tcp or unix receiver
    /// costs, and the first such receiver maps the segment). The `fds`
    /// attached go along where this connection takes fds; elsewhere they
    /// are withheld, and a header says so.
    ///
    /// # Errors
    /// When the segment cannot be mapped for this receiver; nothing is queued.
    pub(crate) fn send_payload(
        &self,
        op: &Op,
        mut payload: Payload,
        fds: Fds,
    ) -> std::io::Result<()> {
        let len = payload.len();
        let (op, fds) = match fds.len() {
            0 => (std::borrow::Cow::Borrowed(op), fds),
            _ if self.takes_fds => (std::borrow::Cow::Borrowed(op), fds),
            n => (std::borrow::Cow::Owned(withheld::op(op, n)), Fds::default()),
        };
        if let Some(body) = self.lend(&mut payload, len) {
            let Some(head) = self.encode_with_fds(&op, body, fds.len()) else {
                return Ok(());
            };
            let frame = OutFrame::control(head, Bytes::new()).with_fds(fds);
            self.push(Outgoing::Frame(frame));
            return Ok(());
        }
        let (segment, bytes) = payload.for_receiver(self.passes_fds, true)?;
        let body = Body::of(len, segment.is_some());
        let Some(head) = self.encode_with_fds(&op, body, fds.len()) else {
            return Ok(());
        };
        let frame = OutFrame::control(head, bytes).with_fds(fds);
        self.push(Outgoing::Frame(match segment {
            Some(fd) => frame.with_segment(fd, len),
            None => frame,
        }));
        Ok(())
    }

    /// The same handle, sending large payloads through `pool`, its blocks
    /// charged to `budget`.
    pub(crate) fn with_pool(mut self, pool: Option<Arc<PoolOut>>, budget: &Arc<Budget>) -> Self {
        self.pool = pool.map(|pool| (pool, Arc::clone(budget)));
        self
    }

    /// The same handle, taking set pools if `asked` and it has a pool.
    pub(crate) fn with_set_pools(mut self, asked: bool) -> Self {
        self.set_pools = asked && self.pool.is_some();
        self
    }

    /// Set pool `id`, one this connection is a member of, was retired: its
    /// writer tells the client.
    pub(crate) fn set_pool_gone(&self, id: u32) {
        self.gone_pools.push(id);
        self.wake_writer();
    }

    /// The set pools retired since the last call.
    pub(crate) fn take_gone_pools(&self) -> Vec<u32> {
        self.gone_pools.take()
    }

    /// The head of `op` for a body of `body`; `None` (logged) if it cannot
    /// be encoded.
    fn encode(&self, op: &Op, body: Body) -> Option<Bytes> {
        self.encode_with_fds(op, body, 0)
    }

    /// As [`encode`](Self::encode), announcing `fds` attached fds.
    fn encode_with_fds(&self, op: &Op, body: Body, fds: usize) -> Option<Bytes> {
        let mut head = BytesMut::new();
        let encoded =
            encode_head_with(op, body, &mut head).and_then(|()| announce_fds(&mut head, 0, fds));
        match encoded {
            Ok(()) => Some(head.freeze()),
            Err(e) => {
                tracing::error!(conn = self.id, cause = %e, "cannot encode {}", op.name());
                None
            }
        }
    }

    /// Queues an error about a subscription or request; the connection stays.
    pub(crate) fn send_error(
        &self,
        code: ErrorCode,
        message: String,
        refers: Option<busd_proto::Ref>,
    ) {
        self.send(
            &Op::Error {
                code,
                message,
                refers,
            },
            Bytes::new(),
        );
    }

    /// Closes the connection now: anything still queued is discarded
    /// (counted), `code` is sent, the socket closed. For a peer that cannot
    /// or may not receive more: a slow consumer, a package the rules no
    /// longer have.
    pub(crate) fn cut_off(&self, code: ErrorCode, message: &str) {
        self.last_words(code, message);
        self.kill();
    }

    /// Cuts the connection off as a slow consumer (counted).
    pub(crate) fn cut_off_slow(&self, message: &str) {
        self.tally.slow_consumer();
        self.cut_off(ErrorCode::SlowConsumer, message);
    }

    /// Closes the connection gracefully: what is already queued is sent
    /// first, then `code`, then the socket is closed. The session stops
    /// reading and, after it has left the router, gives the writer a
    /// deadline (see `session::close`). For a protocol violation and for
    /// the daemon's shutdown, so that replies owed (the `Pong` to a `Ping`
    /// sent just before) still arrive.
    pub(crate) fn close_after(&self, code: ErrorCode, message: &str) {
        self.last_words(code, message);
        self.finish();
    }

    /// The reader's owner has no budget left for what is queued for it:
    /// this connection, whose not reading holds the bytes, is closed.
    #[cold]
    fn over_budget(&self) {
        let owner = lock(&self.outbox).credit.owner().to_owned();
        tracing::warn!(target: "busd::audit", conn = self.id, %owner, "memory budget exceeded by what is queued for it, disconnecting");
        self.cut_off(
            ErrorCode::LimitExceeded,
            "messages queued for this client's package or uid exceed its memory budget",
        );
    }

    /// Sets the connection's last frame, unless one is set already (the
    /// first reason to close wins).
    fn last_words(&self, code: ErrorCode, message: &str) {
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            *fatal = Some(Frame::new(Op::Error {
                code,
                message: message.to_owned(),
                refers: None,
            }));
        }
    }

    /// Discards what is still queued (the writer stopped, or was stopped,
    /// before it could send it), counting its deliveries.
    pub(crate) fn discard_queued(&self) {
        let mut gone = Vec::new();
        let msgs = {
            let mut q = lock(&self.outbox);
            let msgs = q.frames.msgs() as u64;
            q.frames.drain_into(&mut gone, usize::MAX);
            let bytes = q.frames.bytes();
            q.credit.settle(bytes);
            msgs
        };
        self.lose(msgs);
    }

    /// Counts `n` deliveries this connection lost.
    pub(crate) fn lose(&self, n: u64) {
        if n > 0 {
            self.discarded.fetch_add(n, Ordering::Relaxed);
            self.tally.discarded(n);
        }
    }

    /// Counts `n` deliveries its socket took.
    pub(crate) fn wrote(&self, n: u64) {
        self.tally.written(n);
        self.traffic.received(n);
    }

    /// This connection's traffic so far.
    pub(crate) fn traffic(&self) -> TrafficDoc {
        self.traffic
            .snapshot(self.discarded.load(Ordering::Relaxed))
    }

    /// Marks the connection killed and tells everyone waiting on it.
    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.cancel();
        self.wake.notify_one();
    }

    /// Tells the writer that the session has ended: it writes what is
    /// queued, shuts the socket's sending side down and returns.
    pub(crate) fn finish(&self) {
        self.finishing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Cancelled once the connection is being closed by the daemon.
    pub(crate) fn killed(&self) -> &CancellationToken {
        &self.kill
    }

    /// The writer's next batch: up to [`BATCH`] frames into `batch`, and
    /// the drop notices due; also whether the session had finished before
    /// they were taken (read first, so a finish that comes after still finds
    /// the writer going round once more: its wake-up is stored).
    pub(crate) fn next_batch(&self, batch: &mut Vec<OutFrame>) -> (bool, Vec<(u64, u64)>) {
        let finishing = self.finishing.load(Ordering::Acquire);
        let dropped = {
            let mut q = lock(&self.outbox);
            q.frames.drain_into(batch, BATCH);
            let bytes = q.frames.bytes();
            q.credit.settle(bytes);
            q.frames.take_dropped()
        };
        if !batch.is_empty() {
            self.room.notify_waiters();
        }
        (finishing, dropped)
    }

    /// Wakes the writer to look for work beside the queue (blocks of the
    /// client's pool to hand back).
    pub(crate) fn wake_writer(&self) {
        self.wake.notify_one();
    }

    /// Waits until there is something for the writer to do: frames, a
    /// finish, a kill. Every reason comes through this one `Notify`, so an
    /// idle writer waits on nothing else.
    pub(crate) async fn work(&self) {
        self.wake.notified().await;
    }

    /// Whether this connection's queue is charged to `credit`'s owner.
    pub(crate) fn charged_with(&self, credit: &Credit) -> bool {
        lock(&self.outbox).credit.same_owner(credit)
    }

    /// Deliveries queued now.
    pub(crate) fn queued(&self) -> u64 {
        lock(&self.outbox).frames.msgs() as u64
    }

    /// Whether the connection was killed (see [`cut_off`](Self::cut_off)).
    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Whether the connection is being closed, by the daemon or by its
    /// session's end: nothing new should start for it.
    pub(crate) fn is_closing(&self) -> bool {
        self.is_killed() || self.finishing.load(Ordering::Acquire)
    }

    /// The writer stops for good (the socket failed or timed out): kills
    /// the connection, so that its session ends and leaves the router.
    pub(crate) fn writer_failed(&self, code: ErrorCode, message: &str) {
        self.cut_off(code, message);
    }

    /// Closes the connection without a word: its task failed (a panic),
    /// so nothing it would say can be trusted.
    pub(crate) fn abort(&self) {
        self.kill();
    }

    /// The connection's last frame, once (see [`close_after`](Self::close_after)).
    pub(crate) fn take_last_words(&self) -> Option<Frame> {
        lock(&self.fatal).take()
    }
}

impl Drop for ConnHandle {
    /// Counts what is still queued once nobody can send it: pushed by a
    /// publisher that routed to the connection as it closed, after its
    /// writer had finished.
    fn drop(&mut self) {
        // Blocks still lent go with the pool: nobody can lend more now.
        if let Some((pool, budget)) = &self.pool {
            budget.give_back_lent(pool.in_use());
        }
        let q = self
            .outbox
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        self.tally.discarded(q.frames.msgs() as u64);
    }
}
