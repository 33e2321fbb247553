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
//! Only shm connections pass fds, but a [`Connection`](crate::Connection)
//! carries its [`FdPassing`], so this module lies below the transports and
//! imports none of them; shm makes the socket registrations it works over.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use busd_proto::{CodecError, FrameCodec, SegmentFd, SegmentSource};
use busd_shm::{Segment, SegmentMut};
use bytes::Bytes;
use rustix::io::Errno;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::unix::AsyncFd;

use crate::error::shm_error;

/// One registration of the unix socket an shm connection's rings were set
/// up over. Each half of a connection has its own (a dup of the socket, so
/// each gets its own wake-ups), shared with the fd passing of its direction.
pub(crate) type SharedSocket = Arc<AsyncFd<OwnedFd>>;

/// The byte each fd travels with.
const MARKER: u8 = b'S';

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

/// Both directions of fd passing on one shm connection.
#[derive(Debug)]
pub struct FdPassing {
    /// Segments from the peer; give it to the frame decoder
    /// ([`FrameCodec::with_segments`](busd_proto::FrameCodec::with_segments)).
    pub receiver: FdReceiver,
    /// Segments to the peer; the writer sends each one before the frame
    /// that announces it.
    pub sender: FdSender,
}

impl FdPassing {
    /// Fd passing over the registrations of the read half (`read`) and of
    /// the write half (`write`, which must include writability): no more fds
    /// per connection than the halves hold anyway.
    pub(crate) fn new(read: &SharedSocket, write: &SharedSocket) -> Self {
        Self {
            receiver: FdReceiver {
                socket: Arc::clone(read),
                mapping: Mapping::Mapped,
            },
            sender: FdSender {
                socket: Arc::clone(write),
            },
        }
    }
}

/// The frame decoder for a connection with `fds` (limit `max_frame`), and
/// the sender its writer passes segments with: a decoder that takes
/// segments and a sender for an shm connection, a plain decoder and no
/// sender for the others.
pub fn frame_codec(
    fds: Option<FdPassing>,
    max_frame: u32,
    mapping: Mapping,
) -> (FrameCodec, Option<FdSender>) {
    match fds {
        Some(mut fds) => {
            fds.receiver.mapping = mapping;
            (
                FrameCodec::with_segments(max_frame, Box::new(fds.receiver)),
                Some(fds.sender),
            )
        }
        None => (FrameCodec::new(max_frame), None),
    }
}

/// Takes the segments the peer passed, one per segment frame.
#[derive(Debug)]
pub struct FdReceiver {
    socket: SharedSocket,
    mapping: Mapping,
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

impl FdReceiver {
    /// The next fd, if one is queued (never waits: see the module docs).
    fn try_recv(&self) -> io::Result<Option<OwnedFd>> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
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
        let mut fds = Vec::with_capacity(1);
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received) = message {
                fds.extend(received);
            }
        }
        if msg.bytes == 0 {
            return Ok(None);
        }
        if truncated || byte[0] != MARKER || fds.len() != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the peer's control socket carried something other than one fd per marker",
            ));
        }
        Ok(fds.pop())
    }
}

impl SegmentSource for FdReceiver {
    fn take(&mut self, len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
        let fd = self
            .try_recv()
            .map_err(|e| CodecError::Malformed(format!("cannot take a segment's fd: {e}")))?
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
}

/// Passes segments to the peer.
#[derive(Debug)]
pub struct FdSender {
    socket: SharedSocket,
}

impl FdSender {
    /// Passes `fd` if the socket has room now; `Ok(false)` when it has not
    /// (the peer has not yet taken earlier ones: write the frames they
    /// belong to, then [`send`](Self::send)).
    ///
    /// # Errors
    /// `BrokenPipe` once the peer is gone, or the error of `sendmsg`.
    pub fn try_send(&self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        match send_one(self.socket.get_ref(), fd) {
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
        loop {
            let mut guard = self.socket.writable().await?;
            match guard.try_io(|socket| send_one(socket.get_ref(), fd)) {
                Ok(result) => return result,
                Err(_would_block) => {}
            }
        }
    }
}

/// One marker byte with `fd` attached, without blocking.
fn send_one(socket: &OwnedFd, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for one fd in the control buffer"));
    }
    let iov = [IoSlice::new(&[MARKER])];
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
