//! One client connection, from accept to close: the handshake, then the
//! frames it sends, in order, until it leaves or is closed.
//!
//! What each frame means is `busd_core::Session`'s to decide (sans-IO);
//! the modules here carry out its steps: `read_loop` reads and paces,
//! `dispatch` carries out each step (`requests` the request/reply ones,
//! `fanout` a publish, `monitoring` starting and ending monitors), and
//! `watched` tells running monitors what happened, all on the
//! connection's [`Link`].

mod activate;
mod attached;
mod dispatch;
mod fanout;
mod fanout_set;
mod link;
mod monitoring;
mod pooled_in;
mod read_loop;
mod requests;
mod watched;

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use busd_core::{Route, Unanswered};
use busd_proto::{ErrorCode, Op, Sender, Status, Welcome};
use busd_transport::{BoxReader, BoxWriter, Connection, FdSender, FrameReader, Mapping, PeerInfo};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use tokio::task::JoinHandle;
use tracing::Instrument;

use self::link::Link;
use crate::audit::{self, Who};
use crate::budget::Credit;
use crate::handshake::{Proven, handshake, refuse};
use crate::origin::Origin;
use crate::outbox::ConnHandle;
use crate::shared::Shared;
use crate::sync::lock;
use crate::traffic::Unsettled;
use crate::writer::write_loop;

/// How long a closing connection may take to flush what is queued for it.
const FLUSH_GRACE: Duration = Duration::from_secs(5);
/// How long the daemon takes what a closed peer still sends (see `linger`).
const LINGER: Duration = Duration::from_secs(1);

/// Serves one accepted connection until it closes. A panic in its task
/// closes this connection only (see [`contain`]).
pub(crate) async fn run(shared: Arc<Shared>, conn: Connection) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let span = tracing::info_span!("session", conn = id, peer = %conn.peer.addr);
    let served = AssertUnwindSafe(serve(Arc::clone(&shared), id, conn))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    if let Err(panic) = served {
        span.in_scope(|| contain(&shared, id, &*panic));
    }
}

/// After a panic in connection `id`'s task: logs it with the identity,
/// kills the connection's writer and forgets it in the router (requests it
/// was serving fail with `ResponderGone`). The router's lock recovers from
/// poisoning, and every other connection is served on.
pub(crate) fn contain(shared: &Shared, id: u64, panic: &(dyn Any + Send)) {
    let what = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    shared.monitors.end(id, |_| true);
    let (identity, gone) = {
        let mut router = lock(&shared.router);
        let identity = router.connection(id).map(|(identity, handle)| {
            handle.abort();
            identity.to_string()
        });
        (identity, router.disconnect(id))
    };
    let identity = identity.as_deref().unwrap_or("not yet proven");
    tracing::error!(
        conn = id,
        identity,
        "panic in a connection's task, closing it: {what}"
    );
    answer_responder_gone(gone);
}

/// Answers `ResponderGone` to the requests a departed connection was
/// serving.
fn answer_responder_gone(gone: Vec<Unanswered<Arc<ConnHandle>>>) {
    for u in gone {
        let op = Op::Resp {
            rid: u.rid,
            status: Status::ResponderGone,
            headers: None,
        };
        u.requester.send(&op, Bytes::new());
    }
}

async fn serve(shared: Arc<Shared>, id: u64, conn: Connection) {
    let Connection {
        reader,
        mut writer,
        peer,
        fds,
    } = conn;
    let limits = shared.config.limits;
    // Segments are checked but mapped only for a receiver that needs the
    // bytes (see `Payload`). Until the peer has proven who it is, a frame
    // may be only a few KiB: nobody is charged for its memory yet.
    let (codec, fd_sender) =
        busd_transport::frame_codec(fds, limits.max_preauth_frame, Mapping::Unmapped);
    let mut frames = FrameReader::new(reader, codec);
    let proven = match handshake(&shared, &mut frames, &mut writer, &peer).await {
        Ok(proven) => proven,
        Err(e) => {
            if let Some(reason) = e.reason() {
                shared.metrics.auth_failed(reason);
            }
            if let Some(code) = e.code() {
                if code == ErrorCode::FrameTooLarge {
                    let who = Who {
                        identity: None,
                        uid: peer.uid,
                        pid: peer.pid,
                    };
                    audit::limit_reached(who, "limits.max_preauth_frame", &e);
                }
                tracing::info!(%code, cause = %e, "handshake refused");
                refuse(&mut writer, code, e.to_string()).await;
                linger(&mut frames).await;
            }
            return;
        }
    };
    frames.codec_mut().set_max_frame(limits.max_frame);
    let opened = open(&shared, id, proven, &peer, writer, fd_sender).await;
    let Some((mut link, writer_task)) = opened else {
        return;
    };
    link.read_loop(&mut frames).await;
    let consumed = frames.consumed();
    link.handle.traffic.settle(&mut link.counts, consumed);
    close(&shared, id, link, writer_task).await;
    linger(&mut frames).await;
}

/// Takes what the peer still sends for up to [`LINGER`] after the daemon
/// closed its side, so that a peer closed mid-send (over its budget, a
/// protocol violation) reads the error it was sent: closing a TCP socket
/// with unread bytes resets it, and a reset destroys what the peer has not
/// read yet.
async fn linger(frames: &mut FrameReader<BoxReader>) {
    let until = tokio::time::Instant::now() + LINGER;
    while let Ok(Ok(true)) = tokio::time::timeout_at(until, frames.discard()).await {}
}

