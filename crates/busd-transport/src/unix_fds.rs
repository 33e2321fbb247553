//! A unix connection's halves, reading and writing through `recvmsg` and
//! `sendmsg` so that fds can ride on the byte stream (`SCM_RIGHTS`).
//!
//! A sender attaches a frame's fds to the first bytes of that frame (one
//! `sendmsg`; see [`send_with_fds`]). The kernel hands them to the reader
//! with the read (`recvmsg`) that takes the first of those bytes, and never
//! with a later frame's: a read stops after the first bytes that carried
//! fds. So the reader files each batch of fds under the stream bytes it came
//! with ([`Inbox`]), and the decoder, which knows where each frame lies in
//! the stream, takes a frame's batch only from a read that held its first
//! byte, and only as many as the frame announced. Any other fd (one that
//! came mid-frame, with a frame announcing none, in a batch of another
//! size, or too far ahead of its frame) is a protocol violation and is
//! closed with the inbox.
//!
//! A read's control buffer holds as many fds as the kernel passes in one
//! message (253), so a truncated batch (`MSG_CTRUNC`) means a process out
//! of fds, not a peer sending too many: that too ends the connection.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use busd_proto::{CodecError, MAX_FDS_PER_FRAME, SegmentFd, SegmentSource};
use bytes::Bytes;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, Shutdown,
};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixStream;

/// Batches of fds that may wait for their frames: the frame being read
/// and the next, which may start in the same read (see [`Inbox::arrived`]).
const MAX_BATCHES_AHEAD: usize = 2;

/// The least of a read's buffer a read makes ready (zeroes) for `recvmsg`,
/// which takes initialized memory only: a read that fills what was made
/// ready doubles it, up to [`MAX_READY`], and a read that does not sets it
/// to twice what it took. A reply read into an 8 KiB buffer then costs the
/// zeroing of 4 KiB, not all 8 (or 64, after a burst), and a busy
/// connection's reads still take all the room they have.
const MIN_READY: usize = 4 * 1024;
/// The most a read makes ready at once.
const MAX_READY: usize = 256 * 1024;

/// The fds a unix connection's reader received, each batch filed under
/// the stream bytes of the read that brought it.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    batches: VecDeque<(Range<u64>, Vec<OwnedFd>)>,
}

/// The inbox, shared by the reader (which files fds) and the decoder
/// (which takes them); both run in the task that reads the connection.
#[derive(Debug, Default)]
pub(crate) struct SharedInbox {
    /// Whether a batch waits in `inbox`. Without one (nearly always: fds
    /// are rare) a read and a frame without fds pass without locking it,
    /// and the decoder does not ask about such a frame at all (it holds
    /// this flag too). Set and cleared only under the lock; the reader and
    /// the decoder run in one task, so the orderings only have to carry
    /// what a task moving between threads carries anyway.
    waiting: Arc<AtomicBool>,
    inbox: Mutex<Inbox>,
    /// Whether the connection takes fds: set once both ends agreed on it
    /// in the handshake (see [`FdSender::accept`](crate::FdSender::accept)).
    /// Until then the reader reads with plain `read`, which costs less
    /// than `recvmsg` and makes the kernel close whatever fds a peer
    /// passes anyway (so none reach this process), and a frame announcing
    /// fds is refused.
    pub(crate) accepting: Arc<AtomicBool>,
}

impl SharedInbox {
    /// Files `fds` that came with the read of stream bytes `bytes`.
    fn arrived(&self, bytes: Range<u64>, fds: Vec<OwnedFd>, truncated: bool) -> io::Result<()> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let filed = inbox.arrived(bytes, fds, truncated);
        self.waiting
            .store(!inbox.batches.is_empty(), Ordering::Release);
        filed
    }

    /// The `count` fds of the frame at `frame` (see [`Inbox::take`]).
    fn take(&self, frame: Range<u64>, count: usize) -> Result<Vec<OwnedFd>, CodecError> {
        if count > 0 && !self.accepting.load(Ordering::Acquire) {
            return Err(not_agreed(count));
        }
        if count == 0 && !self.waiting.load(Ordering::Acquire) {
            // What `Inbox::take` finds for a frame without fds when no
            // batch waits: nothing to take and nothing stray.
            return Ok(Vec::new());
        }
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = inbox.take(frame, count);
        self.waiting
            .store(!inbox.batches.is_empty(), Ordering::Release);
        taken
    }
}

