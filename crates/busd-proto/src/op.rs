//! The frame header: one enum variant per protocol operation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::error::{ErrorCode, Status};
use crate::flags::{HelloWire, WelcomeWire};
use crate::monitor::MonitorEvent;
use crate::pfn::Pfn;
use crate::subject::Subject;

/// Message headers: string keys to string values, ordered for stable output.
pub type Headers = BTreeMap<String, String>;

/// The header in which a daemon's bridge to another bus names the remote
/// sender it relays for (`HOST/PFN`). The daemon removes it from what any
/// other client sends, so a receiver finds it only as a bridge's word.
pub const RELAYED_FOR: &str = "Busd-Sender";

/// The operation a frame carries. The payload, if any, follows the header
/// raw; which operations carry one is noted on each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    /// Client → daemon, first frame: who the client says it is.
    Hello(Hello),
    /// Daemon → client: prove the claim by HMAC over this nonce.
    Challenge {
        /// Random bytes, fresh for each connection.
        nonce: ByteBuf,
    },
    /// Client → daemon: HMAC-SHA256 of the nonce under the package token.
    Auth {
        /// The 32-byte MAC.
        hmac: ByteBuf,
    },
    /// Daemon → client: the handshake succeeded.
    Welcome(Welcome),
    /// Subscribe `sid` to `subject` (wildcards allowed).
    Sub {
        /// The client's id for this subscription, unique on its connection.
        sid: u64,
        /// What to receive.
        subject: Subject,
        /// Queue group: each message goes to one member of the group.
        queue: Option<String>,
        /// What the daemon does when this subscriber falls behind.
        overflow: Overflow,
    },
    /// Remove the subscription or service registered under `sid`.
    Unsub {
        /// The id given in `Sub` or `Serve`.
        sid: u64,
    },
    /// Publish the payload to a literal subject.
    Pub {
        /// Where to; wildcards are refused with `InvalidSubject`.
        subject: Subject,
        /// Optional message headers.
        headers: Option<Headers>,
    },
    /// Daemon → client: a delivery for subscription `sid`; carries the payload.
    Msg {
        /// Which subscription matched.
        sid: u64,
        /// The literal subject it was published to.
        subject: Subject,
        /// Who sent it, as the daemon knows it (never taken from the sender).
        from: Sender,
        /// The publisher's headers.
        headers: Option<Headers>,
    },
    /// Offer to answer requests to `service` under id `sid`.
    Serve {
        /// The client's id for this registration (shares the `Sub` id space).
        sid: u64,
        /// The service name, a literal subject.
        service: Subject,
        /// Only packages granted this custom capability may call it.
        require_capability: Option<String>,
    },
    /// Client → daemon: a request to `service`; carries the payload.
    Req {
        /// The client's id for this request, unique on its connection.
        rid: u64,
        /// Which service.
        service: Subject,
        /// How long the daemon waits for the answer before `Timeout`.
        timeout_ms: u32,
        /// Optional headers.
        headers: Option<Headers>,
    },
    /// Daemon → responder: a request to answer; carries the payload.
    Call {
        /// The daemon's id for this call; the responder answers with `Resp{rid}`.
        rid: u64,
        /// The `Serve` registration it was routed to.
        sid: u64,
        /// The service name.
        service: Subject,
        /// Who asks, as the daemon knows it.
        from: Sender,
        /// The requester's headers.
        headers: Option<Headers>,
    },
    /// An answer; carries the payload. Responder → daemon with the call's
    /// `rid`, daemon → requester with the request's `rid`.
    Resp {
        /// The call or request id.
        rid: u64,
        /// Success, the service's Failure, or the daemon's reason.
        status: Status,
        /// Optional headers.
        headers: Option<Headers>,
    },
    /// Liveness and flush: the daemon answers `Pong` after handling every
    /// frame sent before.
    Ping,
    /// The answer to `Ping`.
    Pong,
    /// Something went wrong; `refers` names the subscription or request.
    Error {
        /// The stable code.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
        /// The subscription or request the error belongs to, if any.
        refers: Option<Ref>,
    },
    /// Client → daemon: an administrative command (admin identities only);
    /// answered with `Resp{rid}` whose payload is the result as JSON.
    Ctl {
        /// The client's id for this command (shares the `Req` id space).
        rid: u64,
        /// What to do.
        command: CtlCommand,
    },
    /// Daemon → client: messages for `sid` were dropped (drop-oldest policy).
    Dropped {
        /// The subscription that lost messages.
        sid: u64,
        /// How many were dropped since the last notice.
        count: u64,
    },
    /// Client → daemon: watch every publish, request and reply whose
    /// subject (or service) matches `subject` (admin identities only; a
    /// refusal is `Error{NotAuthorized}` naming `sid`). Events come as
    /// `Event{sid}`, events the monitor fell too far behind for as
    /// `Dropped{sid}`; `Unsub{sid}` stops it. It never changes delivery.
    Monitor {
        /// The client's id for this monitor (shares the `Sub` id space).
        sid: u64,
        /// What to watch; wildcards allowed.
        subject: Subject,
        /// Whether events carry the message's headers and payload, besides
        /// its size.
        contents: bool,
    },
    /// Daemon → monitor: one event for monitor `sid`; carries the
    /// message's payload when the monitor asked for contents.
    Event {
        /// The monitor it is for.
        sid: u64,
        /// What happened.
        event: MonitorEvent,
    },
    /// Either way, over shm: hands back blocks of the peer's payload pool
    /// whose payloads this side is done with, by offset (see
    /// `busd_shm::PoolWriter`). A block handed back that was not lent is a
    /// protocol violation.
    Release {
        /// The blocks' offsets in the peer's pool; an offset's high 32 bits
        /// name a set pool the daemon shared with the client (see
        /// [`Hello::set_pools`]), 0 the connection's own pool.
        blocks: Vec<u64>,
    },
    /// Daemon → client, over shm with set pools: the daemon writes no more
    /// payloads into set pool `pool` for this client, which unmaps it once
    /// it holds no block of it (and hands those back as usual).
    PoolGone {
        /// The set pool's id (the high 32 bits of its blocks' offsets).
        pool: u32,
    },
}

