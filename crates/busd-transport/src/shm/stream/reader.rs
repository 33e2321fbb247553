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
use super::wakes::WakeBudget;
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
    ring: Watch,
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
    /// Empty wake-ups the peer may still cause (see [`WakeBudget`]).
    wakes: WakeBudget,
}

/// The consumer, and whether the reactor watches its eventfd.
enum Watch {
    /// Registered: the peer's wake-ups reach the reader.
    On(AsyncFd<RxRing>),
    /// The peer used up its empty wake-ups ([`WakeBudget`]): out of the
    /// reactor until `until`, when the reader looks at the ring again, so
    /// that a storm of signals wakes no thread at all meanwhile.
    Off {
        ring: RxRing,
        until: Pin<Box<tokio::time::Sleep>>,
    },
    /// Only between the two, or after registering again failed.
    Lost,
}

impl Watch {
    fn consumer(&mut self) -> io::Result<&mut Consumer> {
        match self {
            Self::On(fd) => Ok(&mut fd.get_mut().0),
            Self::Off { ring, .. } => Ok(&mut ring.0),
            Self::Lost => Err(io::Error::other(
                "the shm ring's reactor registration failed",
            )),
        }
    }

    /// Takes the eventfd out of the reactor until `due`.
    fn pause(&mut self, due: Instant) {
        if let Self::On(fd) = std::mem::replace(self, Self::Lost) {
            let due = tokio::time::Instant::from_std(due);
            *self = Self::Off {
                ring: fd.into_inner(),
                until: Box::pin(tokio::time::sleep_until(due)),
            };
        }
    }

    /// Registers the eventfd again once the pause is over: `Pending` until
    /// then.
    fn poll_resume(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self::Off { until, .. } = self else {
            return Poll::Ready(Ok(()));
        };
        ready!(until.as_mut().poll(cx));
        let Self::Off { ring, .. } = std::mem::replace(self, Self::Lost) else {
            unreachable!("matched above");
        };
        *self = Self::On(RxRing::registered(ring.0)?);
        Poll::Ready(Ok(()))
    }
}

impl ShmReader {
    pub(crate) fn new(consumer: Consumer, socket: SharedSocket) -> io::Result<Self> {
        Ok(Self {
            ring: Watch::On(RxRing::registered(consumer)?),
            liveness: Liveness::new(socket),
            buf: Vec::new(),
            pos: 0,
            eof: false,
            spin_until: None,
            yielding: None,
            wakes: WakeBudget::new(),
        })
    }

    /// Takes the next message: straight into `out` when it fits there (one
    /// copy), else into `buf` to be served over several reads. `None` when
    /// the ring is empty.
    fn pop(&mut self, out: &mut ReadBuf<'_>) -> io::Result<Option<Popped>> {
        let consumer = self.ring.consumer()?;
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
                    self.wakes.read();
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
            if let Some(due) = self.wakes.before_parking(Instant::now) {
                self.ring.pause(due);
            }
            if let Watch::Off { .. } = self.ring {
                if self.ring.poll_resume(cx)?.is_ready() {
                    continue;
                }
                ready!(self.liveness.poll_gone(cx))?;
                continue; // gone: one more look at the ring
            }
            if self.ring.consumer()?.prepare_wait() == Readiness::Ready {
                continue;
            }
            let Watch::On(fd) = &mut self.ring else {
                continue; // not reached: paused above
            };
            if let Poll::Ready(guard) = fd.poll_read_ready(cx) {
                let mut guard = guard?;
                if guard.get_inner().0.events().readable.drain()? {
                    self.wakes.woken();
                }
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
