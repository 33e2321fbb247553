//! [`Endpoint`]: where a daemon listens or a client connects, written as
//! `tcp://IP:PORT`, `unix:///ABSOLUTE/PATH`, `shm:///ABSOLUTE/PATH`, or
//! `fd://N` for a connection inherited from the daemon.

use std::ffi::OsString;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::EndpointError;

/// The socket path used when `XDG_RUNTIME_DIR` is not usable.
const SYSTEM_SOCKET_PATH: &str = "/run/busd/busd.sock";

/// An address a busd daemon listens on or a client connects to.
///
/// Parsed from and displayed as a URL-like string; the two round-trip:
///
/// ```
/// use busd_transport::Endpoint;
///
/// let tcp: Endpoint = "tcp://127.0.0.1:4223".parse().unwrap();
/// assert_eq!(tcp.to_string(), "tcp://127.0.0.1:4223");
/// let unix: Endpoint = "unix:///run/user/1000/busd/busd.sock".parse().unwrap();
/// assert_eq!(unix, Endpoint::Unix("/run/user/1000/busd/busd.sock".into()));
/// let shm: Endpoint = "shm:///run/user/1000/busd/busd.sock".parse().unwrap();
/// assert_eq!(shm, Endpoint::Shm("/run/user/1000/busd/busd.sock".into()));
/// ```
///
/// Parsing accepts any IP address; only loopback ones can be *listened* on
/// (see [`TcpListener::bind`](crate::TcpListener::bind)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// TCP: `tcp://127.0.0.1:4223`, `tcp://[::1]:4223`.
    Tcp(SocketAddr),
    /// A unix socket at an absolute path: `unix:///run/busd/busd.sock`.
    Unix(PathBuf),
    /// Shared-memory rings, set up over the daemon's unix socket at an
    /// absolute path: `shm:///run/busd/busd.sock`. Clients only: the daemon's
    /// [`UnixListener`](crate::UnixListener) serves both.
    Shm(PathBuf),
    /// A connection to the daemon inherited at exec as descriptor N:
    /// `fd://3`. The daemon starts a service it activates this way (see
    /// `BUSD_FD`); the descriptor can be taken once, so such a client
    /// cannot reconnect.
    Inherited(i32),
}

impl Endpoint {
    /// The socket path a daemon uses when none is configured:
    /// `$XDG_RUNTIME_DIR/busd/busd.sock` if `XDG_RUNTIME_DIR` is set to an
    /// absolute path, else `/run/busd/busd.sock`.
    ///
    /// A relative `XDG_RUNTIME_DIR` is ignored, as the XDG base directory
    /// specification asks.
    pub fn default_unix_path() -> PathBuf {
        unix_path_for_runtime_dir(std::env::var_os("XDG_RUNTIME_DIR"))
    }
}

/// [`Endpoint::default_unix_path`] for a given value of `XDG_RUNTIME_DIR`.
fn unix_path_for_runtime_dir(runtime_dir: Option<OsString>) -> PathBuf {
    match runtime_dir.map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("busd").join("busd.sock"),
        _ => PathBuf::from(SYSTEM_SOCKET_PATH),
    }
}

impl Default for Endpoint {
    /// A unix socket at [`Endpoint::default_unix_path`].
    fn default() -> Self {
        Self::Unix(Self::default_unix_path())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            // Lossy only for paths that are not UTF-8.
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Shm(path) => write!(f, "shm://{}", path.display()),
            Self::Inherited(fd) => write!(f, "fd://{fd}"),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    /// Parses `tcp://IP:PORT`, `tcp://localhost:PORT` (meaning 127.0.0.1),
    /// `unix:///ABSOLUTE/PATH` or `shm:///ABSOLUTE/PATH`. The scheme is case-insensitive; surrounding
    /// whitespace is ignored.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(EndpointError::UnknownScheme {
                input: input.to_owned(),
            });
        };
        if scheme.eq_ignore_ascii_case("tcp") {
            parse_tcp(rest)
                .map(Self::Tcp)
                .map_err(|reason| EndpointError::InvalidTcp {
                    input: input.to_owned(),
                    reason,
                })
        } else if scheme.eq_ignore_ascii_case("unix") {
            let path = Path::new(rest);
            if path.is_absolute() {
                Ok(Self::Unix(path.to_path_buf()))
            } else {
                Err(EndpointError::RelativeUnixPath {
                    input: input.to_owned(),
                })
            }
        } else if scheme.eq_ignore_ascii_case("fd") {
            match rest.parse::<i32>() {
                Ok(fd) if fd > 2 => Ok(Self::Inherited(fd)),
                _ => Err(EndpointError::UnknownScheme {
                    input: input.to_owned(),
                }),
            }
        } else if scheme.eq_ignore_ascii_case("shm") {
            let path = Path::new(rest);
            if path.is_absolute() {
                Ok(Self::Shm(path.to_path_buf()))
            } else {
                Err(EndpointError::RelativeShmPath {
                    input: input.to_owned(),
                })
            }
        } else {
            Err(EndpointError::UnknownScheme {
                input: input.to_owned(),
            })
        }
    }
}

