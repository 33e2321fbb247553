//! [`ShmReader`]: bytes from the peer's ring, spinning briefly, then parking.

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use busd_shm::{Consumer, Pop, Readiness, RingError};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, ReadBuf};

use super::liveness::{Liveness, RxRing};
use crate::fd_passing::SharedSocket;

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
    pub(crate) fn new(consumer: Consumer, socket: SharedSocket) -> io::Result<Self> {
        Ok(Self {
            ring: RxRing::registered(consumer)?,
            liveness: Liveness::new(socket),
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
