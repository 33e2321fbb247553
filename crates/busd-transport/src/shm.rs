//! Shared memory: a byte stream over two `busd-shm` rings, one each way,
//! set up over the daemon's unix socket (`shm:///path/busd.sock`).
//!
//! The client creates both rings and their eventfds, connects to the unix
//! socket and sends the [`preface`] with the six fds attached. The
//! daemon's [`UnixListener`](crate::UnixListener) reads the first bytes of
//! every connection: a plain client's `Hello` goes on to a socket
//! connection, an shm preface to [`accept`] here, which maps the rings
//! (checking seals, sizes and headers: the client is hostile until proven
//! otherwise) and answers one byte. From then on the bytes travel through the
//! rings (see `stream`); the socket stays open beside them, silent, so that
//! either side learns at once when the other is gone, and so that the peer's
//! credentials are the socket's: authentication works as over unix. Large
//! payloads travel on that socket too, as sealed memfds (`fd_passing`).

pub(crate) mod preface;
mod stream;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use busd_shm::{EventFd, Events, HEADER_SIZE, Options, PoolReader, PoolWriter, Ring, memfd_len};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tracing::debug;

use crate::conn::{Connection, PeerInfo};
use crate::error::shm_error;
use crate::fd_passing::{FdPassing, Pools};
use crate::pools::{PoolIn, PoolOut, Releases};
use stream::{ShmReader, ShmWriter};

/// The ring size (each way) a client asks for unless told otherwise.
pub const DEFAULT_SHM_RING: u64 = 4 << 20;
/// The largest ring (each way) the daemon accepts from a client.
pub const MAX_SHM_RING: u64 = 64 << 20;
/// The smallest ring the daemon accepts from a client.
pub const MIN_SHM_RING: u64 = 4 << 10;
/// The payload pool each side of an shm connection offers unless told
/// otherwise: room for a 1 MiB stream with 15 messages in flight.
pub const DEFAULT_SHM_POOL: u64 = 16 << 20;

/// What the daemon accepts and offers on shm connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShmLimits {
    /// The largest ring a client may ask for.
    pub(crate) max_ring: u64,
    /// The daemon's pool for each client, and the largest pool a client
    /// may offer (0: no pools).
    pub(crate) pool: u64,
}

impl Default for ShmLimits {
    fn default() -> Self {
        Self {
            max_ring: MAX_SHM_RING,
            pool: DEFAULT_SHM_POOL,
        }
    }
}

/// The control socket's send buffer: room for a few dozen segment fds in
/// flight (the kernel doubles it, and charges each fd message ~1 KiB).
const FD_SEND_BUFFER: usize = 16 * 1024;
/// How long the rest of an shm setup may take, on either side.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the daemon's unix socket at `path` and sets up rings of
/// `ring_bytes` each way ([`DEFAULT_SHM_RING`] through
/// [`connect`](crate::connect())).
///
/// # Errors
/// - `InvalidInput` when `ring_bytes` is not a power of two in
///   [`MIN_SHM_RING`]`..=`[`MAX_SHM_RING`];
/// - the unix socket's connect error (`NotFound`, `ConnectionRefused`…);
/// - `ConnectionRefused` when the daemon closes the socket instead of
///   acknowledging the rings (it refused them, or does not speak shm);
/// - `TimedOut` when it does not answer within a few seconds.
pub async fn connect_shm(path: &Path, ring_bytes: u64) -> io::Result<Connection> {
    connect_shm_with(path, ring_bytes, DEFAULT_SHM_POOL).await
}

