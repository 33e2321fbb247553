//! A package's token: the secret of its `token_file`, and how the daemon
//! checks a client's HMAC against it.
//!
//! The file is refused, as ssh refuses a private key, when group or others
//! may read or write it: a secret others can read proves nothing.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use busd_proto::{AUTH_MAC_LEN, Pfn, auth_mac, read_token};
use subtle::ConstantTimeEq;

/// A package's token: the secret read from its `token_file`.
///
/// `Debug` shows the file, never the secret; equality is constant-time.
#[derive(Clone)]
pub struct Token {
    secret: Vec<u8>,
    path: PathBuf,
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file does not exist.
    #[error("token file {} does not exist", .path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("token file {} cannot be read: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A directory or other non-file.
    #[error("token file {} is not a regular file", .path.display())]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// Group or others may read or write it.
    #[error(
        "token file {} is accessible by group or others (mode {mode:04o}); \
         it must be readable by its owner only: chmod 600 {}",
        .path.display(), .path.display()
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Nothing but white space in it.
    #[error("token file {} is empty", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Fewer than [`MIN_TOKEN_LEN`] bytes: a secret that short can be guessed.
    #[error(
        "token file {} holds {len} bytes; a token needs at least {MIN_TOKEN_LEN}: \
         make one with `busd token new FILE`",
        .path.display()
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length in bytes, trailing white space not counted.
        len: usize,
    },
}

/// The shortest secret a token file may hold, in bytes (trailing white
/// space not counted). `busd token new` writes 64.
pub const MIN_TOKEN_LEN: usize = 16;

impl Token {
    /// A token with the given secret, read from `path` (kept for messages).
    pub fn new(secret: Vec<u8>, path: impl Into<PathBuf>) -> Self {
        Self {
            secret,
            path: path.into(),
        }
    }

    /// Reads a token file with [`busd_proto::read_token`] (as clients do),
    /// after checking that only its owner may read or write it.
    ///
    /// # Errors
    /// A [`TokenFileError`]: missing, unreadable, not a file, open to group
    /// or others (mode & 0o077 ≠ 0), empty, or shorter than [`MIN_TOKEN_LEN`].
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let owned = || path.to_path_buf();
        let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => TokenFileError::Missing { path: owned() },
            _ => TokenFileError::Unreadable {
                path: owned(),
                source,
            },
        })?;
        if !meta.is_file() {
            return Err(TokenFileError::NotAFile { path: owned() });
        }
        check_mode(path, &meta)?;
        match read_token(path) {
            Ok(secret) if secret.len() < MIN_TOKEN_LEN => Err(TokenFileError::TooShort {
                path: owned(),
                len: secret.len(),
            }),
            Ok(secret) => Ok(Self::new(secret, path)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(TokenFileError::Empty { path: owned() })
            }
            Err(source) => Err(TokenFileError::Unreadable {
                path: owned(),
                source,
            }),
        }
    }

    /// The file the secret was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `mac` is the HMAC of this token over `nonce` and `pfn`
    /// ([`busd_proto::auth_mac`]), compared in constant time.
    ///
    /// ```
    /// use busd_policy::Token;
    /// use busd_proto::{Pfn, auth_mac};
    /// let pfn = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap();
    /// let token = Token::new(b"secret".to_vec(), "weather.key");
    /// assert!(token.verify(b"nonce", &pfn, &auth_mac(b"secret", b"nonce", &pfn)));
    /// assert!(!token.verify(b"other nonce", &pfn, &auth_mac(b"secret", b"nonce", &pfn)));
    /// ```
    pub fn verify(&self, nonce: &[u8], pfn: &Pfn, mac: &[u8]) -> bool {
        if mac.len() != AUTH_MAC_LEN {
            return false;
        }
        let expected = auth_mac(&self.secret, nonce, pfn);
        expected.ct_eq(mac).into()
    }
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<(), TokenFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TokenFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &Path, _: &std::fs::Metadata) -> Result<(), TokenFileError> {
    Ok(())
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && bool::from(self.secret.ct_eq(&other.secret))
    }
}

impl Eq for Token {}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("path", &self.path)
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfn() -> Pfn {
        Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap()
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let token = Token::new(b"hunter2-very-secret".to_vec(), "/etc/busd/w.key");
        let shown = format!("{token:?} {token:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("104, 117"), "bytes of the secret: {shown}");
        assert!(shown.contains("w.key"), "{shown}");
    }

    #[test]
    fn verify_checks_token_nonce_package_and_length() {
        let token = Token::new(b"k".to_vec(), "k");
        let other = Pfn::parse("Fabrikam.Maps_1234567890abc").unwrap();
        let mac = auth_mac(b"k", b"n", &pfn());
        assert!(token.verify(b"n", &pfn(), &mac));
        assert!(
            !token.verify(b"n", &other, &mac),
            "a MAC for another package"
        );
        assert!(!token.verify(b"n", &pfn(), &auth_mac(b"j", b"n", &pfn())));
        assert!(!token.verify(b"n", &pfn(), &mac[..16]), "truncated");
        assert!(!token.verify(b"n", &pfn(), &[]), "empty");
    }

    #[cfg(unix)]
    #[test]
    fn token_files_must_be_private_and_non_empty() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.key");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("a secret long enough\n", 0o600);
        let token = Token::from_file(&path).unwrap();
        let mac = auth_mac(b"a secret long enough", b"n", &pfn());
        assert!(token.verify(b"n", &pfn(), &mac));
        write("s3cret\n", 0o644);
        let e = Token::from_file(&path).unwrap_err();
        assert!(
            matches!(e, TokenFileError::TooOpen { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        write("s3cret\n", 0o620);
        assert!(matches!(
            Token::from_file(&path),
            Err(TokenFileError::TooOpen { .. })
        ));
        write(" \n", 0o400);
        assert!(matches!(
            Token::from_file(&path),
            Err(TokenFileError::Empty { .. })
        ));
        // Fifteen bytes, the trailing newline not counted: guessable.
        write("fifteen bytes!!\n", 0o600);
        let e = Token::from_file(&path).unwrap_err();
        assert!(matches!(e, TokenFileError::TooShort { len: 15, .. }), "{e}");
        assert!(e.to_string().contains("busd token new FILE"), "{e}");
        let missing = dir.path().join("nope");
        assert!(matches!(
            Token::from_file(&missing),
            Err(TokenFileError::Missing { .. })
        ));
        assert!(matches!(
            Token::from_file(dir.path()),
            Err(TokenFileError::NotAFile { .. })
        ));
    }
}
