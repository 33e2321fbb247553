//! One client connection: handshake, then each frame it sends, in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use busd_core::{OutFrame, Outgoing, Route, RouteEpoch};
use busd_proto::{
    Body, ErrorCode, Frame, Op, Overflow, Ref, SegmentFd, Sender, Status, Welcome, encode_msg_head,
};
use busd_transport::{BoxReader, Connection, FrameReader, Mapping};
use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tracing::Instrument;

use crate::handshake::{handshake, refuse};
use crate::outbox::{COPY_BELOW, ConnHandle};
use crate::payload::Payload;
use crate::shared::Shared;
use crate::sync::lock;

/// The longest timeout a request may ask for.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Delivery heads are encoded into blocks of this many bytes…
const HEAD_BLOCK: usize = 8192;
/// …and a new block is reserved when less than this is left.
const HEAD_LOW: usize = 512;
/// Frames a session handles before it lets the other tasks of its thread
/// run. Decoding frames already read costs tokio's cooperative budget
/// nothing, so a busy publisher's session would otherwise route thousands
/// of messages before the writers it filled (and its own `Pong`) get to
/// write any: the receivers would idle, then get it all at once.
const YIELD_EVERY: u32 = 128;
/// How long a closing connection may take to flush what is queued for it.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// Serves one accepted connection until it closes.
pub(crate) async fn run(shared: Arc<Shared>, conn: Connection) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("session", conn = id, peer = %conn.peer.addr);
    serve(shared, id, conn).instrument(span).await;
}

async fn serve(shared: Arc<Shared>, id: u64, conn: Connection) {
    let Connection {
        reader,
        mut writer,
        peer,
        fds,
    } = conn;
    let max_frame = shared.config.limits.max_frame;
    // Segments are checked but mapped only for a receiver that needs the
    // bytes (see `Payload`).
    let (codec, fd_sender) = busd_transport::frame_codec(fds, max_frame, Mapping::Unmapped);
    let mut frames = FrameReader::new(reader, codec);
    let identity = match handshake(&shared, &mut frames, &mut writer, &peer).await {
        Ok(identity) => identity,
        Err(Some((code, message))) => {
            tracing::info!(%code, %message, "handshake refused");
            refuse(&mut writer, code, message).await;
            return;
        }
        Err(None) => return,
    };
    let limits = shared.config.limits;
    let handle = Arc::new(ConnHandle::new(
        id,
        limits.max_pending_msgs as usize,
        usize::try_from(limits.max_pending_bytes).unwrap_or(usize::MAX),
        fd_sender.is_some(),
    ));
    // The epoch is the router's for its whole life: taken under the same lock.
    let (registered, epoch) = {
        let mut st = lock(&shared.router);
        let registered = st.router.connect(id, identity.clone(), Arc::clone(&handle));
        (registered, st.router.epoch())
    };
    if let Err(e) = registered {
        refuse(&mut writer, e.code, e.message).await;
        return;
    }
    tracing::debug!(%identity, "welcome");
    handle.send(
        &Op::Welcome(Welcome {
            client_id: id,
            pfn: identity.pfn.clone(),
            limits: busd_proto::Limits {
                max_frame: limits.max_frame,
                max_pending_msgs: limits.max_pending_msgs,
                max_pending_bytes: limits.max_pending_bytes,
            },
        }),
        Bytes::new(),
    );
    let writer_task = {
        let handle = Arc::clone(&handle);
        shared
            .tracker
            .spawn(async move { handle.write_loop(writer, fd_sender).await }.in_current_span())
    };
    let mut session = Session {
        shared: Arc::clone(&shared),
        id,
        sender: Sender {
            client_id: id,
            pfn: identity.pfn.clone(),
        },
        identity,
        handle: Arc::clone(&handle),
        route: Route::default(),
        epoch,
        head: BytesMut::new(),
    };
    session.read_loop(&mut frames).await;
    session.route.settle(&session.epoch);

    let gone = lock(&shared.router).router.disconnect(id);
    for u in gone {
        let op = Op::Resp {
            rid: u.rid,
            status: Status::ResponderGone,
            headers: None,
        };
        u.requester.send(&op, Bytes::new());
    }
    handle.finish();
    let abort = writer_task.abort_handle();
    if tokio::time::timeout(FLUSH_GRACE, writer_task)
        .await
        .is_err()
    {
        tracing::debug!("peer does not read: closing without flushing");
        abort.abort();
    }
    let lost = handle.discarded.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::warn!(lost, "queued messages discarded with the connection");
    }
    tracing::debug!("closed");
}

