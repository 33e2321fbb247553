//! Proving a `Hello`'s package claim against the policy: by the peer's
//! credentials, or by an HMAC over the daemon's nonce under the package's
//! token. Identity is proven, never taken from the client.

use std::path::Path;

use busd_policy::Policy;
use busd_proto::{AUTH_MAC_LEN, Pfn};

/// What the transport proved about the peer (never what it claims).
#[derive(Debug, Clone, Copy, Default)]
pub struct Peer<'a> {
    /// Its uid (unix: `SO_PEERCRED`; tcp: the kernel's socket table).
    pub uid: Option<u32>,
    /// Its pid, for the audit log (unix and shm).
    pub pid: Option<u32>,
    /// Its executable, pinned when the connection was accepted.
    pub exe: Option<&'a Path>,
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

/// Whether a token proof of `pfn` can be asked for at all.
pub(crate) fn token_configured(policy: &Policy, pfn: &Pfn) -> Result<(), &'static str> {
    let rules = policy.package(pfn).ok_or("no such package is configured")?;
    match rules.proofs.token {
        Some(_) => Ok(()),
        None => Err("the package has no token configured"),
    }
}

/// Checks the client's `mac` over `nonce` under `pfn`'s token (in
/// constant time).
pub(crate) fn by_token(
    policy: &Policy,
    pfn: &Pfn,
    nonce: &[u8],
    mac: &[u8],
) -> Result<(), &'static str> {
    let rules = policy.package(pfn).ok_or("no such package is configured")?;
    let token = (rules.proofs.token.as_ref()).ok_or("the package has no token configured")?;
    if mac.len() == AUTH_MAC_LEN && token.verify(nonce, pfn, mac) {
        Ok(())
    } else {
        Err("the token proof does not match")
    }
}
