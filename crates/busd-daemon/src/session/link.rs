//! The daemon's end of one client connection, as its session task holds it.

use std::sync::Arc;

use busd_core::{Route, RouteEpoch, Session};
use busd_policy::Identity;
use busd_proto::{Headers, RELAYED_FOR, Sender};
use bytes::BytesMut;

use crate::audit::Who;
use crate::budget::{Budget, Credit};
use crate::outbox::ConnHandle;
use crate::shared::Shared;
use crate::traffic::Unsettled;

/// One open connection: its protocol state, its outbound queue, and what
/// its publishes reuse.
pub(super) struct Link {
    pub(super) shared: Arc<Shared>,
    pub(super) id: u64,
    /// Stamped on everything this connection sends; never from the client.
    pub(super) sender: Sender,
    /// As proven at the handshake.
    pub(super) identity: Identity,
    /// The peer's pid, where the transport tells it (for the audit log).
    pub(super) pid: Option<u32>,
    /// The daemon's own bridge (see `PeerInfo::bridge`).
    pub(super) bridge: bool,
    /// What the client may send next, and what each frame means.
    pub(super) protocol: Session,
    /// What its owner is charged for the frame being read from it.
    pub(super) inbound: Credit,
    /// Its owner's fd budget, charged for the fds it sends until the last
    /// receiver's copy is gone.
    pub(super) fd_budget: Arc<Budget>,
    pub(super) handle: Arc<ConnHandle>,
    /// The last publish's receivers, used again while still valid.
    pub(super) route: Route<Arc<ConnHandle>>,
    pub(super) epoch: Arc<RouteEpoch>,
    /// Delivery heads are encoded into this block (see `fanout`).
    pub(super) head: BytesMut,
    /// Counted since they were last added to `handle.traffic`.
    pub(super) counts: Unsettled,
}

impl Link {
    /// `headers` as the daemon passes them on: `Busd-Sender` names a remote
    /// sender only when the daemon's own bridge sets it; from anyone else
    /// it is removed, so that no local client can pass as a remote one.
    pub(super) fn vouched(&self, mut headers: Option<Headers>) -> Option<Headers> {
        if let Some(h) = headers.as_mut().filter(|_| !self.bridge) {
            if h.remove(RELAYED_FOR).is_some() && h.is_empty() {
                return None;
            }
        }
        headers
    }

    /// This connection's client, for the audit log.
    pub(super) fn who(&self) -> Who<'_> {
        Who {
            identity: Some(&self.identity),
            uid: self.identity.uid,
            pid: self.pid,
        }
    }
}