struct Session {
    shared: Arc<Shared>,
    id: u64,
    /// Stamped on everything this connection sends; never from the client.
    sender: Sender,
    /// As proven at the handshake.
    identity: busd_policy::Identity,
    handle: Arc<ConnHandle>,
    /// The last publish's receivers, used again while still valid.
    route: Route<Arc<ConnHandle>>,
    epoch: Arc<RouteEpoch>,
    head: BytesMut,
}

impl Session {
    async fn read_loop(&mut self, frames: &mut FrameReader<BoxReader>) {
        // Made once and kept registered: polled only when no frame is ready
        // (biased), so a busy connection pays nothing per frame for them.
        let killed = self.handle.killed().clone().cancelled_owned();
        let shutdown = self.shared.shutdown.clone().cancelled_owned();
        tokio::pin!(killed, shutdown);
        let mut since_yield = 0;
        let mut exchanging = false;
        loop {
            let next = match frames.decode() {
                Ok(Some(frame)) => Some(Ok(frame)),
                Ok(None) if frames.at_eof() => None,
                Ok(None) => {
                    // Every frame read so far is handled: count them before
                    // waiting for more.
                    self.route.settle(&self.epoch);
                    // After a request or a reply, the answer or the next
                    // request is likely to come soon: polled for without
                    // letting the thread sleep, it is picked up without
                    // the wake-up of an idle core (tens of µs on a VM).
                    let busy_poll = if exchanging {
                        self.shared.config.busy_poll
                    } else {
                        Duration::ZERO
                    };
                    let filled = match frames.fill_within(busy_poll).await {
                        Some(filled) => filled,
                        None => tokio::select! {
                            biased;
                            filled = frames.fill() => filled,
                            () = &mut killed => return,
                            () = &mut shutdown => {
                                self.handle.close_with(ErrorCode::ShuttingDown, "the daemon is shutting down");
                                return;
                            }
                        },
                    };
                    match filled {
                        Ok(_) => continue,
                        Err(e) => Some(Err(e.into())),
                    }
                }
                Err(e) => Some(Err(e)),
            };
            since_yield += 1;
            if since_yield == YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            match next {
                None => return,
                Some(Err(e)) => {
                    tracing::info!(cause = %e, "closing on a bad frame");
                    self.handle.close_with(e.code(), &e.to_string());
                    return;
                }
                Some(Ok(Frame {
                    op: Op::Pub { subject, headers },
                    payload,
                    segment,
                })) => {
                    exchanging = false;
                    if subject.has_wildcards() {
                        let msg = format!("cannot publish to wildcard subject {subject}");
                        self.handle.send_error(ErrorCode::InvalidSubject, msg, None);
                    } else {
                        self.publish(subject, headers, payload, segment).await;
                    }
                }
                Some(Ok(frame)) => {
                    exchanging = matches!(frame.op, Op::Req { .. } | Op::Resp { .. });
                    if let Err((code, message)) = self.dispatch(frame) {
                        tracing::info!(%code, %message, "closing on a protocol violation");
                        self.handle.close_with(code, &message);
                        return;
                    }
                }
            }
        }
    }

