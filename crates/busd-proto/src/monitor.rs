//! What `busd monitor` sees: one [`MonitorEvent`] per publish, request and
//! reply, as the daemon routed it.
//!
//! Events go only to admin connections that asked with `Op::Monitor`; they
//! name connections and identities that a publisher is otherwise never told
//! (who listens, who the rules kept out), which is why they are for admins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Status;
use crate::pfn::Pfn;
use crate::subject::Subject;

/// One connection as a monitor sees it: its id and proven identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The daemon's id for the connection.
    pub client_id: u64,
    /// Its package, `None` for an unpackaged client.
    pub pfn: Option<Pfn>,
    /// Its peer uid, where the transport tells it.
    pub uid: Option<u32>,
}

/// What a [`MonitorEvent`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// A publish: `to` are its receiving subscriptions' connections.
    Publish,
    /// A request: `to` is the responder it was routed to (none when the
    /// daemon answered at once, with `status` saying why).
    Request,
    /// A responder's reply: `to` is the caller it went back to.
    Reply,
}

/// One message on the bus, as routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorEvent {
    /// When the daemon routed it, in microseconds since the Unix epoch.
    pub time_us: u64,
    /// Publish, request or reply.
    pub kind: EventKind,
    /// The subject published to, or the service called.
    pub subject: Subject,
    /// The publisher, the caller, or (a reply) the responder.
    pub from: Party,
    /// The connections it was delivered to, one per receiving subscription.
    pub to: Vec<Party>,
    /// The connections whose subscription matched but whom the access
    /// rules kept it from (audited too; never told to the sender).
    pub denied: Vec<Party>,
    /// The payload's length in bytes, whether or not the monitor gets it.
    pub size: u64,
    /// A request answered at once by the daemon (`NoResponders`,
    /// `NotAuthorized`), or a reply's `Success` / `Failure`.
    pub status: Option<Status>,
    /// The daemon's id of the call a request or reply belongs to, which
    /// pairs them.
    pub call: Option<u64>,
    /// The message's headers (an `op::Headers`, spelled out here so that
    /// this module stays below `op`), only for a monitor that asked for
    /// contents.
    pub headers: Option<BTreeMap<String, String>>,
}
