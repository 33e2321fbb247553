//! Unix sockets: [`UnixListener`] and the unix side of [`connect`](crate::connect()).
//!
//! The socket path is claimed through `socket_file` (directory checks, lock,
//! stale-file replacement, removal on drop); connections carry the peer's uid, gid and
//! pid from `SO_PEERCRED`.
//!
//! The same socket serves `shm://` clients: the listener reads the first
//! bytes of each connection and hands an shm preface to `shm::accept`. That
//! reading happens in a task per connection, so a client that connects and
//! says nothing never holds up the others. This module depends on `shm`
//! (its preface, ring limits and `accept`), never the other way round.

use std::io::{self, Cursor};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::task::JoinSet;
use tracing::{debug, info};

use crate::conn::{Connection, Listener, PeerInfo};
use crate::endpoint::Endpoint;
use crate::error::TransportError;
use crate::fd_passing::FdPassing;
use crate::shm;
use crate::socket_file::SocketFile;
use crate::unix_fds::{SharedInbox, UnixReader, UnixWriter};

/// How long the listener waits for a connection's first bytes before handing
/// it on as a plain unix connection (whose handshake has its own timeout).
/// busd clients speak first, so only a silent client ever waits this long.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(1);

/// A listener on a unix socket, owning its path while it lives.
///
/// Only one `UnixListener` (in any process) can own a path at a time. The
/// socket file has mode 0660 and is removed when the listener is dropped.
///
/// It serves plain unix clients and `shm://` clients alike: see
/// [`Listener::accept`] below for the order in which connections come out.
#[derive(Debug)]
pub struct UnixListener {
    inner: tokio::net::UnixListener,
    /// Connections accepted whose first bytes are being read (each bounded
    /// by a timeout); aborted with the listener.
    pending: JoinSet<Option<Connection>>,
    /// The largest ring (each way) accepted from an shm client.
    shm: shm::ShmLimits,
    /// Where clients connect.
    path: PathBuf,
    /// Holds the path's lock; dropped after `inner`, removing the socket
    /// file. `None` for a socket handed over by a service manager, which
    /// owns its file.
    _socket: Option<SocketFile>,
}

impl UnixListener {
    /// Listens on a unix socket at `path`.
    ///
    /// Creates the parent directory (mode 0750) if it is missing, opens it
    /// without following links and checks that no one else can tamper with
    /// it (see [`SocketPathError`](crate::SocketPathError)), takes the lock
    /// `<path>.lock`, replaces a stale socket file left by a daemon that
    /// died (one that refuses connections), binds through the open
    /// directory, and sets the socket's mode to 0660. A relative `path` is
    /// made absolute against the current directory.
    ///
    /// # Errors
    ///
    /// - [`TransportError::SocketPath`] if the directory, the socket path or
    ///   the lock file is a symbolic link, the directory or lock file
    ///   belongs to another user than the daemon's (or root), the directory
    ///   is writable by group or others without the sticky bit, or a live
    ///   process answers on the socket already at `path` (lock or no lock);
    /// - [`TransportError::AlreadyRunning`] if another listener (in this or
    ///   another process) holds the lock for `path`;
    /// - [`TransportError::NotASocket`] if something other than a socket
    ///   exists at `path` (it is left untouched);
    /// - [`TransportError::Io`] if the directory, lock file or socket cannot be
    ///   created (permissions, a path longer than the 107 bytes a socket
    ///   address holds, …).
    pub async fn bind(path: &Path) -> Result<Self, TransportError> {
        let mut socket = SocketFile::claim(path)?;
        let inner = tokio::net::UnixListener::bind(socket.bind_path()).map_err(|err| {
            let context = format!("cannot listen on unix://{}", socket.path().display());
            TransportError::io(context, err)
        })?;
        // Once bound, a failure here still removes the socket (drop of `socket`).
        socket.mark_bound()?;
        debug!(path = %socket.path().display(), "unix listener bound");
        Ok(Self {
            inner,
            pending: JoinSet::new(),
            shm: shm::ShmLimits::default(),
            path: socket.path().to_owned(),
            _socket: Some(socket),
        })
    }

