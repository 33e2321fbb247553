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

use busd_shm::{EventFd, Events, HEADER_SIZE, Options, Ring, memfd_len};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tracing::debug;

use crate::conn::{Connection, PeerInfo};
use crate::error::shm_error;
use crate::fd_passing::FdPassing;
use stream::{ShmReader, ShmWriter};

/// The ring size (each way) a client asks for unless told otherwise.
pub const DEFAULT_SHM_RING: u64 = 4 << 20;
/// The largest ring (each way) the daemon accepts from a client.
pub const MAX_SHM_RING: u64 = 64 << 20;
/// The smallest ring the daemon accepts from a client.
pub const MIN_SHM_RING: u64 = 4 << 10;

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

    let mut stream = UnixStream::connect(path).await?;
    let peer = PeerInfo::of_unix_socket(&stream, "shm");
    let fds = [
        c2d.fd(),
        c2d_events.readable.as_fd(),
        c2d_events.writable.as_fd(),
        d2c.fd(),
        d2c_events.readable.as_fd(),
        d2c_events.writable.as_fd(),
    ];
    let setup = async {
        preface::send(&mut stream, &preface::encode(ring_bytes), &fds).await?;
        let mut ack = [0u8; 1];
        match stream.read(&mut ack).await? {
            1 if ack[0] == preface::ACK => Ok(()),
            0 => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the daemon refused the shm rings (see its log) or does not speak shm",
            )),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the daemon answered the shm preface with an unexpected byte",
            )),
        }
    };
    timeout(setup).await?;

    let producer = c2d.producer(c2d_events, Options::default());
    let consumer = d2c.consumer(d2c_events, Options::default());
    debug!(path = %path.display(), ring_bytes, "shm connection established");
    halves(stream, consumer, producer, ring_bytes, peer)
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
    max_ring: u64,
) -> io::Result<Connection> {
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
    let capacity = preface::decode(&bytes).map_err(invalid)?;
    if !capacity.is_power_of_two() || !(MIN_SHM_RING..=max_ring).contains(&capacity) {
        return Err(invalid(format!(
            "ring size {capacity} is not a power of two in {MIN_SHM_RING}..={max_ring} (limits.shm_ring_bytes)"
        )));
    }
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
    timeout(stream.write_all(&[preface::ACK])).await?;

    let consumer = c2d.consumer(c2d_events, Options::default());
    let producer = d2c.producer(d2c_events, Options::default());
    peer.addr = "shm".to_owned();
    debug!(uid = ?peer.uid, pid = ?peer.pid, capacity, "shm connection established");
    halves(stream, consumer, producer, capacity, peer)
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
    consumer: busd_shm::Consumer,
    producer: busd_shm::Producer,
    capacity: u64,
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
    let fds = FdPassing::shm(&read, &write);
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
