//! `auth.json`: the token proof's HMAC, with the exact bytes it covers.

use super::{MAPS, WEATHER};

/// The token of the vectors: a token file's bytes once trailing white
/// space is removed.
pub(crate) const TOKEN: &[u8] = b"correct horse battery staple 2024";

/// The nonce of the first vector and of `handshake.json`'s Challenge.
pub(crate) const NONCE: [u8; 32] = {
    let mut nonce = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        nonce[i] = i as u8;
        i += 1;
    }
    nonce
};

/// One HMAC vector.
pub(crate) struct AuthCase {
    pub(crate) name: &'static str,
    pub(crate) note: &'static str,
    pub(crate) token: Vec<u8>,
    pub(crate) nonce: Vec<u8>,
    pub(crate) pfn: &'static str,
}

pub(crate) fn auth_cases() -> Vec<AuthCase> {
    vec![
        AuthCase {
            name: "weather",
            note: "The proof answering handshake.json's Challenge.",
            token: TOKEN.to_vec(),
            nonce: NONCE.to_vec(),
            pfn: WEATHER,
        },
        AuthCase {
            name: "same-nonce-other-package",
            note: "The claimed name is covered: the same token and nonce prove nothing for another \
                   package.",
            token: TOKEN.to_vec(),
            nonce: NONCE.to_vec(),
            pfn: MAPS,
        },
        AuthCase {
            name: "binary-token",
            note: "A token is bytes, not text; every byte of it is the key.",
            token: (0..=255u8).rev().step_by(3).collect(),
            nonce: [0xa5; 32].to_vec(),
            pfn: MAPS,
        },
    ]
}
