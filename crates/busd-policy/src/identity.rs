//! The proven identity of one connection.

use std::fmt;

use busd_proto::Pfn;

/// Who a connection is, as the daemon proved it at accept and handshake.
///
/// Pinned for the life of the connection: a later change of the peer
/// process (PID reuse, exec) does not change it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The proven package, `None` for an unpackaged client.
    pub pfn: Option<Pfn>,
    /// The peer's uid, where the transport can tell it.
    pub uid: Option<u32>,
}

impl Identity {
    /// An unpackaged client with the given peer uid.
    pub fn unpackaged(uid: Option<u32>) -> Self {
        Self { pfn: None, uid }
    }

    /// A client proven to be package `pfn`.
    pub fn package(pfn: Pfn, uid: Option<u32>) -> Self {
        Self {
            pfn: Some(pfn),
            uid,
        }
    }

    /// As `busd ctl explain` and `--dry-run` name it (and take it back):
    /// its package, else `unpackaged:UID` (`unpackaged` for an unknown uid).
    pub fn party(&self) -> String {
        match (&self.pfn, self.uid) {
            (Some(pfn), _) => pfn.to_string(),
            (None, Some(uid)) => format!("unpackaged:{uid}"),
            (None, None) => "unpackaged".to_owned(),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.pfn, self.uid) {
            (Some(pfn), _) => write!(f, "{pfn}"),
            (None, Some(uid)) => write!(f, "unpackaged(uid {uid})"),
            (None, None) => f.write_str("unpackaged"),
        }
    }
}