impl Op {
    /// The variant name, for logs and error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello(_) => "Hello",
            Op::Challenge { .. } => "Challenge",
            Op::Auth { .. } => "Auth",
            Op::Welcome(_) => "Welcome",
            Op::Sub { .. } => "Sub",
            Op::Unsub { .. } => "Unsub",
            Op::Pub { .. } => "Pub",
            Op::Msg { .. } => "Msg",
            Op::Serve { .. } => "Serve",
            Op::Req { .. } => "Req",
            Op::Call { .. } => "Call",
            Op::Resp { .. } => "Resp",
            Op::Ping => "Ping",
            Op::Pong => "Pong",
            Op::Error { .. } => "Error",
            Op::Ctl { .. } => "Ctl",
            Op::Dropped { .. } => "Dropped",
            Op::Monitor { .. } => "Monitor",
            Op::Event { .. } => "Event",
            Op::Release { .. } => "Release",
            Op::PoolGone { .. } => "PoolGone",
        }
    }
}

/// The client's opening frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "HelloWire", from = "HelloWire")]
pub struct Hello {
    /// [`crate::PROTOCOL_VERSION`] of the client.
    pub version: u16,
    /// The package the client claims to be; `None` for an unpackaged client.
    pub pfn: Option<Pfn>,
    /// A free-form client name for logs and `busd ctl clients`.
    pub name: String,
    /// How the client means to prove its claim.
    pub auth: AuthKind,
    /// Whether the client takes and sends fds attached to frames (unix and
    /// shm only), as D-Bus clients negotiate `UNIX_FD` passing: only then
    /// does the daemon pass it fds or accept a frame announcing some.
    /// Flags are sent only as far as the last one up (see `flags`), so a
    /// Hello with none is the one older clients send and older daemons
    /// read; absent, a flag is `false`.
    pub fds: bool,
    /// Whether the client maps the daemon's set pools (shm with pools
    /// only): pools the daemon shares among all the receivers of one
    /// receiver set, so that a payload fanned out to them is copied once.
    pub set_pools: bool,
}

/// How a client proves the package it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthKind {
    /// No claim: an unpackaged client.
    None,
    /// HMAC challenge with the package's token.
    Token,
    /// The peer credentials the daemon reads from the socket.
    Peer,
}

/// The daemon's answer to a successful handshake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WelcomeWire", from = "WelcomeWire")]
pub struct Welcome {
    /// The daemon's id for this connection, shown as the sender of its messages.
    pub client_id: u64,
    /// The identity the daemon proved, `None` for unpackaged.
    pub pfn: Option<Pfn>,
    /// The limits this connection must keep to.
    pub limits: Limits,
    /// Whether fds pass on this connection: the client asked
    /// ([`Hello::fds`]) and the transport can (unix or shm). Sent only
    /// when `true` (to a client that asked), so older clients read the
    /// Welcome they know.
    pub fds: bool,
    /// Whether the daemon may deliver payloads in set pools: the client
    /// asked ([`Hello::set_pools`]), the connection has pools and the
    /// daemon shares them (`limits.shm_set_pools`).
    pub set_pools: bool,
}

