//! Payload segments passed beside an shm connection's byte stream: each
//! sealed memfd travels on the unix socket the rings were set up over, as
//! one marker byte with the fd attached (`SCM_RIGHTS`).
//!
//! The sender passes a segment's fd *before* it writes the frame that
//! announces it into the ring, so a receiver that decodes the frame finds the
//! fd already queued on its socket and takes it without waiting; fds and
//! segment frames pair up in order. Exactly one fd per marker byte is
//! accepted: anything else is a protocol violation, as is a segment that is
//! not sealed against writing, shrinking and growing, or whose length is not
//! the one its frame announced.
//!
//! The fds attached to a message (see [`busd_proto::Fds`]) travel the same
//! way on shm, as one batch with its own marker byte, passed after the
//! frame's segment and before the frame; the decoder takes exactly the
//! count the frame announced. On a plain unix connection they ride on the
//! frame's first bytes instead (`unix_fds`); over tcp none pass.
//!
//! A [`Connection`](crate::Connection) carries its [`FdPassing`], so this
//! module lies below the transports and imports none of them; shm and unix
//! make the sockets it works over.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use busd_proto::{
    CodecError, FrameCodec, Lease, MAX_FDS_PER_FRAME, PoolFd, SegmentFd, SegmentSource,
    split_pool_offset,
};
use busd_shm::{PoolReader, Segment, SegmentMut};
use bytes::Bytes;
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::unix::AsyncFd;
use tokio::net::UnixStream;

use crate::error::shm_error;
use crate::pools::{PoolIn, PoolOut, Releases};
use crate::set_pools::SetPoolsIn;
use crate::unix_fds::{self, SharedInbox, UnixFdSource};

/// The payload pools an shm connection was set up with (none, one way or
/// both), and where the peer's blocks wait to be handed back.
#[derive(Debug, Default)]
pub(crate) struct Pools {
    pub(crate) outbound: Option<Arc<PoolOut>>,
    pub(crate) inbound: Option<Arc<PoolIn>>,
    pub(crate) releases: Arc<Releases>,
    /// The daemon's set pools, as a client maps them (a daemon never
    /// accepts any).
    pub(crate) set_pools: Arc<SetPoolsIn>,
}

/// One registration of the unix socket an shm connection's rings were set
/// up over. Each half of a connection has its own (a dup of the socket, so
/// each gets its own wake-ups), shared with the fd passing of its direction.
pub(crate) type SharedSocket = Arc<AsyncFd<OwnedFd>>;

/// The byte each segment's fd travels with.
const MARKER: u8 = b'S';
/// The byte a message's attached fds travel with, all in one batch.
const ATTACHED_MARKER: u8 = b'F';
/// The byte a set pool's fd travels with (see `set_pools`).
const POOL_MARKER: u8 = b'P';

/// Writes `payload` into a new memfd and seals it (`F_SEAL_WRITE`,
/// `F_SEAL_SHRINK`, `F_SEAL_GROW`), ready to be sent as a segment: the one
/// copy a segment costs its sender.
///
/// # Errors
/// `InvalidInput` for an empty payload; the error of `memfd_create`,
/// `pwrite` or the seals.
pub fn seal_payload(payload: &[u8]) -> io::Result<SegmentFd> {
    let fd = Segment::create("busd-payload", payload).map_err(shm_error)?;
    Ok(SegmentFd::new(fd, payload.len() as u64))
}

/// A payload built in place in a fresh memfd (no copy into it), to be
/// sealed and sent as a segment.
#[derive(Debug)]
pub struct SegmentBuffer(SegmentMut);

impl SegmentBuffer {
    /// A zeroed buffer of `len` bytes.
    ///
    /// # Errors
    /// `InvalidInput` for `len == 0`; the error of `memfd_create`,
    /// `ftruncate`, the seals or `mmap` (out of fds or memory).
    pub fn new(len: usize) -> io::Result<Self> {
        SegmentMut::new("busd-payload", len)
            .map(Self)
            .map_err(shm_error)
    }