/// As [`connect_shm`], offering a payload pool of `pool_bytes` (a power of
/// two from 64 KiB to 1 GiB, at most the daemon's `limits.shm_pool_bytes`;
/// 0: none). Large payloads then travel through the two pools, each mapped
/// once (see `busd_shm::PoolWriter`).
///
/// # Errors
/// As [`connect_shm`]; `InvalidInput` for a pool size out of range.
pub(crate) async fn connect_shm_with(
    path: &Path,
    ring_bytes: u64,
    pool_bytes: u64,
) -> io::Result<Connection> {
    if !ring_bytes.is_power_of_two() || !(MIN_SHM_RING..=MAX_SHM_RING).contains(&ring_bytes) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "shm ring size {ring_bytes} is not a power of two in {MIN_SHM_RING}..={MAX_SHM_RING}"
            ),
        ));
    }
    // Everything is ready before connecting, so the preface follows the
    // connect at once (the daemon waits only briefly for first bytes).
    let c2d = Ring::create(ring_bytes).map_err(shm_error)?;
    let d2c = Ring::create(ring_bytes).map_err(shm_error)?;
    let c2d_events = Events::new().map_err(shm_error)?;
    let d2c_events = Events::new().map_err(shm_error)?;
    let own_pool =
        match pool_bytes {
            0 => None,
            size => Some(PoolWriter::create("busd-pool", size).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("shm pool: {e}"))
            })?),
        };

    let mut stream = UnixStream::connect(path).await?;
    let peer = PeerInfo::of_unix_socket(&stream, "shm");
    let mut fds = vec![
        c2d.fd(),
        c2d_events.readable.as_fd(),
        c2d_events.writable.as_fd(),
        d2c.fd(),
        d2c_events.readable.as_fd(),
        d2c_events.writable.as_fd(),
    ];
    if let Some((_, pool_fd)) = &own_pool {
        fds.push(pool_fd.as_fd());
    }
    let setup = async {
        preface::send(&mut stream, &preface::encode(ring_bytes, pool_bytes), &fds).await?;
        let mut ack = [0u8; 1];
        let mut daemon_pool = Vec::new();
        match preface::recv(&stream, &mut ack, &mut daemon_pool).await? {
            got if got.truncated || daemon_pool.len() > 1 => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the daemon answered the shm preface with more than its pool",
            )),
            got if got.len == 1 && ack[0] == preface::ACK => Ok((daemon_pool.pop(), true)),
            got if got.len == 1 && ack[0] == preface::ACK_WITHOUT_POOL => {
                Ok((daemon_pool.pop(), false))
            }
            got if got.len == 0 => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the daemon refused the shm rings (see its log) or does not speak shm",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the daemon answered the shm preface with an unexpected byte",
            )),
        }
    };
    let (daemon_pool, own_taken) = timeout(setup).await?;
    let releases = Arc::new(Releases::default());
    let pools = Pools {
        outbound: own_pool
            .filter(|_| own_taken)
            .map(|(writer, _fd)| Arc::new(PoolOut::new(writer))),
        inbound: match daemon_pool {
            Some(fd) => Some(Arc::new(PoolIn::new(
                open_pool(&fd)?,
                Arc::clone(&releases),
            ))),
            None => None,
        },
        releases,
        set_pools: Arc::default(),
    };

    let producer = c2d.producer(c2d_events, Options::default());
    let consumer = d2c.consumer(d2c_events, Options::default());
    debug!(path = %path.display(), ring_bytes, pool_bytes, "shm connection established");
    halves(stream, (consumer, producer, ring_bytes), pools, peer)
}

/// The daemon side, once the first four bytes of `stream` were the shm
/// marker: reads the rest of the preface (`head` holds what was read so
/// far, `fds` what came with it), maps the rings and acknowledges.
///
/// # Errors
/// Why the rings were refused; the caller logs it and drops the connection.
pub(crate) async fn accept(
    mut stream: UnixStream,
    head: &[u8],
    mut fds: Vec<OwnedFd>,
    mut peer: PeerInfo,
    limits: ShmLimits,
) -> io::Result<Connection> {
    let max_ring = limits.max_ring;
    let mut bytes = [0u8; preface::LEN];
    bytes[..head.len()].copy_from_slice(head);
    let mut filled = head.len();
    timeout(async {
        while filled < preface::LEN {
            let got = preface::recv(&stream, &mut bytes[filled..], &mut fds).await?;
            if got.truncated {
                return Err(invalid("more fds than an shm preface carries"));
            }
            if got.len == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            filled += got.len;
        }
        Ok(())
    })
    .await?;
    let (capacity, v2) = preface::decode(&bytes).map_err(invalid)?;
    if !capacity.is_power_of_two() || !(MIN_SHM_RING..=max_ring).contains(&capacity) {
        return Err(invalid(format!(
            "ring size {capacity} is not a power of two in {MIN_SHM_RING}..={max_ring} (limits.shm_ring_bytes)"
        )));
    }
    let client_pool = if v2 {
        let mut size = [0u8; preface::V2_EXTRA];
        read_rest(&stream, &mut size, &mut fds).await?;
        u64::from_be_bytes(size)
    } else {
        0
    };
    let pool_fd = match (client_pool, fds.len()) {
        (0, preface::FD_COUNT) => None,
        (_, preface::MAX_FDS) if client_pool > 0 => fds.pop(),
        _ => {
            return Err(invalid(
                "an shm preface carries six fds, and a seventh for its pool",
            ));
        }
    };
    // A pool over the limit (or any, with pools off) is not taken: the
    // client is told, and sends large payloads another way.
    let pool_fd = pool_fd.filter(|_| client_pool <= limits.pool);
    let Ok::<[OwnedFd; preface::FD_COUNT], _>([c2d, c2d_rd, c2d_wr, d2c, d2c_rd, d2c_wr]) =
        fds.try_into()
    else {
        return Err(invalid("an shm preface carries exactly six fds"));
    };
    if same_file(&c2d, &d2c)? {
        return Err(invalid("the same memfd for both rings"));
    }
    let c2d = open_ring(c2d, capacity)?;
    let d2c = open_ring(d2c, capacity)?;
    let c2d_events = events(c2d_rd, c2d_wr)?;
    let d2c_events = events(d2c_rd, d2c_wr)?;
    let releases = Arc::new(Releases::default());
    let inbound = match &pool_fd {
        Some(fd) => {
            let reader = open_pool(fd)?;
            if reader.size() != client_pool {
                return Err(invalid("a pool whose size disagrees with the preface"));
            }
            Some(Arc::new(PoolIn::new(reader, Arc::clone(&releases))))
        }
        None => None,
    };
    // A pool of its own for a client that reads pooled frames (SHM2, with
    // a pool of its own or not), if the daemon's limits give one.
    let own = match (v2, limits.pool) {
        (true, size) if size > 0 => Some(PoolWriter::create("busd-pool", size).map_err(shm_error)?),
        _ => None,
    };
    let ack = if client_pool > 0 && inbound.is_none() {
        preface::ACK_WITHOUT_POOL
    } else {
        preface::ACK
    };
    match &own {
        Some((_, fd)) => timeout(preface::send(&mut stream, &[ack], &[fd.as_fd()])).await?,
        None => timeout(stream.write_all(&[ack])).await?,
    }
    let pools = Pools {
        outbound: own.map(|(writer, _fd)| Arc::new(PoolOut::new(writer))),
        inbound,
        releases,
        // Never accepted: a client names only its own pool.
        set_pools: Arc::default(),
    };

    let consumer = c2d.consumer(c2d_events, Options::default());
    let producer = d2c.producer(d2c_events, Options::default());
    peer.addr = "shm".to_owned();
    debug!(uid = ?peer.uid, pid = ?peer.pid, capacity, client_pool, "shm connection established");
    halves(stream, (consumer, producer, capacity), pools, peer)
}

