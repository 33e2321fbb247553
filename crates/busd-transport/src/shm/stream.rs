//! [`ShmReader`] and [`ShmWriter`]: a byte stream over two rings, so the
//! framing codec above sees what it would see on a socket.
//!
//! - Each `poll_write` pushes up to a quarter of the ring as one ring
//!   message (so the peer drains one while the next is written); a vectored
//!   write gathers its slices into one message, straight into the ring.
//! - The reader copies a message straight into the caller's buffer when it
//!   fits there; a larger one is popped into the reader's own buffer and
//!   served over several reads.
//! - A **zero-length message is end of stream**: `poll_shutdown` pushes it
//!   (as does dropping a writer that was not shut down, when the ring has room),
//!   and the reader answers EOF from then on.
//! - Both halves wait on the ring's eventfd through tokio's reactor
//!   (`prepare_wait` arms the ring's "waiting" flag first, so no wake-up is
//!   lost), and both also watch the unix socket the rings were set up over.
//!   After the setup only payload segments' fds travel on it (see `fds`);
//!   its hang-up means the peer is gone (the peer process exited or was
//!   killed, or dropped its connection). The reader
//!   still drains what the peer published before it went; a writer waiting
//!   for room fails with `BrokenPipe`.
//! - A peer that breaks the ring's invariants yields `InvalidData` errors
//!   ([`Corrupt`](busd_shm::Corrupt)), never a panic.
//!
//! # Spin, then park
//!
//! A reader that finds the ring empty re-checks it [`READ_SPIN`] times, then
//! arms its eventfd and parks. It can keep polling for longer first: for
//! [`spin_window`], yielding to the runtime between rounds (so other tasks
//! and the reactor still run). That window is 0 by default and
//! `BUSD_SHM_SPIN_US` sets it, for measurements: between two threads with
//! nothing else to do, 20 µs of it brings a round trip from ~7 µs to under
//! 1 µs, but on a busy 2-core machine with the daemon, the requester and the
//! responder competing for the cores it made request/reply 2–4× slower. An
//! idle connection costs no CPU either way once parked.
//! A writer never spins: a full ring means the reader is behind.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use busd_shm::{Consumer, Pop, Producer, PushError, Readiness, RingError};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// How many times an empty ring is re-checked in one poll before the reader
/// yields.
const READ_SPIN: u32 = 64;

/// How long, after the ring ran empty, the reader keeps polling it (yielding
/// to the runtime between rounds, so other tasks still run) before it arms
/// its eventfd and parks: `BUSD_SHM_SPIN_US`, default 0 (see the module
/// docs). A reply already on its way is then picked up without the syscalls
/// and the reactor round trip of a wake-up.
fn spin_window() -> Duration {
    static WINDOW: OnceLock<Duration> = OnceLock::new();
    *WINDOW.get_or_init(|| {
        std::env::var("BUSD_SHM_SPIN_US")
            .ok()
            .and_then(|us| us.parse().ok())
            .map_or(Duration::ZERO, Duration::from_micros)
    })
}

/// The consumer, registered with the reactor through its `readable` eventfd.
struct RxRing(Consumer);

impl AsRawFd for RxRing {
    fn as_raw_fd(&self) -> RawFd {
        self.0.events().readable.as_fd().as_raw_fd()
    }
}

/// The producer, registered with the reactor through its `writable` eventfd.
struct TxRing(Producer);

impl AsRawFd for TxRing {
    fn as_raw_fd(&self) -> RawFd {
        self.0.events().writable.as_fd().as_raw_fd()
    }
}

/// Registers `owner`'s fd with the reactor, for `interest`.
///
/// tokio 1.54 deprecates the safe constructors of `AsyncFd` for
/// `register_with_interest`, an `unsafe fn` whose contract is that
/// `as_raw_fd` names the same open fd for the `AsyncFd`'s whole life, and
/// this crate forbids `unsafe`. The contract holds for every type registered
/// here: an `OwnedFd`, or a ring handle owning its eventfd, which it never
/// replaces or closes before it is dropped.
#[allow(deprecated)]
pub(super) fn register<T: AsRawFd>(owner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(owner, interest)
}

/// The unix socket the rings were set up over, watched for the peer leaving.
/// Each half registers its own fd (a dup) so each gets its own wake-ups.
struct Liveness {
    socket: AsyncFd<OwnedFd>,
    /// The peer closed its end (sticky).
    gone: bool,
}

