//! [`ShmWriter`]: bytes into our ring, one ring message per write.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use busd_shm::{Producer, PushError, Readiness};
use tokio::io::AsyncWrite;
use tokio::io::unix::AsyncFd;

use super::liveness::{Liveness, TxRing};
use crate::fd_passing::SharedSocket;

/// The most one ring message carries. The reader copies a message straight
/// into the caller's buffer only when it fits there, and a framing reader's
/// buffer has room for about one frame of what is in flight: up to a
/// quarter of the ring, a burst of 64 KiB frames went through the reader's
/// own buffer, a second copy (64 KiB pub/sub through the rings, alternating:
/// 1.30-1.61 -> 1.76-1.86 GB/s; small frames were even).
const CHUNK_MAX: usize = 64 * 1024;

/// The write half of an shm connection: bytes into the daemon's (or
/// client's) ring.
pub(crate) struct ShmWriter {
    ring: AsyncFd<TxRing>,
    liveness: Liveness,
    /// The largest message one write pushes: a quarter of the ring (so the
    /// peer can drain one message while the next is written), at most
    /// [`CHUNK_MAX`].
    chunk: usize,
    /// The end-of-stream marker was pushed.
    shut_down: bool,
}

impl ShmWriter {
    pub(crate) fn new(producer: Producer, capacity: u64, socket: SharedSocket) -> io::Result<Self> {
        let quarter = usize::try_from(capacity / 4).unwrap_or(usize::MAX);
        let chunk = producer.max_message().min(quarter).clamp(1, CHUNK_MAX);
        Ok(Self {
            ring: TxRing::registered(producer)?,
            liveness: Liveness::new(socket),
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