impl Inbox {
    /// Files `fds` that came with the read of stream bytes `bytes`.
    ///
    /// Every whole frame read is decoded before the next read, so what
    /// waits is at most the batch of the frame being read and that of the
    /// next frame, when a read completes the one and starts the other.
    fn arrived(&mut self, bytes: Range<u64>, fds: Vec<OwnedFd>, truncated: bool) -> io::Result<()> {
        if truncated {
            return Err(invalid(
                "fds were cut off in transit (over 253 in one message, or this process is out of fds)",
            ));
        }
        if fds.is_empty() {
            return Ok(());
        }
        if self.batches.len() >= MAX_BATCHES_AHEAD {
            return Err(invalid("fds came ahead of any frame announcing them"));
        }
        self.batches.push_back((bytes, fds));
        Ok(())
    }

    /// The `count` fds of the frame at `frame` (see the module docs).
    fn take(&mut self, frame: Range<u64>, count: usize) -> Result<Vec<OwnedFd>, CodecError> {
        let stray = || CodecError::Malformed("fds came that no frame announced".into());
        if self
            .batches
            .front()
            .is_some_and(|(b, _)| b.end <= frame.start)
        {
            return Err(stray());
        }
        let mut taken = Vec::new();
        if count > 0 {
            match self.batches.front() {
                Some((bytes, _)) if bytes.start <= frame.start => {}
                _ => {
                    return Err(CodecError::Malformed(format!(
                        "a frame announced {count} fds and none came with it"
                    )));
                }
            }
            if let Some((_, fds)) = self.batches.pop_front() {
                taken = fds;
            }
            if taken.len() != count {
                return Err(CodecError::Malformed(format!(
                    "{} fds came with a frame announcing {count}",
                    taken.len()
                )));
            }
        }
        // A batch whose read ended within this frame is no later frame's.
        if self
            .batches
            .front()
            .is_some_and(|(b, _)| b.end <= frame.end)
        {
            return Err(stray());
        }
        Ok(taken)
    }
}

/// The decoder's side of the inbox: the fds of each frame. Segments pass
/// over shm only.
#[derive(Debug)]
pub(crate) struct UnixFdSource(pub(crate) Arc<SharedInbox>);

impl SegmentSource for UnixFdSource {
    fn take(&mut self, _len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
        Err(CodecError::Malformed(
            "segment frames travel only over shm connections".into(),
        ))
    }

    fn take_fds(&mut self, frame: Range<u64>, count: usize) -> Result<Vec<OwnedFd>, CodecError> {
        self.0.take(frame, count)
    }

    fn fds_waiting(&self) -> Option<Arc<AtomicBool>> {
        Some(Arc::clone(&self.0.waiting))
    }
}

/// The read half: `recvmsg`, filing the fds that come into the inbox.
#[derive(Debug)]
pub(crate) struct UnixReader {
    stream: Arc<UnixStream>,
    inbox: Arc<SharedInbox>,
    /// Where the next byte read lies in the stream.
    read: u64,
    /// How much of the caller's buffer the next read makes ready (see
    /// [`MIN_READY`]): `ReadBuf` hands its unfilled part uninitialized
    /// on every call, and zeroing all of it (8 to 64 KiB) for each read
    /// of a few hundred bytes was most of what a read cost.
    ready: usize,
}

