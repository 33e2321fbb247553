//! Unix sockets: [`UnixListener`] and the unix side of [`connect`](crate::connect).
//!
//! The socket path is claimed through `socket_file` (lock, stale-file
//! replacement, removal on drop); connections carry the peer's uid, gid and
//! pid from `SO_PEERCRED`.

use std::io;
use std::path::Path;

use tokio::net::UnixStream;
use tracing::debug;

use crate::Listener;
use crate::conn::{Connection, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::TransportError;
use crate::socket_file::SocketFile;

/// A listener on a unix socket, owning its path while it lives.
///
/// Only one `UnixListener` (in any process) can own a path at a time. The
/// socket file has mode 0660 and is removed when the listener is dropped.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    /// Holds the path's lock; dropped after `inner`, removing the socket file.
    socket: SocketFile,
}

impl UnixListener {
    /// Listens on a unix socket at `path`.
    ///
    /// Creates the parent directory (mode 0750) if it is missing, takes the
    /// lock `<path>.lock`, replaces a stale socket file left by a daemon that
    /// died, binds, and sets the socket's mode to 0660. A relative `path` is
    /// made absolute against the current directory.
    ///
    /// # Errors
    ///
    /// - [`TransportError::AlreadyRunning`] if another listener (in this or
    ///   another process) holds the lock for `path`;
    /// - [`TransportError::NotASocket`] if something other than a socket
    ///   exists at `path` (it is left untouched);
    /// - [`TransportError::Io`] if the directory, lock file or socket cannot be
    ///   created (permissions, a path longer than the 107 bytes a socket
    ///   address holds, …).
    pub async fn bind(path: &Path) -> Result<Self, TransportError> {
        let mut socket = SocketFile::claim(path)?;
        let inner = tokio::net::UnixListener::bind(socket.path()).map_err(|err| {
            let context = format!("cannot listen on unix://{}", socket.path().display());
            TransportError::io(context, err)
        })?;
        // Once bound, a failure here still removes the socket (drop of `socket`).
        socket.mark_bound()?;
        debug!(path = %socket.path().display(), "unix listener bound");
        Ok(Self { inner, socket })
    }
}

impl Listener for UnixListener {
    async fn accept(&mut self) -> io::Result<Connection> {
        let (stream, _) = self.inner.accept().await?;
        let mut conn = connection(stream);
        // Read now, while the peer is connected and its pid is its own.
        conn.peer.exe = conn
            .peer
            .pid
            .and_then(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).ok());
        Ok(conn)
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.socket.path().to_owned())
    }
}

/// Connects to a daemon's unix socket.
pub(crate) async fn connect(path: &Path) -> io::Result<Connection> {
    UnixStream::connect(path).await.map(connection)
}

/// Turns a connected stream into a [`Connection`] with the peer's credentials.
fn connection(stream: UnixStream) -> Connection {
    let peer = match stream.peer_cred() {
        Ok(cred) => PeerInfo {
            uid: Some(cred.uid()),
            gid: Some(cred.gid()),
            pid: cred.pid().and_then(|pid| u32::try_from(pid).ok()),
            exe: None,
            addr: "unix".to_owned(),
        },
        Err(err) => {
            debug!(cause = %err, "cannot read the peer's credentials");
            PeerInfo {
                addr: "unix".to_owned(),
                ..PeerInfo::default()
            }
        }
    };
    debug!(uid = ?peer.uid, pid = ?peer.pid, "unix connection established");
    let (reader, writer) = stream.into_split();
    Connection {
        reader: Box::new(reader),
        writer: Box::new(writer),
        peer,
    }
}