    /// The bytes to write the payload into.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.0.as_mut_slice()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        self.0.as_slice()
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`: empty buffers are refused.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Seals the payload against any change: its fd, to pass on (or to
    /// [`map_segment`] for a connection that cannot pass fds).
    ///
    /// # Errors
    /// The error of sealing.
    pub fn seal(self) -> io::Result<SegmentFd> {
        let len = self.0.len() as u64;
        let fd = self.0.seal().map_err(shm_error)?;
        Ok(SegmentFd::new(fd, len))
    }
}

/// Both directions of fd passing on one shm or unix connection.
#[derive(Debug)]
pub struct FdPassing {
    /// Segments and attached fds from the peer; give it to the frame
    /// decoder (through [`frame_codec`]).
    pub receiver: FdReceiver,
    /// Segments and attached fds to the peer; the writer sends them with
    /// (or before) the frame that announces them.
    pub sender: FdSender,
}

impl FdPassing {
    /// Fd passing over the registrations of an shm connection's read half
    /// (`read`) and write half (`write`, which must include writability):
    /// no more fds per connection than the halves hold anyway.
    /// The connection's payload pools (`pools`), if it has them, serve
    /// pooled frames.
    pub(crate) fn shm(read: &SharedSocket, write: &SharedSocket, pools: Pools) -> Self {
        let accepting = Arc::new(AtomicBool::new(false));
        Self {
            receiver: FdReceiver(Receiving::Shm(ShmFdReceiver {
                socket: Arc::clone(read),
                mapping: Mapping::Mapped,
                accepting: Arc::clone(&accepting),
                pool: pools.inbound,
                set_pools: Arc::clone(&pools.set_pools),
                releases: Arc::clone(&pools.releases),
            })),
            sender: FdSender {
                sending: Sending::Shm {
                    socket: Arc::clone(write),
                    pool: pools.outbound,
                    releases: pools.releases,
                    set_pools: pools.set_pools,
                },
                accepting,
            },
        }
    }

    /// Fd passing on a unix connection's `stream`, whose reader files the
    /// fds it receives in `inbox`.
    pub(crate) fn unix(stream: Arc<UnixStream>, inbox: Arc<SharedInbox>) -> Self {
        let accepting = Arc::clone(&inbox.accepting);
        Self {
            receiver: FdReceiver(Receiving::Unix(UnixFdSource(inbox))),
            sender: FdSender {
                sending: Sending::Unix(stream),
                accepting,
            },
        }
    }
}

/// The frame decoder for a connection with `fds` (limit `max_frame`), and
/// the sender its writer passes fds with: a decoder that takes what the
/// peer passes and a sender for shm and unix connections, a plain decoder
/// (which refuses fds) and no sender for tcp.
pub fn frame_codec(
    fds: Option<FdPassing>,
    max_frame: u32,
    mapping: Mapping,
) -> (FrameCodec, Option<FdSender>) {
    match fds {
        Some(FdPassing { receiver, sender }) => {
            let source: Box<dyn SegmentSource> = match receiver.0 {
                Receiving::Shm(mut shm) => {
                    shm.mapping = mapping;
                    Box::new(shm)
                }
                Receiving::Unix(unix) => Box::new(unix),
            };
            (FrameCodec::with_segments(max_frame, source), Some(sender))
        }
        None => (FrameCodec::new(max_frame), None),
    }
}

/// Takes what the peer passes beside or with the stream.
#[derive(Debug)]
pub struct FdReceiver(Receiving);

#[derive(Debug)]
enum Receiving {
    Shm(ShmFdReceiver),
    Unix(UnixFdSource),
}

/// Takes the segments the peer passed, one per segment frame, and the
/// attached fds, one batch per frame announcing them.
#[derive(Debug)]
struct ShmFdReceiver {
    socket: SharedSocket,
    mapping: Mapping,
    /// The peer's payload pool, if the connection has one.
    pool: Option<Arc<PoolIn>>,
    /// The set pools the daemon passed (a client's side only).
    set_pools: Arc<SetPoolsIn>,
    /// Where blocks of those pools wait to be handed back.
    releases: Arc<Releases>,
    /// Whether attached fds are taken (see [`FdSender::accept`]); segments
    /// always are.
    accepting: Arc<AtomicBool>,
}

/// Whether a decoder maps the segments it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// A decoded frame's payload is a view of its segment (what a client
    /// hands its user).
    Mapped,
    /// The segment is checked (sealed memfd, announced length) but not
    /// mapped: the payload is empty and [`map_segment`] maps it on demand.
    /// For the daemon, which passes most segments on as fds and maps one
    /// only for a receiver that cannot take fds.
    Unmapped,
}

/// Maps a segment read-only: its bytes, as a `Bytes` that unmaps on drop.
///
/// # Errors
/// The error of the seal check or of `mmap`.
pub fn map_segment(segment: &SegmentFd) -> io::Result<Bytes> {
    let view = Segment::open(segment.as_fd()).map_err(shm_error)?;
    Ok(Bytes::from_owner(view))
}

impl ShmFdReceiver {
    /// The next batch of fds, if one is queued (never waits: see the module
    /// docs), which must be `count` fds with `marker`.
    fn try_recv(&self, marker: u8, count: usize) -> io::Result<Option<Vec<OwnedFd>>> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let msg = loop {
            match rustix::net::recvmsg(
                self.socket.get_ref(),
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
            ) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Ok(None),
                Err(errno) => return Err(errno.into()),
            }
        };
        let truncated = msg.flags.contains(ReturnFlags::CTRUNC);
        let mut fds = Vec::with_capacity(count);
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if msg.bytes == 0 {
            return Ok(None);
        }
        if truncated || byte[0] != marker || fds.len() != count {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the peer's control socket carried {} fds with marker {:?} where {count} with {:?} were due",
                    fds.len(),
                    char::from(byte[0]),
                    char::from(marker)
                ),
            ));
        }
        Ok(Some(fds))
    }
}

impl ShmFdReceiver {
    /// Set pool `id`: mapped already, or passed right before this frame
    /// (see `set_pools`).
    fn set_pool(&self, id: u32) -> Result<Arc<PoolIn>, CodecError> {
        if let Some(pool) = self.set_pools.get(id) {
            return Ok(pool);
        }
        if !self.set_pools.accepting() {
            return Err(CodecError::Malformed(format!(
                "a payload in set pool {id} on a connection that takes none"
            )));
        }
        let fd = self
            .try_recv(POOL_MARKER, 1)
            .map_err(|e| CodecError::Malformed(format!("cannot take set pool {id}'s fd: {e}")))?
            .and_then(|mut fds| fds.pop())
            .ok_or_else(|| {
                CodecError::Malformed(format!("a payload in set pool {id}, which never came"))
            })?;
        let reader = PoolReader::open(fd.as_fd())
            .map_err(|e| CodecError::Malformed(format!("set pool {id} refused: {e}")))?;
        let pool = Arc::new(PoolIn::tagged(reader, Arc::clone(&self.releases), id));
        self.set_pools.insert(id, Arc::clone(&pool));
        Ok(pool)
    }
}

impl SegmentSource for ShmFdReceiver {
    fn take(&mut self, len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
        let fd = self
            .try_recv(MARKER, 1)
            .map_err(|e| CodecError::Malformed(format!("cannot take a segment's fd: {e}")))?
            .and_then(|mut fds| fds.pop())
            .ok_or_else(|| CodecError::Malformed("a segment frame without its fd".into()))?;
        let refused = |e| CodecError::Malformed(format!("segment refused: {e}"));
        let (payload, actual) = match self.mapping {
            Mapping::Mapped => {
                let segment = Segment::open(fd.as_fd()).map_err(refused)?;
                let actual = segment.len() as u64;
                (Bytes::from_owner(segment), actual)
            }
            Mapping::Unmapped => (Bytes::new(), Segment::check(fd.as_fd()).map_err(refused)?),
        };
        if actual != len {
            return Err(CodecError::Malformed(format!(
                "a segment of {actual} bytes announced as {len}"
            )));
        }
        Ok((payload, SegmentFd::new(fd, len)))
    }

    fn take_fds(&mut self, _frame: Range<u64>, count: usize) -> Result<Vec<OwnedFd>, CodecError> {
        if count == 0 {
            // Stray fds wait in the socket, not in this process, and are
            // refused when the next segment or batch is taken.
            return Ok(Vec::new());
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Err(unix_fds::not_agreed(count));
        }
        self.try_recv(ATTACHED_MARKER, count)
            .map_err(|e| CodecError::Malformed(format!("cannot take a frame's fds: {e}")))?
            .ok_or_else(|| {
                CodecError::Malformed(format!("a frame announced {count} fds and none came"))
            })
    }

    fn take_pooled(&mut self, offset: u64, len: u64) -> Result<(Bytes, Option<Lease>), CodecError> {
        let mapped = self.mapping == Mapping::Mapped;
        let (id, within) = split_pool_offset(offset);
        if id != 0 {
            return self.set_pool(id)?.take(within, len, mapped);
        }
        let Some(pool) = &self.pool else {
            return Err(CodecError::Malformed(
                "a pooled frame on a connection without a payload pool".into(),
            ));
        };
        pool.take(within, len, mapped)
    }

    /// Never raised: strays wait in the socket (see `take_fds`), so a
    /// frame announcing none needs no call.
    fn fds_waiting(&self) -> Option<Arc<AtomicBool>> {
        Some(Arc::new(AtomicBool::new(false)))
    }
}

/// Passes segments (shm) and attached fds (shm and unix) to the peer.
#[derive(Debug)]
pub struct FdSender {
    sending: Sending,
    /// Shared with the connection's [`FdReceiver`]: see [`FdSender::accept`].
    accepting: Arc<AtomicBool>,
}

#[derive(Debug)]
enum Sending {
    Shm {
        socket: SharedSocket,
        /// This side's payload pool, if the connection has one.
        pool: Option<Arc<PoolOut>>,
        /// Blocks of the peer's pool to hand back.
        releases: Arc<Releases>,
        /// The daemon's set pools this side mapped (a client's only).
        set_pools: Arc<SetPoolsIn>,
    },
    Unix(Arc<UnixStream>),
}

impl FdSender {
    /// Whether payload segments can be passed (shm only).
    pub fn passes_segments(&self) -> bool {
        matches!(self.sending, Sending::Shm { .. })
    }

    /// This side's payload pool, if the connection has one (shm set up
    /// with pools): large payloads go in it as pooled frames.
    pub fn pool(&self) -> Option<&Arc<PoolOut>> {
        match &self.sending {
            Sending::Shm { pool, .. } => pool.as_ref(),
            Sending::Unix(_) => None,
        }
    }

    /// The blocks of the peer's pool this side is done with: the writer
    /// names them in a `Release` frame (shm only).
    pub fn releases(&self) -> Option<&Arc<Releases>> {
        match &self.sending {
            Sending::Shm { releases, .. } => Some(releases),
            Sending::Unix(_) => None,
        }
    }

    /// The daemon's set pools this client maps (shm only): accept them
    /// once asked for, forget one on `PoolGone`.
    pub fn set_pools(&self) -> Option<&Arc<SetPoolsIn>> {
        match &self.sending {
            Sending::Shm { set_pools, .. } => Some(set_pools),
            Sending::Unix(_) => None,
        }
    }

    /// From now on the connection takes the fds its peer attaches to
    /// frames; call it once both ends have agreed to pass fds (the
    /// handshake), before the peer may send any. Until then a frame
    /// announcing fds is refused as malformed, and a unix connection reads
    /// with plain `read` (cheaper than `recvmsg`, and the kernel closes any
    /// fds passed to it then). Segments pass on shm either way.
    pub fn accept(&self) {
        self.accepting.store(true, Ordering::Release);
    }

    /// Passes the fds attached to a frame whose encoded head is `head`:
    /// on shm as one batch beside the stream, before the frame (`Ok(0)`);
    /// on unix with the first bytes of `head`, sent here (`Ok(n)`: the
    /// caller writes `head[n..]` on). Write every frame before this one
    /// first: the peer takes fds as it reads their frames.
    ///
    /// # Errors
    /// `BrokenPipe` once the peer is gone, or the error of `sendmsg`.
    pub async fn send_attached(&self, fds: &[BorrowedFd<'_>], head: &[u8]) -> io::Result<usize> {
        match &self.sending {
            Sending::Shm { socket, .. } => {
                send_marked(socket, ATTACHED_MARKER, fds).await?;
                Ok(0)
            }
            Sending::Unix(stream) => unix_fds::send_with_fds(stream, head, fds).await,
        }
    }

    /// Passes `fd` if the socket has room now; `Ok(false)` when it has not
    /// (the peer has not yet taken earlier ones: write the frames they
    /// belong to, then [`send`](Self::send)).
    ///
    /// # Errors
    /// `BrokenPipe` once the peer is gone, or the error of `sendmsg`.
    pub fn try_send(&self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        let socket = self.segment_socket()?;
        match send_one(socket.get_ref(), MARKER, &[fd]) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Passes `fd`, waiting for room on the socket.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub async fn send(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        send_marked(self.segment_socket()?, MARKER, &[fd]).await
    }

    /// Passes set pool `pool`'s fd if the socket has room now, as
    /// [`try_send`](Self::try_send) passes a segment's.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub fn try_pass_pool(&self, pool: &PoolFd) -> io::Result<bool> {
        let socket = self.segment_socket()?;
        match send_one(socket.get_ref(), POOL_MARKER, &[pool.as_fd()]) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Passes set pool `pool`'s fd, waiting for room on the socket.
    ///
    /// # Errors
    /// As [`try_send`](Self::try_send).
    pub async fn pass_pool(&self, pool: &PoolFd) -> io::Result<()> {
        send_marked(self.segment_socket()?, POOL_MARKER, &[pool.as_fd()]).await
    }

    /// The socket segments pass on: shm connections only.
    fn segment_socket(&self) -> io::Result<&SharedSocket> {
        match &self.sending {
            Sending::Shm { socket, .. } => Ok(socket),
            Sending::Unix(_) => Err(io::Error::other(
                "payload segments pass only over shm connections",
            )),
        }
    }
}

/// One `marker` byte with `fds` attached, waiting for room on the socket.
async fn send_marked(socket: &SharedSocket, marker: u8, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    loop {
        let mut guard = socket.writable().await?;
        match guard.try_io(|socket| send_one(socket.get_ref(), marker, fds)) {
            Ok(result) => return result,
            Err(_would_block) => {}
        }
    }
}

/// One `marker` byte with `fds` attached, without blocking.
fn send_one(socket: &OwnedFd, marker: u8, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other(format!(
            "{} fds do not fit one message",
            fds.len()
        )));
    }
    let iov = [IoSlice::new(std::slice::from_ref(&marker))];
    loop {
        match rustix::net::sendmsg(
            socket,
            &iov,
            &mut control,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        ) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}
