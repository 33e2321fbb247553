//! Where a client's connections come from: a daemon's URL, or a function
//! that makes one end of a socket pair whose other end the daemon itself
//! serves (a daemon's own bridge, which is its package by the daemon's act,
//! as a service the daemon starts is). Each reconnect dials again.

use std::fmt;
use std::io;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use busd_transport::{ConnectOptions, Connection, Endpoint, PeerInfo};

/// Makes a new connected socket whose other end the daemon serves.
pub type PairDialer = Arc<dyn Fn() -> io::Result<UnixStream> + Send + Sync>;

/// How to reach the daemon.
#[derive(Clone)]
pub(crate) enum Dial {
    /// A URL: `tcp://`, `unix://`, `shm://` or `fd://`.
    Endpoint(Endpoint),
    /// One end of a socket pair from `make`; `label` names it in logs.
    Pair { label: String, make: PairDialer },
}

impl Dial {
    /// A new connection.
    pub(crate) async fn connect(&self, options: &ConnectOptions) -> io::Result<Connection> {
        match self {
            Self::Endpoint(endpoint) => busd_transport::connect_with(endpoint, options).await,
            Self::Pair { label, make } => {
                let stream = make()?;
                let peer = PeerInfo {
                    addr: label.clone(),
                    ..PeerInfo::default()
                };
                Connection::over_socket_pair(stream, peer)
            }
        }
    }

    /// Whether payloads may travel outside the stream (shm only).
    pub(crate) fn is_shm(&self) -> bool {
        matches!(self, Self::Endpoint(Endpoint::Shm(_)))
    }
}

impl fmt::Display for Dial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(endpoint) => endpoint.fmt(f),
            Self::Pair { label, .. } => write!(f, "pair://{label}"),
        }
    }
}

impl fmt::Debug for Dial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
