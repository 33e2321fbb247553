//! Result codes and the calling thread's last error message.
//!
//! One enum for every failure, as rustls-ffi's `rustls_result`: the SDK's
//! [`ErrorKind`]s one for one (the daemon's `ErrorCode`s reach C through
//! them, as they reach Rust callers), then the failures only a C caller can
//! make. The message of a failed call is kept per thread, so it needs no
//! out-parameter on every function and threads never see each other's.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};

use ::busd_client::ErrorKind;

/// What a call did: `BUSD_RESULT_OK`, or why it failed. The values are
/// stable (part of the ABI); new codes may be added.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum busd_result {
    /// Success.
    Ok = 0,
    /// The first connection (or its handshake) failed, or the URL is invalid.
    Connect = 1,
    /// The client's own options are unusable: a malformed package family
    /// name, a token file that cannot be read.
    Config = 2,
    /// The connection was lost while the call was in flight; the client
    /// reconnects, so trying again later may succeed.
    Disconnected = 3,
    /// The client (or subscription) is gone for good.
    Closed = 4,
    /// Nothing came in time: a request's answer, or a message.
    Timeout = 5,
    /// Nobody the access rules allow serves the service.
    NoResponders = 6,
    /// The access rules forbid this.
    NotAuthorized = 7,
    /// The responder went away before it answered.
    ResponderGone = 8,
    /// The daemon refused the client's identity proof (a wrong token).
    AuthFailed = 9,
    /// A malformed subject, or a wildcard where a literal is needed.
    InvalidSubject = 10,
    /// A daemon limit (connections, subscriptions) was reached.
    LimitExceeded = 11,
    /// The daemon found this client too slow to keep up.
    SlowConsumer = 12,
    /// A message larger than the daemon's `max_frame`; nothing was sent.
    FrameTooLarge = 13,
    /// The daemon or this client broke the protocol.
    Protocol = 14,
    /// The daemon knows no such service.
    UnknownService = 15,
    /// The service the daemon starts on demand could not be started.
    AppUnavailable = 16,
    /// The service the daemon started did not begin serving in time.
    AppServiceUnavailable = 17,
    /// The service is at its instance limit, or held back after failing.
    ResourceLimitsExceeded = 18,
    /// The daemon refused an admin command.
    Refused = 19,
    /// A service answered that it failed.
    ServiceFailure = 20,
    /// A value could not be encoded.
    Encode = 21,
    /// A value could not be decoded.
    Decode = 22,
    /// The connection's transport cannot do this.
    Unsupported = 23,
    /// A required pointer argument was NULL.
    NullArgument = 100,
    /// An argument is unusable: text that is not UTF-8, an index out of
    /// range.
    InvalidArgument = 101,
    /// A call this API does not allow here: answering a request twice,
    /// waiting on a subscription that has a callback.
    Misuse = 102,
    /// A bug in the library: it panicked, and the call was abandoned. The
    /// handles it was given may be unusable.
    Panic = 103,
    /// An error this version of the C API has no code for.
    Unknown = 199,
}

impl busd_result {
    /// Every code, for [`busd_strerror`] and the tests.
    pub(crate) const ALL: [busd_result; 29] = [
        Self::Ok,
        Self::Connect,
        Self::Config,
        Self::Disconnected,
        Self::Closed,
        Self::Timeout,
        Self::NoResponders,
        Self::NotAuthorized,
        Self::ResponderGone,
        Self::AuthFailed,
        Self::InvalidSubject,
        Self::LimitExceeded,
        Self::SlowConsumer,
        Self::FrameTooLarge,
        Self::Protocol,
        Self::UnknownService,
        Self::AppUnavailable,
        Self::AppServiceUnavailable,
        Self::ResourceLimitsExceeded,
        Self::Refused,
        Self::ServiceFailure,
        Self::Encode,
        Self::Decode,
        Self::Unsupported,
        Self::NullArgument,
        Self::InvalidArgument,
        Self::Misuse,
        Self::Panic,
        Self::Unknown,
    ];

