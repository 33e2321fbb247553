//! Loopback TCP: [`TcpListener`] and the TCP side of [`connect`](crate::connect()).
//!
//! busd is a local bus, so it only ever listens on a loopback address; a
//! non-loopback address is refused when binding rather than silently exposed
//! on a network. Every connection gets `TCP_NODELAY`, and the peer's uid is
//! asked of the kernel (see `sock_diag`). That setup happens
//! in a task per connection, so one slow lookup never holds up the others.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::conn::{Connection, Listener, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::TransportError;
use crate::sock_diag;

/// A TCP listener bound to a loopback address.
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
    /// Connections accepted whose setup (the peer's uid) is under way;
    /// aborted with the listener.
    pending: JoinSet<Connection>,
    /// The bound address, with the real port when bound to port 0. Also the
    /// local address of every accepted socket, since only a specific loopback
    /// address can be bound.
    local_addr: SocketAddr,
}

impl TcpListener {
    /// Listens on `addr`, which must be a loopback address (`127.0.0.0/8`,
    /// `::1`, or `::ffff:127.x.y.z`). Port 0 picks a free port; see
    /// [`Listener::endpoint`] for the one chosen.
    ///
    /// # Errors
    ///
    /// - [`TransportError::NotLoopback`] if `addr` is not a loopback address
    ///   (for example `0.0.0.0` or a LAN address);
    /// - [`TransportError::Io`] if the socket cannot be bound (port in use,
    ///   no IPv6 loopback on this machine, …).
    pub async fn bind(addr: SocketAddr) -> Result<Self, TransportError> {
        if !is_loopback(addr.ip()) {
            return Err(TransportError::NotLoopback(addr));
        }
        let inner = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|err| TransportError::io(format!("cannot listen on tcp://{addr}"), err))?;
        let local_addr = inner.local_addr().map_err(|err| {
            TransportError::io(
                format!("cannot read the address bound for tcp://{addr}"),
                err,
            )
        })?;
        debug!(%local_addr, "tcp listener bound");
        Ok(Self {
            inner,
            pending: JoinSet::new(),
            local_addr,
        })
    }

    /// Serves on a socket bound and listening already, as a service manager
    /// hands over with socket activation (`LISTEN_FDS`). The rule of
    /// [`TcpListener::bind`] holds: its address must be a loopback address,
    /// whoever bound it.
    ///
    /// # Errors
    ///
    /// - [`TransportError::NotLoopback`] if it is bound to another address;
    /// - [`TransportError::Io`] if its address cannot be read or it cannot
    ///   be made non-blocking.
    pub fn from_std(listener: std::net::TcpListener) -> Result<Self, TransportError> {
        let local_addr = listener.local_addr().map_err(|err| {
            TransportError::io("cannot read the address of an inherited tcp socket", err)
        })?;
        if !is_loopback(local_addr.ip()) {
            return Err(TransportError::NotLoopback(local_addr));
        }
        let context = || format!("cannot serve on the inherited socket tcp://{local_addr}");
        listener
            .set_nonblocking(true)
            .map_err(|err| TransportError::io(context(), err))?;
        // A manager hands sockets over without close-on-exec; whatever the
        // daemon starts later must not inherit its listeners.
        rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::CLOEXEC)
            .map_err(|err| TransportError::io(context(), err.into()))?;
        let inner = tokio::net::TcpListener::from_std(listener)
            .map_err(|err| TransportError::io(context(), err))?;
        debug!(%local_addr, "inherited tcp listener");
        Ok(Self {
            inner,
            pending: JoinSet::new(),
            local_addr,
        })
    }
}

impl Listener for TcpListener {
    /// Waits for the next client.
    ///
    /// A connection comes out once its setup is done, in whatever order
    /// setups finish, not necessarily the order of `accept(2)`.
    async fn accept(&mut self) -> io::Result<Connection> {
        loop {
            tokio::select! {
                biased;
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    match done {
                        Ok(conn) => return Ok(conn),
                        Err(err) => debug!(cause = %err, "connection setup task failed"),
                    }
                }
                accepted = self.inner.accept() => {
                    let (stream, peer) = accepted?;
                    self.pending.spawn(setup(stream, self.local_addr, peer));
                }
            }
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Tcp(self.local_addr)
    }
}

/// Whether busd may listen on `ip`: a loopback address, IPv4-mapped ones
/// (`::ffff:127.0.0.1`) included. The one rule for every listener and for
/// the configuration that names them.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Connects to a daemon over TCP.
///
/// The daemon's uid is not looked up: no client acts on it, and finding it
/// would cost each connect a search of the kernel's socket table.
pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Connection> {
    let stream = TcpStream::connect(addr).await?;
    let peer = stream.peer_addr()?;
    Ok(connection(stream, peer, None))
}

/// Sets up an accepted connection: looks up the client's uid.
async fn setup(stream: TcpStream, local: SocketAddr, peer: SocketAddr) -> Connection {
    let uid = sock_diag::peer_uid(local, peer).await;
    connection(stream, peer, uid)
}

/// Turns a connected stream into a [`Connection`]: sets `TCP_NODELAY` and
/// splits the stream into owned halves.
fn connection(stream: TcpStream, peer: SocketAddr, uid: Option<u32>) -> Connection {
    if let Err(err) = stream.set_nodelay(true) {
        // The connection still works, only with Nagle's delays; if the socket
        // is already dead, the first read or write will say so.
        warn!(%peer, cause = %err, "cannot set TCP_NODELAY");
    }
    debug!(%peer, ?uid, "tcp connection established");
    let (reader, writer) = stream.into_split();
    Connection {
        reader: Box::new(reader),
        writer: Box::new(writer),
        peer: PeerInfo {
            uid,
            gid: None,
            pid: None,
            exe: None,
            addr: peer.to_string(),
            granted: None,
            bridge: false,
        },
        fds: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_check() {
        for ip in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "0.0.0.0",
            "::",
            "192.168.1.2",
            "10.0.0.1",
            "::ffff:10.0.0.1",
            "fe80::1",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
    }
}