/// Parses the part after `tcp://`; the error says what is wrong.
fn parse_tcp(rest: &str) -> Result<SocketAddr, &'static str> {
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if rest.contains('/') {
        return Err("a tcp endpoint has no path");
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err("missing :PORT");
    };
    if !host.eq_ignore_ascii_case("localhost") {
        return Err("the host must be an IP address or localhost (names are not resolved)");
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| "the port must be a number from 0 to 65535")?;
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Endpoint, EndpointError> {
        s.parse()
    }

    #[test]
    fn tcp_and_unix_round_trip() {
        for s in [
            "tcp://127.0.0.1:4223",
            "tcp://[::1]:4223",
            "tcp://10.0.0.1:1",
            "tcp://127.0.0.1:0",
            "unix:///run/user/1000/busd/busd.sock",
            "unix:///tmp/with space/busd.sock",
            "shm:///run/user/1000/busd/busd.sock",
        ] {
            let endpoint = parse(s).unwrap();
            assert_eq!(endpoint.to_string(), s);
            assert_eq!(parse(&endpoint.to_string()).unwrap(), endpoint);
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(
            parse("tcp://127.0.0.1:4223").unwrap(),
            Endpoint::Tcp("127.0.0.1:4223".parse().unwrap())
        );
        assert_eq!(
            parse("tcp://[::1]:4223").unwrap(),
            Endpoint::Tcp("[::1]:4223".parse().unwrap())
        );
        assert_eq!(
            parse("unix:///run/busd/busd.sock").unwrap(),
            Endpoint::Unix("/run/busd/busd.sock".into())
        );
        // Clients may be pointed anywhere; only listeners insist on loopback.
        assert_eq!(
            parse("tcp://10.0.0.1:1").unwrap(),
            Endpoint::Tcp("10.0.0.1:1".parse().unwrap())
        );
    }

    #[test]
    fn localhost_means_ipv4_loopback() {
        assert_eq!(
            parse("tcp://localhost:4223").unwrap(),
            Endpoint::Tcp("127.0.0.1:4223".parse().unwrap())
        );
        assert_eq!(
            parse(" TCP://LocalHost:1 \n").unwrap(),
            Endpoint::Tcp("127.0.0.1:1".parse().unwrap())
        );
    }

    #[test]
    fn unknown_schemes_name_the_accepted_forms() {
        for s in [
            "http://x",
            "127.0.0.1:4223",
            "",
            "tcp:/127.0.0.1:1",
            "/run/busd.sock",
        ] {
            let err = parse(s).unwrap_err();
            assert!(
                matches!(err, EndpointError::UnknownScheme { .. }),
                "{s}: {err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains("tcp://") && msg.contains("unix:///") && msg.contains("shm:///"),
                "{msg}"
            );
        }
    }

    #[test]
    fn shm_names_the_unix_socket() {
        assert_eq!(
            parse("SHM:///run/busd/busd.sock").unwrap(),
            Endpoint::Shm("/run/busd/busd.sock".into())
        );
        for s in ["shm://relative", "shm://"] {
            let err = parse(s).unwrap_err();
            assert!(
                matches!(err, EndpointError::RelativeShmPath { .. }),
                "{s}: {err:?}"
            );
            assert!(err.to_string().contains("shm:///"), "{err}");
        }
    }

    #[test]
    fn unix_paths_must_be_absolute() {
        for s in ["unix://relative", "unix://", "unix://./busd.sock"] {
            let err = parse(s).unwrap_err();
            assert!(
                matches!(err, EndpointError::RelativeUnixPath { .. }),
                "{s}: {err:?}"
            );
            assert!(err.to_string().contains("absolute"));
        }
    }

    #[test]
    fn bad_tcp_addresses_are_refused() {
        for s in [
            "tcp://",
            "tcp://127.0.0.1",
            "tcp://127.0.0.1:70000",
            "tcp://localhost:http",
            "tcp://example.com:4223",
            "tcp://127.0.0.1:4223/path",
            "tcp://::1:4223",
        ] {
            let err = parse(s).unwrap_err();
            assert!(
                matches!(err, EndpointError::InvalidTcp { .. }),
                "{s}: {err:?}"
            );
            assert!(err.to_string().contains("tcp://127.0.0.1:4223"), "{err}");
        }
    }

    #[test]
    fn default_path_follows_xdg_runtime_dir() {
        assert_eq!(
            unix_path_for_runtime_dir(Some("/run/user/1000".into())),
            PathBuf::from("/run/user/1000/busd/busd.sock")
        );
        assert_eq!(
            unix_path_for_runtime_dir(None),
            PathBuf::from(SYSTEM_SOCKET_PATH)
        );
        assert_eq!(
            unix_path_for_runtime_dir(Some("".into())),
            PathBuf::from(SYSTEM_SOCKET_PATH)
        );
        assert_eq!(
            unix_path_for_runtime_dir(Some("relative/dir".into())),
            PathBuf::from(SYSTEM_SOCKET_PATH)
        );
        assert!(matches!(Endpoint::default(), Endpoint::Unix(p) if p.is_absolute()));
    }
}
