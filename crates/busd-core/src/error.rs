//! Why the router refused a registration, and why a connection's frame
//! was refused.

use busd_policy::Identity;
use busd_proto::{AuthKind, ErrorCode, Pfn, Ref, Status, Subject};

/// A registration the router refused; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The connection is not registered (it is closing).
    #[error("unknown connection")]
    UnknownConnection,
    /// The client reused a sid it holds.
    #[error("sid {0} is already in use on this connection")]
    SidInUse(u64),
    /// The identity holds `max_connections` already.
    #[error("{owner} already holds {held} connections")]
    TooManyConnections {
        /// Whose limit it is: a package, or the uid of unpackaged clients.
        owner: Identity,
        /// What it holds.
        held: usize,
    },
    /// The identity holds `max_subscriptions` already.
    #[error("{owner} already holds {held} subscriptions and services")]
    TooManySubscriptions {
        /// Whose limit it is.
        owner: Identity,
        /// What it holds.
        held: usize,
    },
    /// A service name must be literal.
    #[error("service name {0} may not hold wildcards")]
    WildcardService(Subject),
    /// A configured service, which only its owner may serve.
    #[error("service {service} belongs to another package")]
    ServiceOwned {
        /// The name asked for.
        service: Subject,
    },
    /// With `[daemon] services = "configured-only"`, a name no package
    /// owns.
    #[error("service {0} is not configured, and this daemon serves configured services only")]
    ServiceNotConfigured(Subject),
}

impl RouterError {
    /// The code of the `Error` frame that tells the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownConnection | Self::SidInUse(_) => ErrorCode::ProtocolViolation,
            Self::TooManyConnections { .. } | Self::TooManySubscriptions { .. } => {
                ErrorCode::LimitExceeded
            }
            Self::WildcardService(_) => ErrorCode::InvalidSubject,
            Self::ServiceOwned { .. } | Self::ServiceNotConfigured(_) => ErrorCode::NotAuthorized,
        }
    }
}

/// Why a request was answered at once instead of routed to a responder;
/// the connection stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Nobody serves the service.
    #[error("no responders")]
    NoResponders,
    /// Nobody the rules allow serves it (or the asker is not registered).
    #[error("not authorized")]
    NotAuthorized,
    /// With `[daemon] services = "configured-only"`, a name no package
    /// owns.
    #[error("service {0} is not configured")]
    UnknownService(Subject),
    /// The connection has `max_pending_requests` in flight already.
    #[error("this connection already has {held} requests in flight")]
    TooManyRequests {
        /// Who asked, for the audit log.
        identity: Identity,
        /// What it has in flight.
        held: usize,
    },
}

impl RequestError {
    /// The status of the `Resp` that answers the request, when the
    /// daemon's answer is one (`NoResponders`, `NotAuthorized`); `None`
    /// when it is an `Error` frame referring to the request
    /// ([`code`](Self::code)): `Status` has no word for a limit, and a
    /// status added to it would be a frame older clients cannot decode,
    /// while every client already takes an `Error` that names its request
    /// as that request's failure.
    pub fn status(&self) -> Option<Status> {
        match self {
            Self::NoResponders => Some(Status::NoResponders),
            Self::NotAuthorized => Some(Status::NotAuthorized),
            Self::TooManyRequests { .. } | Self::UnknownService(_) => None,
        }
    }

    /// The error code the client's SDK reports.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoResponders => ErrorCode::NoResponders,
            Self::NotAuthorized => ErrorCode::NotAuthorized,
            Self::TooManyRequests { .. } => ErrorCode::LimitExceeded,
            Self::UnknownService(_) => ErrorCode::UnknownService,
        }
    }
}

/// A frame that breaks the protocol, or a request the rules refuse, as
/// the per-connection state machine ([`Session`](crate::Session)) finds
/// it. [`is_fatal`](Self::is_fatal) ones close the connection; the others
/// are answered with an `Error` frame and the connection goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An operation the handshake does not allow at this point.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What the handshake waits for.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// An operation only the daemon sends, or a second handshake.
    #[error("{0} is not valid from a client after Welcome")]
    NotAfterWelcome(&'static str),
    /// A `Hello` of another protocol version.
    #[error(
        "protocol version {0} is not supported (this daemon speaks {PROTOCOL_VERSION})",
        PROTOCOL_VERSION = busd_proto::PROTOCOL_VERSION
    )]
    Version(u16),
    /// A proof offered for no claim.
    #[error("auth {0:?} without a package name")]
    AuthWithoutPackage(AuthKind),
    /// A package claim whose proof failed. Its message is the same
    /// whatever the reason: an unknown package, a package without the
    /// proof offered and a proof that does not match all read alike, so
    /// that a local client cannot learn which package names are
    /// configured. The reason is for the audit log.
    #[error("cannot prove package {pfn}")]
    AuthFailed {
        /// The package claimed.
        pfn: Pfn,
        /// Why the proof failed (never told to the client).
        reason: &'static str,
    },
    /// A publish to a subject with wildcards.
    #[error("cannot publish to wildcard subject {0}")]
    WildcardPublish(Subject),
    /// A request to a service name with wildcards.
    #[error("service name {service} may not hold wildcards")]
    WildcardRequest {
        /// The request's id.
        rid: u64,
        /// The name asked for.
        service: Subject,
    },
    /// A reply whose status is the daemon's to give.
    #[error("a responder answers Success or Failure, not {status}")]
    ResponseStatus {
        /// The call it answers.
        call_id: u64,
        /// The status it carried.
        status: Status,
    },
    /// A frame after the connection was found broken.
    #[error("the connection is closing")]
    Closed,
}

impl ProtocolError {
    /// The code of the `Error` frame that tells the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::AuthFailed { .. } => ErrorCode::AuthFailed,
            Self::WildcardPublish(_) | Self::WildcardRequest { .. } => ErrorCode::InvalidSubject,
            _ => ErrorCode::ProtocolViolation,
        }
    }

    /// The request the error is about, if any.
    pub fn refers(&self) -> Option<Ref> {
        match self {
            Self::WildcardRequest { rid, .. } => Some(Ref::Rid(*rid)),
            Self::ResponseStatus { call_id, .. } => Some(Ref::Rid(*call_id)),
            _ => None,
        }
    }

    /// Whether the connection must close: the client cannot be trusted to
    /// follow the protocol any further.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::WildcardPublish(_) | Self::WildcardRequest { .. } | Self::ResponseStatus { .. }
        )
    }
}