impl UnixReader {
    /// A reader whose first byte is byte `at` of the stream (bytes before
    /// it were read by whoever handed the socket on).
    pub(crate) fn new(stream: Arc<UnixStream>, inbox: Arc<SharedInbox>, at: u64) -> Self {
        Self {
            stream,
            inbox,
            read: at,
            ready: MIN_READY,
        }
    }
}

impl UnixReader {
    /// A plain `read` into `buf`'s unfilled part, for a connection that
    /// does not take fds: no zeroing and no control buffer. A read that
    /// comes up short clears the socket's readiness, as in `poll_read`.
    fn poll_read_plain(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            let asked = buf.remaining();
            let stream = &self.stream;
            let mut drained = None;
            let read = stream.try_io(Interest::READABLE, || {
                let len = stream.try_read_buf(buf)?;
                if len > 0 && len < asked {
                    drained = Some(len);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(len)
            });
            let len = match (read, drained) {
                (Ok(len), _) | (Err(_), Some(len)) => len,
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Poll::Ready(Err(e)),
            };
            self.read += len as u64;
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncRead for UnixReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.inbox.accepting.load(Ordering::Acquire) {
            return this.poll_read_plain(cx, buf);
        }
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            let asked = buf.remaining().min(this.ready);
            let dst = buf.initialize_unfilled_to(asked);
            let stream = &this.stream;
            let mut drained = None;
            let read = stream.try_io(Interest::READABLE, || {
                let got = recv_with_fds(stream, dst)?;
                // A read that took less than it asked for emptied the
                // socket: its readiness is cleared now, as tokio's own
                // streams do, which saves the call that would only say
                // `WouldBlock` (one per read, for a connection taking a
                // frame at a time). `try_io` clears it on that error only,
                // so the read is handed out beside it. Not after a read
                // that brought fds: the kernel ends such a read early,
                // with bytes still waiting.
                let (len, fds, truncated) = &got;
                if *len > 0 && *len < asked && fds.is_empty() && !truncated {
                    drained = Some(got);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(got)
            });
            let (len, fds, truncated) = match (read, drained) {
                (Ok(got), _) | (Err(_), Some(got)) => got,
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Poll::Ready(Err(e)),
            };
            let bytes = this.read..this.read + len as u64;
            this.read = bytes.end;
            if !fds.is_empty() || truncated {
                this.inbox.arrived(bytes, fds, truncated)?;
            }
            this.ready = if len == asked {
                this.ready * 2
            } else {
                (2 * len).next_power_of_two()
            }
            .clamp(MIN_READY, MAX_READY);
            buf.advance(len);
            return Poll::Ready(Ok(()));
        }
    }
}

/// One `recvmsg` into `dst`: the bytes read, the fds that came, and
/// whether some were cut off.
pub(crate) fn recv_with_fds(
    stream: &UnixStream,
    dst: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>, bool)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(dst)];
    let msg = rustix::net::recvmsg(
        stream,
        &mut iov,
        &mut control,
        RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok((msg.bytes, fds, msg.flags.contains(ReturnFlags::CTRUNC)))
}

/// The write half. Dropping it shuts the sending direction down, as
/// tokio's owned write half does.
#[derive(Debug)]
pub(crate) struct UnixWriter {
    stream: Arc<UnixStream>,
}

impl UnixWriter {
    pub(crate) fn new(stream: Arc<UnixStream>) -> Self {
        Self { stream }
    }
}