/// Limits the daemon enforces on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The longest frame accepted, header and payload together.
    pub max_frame: u32,
    /// Messages that may wait in this connection's outbound queue.
    pub max_pending_msgs: u32,
    /// Bytes that may wait in this connection's outbound queue.
    pub max_pending_bytes: u64,
}

/// The sender of a message or request, as the daemon proved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    /// The sender's connection id.
    pub client_id: u64,
    /// The sender's package, `None` for an unpackaged client.
    pub pfn: Option<Pfn>,
}

/// What an `Error` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ref {
    /// A subscription or service registration.
    Sid(u64),
    /// A request.
    Rid(u64),
}

/// What the daemon does when a subscriber's outbound queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Overflow {
    /// Send `SlowConsumer` and close the subscriber's connection.
    #[default]
    Disconnect,
    /// Drop the oldest queued message for this subscription, count it, and
    /// tell the subscriber with `Dropped`.
    DropOldest,
    /// Lossless: the publisher waits for room, up to a deadline.
    Block,
}

/// The administrative commands of `busd ctl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CtlCommand {
    /// Router and connection counters.
    Stats,
    /// The connected clients and their identities.
    Clients,
    /// The subscriptions and services.
    Subs,
    /// Re-read the configuration and apply its access rules.
    Reload,
    /// The services: configured and live, their owners, responders and
    /// activation (appended: the wire keeps the order of variants).
    Services,
    /// Why a message (or a request) from one party may or may not reach
    /// another under the rules in force.
    Explain(ExplainQuery),
    /// What a reload of the file (the daemon's own when `None`; a path the
    /// daemon reads) would do now, without applying anything.
    ReloadDryRun(Option<String>),
    /// Add an expiring grant on top of the file's rules.
    Grant(GrantRequest),
    /// The grants in force, with the time they have left.
    Grants,
    /// Remove the grant of this id.
    Revoke(u64),
    /// The bridges to NATS: state, server, traffic each way, drops.
    Bridges,
}

/// What `busd ctl grant` asks: messages from `from` may reach `to` (and
/// back, if `both_ways`) for `seconds`, whatever the file's rules say;
/// parties as `busd ctl explain` names them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRequest {
    /// The sender.
    pub from: String,
    /// The receiver.
    pub to: String,
    /// Both directions.
    pub both_ways: bool,
    /// How long it lasts, in seconds.
    pub seconds: u64,
    /// Why, for the audit log and `busd ctl grants`.
    pub reason: Option<String>,
}

/// What `busd ctl explain` asks: parties as a command line names them (a
/// package family name, `unpackaged:UID`, `unpackaged`, or a live
/// client's id), and a subject or a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainQuery {
    /// The sender or caller.
    pub from: String,
    /// The receiver or responder (with a service, its owner by default).
    pub to: Option<String>,
    /// The message's subject.
    pub subject: Option<String>,
    /// The service called.
    pub service: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(fds: bool) -> Hello {
        Hello {
            version: crate::PROTOCOL_VERSION,
            pfn: None,
            name: "app".into(),
            auth: AuthKind::None,
            fds,
            set_pools: false,
        }
    }

    #[test]
    fn a_hello_or_welcome_without_fds_is_the_one_older_peers_know() {
        // Before fds, Hello was these four fields and Welcome three.
        let old_hello = (crate::PROTOCOL_VERSION, None::<Pfn>, "app", AuthKind::None);
        let old_bytes = rmp_serde::to_vec(&old_hello).unwrap();
        assert_eq!(rmp_serde::to_vec(&hello(false)).unwrap(), old_bytes);
        let read: Hello = rmp_serde::from_slice(&old_bytes).unwrap();
        assert_eq!(read, hello(false));
        let asked: Hello =
            rmp_serde::from_slice(&rmp_serde::to_vec(&hello(true)).unwrap()).unwrap();
        assert_eq!(asked, hello(true));

        let limits = Limits {
            max_frame: 1,
            max_pending_msgs: 2,
            max_pending_bytes: 3,
        };
        let welcome = |fds| Welcome {
            client_id: 7,
            pfn: None,
            limits,
            fds,
            set_pools: false,
        };
        let old_welcome = (7u64, None::<Pfn>, limits);
        let old_bytes = rmp_serde::to_vec(&old_welcome).unwrap();
        assert_eq!(rmp_serde::to_vec(&welcome(false)).unwrap(), old_bytes);
        let read: Welcome = rmp_serde::from_slice(&old_bytes).unwrap();
        assert_eq!(read, welcome(false));
        let granted = rmp_serde::to_vec(&welcome(true)).unwrap();
        assert_eq!(
            rmp_serde::from_slice::<Welcome>(&granted).unwrap(),
            welcome(true)
        );
    }
}