    /// The code for an SDK error kind.
    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Connect => Self::Connect,
            ErrorKind::Config => Self::Config,
            ErrorKind::Disconnected => Self::Disconnected,
            ErrorKind::Closed => Self::Closed,
            ErrorKind::Timeout => Self::Timeout,
            ErrorKind::NoResponders => Self::NoResponders,
            ErrorKind::NotAuthorized => Self::NotAuthorized,
            ErrorKind::ResponderGone => Self::ResponderGone,
            ErrorKind::AuthFailed => Self::AuthFailed,
            ErrorKind::InvalidSubject => Self::InvalidSubject,
            ErrorKind::LimitExceeded => Self::LimitExceeded,
            ErrorKind::SlowConsumer => Self::SlowConsumer,
            ErrorKind::FrameTooLarge => Self::FrameTooLarge,
            ErrorKind::Protocol => Self::Protocol,
            ErrorKind::UnknownService => Self::UnknownService,
            ErrorKind::AppUnavailable => Self::AppUnavailable,
            ErrorKind::AppServiceUnavailable => Self::AppServiceUnavailable,
            ErrorKind::ResourceLimitsExceeded => Self::ResourceLimitsExceeded,
            ErrorKind::Refused => Self::Refused,
            ErrorKind::ServiceFailure => Self::ServiceFailure,
            ErrorKind::Encode => Self::Encode,
            ErrorKind::Decode => Self::Decode,
            ErrorKind::Unsupported => Self::Unsupported,
            // `ErrorKind` is non-exhaustive: kinds added after this was built.
            _ => Self::Unknown,
        }
    }

    /// The code's name and meaning, as `busd_strerror` returns it.
    fn describe(self) -> &'static CStr {
        match self {
            Self::Ok => c"OK: success",
            Self::Connect => c"CONNECT: cannot connect to busd",
            Self::Config => c"CONFIG: invalid client options",
            Self::Disconnected => c"DISCONNECTED: the connection to busd was lost",
            Self::Closed => c"CLOSED: the client or subscription is closed",
            Self::Timeout => c"TIMEOUT: timed out",
            Self::NoResponders => c"NO_RESPONDERS: nobody serves the service",
            Self::NotAuthorized => c"NOT_AUTHORIZED: the access rules forbid this",
            Self::ResponderGone => c"RESPONDER_GONE: the responder went away before answering",
            Self::AuthFailed => c"AUTH_FAILED: the daemon refused the identity proof",
            Self::InvalidSubject => c"INVALID_SUBJECT: invalid subject",
            Self::LimitExceeded => c"LIMIT_EXCEEDED: a daemon limit was reached",
            Self::SlowConsumer => c"SLOW_CONSUMER: too slow to keep up",
            Self::FrameTooLarge => c"FRAME_TOO_LARGE: larger than the daemon's max_frame",
            Self::Protocol => c"PROTOCOL: protocol error",
            Self::UnknownService => c"UNKNOWN_SERVICE: unknown service",
            Self::AppUnavailable => c"APP_UNAVAILABLE: the service could not be started",
            Self::AppServiceUnavailable => {
                c"APP_SERVICE_UNAVAILABLE: the service did not start serving in time"
            }
            Self::ResourceLimitsExceeded => {
                c"RESOURCE_LIMITS_EXCEEDED: the service cannot be started now"
            }
            Self::Refused => c"REFUSED: the daemon refused the command",
            Self::ServiceFailure => c"SERVICE_FAILURE: the service failed",
            Self::Encode => c"ENCODE: cannot encode",
            Self::Decode => c"DECODE: cannot decode",
            Self::Unsupported => c"UNSUPPORTED: not supported by this transport",
            Self::NullArgument => c"NULL_ARGUMENT: a required pointer is NULL",
            Self::InvalidArgument => c"INVALID_ARGUMENT: an argument is invalid",
            Self::Misuse => c"MISUSE: the call is not allowed here",
            Self::Panic => c"PANIC: a bug in the busd library",
            Self::Unknown => c"UNKNOWN: an error without a code of its own",
        }
    }
}