/// Reads exactly `buf.len()` more bytes of the preface, keeping the fds
/// that come with them.
async fn read_rest(stream: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    timeout(async {
        let mut filled = 0;
        while filled < buf.len() {
            let got = preface::recv(stream, &mut buf[filled..], fds).await?;
            if got.truncated || fds.len() > preface::MAX_FDS {
                return Err(invalid("more fds than an shm preface carries"));
            }
            if got.len == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            filled += got.len;
        }
        Ok(())
    })
    .await
}

/// Maps a pool the peer sent, read-only, after its checks (seals, size).
fn open_pool(fd: &OwnedFd) -> io::Result<PoolReader> {
    PoolReader::open(fd.as_fd()).map_err(|e| invalid(format!("payload pool refused: {e}")))
}

/// Maps a ring the client sent, after bounding its size: a ring header plus
/// exactly `capacity` bytes.
fn open_ring(fd: OwnedFd, capacity: u64) -> io::Result<Ring> {
    let len = memfd_len(fd.as_fd()).map_err(shm_error)?;
    if len != HEADER_SIZE as u64 + capacity {
        return Err(invalid(format!(
            "a ring memfd of {len} bytes, not a header and {capacity} bytes"
        )));
    }
    let ring = Ring::open(fd).map_err(shm_error)?;
    if ring.capacity() != capacity {
        return Err(invalid("a ring whose header disagrees with the preface"));
    }
    Ok(ring)
}

fn events(readable: OwnedFd, writable: OwnedFd) -> io::Result<Events> {
    Ok(Events {
        readable: EventFd::from_fd(readable).map_err(shm_error)?,
        writable: EventFd::from_fd(writable).map_err(shm_error)?,
    })
}

/// Whether two fds are the same open file (or the same inode).
fn same_file(a: &OwnedFd, b: &OwnedFd) -> io::Result<bool> {
    let (a, b) = (rustix::fs::fstat(a)?, rustix::fs::fstat(b)?);
    Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
}

/// Splits a set-up connection into its halves; each keeps an fd of the
/// socket to notice the peer leaving.
fn halves(
    stream: UnixStream,
    (consumer, producer, capacity): (busd_shm::Consumer, busd_shm::Producer, u64),
    pools: Pools,
    peer: PeerInfo,
) -> io::Result<Connection> {
    let socket = OwnedFd::from(stream.into_std()?);
    // After the setup this socket carries only segment fds, one small
    // message each; its send buffer bounds how many can wait unread in the
    // peer's queue, outside the daemon's queue limits (a stalled reader then
    // holds up the writer, whose queue fills and is cut off as usual).
    rustix::net::sockopt::set_socket_send_buffer_size(&socket, FD_SEND_BUFFER)?;
    let writer_socket = socket.try_clone()?;
    let read = Arc::new(stream::register_socket(socket, Interest::READABLE)?);
    let write = Arc::new(stream::register_socket(
        writer_socket,
        Interest::READABLE | Interest::WRITABLE,
    )?);
    let fds = FdPassing::shm(&read, &write, pools);
    Ok(Connection {
        reader: Box::new(ShmReader::new(consumer, read)?),
        writer: Box::new(ShmWriter::new(producer, capacity, write)?),
        peer,
        fds: Some(fds),
    })
}

async fn timeout<T>(setup: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(SETUP_TIMEOUT, setup)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "shm setup timed out"))?
}

fn invalid(reason: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}
