//! The frames the vector files hold, as Rust values: the generator
//! encodes each with the real encoder and writes the files; the check
//! reads the files and never looks here.

// Loaded by path from `vectors.rs`, this file finds its modules in
// `cases/` only when told.
#[path = "cases/auth.rs"]
mod auth;
#[path = "cases/control.rs"]
mod control;
#[path = "cases/handshake.rs"]
mod handshake;
#[path = "cases/messages.rs"]
mod messages;
#[path = "cases/refused.rs"]
mod refused;
#[path = "cases/services.rs"]
mod services;

use busd_proto::{ErrorCode, Headers, Limits, Op, Pfn, Sender, Subject};

use crate::meaning::{Meaning, Payload};

pub(crate) use auth::{TOKEN, auth_cases};
pub(crate) use refused::refused_cases;

/// A package that appears in many vectors.
pub(crate) const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
/// Another package.
pub(crate) const MAPS: &str = "Fabrikam.Maps_1234567890abc";

/// One file of frame vectors.
pub(crate) struct Group {
    /// The file's name in `tests/vectors`.
    pub(crate) file: &'static str,
    pub(crate) description: &'static str,
    pub(crate) vectors: Vec<Case>,
}

/// One frame vector.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    /// Why the vector is there, when its name does not say it all.
    pub(crate) note: &'static str,
    pub(crate) meaning: Meaning,
}

/// Every file of frame vectors.
pub(crate) fn groups() -> Vec<Group> {
    vec![
        handshake::group(),
        messages::pubsub(),
        messages::bodies(),
        services::group(),
        control::group(),
        control::errors(),
        control::pools(),
    ]
}

/// A case of a frame without payload.
pub(crate) fn bare(name: &'static str, note: &'static str, op: Op) -> Case {
    Case {
        name,
        note,
        meaning: Meaning::bare(op),
    }
}

/// A case of a frame with `payload` in the stream.
pub(crate) fn inline(name: &'static str, note: &'static str, op: Op, payload: &[u8]) -> Case {
    Case {
        name,
        note,
        meaning: Meaning::inline(op, payload),
    }
}

/// A case of a frame whose payload travels as `payload`, with `fds`.
pub(crate) fn carried(
    name: &'static str,
    note: &'static str,
    op: Op,
    payload: Payload,
    fds: usize,
) -> Case {
    Case {
        name,
        note,
        meaning: Meaning { op, payload, fds },
    }
}

pub(crate) fn pfn(text: &str) -> Pfn {
    Pfn::parse(text).expect("a package family name")
}

pub(crate) fn subject(text: &str) -> Subject {
    Subject::parse(text).expect("a subject")
}

pub(crate) fn sender(client_id: u64, package: Option<&str>) -> Sender {
    Sender {
        client_id,
        pfn: package.map(pfn),
    }
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The limits of the default configuration (`config/busd.toml`).
pub(crate) fn default_limits() -> Limits {
    Limits {
        max_frame: 8 << 20,
        max_pending_msgs: 65_536,
        max_pending_bytes: 64 << 20,
    }
}

/// A refused frame's expected code, for cases that build one.
pub(crate) const VIOLATION: ErrorCode = ErrorCode::ProtocolViolation;
