//! The token proof: HMAC-SHA256 over the daemon's nonce.
//!
//! Client and daemon compute the same MAC with [`auth_mac`]; the daemon
//! compares in constant time. The MAC covers a domain label, the nonce and
//! the claimed package name, so a MAC made for one connection or one
//! package proves nothing on another.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::pfn::Pfn;

/// Length of the MAC in `Auth{hmac}`.
pub const AUTH_MAC_LEN: usize = 32;

const DOMAIN: &[u8] = b"busd-auth-v1\0";

/// HMAC-SHA256 keyed with `token` over the domain label, `nonce` and `pfn`.
///
/// ```
/// use busd_proto::{Pfn, auth_mac};
/// let pfn = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap();
/// let a = auth_mac(b"secret", b"nonce-1", &pfn);
/// assert_ne!(a, auth_mac(b"secret", b"nonce-2", &pfn));
/// assert_ne!(a, auth_mac(b"other", b"nonce-1", &pfn));
/// ```
pub fn auth_mac(token: &[u8], nonce: &[u8], pfn: &Pfn) -> [u8; AUTH_MAC_LEN] {
    let mut mac = Hmac::<Sha256>::new_from_slice(token).expect("HMAC takes keys of any length");
    mac.update(DOMAIN);
    mac.update(&(nonce.len() as u64).to_be_bytes());
    mac.update(nonce);
    mac.update(pfn.as_str().as_bytes());
    mac.finalize().into_bytes().into()
}

/// Reads a token file: its bytes with trailing white space (a final
/// newline) removed. An empty token is refused.
///
/// # Errors
/// The I/O error, or `InvalidData` for an empty file.
pub fn read_token(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)?;
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("token file {} is empty", path.display()),
        ));
    }
    Ok(bytes)
}
