//! Transports for busd: how bytes get between a client and the daemon.
//!
//! A transport is a [`Listener`] on the daemon side and
//! [`connect`](connect()) on the client side; both yield a [`Connection`], a
//! pair of owned read and write halves plus [`PeerInfo`] about the other
//! end. The router never sees which transport carried a connection, so a new
//! transport plugs in here without touching it.
//!
//! Three transports exist today:
//! - [`TcpListener`]: loopback TCP only (`127.0.0.0/8` or `::1`); the peer's uid
//!   is asked of the kernel over `NETLINK_SOCK_DIAG` (or, failing that, read
//!   from `/proc/net/tcp`).
//! - [`UnixListener`]: a unix socket (mode 0660) guarded by a lock file, so a
//!   second daemon is refused and a stale socket file is replaced safely; a
//!   directory others could tamper with, a symbolic link on the path, or a
//!   socket another program serves is refused ([`SocketPathError`]); the
//!   peer's uid, gid and pid come from `SO_PEERCRED`.
//! - shm: two shared-memory rings (`busd-shm`), one each way, set up over the
//!   daemon's unix socket, which serves both kinds of client; the peer is
//!   identified by that socket, as for unix. See [`connect_shm`].
//!
//! Addresses are written as an [`Endpoint`]: `tcp://127.0.0.1:4223`,
//! `tcp://[::1]:4223`, `unix:///run/user/1000/busd/busd.sock` or
//! `shm:///run/user/1000/busd/busd.sock`.
//!
//! Framing is `busd-proto`'s: transports move bytes, and [`FrameReader`]
//! only drives its codec over a connection's reader.
//!
//! ```
//! use busd_transport::{Endpoint, Listener, TcpListener, connect};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut listener = TcpListener::bind("127.0.0.1:0".parse()?).await?;
//! let endpoint: Endpoint = listener.endpoint();
//! let mut client = connect(&endpoint).await?;
//! let mut server = listener.accept().await?;
//! client.writer.write_all(b"ping").await?;
//! let mut buf = [0; 4];
//! server.reader.read_exact(&mut buf).await?;
//! assert_eq!(&buf, b"ping");
//! # Ok(())
//! # }
//! ```

// `deny`, not `forbid`: a forbid cannot be allowed anywhere, and this crate
// has one audited exception, the reactor registration of its shm fds
// (`register` in shm/stream/liveness.rs, under `#[allow(unsafe_code)]`): tokio
// offers no safe way to register a raw fd. `.ci/check-unsafe` fails on any
// other `unsafe` or `allow(unsafe_code)` in this crate.
#![deny(unsafe_code)]

mod conn;
mod connect;
mod endpoint;
mod error;
mod fd_passing;
mod frame_reader;
mod pools;
mod proc_net;
mod set_pools;
mod shm;
mod sock_diag;
mod socket_dir;
mod socket_file;
mod tcp;
mod unix;
mod unix_fds;

pub use busd_shm::PoolSlot;
pub use busd_shm::{MAX_POOL as MAX_SHM_POOL, MIN_POOL as MIN_SHM_POOL};
pub use conn::{BoxReader, BoxWriter, Connection, Listener, PeerInfo};
pub use connect::{ConnectOptions, connect, connect_with};
pub use endpoint::Endpoint;
pub use error::{EndpointError, SocketPathError, TransportError};
pub use fd_passing::{
    FdPassing, FdReceiver, FdSender, Mapping, SegmentBuffer, frame_codec, map_segment, seal_payload,
};
pub use frame_reader::FrameReader;
pub use pools::{PoolOut, Releases, body_of};
pub use set_pools::SetPoolsIn;
pub use shm::{DEFAULT_SHM_POOL, DEFAULT_SHM_RING, MAX_SHM_RING, MIN_SHM_RING, connect_shm};
pub use tcp::{TcpListener, is_loopback};
pub use unix::UnixListener;