    /// Serves on a socket bound and listening already, as a service manager
    /// hands over with socket activation (`LISTEN_FDS`). The manager owns
    /// the socket file, its directory and its mode (`SocketMode=`,
    /// `SocketGroup=`): none of them is checked, changed or removed here.
    ///
    /// # Errors
    ///
    /// [`TransportError::Io`] if the socket has no path (an abstract or
    /// unnamed socket, which no `unix://` URL can name) or cannot be made
    /// non-blocking.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> Result<Self, TransportError> {
        let addr = listener.local_addr().map_err(|err| {
            TransportError::io("cannot read the address of an inherited unix socket", err)
        })?;
        let Some(path) = addr.as_pathname().map(Path::to_owned) else {
            return Err(TransportError::io(
                "an inherited unix socket has no path (busd serves path sockets only)",
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        };
        let context = || {
            format!(
                "cannot serve on the inherited socket unix://{}",
                path.display()
            )
        };
        listener
            .set_nonblocking(true)
            .map_err(|err| TransportError::io(context(), err))?;
        // A manager hands sockets over without close-on-exec; whatever the
        // daemon starts later must not inherit its listeners.
        rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::CLOEXEC)
            .map_err(|err| TransportError::io(context(), err.into()))?;
        let inner = tokio::net::UnixListener::from_std(listener)
            .map_err(|err| TransportError::io(context(), err))?;
        debug!(path = %path.display(), "inherited unix listener");
        Ok(Self {
            inner,
            pending: JoinSet::new(),
            shm: shm::ShmLimits::default(),
            path,
            _socket: None,
        })
    }

    /// Refuses shm clients asking for rings over `bytes` each way (within
    /// [`MIN_SHM_RING`](crate::MIN_SHM_RING)`..=`[`MAX_SHM_RING`](crate::MAX_SHM_RING);
    /// the default is the latter).
    pub fn set_max_shm_ring(&mut self, bytes: u64) {
        self.shm.max_ring = bytes.clamp(shm::MIN_SHM_RING, shm::MAX_SHM_RING);
    }

    /// Gives each shm client that offers a payload pool one of `bytes` the
    /// other way, and refuses pools over `bytes` (default
    /// [`DEFAULT_SHM_POOL`](crate::DEFAULT_SHM_POOL)); 0: no pools, large
    /// payloads go as segments.
    ///
    /// # Errors
    /// `InvalidInput` for a size that is not 0 nor a power of two from
    /// 64 KiB to 1 GiB.
    pub fn set_shm_pool(&mut self, bytes: u64) -> io::Result<()> {
        let valid = bytes == 0
            || (bytes.is_power_of_two()
                && (busd_shm::MIN_POOL..=busd_shm::MAX_POOL).contains(&bytes));
        if !valid {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("shm pool of {bytes} bytes: not 0 nor a power of two from 64 KiB to 1 GiB"),
            ));
        }
        self.shm.pool = bytes;
        Ok(())
    }
}

impl Listener for UnixListener {
    /// Waits for the next client, plain unix or shm.
    ///
    /// A connection comes out once its first bytes have arrived (busd clients
    /// speak first), or, for a silent client, after a second as a plain unix
    /// connection (the daemon's handshake timeout then applies). An shm
    /// client comes out once its rings are mapped; one whose rings are
    /// refused is logged and closed, and accepting goes on. The peer's
    /// executable is pinned when the socket is accepted.
    async fn accept(&mut self) -> io::Result<Connection> {
        loop {
            tokio::select! {
                biased;
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    match done {
                        Ok(Some(conn)) => return Ok(conn),
                        Ok(None) => {}
                        Err(err) => debug!(cause = %err, "connection setup task failed"),
                    }
                }
                accepted = self.inner.accept() => {
                    let (stream, _) = accepted?;
                    let mut peer = PeerInfo::of_unix_socket(&stream, "unix");
                    // Read now, while the peer is connected and its pid is its own.
                    peer.exe = peer.pid.and_then(pinned_exe);
                    self.pending.spawn(first_bytes(stream, peer, self.shm));
                }
            }
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.path.clone())
    }
}

