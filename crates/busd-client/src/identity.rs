//! Who the client says it is, and how it proves it.
//!
//! A client is unpackaged, or claims a package family name that the daemon
//! checks: by the peer credentials it reads from the socket, or by an HMAC
//! over the daemon's nonce under the package's token. The token file is read
//! at every handshake, the first and each reconnect, so a rotated token is
//! picked up without restarting the client.

use std::fmt;
use std::path::PathBuf;

use busd_proto::{AuthKind, Pfn};

use crate::error::Error;
#[cfg(doc)]
use crate::error::ErrorKind;

/// Something that names a package: `&str`, `String`, or a parsed [`Pfn`].
///
/// Text is checked by [`ClientBuilder::connect`](crate::ClientBuilder::connect),
/// which fails with [`ErrorKind::Config`] for a malformed name before
/// anything is sent.
///
/// ```no_run
/// use busd_client::{Client, Pfn};
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let by_text = Client::builder("unix:///run/busd/busd.sock")
///     .pfn("Contoso.Weather_8wekyb3d8bbwe");
/// let by_value = Client::builder("unix:///run/busd/busd.sock")
///     .pfn(Pfn::parse("Contoso.Weather_8wekyb3d8bbwe")?);
/// # Ok(())
/// # }
/// ```
pub trait IntoPfn {
    /// Parses (or clones) into a [`Pfn`].
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the text is not a package family name.
    fn into_pfn(self) -> Result<Pfn, Error>;
}

impl IntoPfn for Pfn {
    fn into_pfn(self) -> Result<Pfn, Error> {
        Ok(self)
    }
}

impl IntoPfn for &Pfn {
    fn into_pfn(self) -> Result<Pfn, Error> {
        Ok(self.clone())
    }
}

impl IntoPfn for &str {
    fn into_pfn(self) -> Result<Pfn, Error> {
        Pfn::parse(self).map_err(|e| Error::config(e.to_string()).with_source(e))
    }
}

impl IntoPfn for String {
    fn into_pfn(self) -> Result<Pfn, Error> {
        Pfn::parse(self).map_err(|e| Error::config(e.to_string()).with_source(e))
    }
}

impl IntoPfn for &String {
    fn into_pfn(self) -> Result<Pfn, Error> {
        self.as_str().into_pfn()
    }
}

/// The identity a client claims and the proof it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// No claim.
    Unpackaged,
    /// A package, proven by the socket's peer credentials.
    Peer(Pfn),
    /// A package, proven by an HMAC under the token in `token_file`.
    Token { pfn: Pfn, token_file: PathBuf },
}

impl Identity {
    /// The identity the builder's `pfn` and `token_file` describe.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a malformed name, or a token without a package.
    pub(crate) fn new(
        pfn: Option<Result<Pfn, Error>>,
        token_file: Option<PathBuf>,
    ) -> Result<Self, Error> {
        match (pfn.transpose()?, token_file) {
            (None, None) => Ok(Self::Unpackaged),
            (Some(pfn), None) => Ok(Self::Peer(pfn)),
            (Some(pfn), Some(token_file)) => Ok(Self::Token { pfn, token_file }),
            (None, Some(token_file)) => Err(Error::config(format!(
                "token file {} given without a package: a token proves a package \
                 family name, so set the package too (ClientBuilder::pfn, --pfn)",
                token_file.display()
            ))),
        }
    }

    /// What `Hello` says and the secret for a `Challenge`: reads the token
    /// file, if there is one.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the token file cannot be read or is empty.
    pub(crate) fn proof(&self) -> Result<Proof, Error> {
        Ok(match self {
            Self::Unpackaged => Proof {
                pfn: None,
                auth: AuthKind::None,
                token: None,
            },
            Self::Peer(pfn) => Proof {
                pfn: Some(pfn.clone()),
                auth: AuthKind::Peer,
                token: None,
            },
            Self::Token { pfn, token_file } => {
                let token = busd_proto::read_token(token_file).map_err(|e| {
                    Error::config(format!(
                        "cannot read the token of package {pfn} from {}: {e}",
                        token_file.display()
                    ))
                    .with_source(e)
                })?;
                Proof {
                    pfn: Some(pfn.clone()),
                    auth: AuthKind::Token,
                    token: Some(Token(token)),
                }
            }
        })
    }
}

/// The claim and secret of one handshake.
#[derive(Debug)]
pub(crate) struct Proof {
    pub(crate) pfn: Option<Pfn>,
    pub(crate) auth: AuthKind,
    pub(crate) token: Option<Token>,
}

/// A package token; its `Debug` never shows the secret.
pub(crate) struct Token(Vec<u8>);

impl Token {
    /// The secret bytes, to key the MAC.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const PFN: &str = "Contoso.Weather_8wekyb3d8bbwe";

    #[test]
    fn names_parse_or_fail_as_config() {
        let pfn = Pfn::parse(PFN).unwrap();
        assert_eq!(PFN.into_pfn().unwrap(), pfn);
        assert_eq!(PFN.to_owned().into_pfn().unwrap(), pfn);
        assert_eq!((&pfn).into_pfn().unwrap(), pfn);
        let err = "Contoso.Weather".into_pfn().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("Name_PublisherId"), "{err}");
    }

    #[test]
    fn claims_choose_their_proof() {
        let pfn = || Some(Pfn::parse(PFN).map_err(|e| Error::config(e.to_string())));
        assert_eq!(Identity::new(None, None).unwrap(), Identity::Unpackaged);
        assert!(matches!(Identity::new(pfn(), None), Ok(Identity::Peer(_))));
        let token = Identity::new(pfn(), Some("weather.key".into())).unwrap();
        assert!(matches!(token, Identity::Token { .. }));
        let err = Identity::new(None, Some("weather.key".into())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("weather.key"), "{err}");
    }

    #[test]
    fn an_unreadable_token_file_is_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let identity = Identity::Token {
            pfn: Pfn::parse(PFN).unwrap(),
            token_file: dir.path().join("missing.key"),
        };
        let err = identity.proof().unwrap_err();
        let io = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("an io::Error source");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        // The message still says it all for a reader of Display alone.
        assert!(err.to_string().ends_with(&io.to_string()), "{err}");
    }

    #[test]
    fn a_malformed_name_is_the_source() {
        let err = "Contoso.Weather".into_pfn().unwrap_err();
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<busd_proto::PfnError>(), "{source:?}");
    }

    #[test]
    fn token_files_are_read_per_proof() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weather.key");
        let identity = Identity::Token {
            pfn: Pfn::parse(PFN).unwrap(),
            token_file: path.clone(),
        };
        let err = identity.proof().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("weather.key"), "{err}");

        std::fs::write(&path, "s3cret\n").unwrap();
        let proof = identity.proof().unwrap();
        assert_eq!(proof.auth, AuthKind::Token);
        assert_eq!(
            proof.token.as_ref().map(Token::secret),
            Some(&b"s3cret"[..])
        );
        assert!(!format!("{proof:?}").contains("s3cret"));
    }
}
