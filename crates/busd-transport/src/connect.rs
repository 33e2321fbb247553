//! [`connect`]: the client side of every transport, choosing one by the
//! endpoint's scheme.
//!
//! It sits above the transports (`tcp`, `unix`, `shm`), which know nothing
//! of each other's clients, so adding a transport adds one arm here.

use std::io;

use crate::conn::Connection;
use crate::endpoint::Endpoint;
use crate::{shm, tcp, unix};

/// Connects to a busd daemon at `endpoint`.
///
/// TCP connections get `TCP_NODELAY` (busd frames are small and latency
/// matters more than packet count). `shm://` sets up rings of
/// [`DEFAULT_SHM_RING`](crate::DEFAULT_SHM_RING) bytes each way (see
/// [`connect_shm`](crate::connect_shm) for another size). `peer` describes
/// the daemon: its uid, gid and pid over a unix socket (and shm, set up over
/// one); over TCP none of them (the daemon's uid is not looked up).
///
/// # Errors
///
/// Returns the connect error, with the endpoint added to its message and its
/// [`io::ErrorKind`] kept (`NotFound` or `ConnectionRefused` when no daemon
/// is listening), so callers can still branch on the kind when reconnecting.
pub async fn connect(endpoint: &Endpoint) -> io::Result<Connection> {
    connect_with(endpoint, &ConnectOptions::default()).await
}

/// How to connect, beyond the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// The size of each shm ring, in bytes (`shm://` only): a power of two
    /// the daemon accepts (its `limits.shm_ring_bytes`).
    pub shm_ring_bytes: u64,
    /// The size of the payload pool offered to the daemon (`shm://` only):
    /// 0, or a power of two from 64 KiB up to the daemon's
    /// `limits.shm_pool_bytes`.
    pub shm_pool_bytes: u64,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            shm_ring_bytes: shm::DEFAULT_SHM_RING,
            shm_pool_bytes: shm::DEFAULT_SHM_POOL,
        }
    }
}

impl ConnectOptions {
    /// Options with rings of `bytes` each way.
    pub fn shm_ring_bytes(mut self, bytes: u64) -> Self {
        self.shm_ring_bytes = bytes;
        self
    }

    /// Options offering a payload pool of `bytes` (0: none).
    pub fn shm_pool_bytes(mut self, bytes: u64) -> Self {
        self.shm_pool_bytes = bytes;
        self
    }
}

/// As [`connect`], with `options`.
///
/// # Errors
/// As [`connect`]; `InvalidInput` for a ring size that is not a power of
/// two in [`MIN_SHM_RING`](crate::MIN_SHM_RING)`..=`[`MAX_SHM_RING`](crate::MAX_SHM_RING).
pub async fn connect_with(endpoint: &Endpoint, options: &ConnectOptions) -> io::Result<Connection> {
    let result = match endpoint {
        Endpoint::Tcp(addr) => tcp::connect(*addr).await,
        Endpoint::Unix(path) => unix::connect(path).await,
        Endpoint::Shm(path) => {
            shm::connect_shm_with(path, options.shm_ring_bytes, options.shm_pool_bytes).await
        }
        Endpoint::Inherited(fd) => unix::inherited(*fd),
    };
    result.map_err(|err| io::Error::new(err.kind(), format!("cannot connect to {endpoint}: {err}")))
}