/// A failed call: its code and what to tell the caller.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: busd_result,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(code: busd_result, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Keeps the message as the thread's last error; returns the code.
    pub(crate) fn record(self) -> busd_result {
        set_last_error(&self.message);
        self.code
    }
}

impl From<::busd_client::Error> for Failure {
    fn from(err: ::busd_client::Error) -> Self {
        Self::new(busd_result::from_kind(err.kind()), err.to_string())
    }
}

thread_local! {
    /// The message of the last call that failed on this thread.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Makes `message` this thread's last error (cut at a NUL, were there one).
pub(crate) fn set_last_error(message: &str) {
    let message = crate::message::c_string(message);
    // `try_with`: during the thread's teardown (a C TLS destructor calling
    // in) the message is lost rather than the process aborted.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = message);
}

/// A static description of `code`, e.g. `"TIMEOUT: timed out"`: never NULL,
/// never freed; an unknown value gives `"unknown busd_result"`.
///
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn busd_strerror(code: c_int) -> *const c_char {
    busd_result::ALL
        .into_iter()
        .find(|known| *known as c_int == code)
        .map_or(c"unknown busd_result", busd_result::describe)
        .as_ptr()
}

/// The message of the last call that failed on the calling thread, e.g.
/// `"cannot connect to unix:///run/busd/busd.sock: No such file or
/// directory (os error 2)"`; `""` before any failure. Successful calls leave
/// it as it is. Never NULL; owned by the library, valid until the next busd
/// call on this thread (copy it to keep it).
///
/// Thread safety: may be called from any thread; each thread has its own.
#[unsafe(no_mangle)]
pub extern "C" fn busd_last_error() -> *const c_char {
    // The pointer outlives the borrow: the CString is replaced (and freed)
    // only by a later failing call on this thread, which the contract above
    // allows to end its validity.
    LAST_ERROR
        .try_with(|last| last.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ptr: *const c_char) -> String {
        assert!(!ptr.is_null());
        // SAFETY: the library returned it: a NUL-terminated string that
        // lives at least until the next call into busd on this thread.
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn every_code_has_its_own_description_naming_it() {
        let mut seen = std::collections::HashSet::new();
        for code in busd_result::ALL {
            let description = text(busd_strerror(code as c_int));
            assert!(seen.insert(description.clone()), "{description}");
            let name = description.split(':').next().unwrap();
            assert_eq!(name, name.to_ascii_uppercase(), "{description}");
        }
        assert_eq!(text(busd_strerror(-1)), "unknown busd_result");
        assert_eq!(text(busd_strerror(24)), "unknown busd_result");
    }

    #[test]
    fn sdk_kinds_map_to_codes_of_the_same_name() {
        for (kind, code) in [
            (ErrorKind::Timeout, busd_result::Timeout),
            (ErrorKind::NoResponders, busd_result::NoResponders),
            (ErrorKind::AuthFailed, busd_result::AuthFailed),
            (ErrorKind::Unsupported, busd_result::Unsupported),
        ] {
            assert_eq!(busd_result::from_kind(kind), code);
        }
    }

    #[test]
    fn the_last_error_is_per_thread_and_starts_empty() {
        assert_eq!(text(busd_last_error()), "");
        assert_eq!(
            Failure::new(busd_result::Misuse, "answered twice").record(),
            busd_result::Misuse
        );
        assert_eq!(text(busd_last_error()), "answered twice");
        let other = std::thread::spawn(|| text(busd_last_error()))
            .join()
            .unwrap();
        assert_eq!(other, "");
    }
}
