//! What a transport hands out: a [`Connection`] of owned, independently usable
//! read and write halves, the [`PeerInfo`] of the other end, and [`connect`],
//! the client side of every transport.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::endpoint::Endpoint;
use crate::{shm, tcp, unix};

/// The read half of a connection, whatever the transport.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;

/// The write half of a connection, whatever the transport.
///
/// The boxed halves forward `poll_write_vectored` and `is_write_vectored`, so
/// gathering many buffers into one `write_vectored` call stays a single
/// `writev(2)`.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Who is at the other end of a connection, as far as the transport knows.
///
/// On the daemon side this describes the client; after [`connect`] it
/// describes the daemon. Fields the transport cannot tell are `None`. Over
/// TCP a client is not told the daemon's uid: the daemon proves its clients,
/// not the other way round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// The peer's user id (unix: `SO_PEERCRED`; tcp: the kernel's socket
    /// table, on the daemon side only).
    pub uid: Option<u32>,
    /// The peer's group id (unix and shm).
    pub gid: Option<u32>,
    /// The peer's process id (unix and shm).
    pub pid: Option<u32>,
    /// The peer's executable, read from `/proc/<pid>/exe` when the
    /// connection was accepted and pinned from then on: a later exec or
    /// PID reuse does not change it (unix listeners only, for unix and shm
    /// clients).
    pub exe: Option<std::path::PathBuf>,
    /// A label for logs: the peer's socket address for tcp
    /// (`"127.0.0.1:53211"`), `"unix"` for unix sockets, `"shm"` for shared
    /// memory.
    pub addr: String,
}

/// One established connection: owned halves plus what is known about the peer.
///
/// `reader` and `writer` are independent owned halves of one socket, so one
/// task can read while another writes without a lock. Dropping `writer` shuts
/// down the sending direction; the socket closes once both halves are gone.
pub struct Connection {
    /// Bytes from the peer.
    pub reader: BoxReader,
    /// Bytes to the peer; supports vectored writes.
    pub writer: BoxWriter,
    /// Who the peer is.
    pub peer: PeerInfo,
    /// Passing payload segments beside the stream: shm connections only.
    pub fds: Option<crate::FdPassing>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

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
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            shm_ring_bytes: shm::DEFAULT_SHM_RING,
        }
    }
}

impl ConnectOptions {
    /// Options with rings of `bytes` each way.
    pub fn shm_ring_bytes(mut self, bytes: u64) -> Self {
        self.shm_ring_bytes = bytes;
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
        Endpoint::Shm(path) => shm::connect_shm(path, options.shm_ring_bytes).await,
    };
    result.map_err(|err| io::Error::new(err.kind(), format!("cannot connect to {endpoint}: {err}")))
}