/// Registers the proven connection with the router, welcomes it and
/// starts its writer; `None` (the client told why) if the router refuses.
async fn open(
    shared: &Arc<Shared>,
    id: u64,
    proven: Proven,
    peer: &PeerInfo,
    mut writer: BoxWriter,
    fd_sender: Option<FdSender>,
) -> Option<(Link, JoinHandle<()>)> {
    let Proven {
        session: protocol,
        identity,
        wants_fds,
        wants_set_pools,
    } = proven;
    // Fds pass only where both ends agreed to: the client asked, and the
    // transport can. The reader takes them from here on; the client sends
    // none before it reads `Welcome`.
    let takes_fds = wants_fds && fd_sender.is_some();
    if let Some(sender) = fd_sender.as_ref().filter(|_| takes_fds) {
        sender.accept();
    }
    let limits = shared.config.limits;
    let budget = shared.budgets.of(&identity);
    let handle = Arc::new(
        ConnHandle::new(
            id,
            (
                limits.max_pending_msgs as usize,
                usize::try_from(limits.max_pending_bytes).unwrap_or(usize::MAX),
            ),
            fd_sender.as_ref().is_some_and(FdSender::passes_segments),
            takes_fds,
            Credit::new(Arc::clone(&budget)),
            Arc::clone(&shared.tally),
            Origin::of(peer),
        )
        .with_pool(fd_sender.as_ref().and_then(|f| f.pool().cloned()), &budget)
        .with_set_pools(wants_set_pools && shared.set_pools.enabled()),
    );
    if let Some(releases) = fd_sender.as_ref().and_then(FdSender::releases) {
        // The writer hands back the client's blocks; a weak handle, so the
        // transport's side of the pool does not keep the connection alive.
        let writer = Arc::downgrade(&handle);
        releases.set_waker(move || {
            if let Some(handle) = writer.upgrade() {
                handle.wake_writer();
            }
        });
    }
    // The epoch is the router's for its whole life: taken under the same lock.
    let (registered, epoch) = {
        let mut router = lock(&shared.router);
        let registered = router.connect(id, identity.clone(), Arc::clone(&handle));
        (registered, router.epoch())
    };
    if let Err(e) = registered {
        if e.code() == ErrorCode::LimitExceeded {
            let who = Who {
                identity: Some(&identity),
                uid: identity.uid,
                pid: peer.pid,
            };
            audit::limit_reached(who, "limits.max_connections", &e);
        }
        shared.metrics.auth_failed(e.code().as_str());
        refuse(&mut writer, e.code(), e.to_string()).await;
        return None;
    }
    tracing::debug!(%identity, "welcome");
    let welcome = Welcome {
        client_id: id,
        pfn: identity.pfn.clone(),
        limits: busd_proto::Limits {
            max_frame: limits.max_frame,
            max_pending_msgs: limits.max_pending_msgs,
            max_pending_bytes: limits.max_pending_bytes,
        },
        fds: takes_fds,
        set_pools: handle.set_pools,
    };
    handle.send(&Op::Welcome(welcome), Bytes::new());
    let writer_task = {
        let handle = Arc::clone(&handle);
        let write = async move {
            let written =
                AssertUnwindSafe(write_loop(&handle, writer, fd_sender, limits.write_timeout))
                    .catch_unwind()
                    .await;
            if written.is_err() {
                // The session sees the kill, closes and logs nothing more.
                tracing::error!("panic in a connection's writer, closing it");
                handle.abort();
            }
        };
        shared.tracker.spawn(write.in_current_span())
    };
    let fd_budget = shared.fd_budgets.of(&identity);
    let link = Link {
        shared: Arc::clone(shared),
        id,
        sender: Sender {
            client_id: id,
            pfn: identity.pfn.clone(),
        },
        identity,
        pid: peer.pid,
        bridge: peer.bridge,
        protocol,
        inbound: Credit::new(budget),
        fd_budget,
        handle,
        route: Route::default(),
        epoch,
        head: BytesMut::new(),
        counts: Unsettled::default(),
    };
    Some((link, writer_task))
}

/// Forgets the connection: requests it was serving fail with
/// `ResponderGone` at once, and what is queued for it is flushed within
/// [`FLUSH_GRACE`] (the shutdown grace when the daemon is stopping);
/// what is not is discarded and counted.
async fn close(shared: &Shared, id: u64, mut link: Link, mut writer_task: JoinHandle<()>) {
    link.route.settle(&link.epoch);
    link.end_monitors();
    let (gone, at_leaving) = {
        let mut router = lock(&shared.router);
        let gone = router.disconnect(id);
        let traffic = link.handle.traffic();
        shared.metrics.closed(&link.identity, traffic);
        (gone, traffic)
    };
    answer_responder_gone(gone);
    let handle = link.handle;
    handle.finish();
    let grace = if shared.shutdown.is_cancelled() {
        shared.config.shutdown_grace
    } else {
        FLUSH_GRACE
    };
    if tokio::time::timeout(grace, &mut writer_task).await.is_err() {
        tracing::debug!("peer does not read: closing without flushing");
        writer_task.abort();
        // Awaited, so that the batch it had in hand is counted (as its
        // task is dropped) before `lost` is read.
        let _ = writer_task.await;
        handle.discard_queued();
    }
    // Nothing more is written to it: the blocks it held of set pools go
    // back, and the pools it shared are retired.
    shared.set_pools.leave(id);
    let last = handle.traffic();
    shared
        .metrics
        .closed(&link.identity, last.since(at_leaving));
    let lost = last.discarded;
    if lost > 0 {
        if shared.shutdown.is_cancelled() {
            shared.undelivered.fetch_add(lost, Ordering::Relaxed);
        }
        tracing::warn!(lost, "queued messages discarded with the connection");
    }
    tracing::debug!("closed");
}