/// The executable process `pid` runs, as a path that names that very file
/// here: the kernel reports the path in the process's own mount namespace,
/// where anyone who can make one (a container, `unshare`) may put another
/// file at a trusted path. So the path counts only if, in the daemon's
/// namespace, it is the file the process runs (same device and inode);
/// else, as for a binary replaced or deleted since it started, `None`.
fn pinned_exe(pid: u32) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let link = format!("/proc/{pid}/exe");
    let path = std::fs::read_link(&link).ok()?;
    let running = std::fs::metadata(&link).ok()?;
    let here = std::fs::metadata(&path).ok()?;
    if (running.dev(), running.ino()) == (here.dev(), here.ino()) {
        Some(path)
    } else {
        debug!(pid, path = %path.display(), "the peer runs another file than its path names here");
        None
    }
}

/// Reads the first bytes of an accepted connection and makes it a plain
/// unix or an shm connection. `None`: refused (logged), or gone.
async fn first_bytes(
    stream: UnixStream,
    peer: PeerInfo,
    shm: shm::ShmLimits,
) -> Option<Connection> {
    let mut head = [0u8; 4];
    let mut filled = 0;
    // Fds that come with a plain connection's bytes are closed on drop.
    let mut fds: Vec<OwnedFd> = Vec::new();
    let read = tokio::time::timeout(FIRST_BYTES_TIMEOUT, async {
        // Until a byte differs from the marker's, or all four match.
        while filled < head.len() && head[..filled] == shm::preface::MARKER[..filled] {
            let got = shm::preface::recv(&stream, &mut head[filled..], &mut fds).await?;
            if got.truncated {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more fds than an shm preface carries",
                ));
            }
            if got.len == 0 {
                break;
            }
            filled += got.len;
        }
        io::Result::Ok(())
    })
    .await;
    if let Ok(Err(err)) = read {
        debug!(cause = %err, "connection refused or lost before its first bytes");
        return None;
    }
    if filled == head.len() && head == shm::preface::MARKER {
        return match shm::accept(stream, &head, fds, peer, shm).await {
            Ok(conn) => Some(conn),
            Err(err) => {
                info!(cause = %err, "shm setup refused");
                None
            }
        };
    }
    // A plain client (or a silent or departed one, its handshake will tell):
    // the bytes read go first.
    let mut conn = connection(stream, peer, filled as u64);
    if filled > 0 {
        conn.reader = Box::new(Cursor::new(head[..filled].to_vec()).chain(conn.reader));
    }
    Some(conn)
}

/// The connection to the daemon inherited as descriptor `fd` (an
/// activated service's), taken once.
pub(crate) fn inherited(fd: i32) -> io::Result<Connection> {
    let owned = busd_shm::take_inherited_fd(fd)?;
    let stream = std::os::unix::net::UnixStream::from(owned);
    stream.set_nonblocking(true)?;
    let stream = UnixStream::from_std(stream)?;
    let peer = PeerInfo::of_unix_socket(&stream, "unix");
    Ok(connection(stream, peer, 0))
}

impl Connection {
    /// The daemon's end of a socket pair whose other end it hands to a
    /// process it starts, whose identity it states (`peer`, with
    /// [`PeerInfo::granted`] set) rather than asks of the socket: on a
    /// pair the daemon made, the kernel would name the daemon itself.
    ///
    /// # Errors
    /// If the socket cannot be made non-blocking or registered with the
    /// runtime.
    pub fn over_socket_pair(
        stream: std::os::unix::net::UnixStream,
        peer: PeerInfo,
    ) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(connection(UnixStream::from_std(stream)?, peer, 0))
    }
}

/// Connects to a daemon's unix socket.
pub(crate) async fn connect(path: &Path) -> io::Result<Connection> {
    let stream = UnixStream::connect(path).await?;
    let peer = PeerInfo::of_unix_socket(&stream, "unix");
    Ok(connection(stream, peer, 0))
}

/// Makes a connected stream a [`Connection`] that passes fds, whose reader
/// starts at byte `at` of the stream (the bytes before were read already).
fn connection(stream: UnixStream, peer: PeerInfo, at: u64) -> Connection {
    debug!(uid = ?peer.uid, pid = ?peer.pid, "unix connection established");
    let stream = Arc::new(stream);
    let inbox = Arc::new(SharedInbox::default());
    Connection {
        reader: Box::new(UnixReader::new(Arc::clone(&stream), Arc::clone(&inbox), at)),
        writer: Box::new(UnixWriter::new(Arc::clone(&stream))),
        peer,
        fds: Some(FdPassing::unix(stream, inbox)),
    }
}
