//! The SDK's error: a [`kind`](Error::kind) to branch on, a message that
//! says what happened, and the error that caused it, if another one did.
//!
//! Every [`ErrorCode`] the daemon can send and every [`Status`] that is not an
//! answer maps onto one [`ErrorKind`], so callers match on kinds and never on
//! wire codes. The cause (an `io::Error` from connecting, a decode error, the
//! daemon's refusal…) is kept as [`source`](std::error::Error::source) so
//! that a program can inspect it, e.g. tell a missing socket from a refused
//! connection, without parsing the message.

use std::fmt;
use std::sync::Arc;

use busd_proto::{ErrorCode, Status, SubjectError};

use crate::inbound::Response;

/// What went wrong, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The first connection (or its handshake) failed, or the URL is invalid.
    Connect,
    /// The client's own options are unusable: a malformed package family
    /// name, a token file without a package, a token file that cannot be read.
    Config,
    /// The connection was lost while this operation was in flight; the client
    /// reconnects (when enabled), so trying again later may succeed.
    Disconnected,
    /// The client's connection task has ended for good (connection lost with
    /// reconnect off); nothing sent through this client will arrive.
    Closed,
    /// A request got no answer in time, from the daemon or the local guard.
    Timeout,
    /// Nobody the access rules allow serves the service.
    NoResponders,
    /// The access rules forbid this.
    NotAuthorized,
    /// The responder went away before it answered.
    ResponderGone,
    /// The daemon refused the client's identity proof.
    AuthFailed,
    /// A malformed subject, or a wildcard where a literal is needed.
    InvalidSubject,
    /// A daemon limit (connections, subscriptions) was reached.
    LimitExceeded,
    /// The daemon found this client too slow to keep up.
    SlowConsumer,
    /// A frame is larger than the daemon's `max_frame`.
    FrameTooLarge,
    /// The peer broke the protocol, or this client was told it did.
    Protocol,
    /// The daemon knows no such service.
    UnknownService,
    /// The service the daemon starts on demand could not be started, or
    /// exited before it served.
    AppUnavailable,
    /// The service the daemon started did not begin serving in time.
    AppServiceUnavailable,
    /// The service is at its instance limit, or held back after failing
    /// to start too often.
    ResourceLimitsExceeded,
    /// The daemon ran an admin command and refused it (e.g. `ctl reload`
    /// of a file that is not valid); the message says why.
    Refused,
    /// A typed call's service answered `Failure`: it could not do what was
    /// asked. The message gives the service's reason, and
    /// [`Error::service_failure`] its whole answer.
    ServiceFailure,
    /// A typed call's request or answer could not be encoded as MessagePack.
    Encode,
    /// A typed call's answer does not decode as the type asked for; the
    /// message names the service and the type.
    Decode,
    /// The connection's transport cannot do this: fds pass over unix and
    /// shm, not tcp. Nothing was sent.
    Unsupported,
}

impl ErrorKind {
    /// The kind for a daemon error code.
    pub(crate) fn from_code(code: ErrorCode) -> Self {
        match code {
            ErrorCode::FrameTooLarge => Self::FrameTooLarge,
            ErrorCode::AuthFailed => Self::AuthFailed,
            ErrorCode::NotAuthorized => Self::NotAuthorized,
            ErrorCode::NoResponders => Self::NoResponders,
            ErrorCode::Timeout => Self::Timeout,
            ErrorCode::ResponderGone => Self::ResponderGone,
            ErrorCode::UnknownService => Self::UnknownService,
            ErrorCode::SlowConsumer => Self::SlowConsumer,
            ErrorCode::LimitExceeded => Self::LimitExceeded,
            ErrorCode::InvalidSubject => Self::InvalidSubject,
            ErrorCode::ShuttingDown => Self::Disconnected,
            ErrorCode::AppUnavailable => Self::AppUnavailable,
            ErrorCode::AppServiceUnavailable => Self::AppServiceUnavailable,
            ErrorCode::ResourceLimitsExceeded => Self::ResourceLimitsExceeded,
            // ProtocolViolation, and codes added after this SDK was built.
            _ => Self::Protocol,
        }
    }

