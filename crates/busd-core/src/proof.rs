//! Proving a `Hello`'s package claim against the policy: by the peer's
//! credentials, or by an HMAC over the daemon's nonce under the package's
//! token. Identity is proven, never taken from the client.

use std::path::Path;

use busd_policy::Policy;
use busd_proto::{Pfn, auth_mac};

use crate::error::ProtocolError;

/// What the transport proved about the peer (never what it claims).
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer<'a> {
    /// Its uid (unix: `SO_PEERCRED`; tcp: the kernel's socket table).
    pub uid: Option<u32>,
    /// Its pid, for the audit log (unix and shm).
    pub pid: Option<u32>,
    /// Its executable, pinned when the connection was accepted.
    pub exe: Option<&'a Path>,
    /// The package the daemon gave the connection it made for a service
    /// it started: that process is this package, with nothing to prove.
    pub granted: Option<&'a Pfn>,
}

/// Bytes of randomness in each token challenge.
pub const NONCE_LEN: usize = 32;

/// Checks a claim to `pfn` by peer credentials.
pub(crate) fn by_peer(policy: &Policy, pfn: &Pfn, peer: &Peer<'_>) -> Result<(), &'static str> {
    let rules = policy.package(pfn).ok_or("no such package is configured")?;
    if rules.proofs.uids.is_empty() {
        return Err("the package has no peer-credential proof configured");
    }
    if rules.proofs.check_peer(peer.uid, peer.exe) {
        Ok(())
    } else {
        Err("the peer's uid or executable does not match")
    }
}

/// Checks the client's `mac` over `nonce` under `pfn`'s token (in
/// constant time).
///
/// A claim of a package that is not configured, or has no token, is
/// checked against a decoy key all the same: it fails in the time a wrong
/// MAC takes, so neither the answer nor its timing tells a local client
/// which package names exist (the reason goes to the audit log only).
pub(crate) fn by_token(
    policy: &Policy,
    pfn: &Pfn,
    nonce: &[u8],
    mac: &[u8],
) -> Result<(), &'static str> {
    match policy.package(pfn).map(|rules| rules.proofs.token.as_ref()) {
        Some(Some(token)) if token.verify(nonce, pfn, mac) => Ok(()),
        Some(Some(_)) => Err("the token proof does not match"),
        unproven => {
            std::hint::black_box(auth_mac(DECOY_KEY, nonce, pfn));
            Err(match unproven {
                None => "no such package is configured",
                Some(_) => "the package has no token configured",
            })
        }
    }
}

/// A claim refused, written to the audit log with its reason; the client
/// is told only that `pfn` could not be proven, whatever the reason.
pub(crate) fn refused(pfn: Pfn, peer: Option<&Peer<'_>>, reason: &'static str) -> ProtocolError {
    let peer = peer.copied().unwrap_or_default();
    tracing::warn!(
        target: "busd::audit", %pfn, uid = ?peer.uid, pid = ?peer.pid, exe = ?peer.exe,
        reason, "authentication failed"
    );
    ProtocolError::AuthFailed { pfn, reason }
}

/// What a claim with no token to check is checked against.
const DECOY_KEY: &[u8] = b"busd: no token is configured for this claim";