impl AsyncWrite for UnixWriter {
    /// A write that took less than it was given filled the socket: its
    /// readiness is cleared now, as tokio's own streams do, which saves
    /// the call that would only say `WouldBlock`; `try_io` clears it on
    /// that error only, so the count is handed out beside it.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            let mut filled = None;
            let wrote = self.stream.try_io(Interest::WRITABLE, || {
                let n = rustix::io::write(&*self.stream, buf)?;
                if n > 0 && n < buf.len() {
                    filled = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            match (wrote, filled) {
                (Ok(n), _) | (Err(_), Some(n)) => return Poll::Ready(Ok(n)),
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => {}
                (Err(e), None) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Unlike [`poll_write`](Self::poll_write), a short write leaves the
    /// readiness be, as tokio's streams do: the next write finds out.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shut_write(&self.stream))
    }
}

impl Drop for UnixWriter {
    fn drop(&mut self) {
        let _ = shut_write(&self.stream);
    }
}

fn shut_write(stream: &UnixStream) -> io::Result<()> {
    match rustix::net::shutdown(stream, Shutdown::Write) {
        // Already gone: nothing left to shut.
        Ok(()) | Err(rustix::io::Errno::NOTCONN) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Sends as much of `bytes` (a frame's first bytes, never empty) as the
/// socket takes now, with `fds` attached, waiting for room; returns how
/// many bytes went. The caller writes the rest as usual.
///
/// # Errors
/// The error of `sendmsg` (`BrokenPipe` once the peer is gone).
pub(crate) async fn send_with_fds(
    stream: &UnixStream,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if bytes.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "fds ride on bytes: none to attach them to",
        ));
    }
    loop {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            let mut space =
                [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_FRAME))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(fds)) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} fds do not fit one message", fds.len()),
                ));
            }
            let iov = [IoSlice::new(bytes)];
            Ok(rustix::net::sendmsg(
                stream,
                &iov,
                &mut control,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            )?)
        });
        match sent {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// Why a frame announcing `count` fds is refused on a connection that did
/// not agree to take fds.
pub(crate) fn not_agreed(count: usize) -> CodecError {
    CodecError::Malformed(format!(
        "a frame announced {count} fds on a connection that did not ask for fds in its Hello"
    ))
}

fn invalid(reason: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_null(n: usize) -> Vec<OwnedFd> {
        (0..n)
            .map(|_| std::fs::File::open("/dev/null").unwrap().into())
            .collect()
    }

    /// An inbox after reads of these lengths, with these many fds each.
    fn inbox(reads: &[(u64, usize)]) -> Inbox {
        let mut inbox = Inbox::default();
        let mut read = 0;
        for &(len, fds) in reads {
            inbox
                .arrived(read..read + len, dev_null(fds), false)
                .unwrap();
            read += len;
        }
        inbox
    }

    #[test]
    fn a_frame_takes_the_batch_that_came_with_its_first_byte() {
        // Frames [0,10) without fds, [10,30) with 2, [30,40) with 1: read
        // as [0,15) carrying the second frame's, then [15,35) the third's.
        let mut sut = inbox(&[(15, 2), (20, 1)]);
        assert_eq!(sut.take(0..10, 0).unwrap().len(), 0);
        assert_eq!(sut.take(10..30, 2).unwrap().len(), 2);
        assert_eq!(sut.take(30..40, 1).unwrap().len(), 1);
    }

    #[test]
    fn fds_no_frame_announced_or_not_the_number_announced_are_refused() {
        // With a frame announcing none, the read ending inside it.
        assert!(inbox(&[(5, 1)]).take(0..10, 0).is_err());
        // Announced but none came, or came later in the frame.
        assert!(inbox(&[(5, 0)]).take(0..10, 1).is_err());
        assert!(inbox(&[(5, 0), (5, 1)]).take(0..10, 1).is_err());
        // Another count.
        assert!(inbox(&[(10, 3)]).take(0..10, 2).is_err());
        // A batch left behind by an earlier frame.
        let mut sut = inbox(&[(5, 1), (20, 0)]);
        assert!(sut.take(10..20, 0).is_err());
        // A second batch within a frame that took its own.
        assert!(inbox(&[(5, 1), (3, 1)]).take(0..10, 1).is_err());
        // A third batch waiting is refused when it arrives.
        let mut ahead = inbox(&[(1, 1), (1, 1)]);
        assert!(ahead.arrived(2..3, dev_null(1), false).is_err());
        // So is a truncated one.
        assert!(Inbox::default().arrived(0..1, dev_null(1), true).is_err());
    }
}
