//! One client connection: handshake, then each frame it sends, in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use busd_core::{OutFrame, Target};
use busd_policy::Identity;
use busd_proto::{
    AuthKind, ErrorCode, Frame, FrameCodec, Hello, Op, PROTOCOL_VERSION, Ref, Sender, Status,
    Welcome, encode_head,
};
use busd_transport::{BoxReader, BoxWriter, Connection, PeerInfo};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::conn::{ConnHandle, lock};
use crate::server::Shared;

/// The longest timeout a request may ask for.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
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
    } = conn;
    let mut frames = FramedRead::new(reader, FrameCodec::new(shared.config.limits.max_frame));
    let identity = match handshake(&shared, &mut frames, &peer).await {
        Ok(identity) => identity,
        Err(Some((code, message))) => {
            tracing::info!(%code, %message, "handshake refused");
            write_direct(&mut writer, code, message).await;
            return;
        }
        Err(None) => return,
    };
    let limits = shared.config.limits;
    let handle = Arc::new(ConnHandle::new(
        id,
        limits.max_pending_msgs as usize,
        usize::try_from(limits.max_pending_bytes).unwrap_or(usize::MAX),
    ));
    let registered = lock(&shared.router)
        .router
        .connect(id, identity.clone(), Arc::clone(&handle));
    if let Err(e) = registered {
        write_direct(&mut writer, e.code, e.message).await;
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
    let stop = CancellationToken::new();
    let writer_task = {
        let (handle, stop) = (Arc::clone(&handle), stop.clone());
        shared
            .tracker
            .spawn(async move { handle.write_loop(writer, stop).await }.in_current_span())
    };
    let mut session = Session {
        shared: Arc::clone(&shared),
        id,
        sender: Sender {
            client_id: id,
            pfn: identity.pfn,
        },
        handle: Arc::clone(&handle),
        targets: Vec::new(),
        head: BytesMut::with_capacity(4096),
    };
    session.read_loop(&mut frames).await;

    let gone = lock(&shared.router).router.disconnect(id);
    for u in gone {
        let op = Op::Resp {
            rid: u.rid,
            status: Status::ResponderGone,
            headers: None,
        };
        u.requester.send(&op, Bytes::new());
    }
    stop.cancel();
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

/// Reads the `Hello` and proves the identity. `Err(None)`: the peer left.
async fn handshake(
    shared: &Shared,
    frames: &mut FramedRead<BoxReader, FrameCodec>,
    peer: &PeerInfo,
) -> Result<Identity, Option<(ErrorCode, String)>> {
    let timeout = shared.config.limits.auth_timeout;
    let first = tokio::select! {
        () = shared.shutdown.cancelled() => return Err(None),
        first = tokio::time::timeout(timeout, frames.next()) => first,
    };
    let hello: Hello = match first {
        Err(_) => {
            let msg = format!(
                "no Hello within {}",
                humantime_serde::re::humantime::format_duration(timeout)
            );
            return Err(Some((ErrorCode::ProtocolViolation, msg)));
        }
        Ok(None) => return Err(None),
        Ok(Some(Err(e))) => return Err(Some((e.code(), e.to_string()))),
        Ok(Some(Ok(Frame {
            op: Op::Hello(h), ..
        }))) => h,
        Ok(Some(Ok(frame))) => {
            let msg = format!("expected Hello, got {}", frame.op.name());
            return Err(Some((ErrorCode::ProtocolViolation, msg)));
        }
    };
    if hello.version != PROTOCOL_VERSION {
        let msg = format!(
            "protocol version {} is not supported (this daemon speaks {PROTOCOL_VERSION})",
            hello.version
        );
        return Err(Some((ErrorCode::ProtocolViolation, msg)));
    }
    tracing::debug!(name = %hello.name, uid = ?peer.uid, pid = ?peer.pid, "hello");
    match (hello.pfn, hello.auth) {
        (None, AuthKind::None) => Ok(Identity::unpackaged(peer.uid)),
        (Some(pfn), _) => {
            tracing::warn!(target: "busd::audit", %pfn, uid = ?peer.uid, "package claim refused: no proof configured");
            Err(Some((
                ErrorCode::AuthFailed,
                format!("cannot prove package {pfn}: no proof is configured for it"),
            )))
        }
        (None, auth) => Err(Some((
            ErrorCode::ProtocolViolation,
            format!("auth {auth:?} without a package name"),
        ))),
    }
}

/// Writes one error frame straight to the socket (before the writer task exists).
async fn write_direct(writer: &mut BoxWriter, code: ErrorCode, message: String) {
    let mut buf = BytesMut::new();
    let frame = Frame::new(Op::Error {
        code,
        message,
        refers: None,
    });
    if frame.encode(&mut buf).is_ok() {
        let _ = writer.write_all(&buf).await;
    }
    let _ = writer.shutdown().await;
}

struct Session {
    shared: Arc<Shared>,
    id: u64,
    /// Stamped on everything this connection sends; never from the client.
    sender: Sender,
    handle: Arc<ConnHandle>,
    /// Reused per publish.
    targets: Vec<Target<Arc<ConnHandle>>>,
    head: BytesMut,
}

impl Session {
    async fn read_loop(&mut self, frames: &mut FramedRead<BoxReader, FrameCodec>) {
        loop {
            let next = tokio::select! {
                next = frames.next() => next,
                () = self.handle.killed().cancelled() => return,
                () = self.shared.shutdown.cancelled() => {
                    self.handle.close_with(ErrorCode::ShuttingDown, "the daemon is shutting down");
                    return;
                }
            };
            match next {
                None => return,
                Some(Err(e)) => {
                    tracing::info!(cause = %e, "closing on a bad frame");
                    self.handle.close_with(e.code(), &e.to_string());
                    return;
                }
                Some(Ok(frame)) => {
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
        let Frame { op, payload } = frame;
        match op {
            Op::Pub { subject, headers } => {
                if subject.has_wildcards() {
                    let msg = format!("cannot publish to wildcard subject {subject}");
                    self.handle.send_error(ErrorCode::InvalidSubject, msg, None);
                    return Ok(());
                }
                self.publish(subject, headers, payload);
            }
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
                self.request(rid, service, timeout_ms, headers, payload);
            }
            Op::Resp {
                rid,
                status,
                headers,
            } => self.respond(rid, status, headers, payload),
            Op::Ping => self.handle.send(&Op::Pong, Bytes::new()),
            Op::Ctl { rid, .. } => {
                let msg = "busd ctl is not available yet".to_owned();
                self.handle
                    .send_error(ErrorCode::NotAuthorized, msg, Some(Ref::Rid(rid)));
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

    fn publish(
        &mut self,
        subject: busd_proto::Subject,
        headers: Option<busd_proto::Headers>,
        payload: Bytes,
    ) {
        lock(&self.shared.router)
            .router
            .publish(self.id, &subject, &mut self.targets);
        for t in self.targets.drain(..) {
            let msg = Op::Msg {
                sid: t.sid,
                subject: subject.clone(),
                from: self.sender.clone(),
                headers: headers.clone(),
            };
            if encode_head(&msg, payload.len(), &mut self.head).is_err() {
                continue; // cannot happen: the publish frame itself was within limits
            }
            let head = self.head.split().freeze();
            t.handle
                .push(OutFrame::message(head, payload.clone(), t.sid, t.overflow));
        }
    }

    fn request(
        &mut self,
        rid: u64,
        service: busd_proto::Subject,
        timeout_ms: u32,
        headers: Option<busd_proto::Headers>,
        payload: Bytes,
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
                r.responder.send(&call, payload);
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
                u.requester.send(&resp, payload);
            }
            None => tracing::debug!(call_id, "late, repeated or stray reply dropped"),
        }
    }
}