impl Liveness {
    fn new(socket: OwnedFd) -> io::Result<Self> {
        Ok(Self {
            socket: register(socket, Interest::READABLE)?,
            gone: false,
        })
    }

    /// Ready once the peer has closed the socket; registers the waker until then.
    ///
    /// Bytes on the socket are segment fds (see `fds`) waiting for their
    /// frames to be decoded, not a sign of anything: the hang-up is told by
    /// the reactor (`EPOLLRDHUP`), or by a peek finding the end.
    ///
    /// # Errors
    /// The error of `recv`.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut guard = ready!(self.socket.poll_read_ready(cx))?;
            if guard.ready().is_read_closed() {
                self.gone = true;
                return Poll::Ready(Ok(()));
            }
            let mut probe = [0u8; 1];
            match rustix::net::recv(
                guard.get_inner(),
                &mut probe,
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Ok((_, 0)) | Err(Errno::CONNRESET) => {
                    self.gone = true;
                    return Poll::Ready(Ok(()));
                }
                // Segment fds queued for frames still to be read; wait for
                // the next event (more of them, or the hang-up).
                Ok(_) | Err(Errno::AGAIN) => guard.clear_ready(),
                Err(Errno::INTR) => {}
                Err(errno) => return Poll::Ready(Err(errno.into())),
            }
        }
    }
}

/// The read half of an shm connection: bytes from the peer's ring.
pub(crate) struct ShmReader {
    ring: AsyncFd<RxRing>,
    liveness: Liveness,
    /// The last message popped; `buf[pos..]` is still to be served.
    buf: Vec<u8>,
    pos: usize,
    /// The peer's end-of-stream marker was read, or the peer left.
    eof: bool,
    /// Since the ring ran empty: when to stop polling it and park.
    spin_until: Option<Instant>,
    /// The pending yield of a spin round (`yield_now` lets the reactor run
    /// too, where waking ourselves would starve it).
    yielding: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl ShmReader {
    pub(crate) fn new(consumer: Consumer, socket: OwnedFd) -> io::Result<Self> {
        Ok(Self {
            ring: register(RxRing(consumer), Interest::READABLE)?,
            liveness: Liveness::new(socket)?,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            spin_until: None,
            yielding: None,
        })
    }

    /// Takes the next message: straight into `out` when it fits there (one
    /// copy), else into `buf` to be served over several reads. `None` when
    /// the ring is empty.
    fn pop(&mut self, out: &mut ReadBuf<'_>) -> io::Result<Option<Popped>> {
        let consumer = &mut self.ring.get_mut().0;
        let room = out.remaining();
        let popped = consumer.try_pop_with(|len| {
            // Not the end-of-stream marker: that is taken below.
            (len > 0 && len <= room).then(|| out.initialize_unfilled_to(len))
        });
        match popped.map_err(ring_error)? {
            Pop::Empty => Ok(None),
            Pop::Copied(len) => {
                out.advance(len);
                Ok(Some(Popped::Direct))
            }
            Pop::Declined(_) => match consumer.try_pop(&mut self.buf).map_err(ring_error)? {
                Some(0) => Ok(Some(Popped::End)),
                Some(_) => {
                    self.pos = 0;
                    Ok(Some(Popped::Buffered))
                }
                // `buf` keeps the last message, all served (`pos` at its end).
                None => Ok(None),
            },
        }
    }

    /// Reads the next message (see [`pop`](Self::pop)), waiting for one, or
    /// reaches end of stream.
    fn poll_next(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut spins = 0;
        loop {
            match self.pop(out)? {
                Some(Popped::End) => {
                    self.eof = true;
                    return Poll::Ready(Ok(()));
                }
                Some(Popped::Direct | Popped::Buffered) => {
                    self.spin_until = None;
                    return Poll::Ready(Ok(()));
                }
                None => {}
            }
            if self.liveness.gone {
                // Everything published before the peer left has been read.
                self.eof = true;
                return Poll::Ready(Ok(()));
            }
            if spins < READ_SPIN {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let now = Instant::now();
            let until = *self.spin_until.get_or_insert_with(|| now + spin_window());
            if now < until {
                // Poll again after the other ready tasks (and the reactor).
                let yielding = self
                    .yielding
                    .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
                if yielding.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.yielding = None;
                continue;
            }
            if self.ring.get_mut().0.prepare_wait() == Readiness::Ready {
                continue;
            }
            if let Poll::Ready(guard) = self.ring.poll_read_ready(cx) {
                let mut guard = guard?;
                guard.get_inner().0.events().readable.drain()?;
                guard.clear_ready();
                continue;
            }
            ready!(self.liveness.poll_gone(cx))?;
            // Gone: one more look at the ring before reporting the end.
        }
    }
}

/// Where [`ShmReader::pop`] put a message.
enum Popped {
    /// Into the caller's buffer.
    Direct,
    /// Into the reader's own, from `pos` 0.
    Buffered,
    /// It was the end-of-stream marker.
    End,
}

fn ring_error(err: RingError) -> io::Error {
    match err {
        RingError::Corrupt(corrupt) => io::Error::new(io::ErrorKind::InvalidData, corrupt),
        RingError::Wake(err) => err,
        other => io::Error::other(other),
    }
}

impl AsyncRead for ShmReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.pos == this.buf.len() {
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let before = out.filled().len();
            ready!(this.poll_next(cx, out))?;
            if out.filled().len() > before || this.eof {
                return Poll::Ready(Ok(()));
            }
        }
        let n = out.remaining().min(this.buf.len() - this.pos);
        out.put_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// The write half of an shm connection: bytes into the daemon's (or
/// client's) ring.
pub(crate) struct ShmWriter {
    ring: AsyncFd<TxRing>,
    liveness: Liveness,
    /// The largest message one write pushes: a quarter of the ring, so the
    /// peer can drain one message while the next is written.
    chunk: usize,
    /// The end-of-stream marker was pushed.
    shut_down: bool,
}

impl ShmWriter {
    pub(crate) fn new(producer: Producer, capacity: u64, socket: OwnedFd) -> io::Result<Self> {
        let quarter = usize::try_from(capacity / 4).unwrap_or(usize::MAX);
        let chunk = producer.max_message().min(quarter).max(1);
        Ok(Self {
            ring: register(TxRing(producer), Interest::READABLE)?,
            liveness: Liveness::new(socket)?,
            chunk,
            shut_down: false,
        })
    }

    /// Pushes the first `len` bytes of `parts` as one message (gathered
    /// straight into the ring), waiting for room; `len` 0 pushes the
    /// end-of-stream marker.
    fn poll_push(
        &mut self,
        cx: &mut Context<'_>,
        parts: &[IoSlice<'_>],
        len: usize,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.liveness.gone {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the shm peer is gone",
                )));
            }
            let producer = &mut self.ring.get_mut().0;
            match producer.try_push_vectored(parts, len) {
                Ok(_) => return Poll::Ready(Ok(())),
                Err(PushError::Full) => {}
                Err(err) => return Poll::Ready(Err(push_error(err))),
            }
            match producer.prepare_wait(len) {
                Ok(Readiness::Ready) => continue,
                Ok(Readiness::Armed) => {}
                Err(err) => return Poll::Ready(Err(push_error(err))),
            }
            if let Poll::Ready(guard) = self.ring.poll_read_ready(cx) {
                let mut guard = guard?;
                guard.get_inner().0.events().writable.drain()?;
                guard.clear_ready();
                continue;
            }
            ready!(self.liveness.poll_gone(cx))?;
        }
    }

    fn check_open(&self) -> io::Result<()> {
        if self.shut_down {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            ))
        } else {
            Ok(())
        }
    }
}