    /// A short, stable description.
    fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "cannot connect",
            Self::Config => "invalid client options",
            Self::Disconnected => "disconnected",
            Self::Closed => "client closed",
            Self::Timeout => "timed out",
            Self::NoResponders => "no responders",
            Self::NotAuthorized => "not authorized",
            Self::ResponderGone => "responder gone",
            Self::AuthFailed => "authentication failed",
            Self::InvalidSubject => "invalid subject",
            Self::LimitExceeded => "limit exceeded",
            Self::SlowConsumer => "slow consumer",
            Self::FrameTooLarge => "frame too large",
            Self::Protocol => "protocol error",
            Self::UnknownService => "unknown service",
            Self::AppUnavailable => "AppUnavailable: the service could not be started",
            Self::AppServiceUnavailable => {
                "AppServiceUnavailable: the service did not start serving in time"
            }
            Self::ResourceLimitsExceeded => {
                "ResourceLimitsExceeded: the service cannot be started now"
            }
            Self::Refused => "refused",
            Self::ServiceFailure => "service failure",
            Self::Encode => "cannot encode",
            Self::Decode => "cannot decode",
            Self::Unsupported => "not supported by this transport",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An SDK error: a [`kind`](Error::kind), a message saying what happened
/// and, when another error caused it, that error as its
/// [`source`](std::error::Error::source).
///
/// The message already ends with what the cause says (e.g. `cannot connect
/// to busd: cannot connect to unix:///run/busd/busd.sock: No such file or
/// directory (os error 2)`), because the `busd` CLI and most logs print
/// `Display` alone and users need the reason. `source()` is for code that
/// wants the cause itself, to downcast it (to `std::io::Error`, say); a
/// reporter that prints every error of the chain shows the cause's text
/// twice. Internal signals (a timer that ran out, the connection task's
/// channel closing) are not causes: the kind and message say all there is.
///
/// Errors compare equal when their kind and message do; sources are not
/// compared (most error types cannot be).
///
/// ```no_run
/// use busd_client::{Client, ErrorKind};
/// # async fn demo() -> Result<(), busd_client::Error> {
/// let client = Client::connect("tcp://127.0.0.1:4223").await?;
/// match client.request("contoso.weather.forecast", "paris").await {
///     Ok(response) => println!("{:?}", response.payload),
///     Err(e) if e.kind() == ErrorKind::NoResponders => println!("nobody serves it"),
///     Err(e) => return Err(e),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Error(Box<Inner>);

/// What an [`Error`] holds, boxed: every call of the SDK returns a
/// `Result<_, Error>`, and a pointer-sized error keeps the `Ok` paths
/// (a publish, above all) from carrying a large value around.
#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    /// What caused this, shared (not boxed) so that `Error` stays `Clone`:
    /// a builder keeps a parse error to report at `connect`, and one lost
    /// connection fails many calls with the same cause.
    source: Option<Source>,
    /// The service's `Failure` answer, for [`ErrorKind::ServiceFailure`]:
    /// its payload may be a structured reason the caller wants to decode.
    failure: Option<Response>,
}

/// The cause of an [`Error`], as [`Error::source`](std::error::Error::source)
/// returns it.
pub(crate) type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// An error of `kind` with a message saying what happened.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            kind,
            message: message.into(),
            source: None,
            failure: None,
        }))
    }

    /// The same error, caused by `source` (which the message should already
    /// describe; see [`Error`]).
    ///
    /// An `Arc` already holding a cause goes through
    /// [`with_shared_source`](Error::with_shared_source) instead, or the
    /// `Arc` itself would become the source and downcasts would miss.
    pub(crate) fn with_source(
        self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.with_shared_source(Arc::new(source))
    }

    /// The same error, caused by `source`, a cause other errors share.
    pub(crate) fn with_shared_source(mut self, source: Source) -> Self {
        self.0.source = Some(source);
        self
    }

    /// An error the daemon sent with `code` and `message`.
    pub(crate) fn from_daemon(code: ErrorCode, message: &str) -> Self {
        Self::new(ErrorKind::from_code(code), format!("{code}: {message}"))
    }

    /// The error for a request status that is not an answer, if `status`
    /// is one; a `NotAuthorized` answer's `payload` is the daemon's reason
    /// (see the README: what a refused caller may learn).
    pub(crate) fn from_status(status: Status, service: &str, payload: &[u8]) -> Option<Self> {
        let code = status.error_code()?;
        let message = match code {
            ErrorCode::NoResponders => format!("no responders for service {service}"),
            ErrorCode::NotAuthorized => match std::str::from_utf8(payload) {
                Ok(why) if !why.is_empty() && why.len() <= 1024 => {
                    format!("not authorized to call service {service}: {why}")
                }
                _ => format!("not authorized to call service {service}"),
            },
            ErrorCode::Timeout => format!("request to service {service} timed out"),
            ErrorCode::ResponderGone => {
                format!("the responder of service {service} went away before answering")
            }
            _ => format!("request to service {service} failed: {status}"),
        };
        Some(Self::new(ErrorKind::from_code(code), message))
    }

    /// The connection task is gone for good.
    pub(crate) fn closed() -> Self {
        Self::new(
            ErrorKind::Closed,
            "the client is closed: its connection was lost and reconnect is off",
        )
    }

    /// The client's own options are unusable.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    /// The connection was lost while an operation was in flight.
    pub(crate) fn disconnected(why: &str) -> Self {
        Self::new(
            ErrorKind::Disconnected,
            format!("connection to busd lost: {why}"),
        )
    }

    /// A typed call's service answered `Failure`: the error says `what`
    /// (which names the service and gives its reason) and keeps `answer`.
    pub(crate) fn from_failure(what: String, answer: Response) -> Self {
        let mut err = Self::new(ErrorKind::ServiceFailure, what);
        err.0.failure = Some(answer);
        err
    }

    /// What went wrong, for branching.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, as `Display` prints it.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The service's own answer when a typed call failed with
    /// [`ErrorKind::ServiceFailure`] (status `Failure`, its headers and
    /// payload), e.g. to decode a structured reason; `None` for every other
    /// error.
    ///
    /// ```no_run
    /// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
    /// match client.call::<_, String>("contoso.weather.forecast", "paris").await {
    ///     Ok(forecast) => println!("{forecast}"),
    ///     Err(e) => match e.service_failure() {
    ///         Some(answer) => eprintln!("the service refused: {:?}", answer.payload),
    ///         None => return Err(e),
    ///     },
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn service_failure(&self) -> Option<&Response> {
        self.0.failure.as_ref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The cause itself, not the `Arc` around it, so downcasts find it.
        self.0
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind == other.0.kind && self.0.message == other.0.message
    }
}

