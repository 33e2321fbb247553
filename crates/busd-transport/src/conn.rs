//! What every transport shares: the [`Connection`] it hands out (owned,
//! independently usable read and write halves and the [`PeerInfo`] of the
//! other end) and the [`Listener`] trait of its daemon side.
//!
//! This module imports no transport: they all build on it, and
//! [`connect`](crate::connect()) sits above them all.

use std::fmt;
use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tracing::debug;

use crate::endpoint::Endpoint;
use crate::fd_passing::FdPassing;

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
/// On the daemon side this describes the client; after
/// [`connect`](crate::connect()) it
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
    /// The peer's process id (unix and shm), as seen from this process's
    /// pid namespace; `None` for a peer outside it (another container).
    pub pid: Option<u32>,
    /// The peer's executable, read from `/proc/<pid>/exe` when the
    /// connection was accepted and pinned from then on: a later exec or
    /// PID reuse does not change it (unix listeners only, for unix and shm
    /// clients). `None` unless that path names, in the daemon's mount
    /// namespace, the very file the peer runs (a container or `unshare`
    /// can put another file at a trusted path; a binary replaced since the
    /// peer started is not the one configured either).
    pub exe: Option<std::path::PathBuf>,
    /// A label for logs: the peer's socket address for tcp
    /// (`"127.0.0.1:53211"`), `"unix"` for unix sockets, `"shm"` for shared
    /// memory.
    pub addr: String,
    /// The package the daemon gave this connection when it made it (the
    /// socket pair of a service it started): proven by the daemon's own
    /// act, no claim needed. Never set for an accepted connection.
    pub granted: Option<busd_proto::Pfn>,
    /// The daemon's own bridge to another bus, on a pair the daemon made
    /// (never set for an accepted connection): it may serve wildcard names
    /// as a relay, and answer with the statuses of the bus it relays.
    pub bridge: bool,
}

impl PeerInfo {
    /// The peer at the other end of a unix socket: its uid, gid and pid
    /// from `SO_PEERCRED`, labelled `addr`. The unix and shm transports
    /// both identify their peer by the socket, so this lives here, below
    /// both.
    pub(crate) fn of_unix_socket(stream: &UnixStream, addr: &str) -> Self {
        match stream.peer_cred() {
            Ok(cred) => Self {
                uid: Some(cred.uid()),
                gid: Some(cred.gid()),
                pid: cred.pid().and_then(visible_pid),
                exe: None,
                addr: addr.to_owned(),
                granted: None,
                bridge: false,
            },
            Err(err) => {
                debug!(cause = %err, "cannot read the peer's credentials");
                Self {
                    addr: addr.to_owned(),
                    ..Self::default()
                }
            }
        }
    }
}

/// The peer's pid as `SO_PEERCRED` gives it, if it names a process: the
/// kernel reports 0 for a peer outside the reader's pid namespace (another
/// container, or the host for a daemon in a container), and `/proc/0` is no
/// process, so that pid is unknown rather than 0.
fn visible_pid(raw: i32) -> Option<u32> {
    u32::try_from(raw).ok().filter(|&pid| pid != 0)
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
    /// Passing fds with the stream: payload segments (shm) and the fds
    /// attached to messages (shm and unix); `None` for tcp.
    pub fds: Option<FdPassing>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// The daemon side of a transport: hands out one [`Connection`] per client.
///
/// Implementations are bound by their own constructor (which is where
/// start-up errors such as [`TransportError::NotLoopback`] are reported);
/// this trait only covers what the accept loop needs.
///
/// [`TransportError::NotLoopback`]: crate::TransportError::NotLoopback
pub trait Listener: Send + 'static {
    /// Waits for the next client.
    ///
    /// Cancel-safe: dropping the future before it completes loses no client.
    ///
    /// # Errors
    ///
    /// Returns the error of the underlying `accept(2)`. Most of these concern
    /// one connection or a passing shortage (`ECONNABORTED`, `EMFILE`,
    /// `ENOBUFS`), not the listener itself, so an accept loop should log the
    /// error, back off briefly and keep accepting.
    fn accept(&mut self) -> impl Future<Output = io::Result<Connection>> + Send;

    /// Where this listener listens (with the real port when bound to port 0).
    fn endpoint(&self) -> Endpoint;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_outside_our_namespace_is_unknown() {
        assert_eq!(visible_pid(0), None);
        assert_eq!(visible_pid(-1), None);
        assert_eq!(visible_pid(4271), Some(4271));
    }
}
