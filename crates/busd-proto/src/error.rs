//! Error codes and request statuses, with stable names.
//!
//! The names are part of the protocol and of the CLI's output (`busd req`
//! prints them), so variants are only ever added, never renamed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why the daemon refused something or closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A frame that breaks the protocol: malformed header, an operation out
    /// of place (anything before `Welcome`), an unknown id.
    ProtocolViolation,
    /// A frame longer than the daemon's `max_frame`.
    FrameTooLarge,
    /// An identity claim that failed its proof.
    AuthFailed,
    /// The access rules do not allow this.
    NotAuthorized,
    /// A request to a service that nobody (allowed) serves.
    NoResponders,
    /// A request that got no answer within its timeout.
    Timeout,
    /// The responder went away before it answered.
    ResponderGone,
    /// A service name that is not known.
    UnknownService,
    /// The connection's outbound queue overflowed.
    SlowConsumer,
    /// A configured limit (connections, subscriptions) was reached.
    LimitExceeded,
    /// A subject that is malformed, or a wildcard where a literal is needed.
    InvalidSubject,
    /// The daemon is shutting down.
    ShuttingDown,
    /// A service the daemon starts on demand could not be started, or its
    /// process exited before it served the name (`AppUnavailable` of
    /// Windows' `AppServiceConnectionStatus`).
    AppUnavailable,
    /// A service the daemon started did not serve the name within
    /// `limits.activation_timeout` (`AppServiceUnavailable`).
    AppServiceUnavailable,
    /// A service the daemon starts on demand is over its `max_instances`,
    /// or failed to start so often that it is held back for a while
    /// (`ResourceLimitsExceeded`).
    ResourceLimitsExceeded,
}

impl ErrorCode {
    /// Every code, for listings and tests.
    pub const ALL: [ErrorCode; 15] = [
        Self::ProtocolViolation,
        Self::FrameTooLarge,
        Self::AuthFailed,
        Self::NotAuthorized,
        Self::NoResponders,
        Self::Timeout,
        Self::ResponderGone,
        Self::UnknownService,
        Self::SlowConsumer,
        Self::LimitExceeded,
        Self::InvalidSubject,
        Self::ShuttingDown,
        Self::AppUnavailable,
        Self::AppServiceUnavailable,
        Self::ResourceLimitsExceeded,
    ];

    /// The stable name, as on the wire and in the CLI's output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProtocolViolation => "ProtocolViolation",
            Self::FrameTooLarge => "FrameTooLarge",
            Self::AuthFailed => "AuthFailed",
            Self::NotAuthorized => "NotAuthorized",
            Self::NoResponders => "NoResponders",
            Self::Timeout => "Timeout",
            Self::ResponderGone => "ResponderGone",
            Self::UnknownService => "UnknownService",
            Self::SlowConsumer => "SlowConsumer",
            Self::LimitExceeded => "LimitExceeded",
            Self::InvalidSubject => "InvalidSubject",
            Self::ShuttingDown => "ShuttingDown",
            Self::AppUnavailable => "AppUnavailable",
            Self::AppServiceUnavailable => "AppServiceUnavailable",
            Self::ResourceLimitsExceeded => "ResourceLimitsExceeded",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown error code {s:?}"))
    }
}

/// The outcome of a request, in its `Resp`.
///
/// Two levels, as Windows app services have: every status but `Success` and
/// `Failure` is the daemon's word (the call was not delivered or not
/// answered); `Failure` is the service's own, with its payload saying why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// The service answered; the payload is its response.
    Success,
    /// The service answered that it failed; the payload says why.
    Failure,
    /// Nobody the rules allow serves this service.
    NoResponders,
    /// The access rules forbid this call.
    NotAuthorized,
    /// No answer within the request's timeout.
    Timeout,
    /// The chosen responder went away before it answered.
    ResponderGone,
}

impl Status {
    /// The daemon-level error code for a status that is not an answer.
    pub fn error_code(self) -> Option<ErrorCode> {
        match self {
            Self::Success | Self::Failure => None,
            Self::NoResponders => Some(ErrorCode::NoResponders),
            Self::NotAuthorized => Some(ErrorCode::NotAuthorized),
            Self::Timeout => Some(ErrorCode::Timeout),
            Self::ResponderGone => Some(ErrorCode::ResponderGone),
        }
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::Failure => "Failure",
            Self::NoResponders => "NoResponders",
            Self::NotAuthorized => "NotAuthorized",
            Self::Timeout => "Timeout",
            Self::ResponderGone => "ResponderGone",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
            assert_eq!(format!("{code:?}"), code.as_str());
        }
    }
}