impl Eq for Error {}

impl From<SubjectError> for Error {
    fn from(err: SubjectError) -> Self {
        Self::new(ErrorKind::InvalidSubject, err.to_string()).with_source(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_to_a_kind() {
        let expected = [
            (ErrorCode::ProtocolViolation, ErrorKind::Protocol),
            (ErrorCode::FrameTooLarge, ErrorKind::FrameTooLarge),
            (ErrorCode::AuthFailed, ErrorKind::AuthFailed),
            (ErrorCode::NotAuthorized, ErrorKind::NotAuthorized),
            (ErrorCode::NoResponders, ErrorKind::NoResponders),
            (ErrorCode::Timeout, ErrorKind::Timeout),
            (ErrorCode::ResponderGone, ErrorKind::ResponderGone),
            (ErrorCode::UnknownService, ErrorKind::UnknownService),
            (ErrorCode::SlowConsumer, ErrorKind::SlowConsumer),
            (ErrorCode::LimitExceeded, ErrorKind::LimitExceeded),
            (ErrorCode::InvalidSubject, ErrorKind::InvalidSubject),
            (ErrorCode::ShuttingDown, ErrorKind::Disconnected),
            (ErrorCode::AppUnavailable, ErrorKind::AppUnavailable),
            (
                ErrorCode::AppServiceUnavailable,
                ErrorKind::AppServiceUnavailable,
            ),
            (
                ErrorCode::ResourceLimitsExceeded,
                ErrorKind::ResourceLimitsExceeded,
            ),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            let (_, kind) = expected.iter().find(|(c, _)| *c == code).unwrap();
            assert_eq!(ErrorKind::from_code(code), *kind, "{code}");
        }
    }

    #[test]
    fn answers_are_not_errors_and_daemon_statuses_are() {
        assert_eq!(Error::from_status(Status::Success, "a.b", b""), None);
        assert_eq!(Error::from_status(Status::Failure, "a.b", b""), None);
        for (status, kind) in [
            (Status::NoResponders, ErrorKind::NoResponders),
            (Status::NotAuthorized, ErrorKind::NotAuthorized),
            (Status::Timeout, ErrorKind::Timeout),
            (Status::ResponderGone, ErrorKind::ResponderGone),
        ] {
            let err = Error::from_status(status, "contoso.weather", b"").unwrap();
            assert_eq!(err.kind(), kind);
            assert!(err.to_string().contains("contoso.weather"), "{err}");
        }
    }

    #[test]
    fn daemon_errors_name_their_code() {
        let err = Error::from_daemon(ErrorCode::LimitExceeded, "too many subscriptions");
        assert_eq!(err.kind(), ErrorKind::LimitExceeded);
        assert_eq!(err.to_string(), "LimitExceeded: too many subscriptions");
    }

    #[test]
    fn the_cause_is_the_source_and_survives_a_clone() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such socket");
        let err = Error::new(ErrorKind::Connect, format!("cannot connect: {io}")).with_source(io);
        for err in [err.clone(), err] {
            let source = std::error::Error::source(&err).expect("a source");
            let io = source
                .downcast_ref::<std::io::Error>()
                .expect("an io::Error");
            assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
            assert_eq!(err.to_string(), "cannot connect: no such socket");
        }
        let plain = Error::new(ErrorKind::Closed, "closed");
        assert!(std::error::Error::source(&plain).is_none());
    }

    #[test]
    fn equality_ignores_the_source() {
        let io = || std::io::Error::other("x");
        let a = Error::new(ErrorKind::Connect, "m").with_source(io());
        assert_eq!(a, Error::new(ErrorKind::Connect, "m"));
        assert_ne!(a, Error::new(ErrorKind::Config, "m").with_source(io()));
    }

    #[test]
    fn subject_errors_are_kept() {
        let err = Error::from(busd_proto::Subject::parse("a..b").unwrap_err());
        assert_eq!(err.kind(), ErrorKind::InvalidSubject);
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.downcast_ref::<SubjectError>().is_some());
    }
}
