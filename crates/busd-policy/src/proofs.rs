//! The proofs a package claim must pass: a token (HMAC challenge) or the
//! peer's credentials (uid, and optionally its executable).
//!
//! These hold what the daemon checks against and nothing a client
//! supplies; the secret of a [`Token`] never shows, not even in `Debug`.

use std::path::{Path, PathBuf};

use crate::token::Token;

/// The proofs configured for one package; a client must pass one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proofs {
    /// The secret of `token_file`, for the HMAC challenge, if configured.
    pub token: Option<Token>,
    /// Peer uids that prove the package (`uids`: unix `SO_PEERCRED`, tcp
    /// `NETLINK_SOCK_DIAG`).
    pub uids: Vec<u32>,
    /// With `uids`: if non-empty, the peer's executable must be one of these.
    pub exe: Vec<PathBuf>,
}

impl Proofs {
    /// True when no proof is configured, so no client can be this package.
    pub fn is_empty(&self) -> bool {
        self.token.is_none() && self.uids.is_empty()
    }

    /// Peer-credential proof: uid listed, and if `exe` is non-empty, the
    /// peer's executable (read at accept, pinned) is one of them.
    ///
    /// A peer whose uid or executable the transport could not tell fails.
    ///
    /// ```
    /// use busd_policy::Proofs;
    /// use std::path::Path;
    /// let proofs = Proofs {
    ///     uids: vec![1000],
    ///     exe: vec!["/usr/bin/weather".into()],
    ///     ..Default::default()
    /// };
    /// assert!(proofs.check_peer(Some(1000), Some(Path::new("/usr/bin/weather"))));
    /// assert!(!proofs.check_peer(Some(1000), Some(Path::new("/usr/bin/python3"))));
    /// assert!(!proofs.check_peer(Some(1000), None));
    /// assert!(!proofs.check_peer(None, Some(Path::new("/usr/bin/weather"))));
    /// ```
    pub fn check_peer(&self, uid: Option<u32>, exe: Option<&Path>) -> bool {
        let uid_ok = uid.is_some_and(|u| self.uids.contains(&u));
        let exe_ok = self.exe.is_empty() || exe.is_some_and(|e| self.exe.iter().any(|x| x == e));
        uid_ok && exe_ok
    }

    /// The proofs in words, for `busd check-config`: `token (FILE)`,
    /// `uids [..]`, `exe [..]`, or `none`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(token) = &self.token {
            parts.push(format!("token ({})", token.path().display()));
        }
        if !self.uids.is_empty() {
            parts.push(format!("uids {:?}", self.uids));
        }
        if !self.exe.is_empty() {
            let exe: Vec<String> = self.exe.iter().map(|e| e.display().to_string()).collect();
            parts.push(format!("exe [{}]", exe.join(", ")));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_proof_needs_a_listed_uid_and_any_listed_exe() {
        let uid_only = Proofs {
            uids: vec![1000, 1001],
            ..Default::default()
        };
        assert!(uid_only.check_peer(Some(1001), None));
        assert!(!uid_only.check_peer(Some(0), None));
        assert!(!uid_only.check_peer(None, None));
        assert!(!Proofs::default().check_peer(Some(1000), None));
        assert!(Proofs::default().is_empty());
        assert!(!uid_only.is_empty());
        let with_exe = Proofs {
            exe: vec!["/a".into(), "/b".into()],
            ..uid_only
        };
        assert!(with_exe.check_peer(Some(1000), Some(Path::new("/b"))));
        assert!(!with_exe.check_peer(Some(1000), Some(Path::new("/c"))));
        assert_eq!(with_exe.describe(), "uids [1000, 1001], exe [/a, /b]");
    }

    #[test]
    fn a_token_alone_is_a_proof() {
        let proofs = Proofs {
            token: Some(Token::new(b"k".to_vec(), "/k")),
            ..Default::default()
        };
        assert!(!proofs.is_empty());
        assert!(
            !proofs.check_peer(Some(1000), None),
            "no uid proof configured"
        );
        assert_eq!(proofs.describe(), "token (/k)");
    }
}
