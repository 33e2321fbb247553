//! The daemon's audit records (`busd::audit` target) of refusals at a
//! limit: who hit it, as far as the daemon knows (the proven package, or
//! before the handshake nothing; the uid, and the pid where the transport
//! tells it), which limit, and what the client was told.
//!
//! The router decides and counts (`busd-core` is sans-IO and never sees a
//! pid); the daemon, which holds each connection's peer, writes the record.

use std::fmt;

use busd_policy::Identity;

/// Who was refused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Who<'a> {
    /// The proven identity; `None` before the handshake is over.
    pub(crate) identity: Option<&'a Identity>,
    /// The peer's uid, as the transport proved it.
    pub(crate) uid: Option<u32>,
    /// The peer's pid (unix and shm).
    pub(crate) pid: Option<u32>,
}

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.identity {
            Some(identity) => write!(f, "{identity}"),
            None => f.write_str("unauthenticated"),
        }
    }
}

/// Records that `who` was refused at `limit` (a config key), for `cause`.
pub(crate) fn limit_reached(who: Who<'_>, limit: &'static str, cause: &dyn fmt::Display) {
    let pfn = who.identity.and_then(|i| i.pfn.as_ref());
    tracing::warn!(
        target: "busd::audit", %who, pfn = pfn.map(|p| p.as_str()), uid = who.uid,
        pid = who.pid, limit, %cause, "refused at a limit"
    );
}