    /// Handles one frame; `Err` closes the connection.
    fn dispatch(&mut self, frame: Frame) -> Result<(), (ErrorCode, String)> {
        let Frame {
            op,
            payload,
            segment,
        } = frame;
        match op {
            Op::Sub {
                sid,
                subject,
                queue,
                overflow,
            } => {
                let r = lock(&self.shared.router)
                    .router
                    .subscribe(self.id, sid, subject, queue, overflow);
                if let Err(e) = r {
                    self.handle
                        .send_error(e.code, e.message, Some(Ref::Sid(sid)));
                }
            }
            Op::Serve {
                sid,
                service,
                require_capability,
            } => {
                let r = lock(&self.shared.router).router.serve(
                    self.id,
                    sid,
                    service,
                    require_capability,
                );
                if let Err(e) = r {
                    self.handle
                        .send_error(e.code, e.message, Some(Ref::Sid(sid)));
                }
            }
            Op::Unsub { sid } => {
                lock(&self.shared.router).router.unsubscribe(self.id, sid);
            }
            Op::Req {
                rid,
                service,
                timeout_ms,
                headers,
            } => {
                self.request(rid, service, timeout_ms, headers, payload, segment);
            }
            Op::Resp {
                rid,
                status,
                headers,
            } => self.respond(rid, status, headers, payload, segment),
            Op::Ping => self.handle.send(&Op::Pong, Bytes::new()),
            Op::Ctl { rid, command } => {
                let (status, payload) = crate::admin::run(&self.shared, &self.identity, command);
                let resp = Op::Resp {
                    rid,
                    status,
                    headers: None,
                };
                self.handle.send(&resp, payload);
            }
            Op::Pong => {}
            Op::Error { code, message, .. } => {
                tracing::debug!(%code, %message, "client reported an error")
            }
            other => {
                return Err((
                    ErrorCode::ProtocolViolation,
                    format!("{} is not valid from a client after Welcome", other.name()),
                ));
            }
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        subject: busd_proto::Subject,
        headers: Option<busd_proto::Headers>,
        payload: Bytes,
        segment: Option<SegmentFd>,
    ) {
        let mut route = std::mem::take(&mut self.route);
        if !route.reuse(&subject, &self.epoch) {
            lock(&self.shared.router)
                .router
                .route(self.id, &subject, &mut route);
        }
        let block_timeout = self.shared.config.limits.block_timeout;
        let mut deadline = None;
        let mut payload = Payload::new(payload, segment);
        // Taken before the last receiver is handed the bytes themselves.
        let len = payload.len();
        let mut unmapped = 0;
        let count = route.targets().len();
        // Small payloads that came in the stream are copied into each
        // receiver's queue, with the head encoded here (and reused): no
        // reference to share, no head to allocate. Others keep their
        // payload as a reference and have their heads split off one shared
        // block, refilled when low (and reclaimed in place once the writers
        // have sent the last ones): one allocation per many deliveries,
        // none for an idle client.
        let small = len < COPY_BELOW && payload.inline().is_some();
        for (i, t) in route.targets().iter().enumerate() {
            // Drop-oldest deliveries stay whole frames, each droppable alone.
            let copy = small && t.overflow != Overflow::DropOldest;
            // The same fd to every shm receiver; the bytes to the others.
            let last = i + 1 == count;
            let (segment, bytes) = if copy {
                (None, Bytes::new())
            } else {
                match payload.for_receiver(t.handle.passes_fds, last) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(cause = %e, conn = t.conn, "cannot map a segment for a receiver without fd passing");
                        unmapped += 1;
                        continue;
                    }
                }
            };
            if self.head.capacity() - self.head.len() < HEAD_LOW {
                self.head.reserve(HEAD_BLOCK);
            }
            let encoded = encode_msg_head(
                t.sid,
                &subject,
                &self.sender,
                headers.as_ref(),
                Body::of(len, segment.is_some()),
                &mut self.head,
            );
            if encoded.is_err() {
                self.head.clear();
                continue; // cannot happen: the publish frame itself was within limits
            }
            let frame = match payload.inline() {
                Some(inline) if copy => Outgoing::Copy {
                    head: &self.head,
                    payload: inline,
                },
                _ => {
                    let head = self.head.split().freeze();
                    let frame = OutFrame::message(head, bytes, t.sid, t.overflow);
                    Outgoing::Frame(match segment {
                        Some(fd) => frame.with_segment(fd, len),
                        None => frame,
                    })
                }
            };
            let queued = if t.overflow != Overflow::Block {
                t.handle.push(frame);
                true
            } else {
                t.handle
                    .push_blocking(frame, block_timeout, &mut deadline)
                    .await
            };
            self.head.clear(); // a copied head, now in the queue
            if !queued {
                // Lossless means waiting, but not forever: the stuck
                // subscriber is cut off and both sides are told.
                let waited = humantime_serde::re::humantime::format_duration(block_timeout);
                t.handle.close_with(
                    ErrorCode::SlowConsumer,
                    &format!(
                        "blocking subscription {} made no room within {waited}",
                        t.sid
                    ),
                );
                let msg = format!(
                    "subscriber {} made no room within {waited}; it was disconnected",
                    t.conn
                );
                self.handle.send_error(ErrorCode::SlowConsumer, msg, None);
            }
        }
        route.release();
        self.route = route;
        if unmapped > 0 {
            let msg = format!(
                "the daemon could not map this segment: not delivered to {unmapped} receivers without fd passing"
            );
            self.handle.send_error(ErrorCode::LimitExceeded, msg, None);
        }
    }

    fn request(
        &mut self,
        rid: u64,
        service: busd_proto::Subject,
        timeout_ms: u32,
        headers: Option<busd_proto::Headers>,
        payload: Bytes,
        segment: Option<SegmentFd>,
    ) {
        if service.has_wildcards() {
            let msg = format!("service name {service} may not hold wildcards");
            self.handle
                .send_error(ErrorCode::InvalidSubject, msg, Some(Ref::Rid(rid)));
            return;
        }
        let timeout = Duration::from_millis(u64::from(timeout_ms.max(1))).min(MAX_REQUEST_TIMEOUT);
        let deadline = (Instant::now() + timeout).into_std();
        let routed = {
            let mut st = lock(&self.shared.router);
            let routed = st.router.request(self.id, rid, &service, deadline);
            if routed.is_ok() && st.armed.is_none_or(|armed| deadline < armed) {
                st.armed = Some(deadline);
                self.shared.timer.notify_one();
            }
            routed
        };
        match routed {
            Ok(r) => {
                let call = Op::Call {
                    rid: r.call_id,
                    sid: r.sid,
                    service,
                    from: r.from,
                    headers,
                };
                let payload = Payload::new(payload, segment);
                if let Err(e) = r.responder.send_payload(&call, payload) {
                    let msg = format!("the daemon could not map this request's segment: {e}");
                    self.handle
                        .send_error(ErrorCode::LimitExceeded, msg, Some(Ref::Rid(rid)));
                }
            }
            Err(status) => {
                let resp = Op::Resp {
                    rid,
                    status,
                    headers: None,
                };
                self.handle.send(&resp, Bytes::new());
            }
        }
    }

    fn respond(
        &mut self,
        call_id: u64,
        status: Status,
        headers: Option<busd_proto::Headers>,
        payload: Bytes,
        segment: Option<SegmentFd>,
    ) {
        if !matches!(status, Status::Success | Status::Failure) {
            let msg = format!("a responder answers Success or Failure, not {status}");
            self.handle
                .send_error(ErrorCode::ProtocolViolation, msg, Some(Ref::Rid(call_id)));
            return;
        }
        let back = lock(&self.shared.router).router.respond(self.id, call_id);
        match back {
            Some(u) => {
                let resp = Op::Resp {
                    rid: u.rid,
                    status,
                    headers,
                };
                let payload = Payload::new(payload, segment);
                if let Err(e) = u.requester.send_payload(&resp, payload) {
                    let msg = format!("the daemon could not map this reply's segment: {e}");
                    u.requester
                        .send_error(ErrorCode::LimitExceeded, msg, Some(Ref::Rid(u.rid)));
                }
            }
            None => tracing::debug!(call_id, "late, repeated or stray reply dropped"),
        }
    }
}