fn push_error(err: PushError) -> io::Error {
    match err {
        PushError::Corrupt(corrupt) => io::Error::new(io::ErrorKind::InvalidData, corrupt),
        PushError::Wake(err) => err,
        other => io::Error::other(other),
    }
}

impl AsyncWrite for ShmWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_open()?;
        if buf.is_empty() {
            // An empty message would read as end of stream.
            return Poll::Ready(Ok(0));
        }
        let len = buf.len().min(this.chunk);
        ready!(this.poll_push(cx, &[IoSlice::new(buf)], len))?;
        Poll::Ready(Ok(len))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        this.check_open()?;
        let total = bufs.iter().map(|buf| buf.len()).sum::<usize>();
        let len = total.min(this.chunk);
        if len > 0 {
            ready!(this.poll_push(cx, bufs, len))?;
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every message is in the ring, visible to the peer, once pushed.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.shut_down {
            ready!(this.poll_push(cx, &[], 0))?;
            this.shut_down = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ShmWriter {
    /// As dropping a socket's write half shuts it down: the end-of-stream
    /// marker, if the ring has room for it now (a drop cannot wait). Without
    /// room, the peer sees the end when this connection's socket closes.
    fn drop(&mut self) {
        if !self.shut_down {
            let _ = self.ring.get_mut().0.try_push(&[]);
        }
    }
}
