//! The writer task of one connection: it owns the socket's write half,
//! drains the connection's queue in batches and sends each batch with one
//! vectored write, small frames coalesced and large payloads passed as
//! their own slices (never copied).
//!
//! A peer whose socket takes no bytes for `write_timeout` while bytes wait
//! for it is cut off (`SlowConsumer`), however short its queue: a reader
//! that stops reading holds no socket, task or buffer of the daemon's for
//! longer than that.
//!
//! The deliveries of each batch are counted written once a write that
//! holds them completes; those of a batch that is not written (the write
//! failed, the connection was cut off, the task was aborted) are counted
//! discarded, by [`InFlight`], however the batch ends.

use std::collections::HashSet;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::task::Poll;
use std::time::Duration;

use busd_core::{Beside, OutFrame};
use busd_proto::{ErrorCode, Fds, Op, PoolFd, SegmentFd, encode_head};
use busd_transport::FdSender;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::outbox::{COPY_BELOW, ConnHandle};

/// Sends `handle`'s queued frames until it finishes (the normal end: flush
/// what is queued, then its last words) or is killed (its last words only).
/// Returns when the socket is done.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    handle: &ConnHandle,
    mut writer: W,
    fds: Option<FdSender>,
    write_timeout: Duration,
) {
    // Grown on first use: an idle connection holds no buffers.
    let mut batch = Vec::new();
    let mut chunks = Vec::new();
    let mut buf = BytesMut::new();
    let mut introduced = HashSet::new();
    // Blocks of the client's payload pool whose payloads the daemon is done
    // with (shm with pools), handed back in a `Release`.
    let releases = fds.as_ref().and_then(FdSender::releases).cloned();
    loop {
        if handle.is_killed() {
            break;
        }
        // Also between batches: a busy connection's writer may not idle.
        if let Some(releases) = &releases {
            let blocks = releases.take();
            if !blocks.is_empty() {
                handle.send(&Op::Release { blocks }, Bytes::new());
            }
        }
        let (finishing, dropped) = handle.next_batch(&mut batch);
        let mut in_flight = InFlight::of(handle, &batch);
        if batch.is_empty() && dropped.is_empty() {
            if finishing {
                break; // drained: the normal end
            }
            handle.work().await;
            continue;
        }
        for (sid, count) in dropped {
            let _ = encode_head(&Op::Dropped { sid, count }, 0, &mut buf);
        }
        // Told here, in line with the frames: a frame written after this
        // that names the pool again passes it again.
        for pool in handle.take_gone_pools() {
            if introduced.remove(&pool) {
                let _ = encode_head(&Op::PoolGone { pool }, 0, &mut buf);
            }
        }
        let mut out = Out {
            writer: &mut writer,
            fds: fds.as_ref(),
            handle,
            write_timeout,
            pending: 0,
            written: 0,
            buf: &mut buf,
            chunks: &mut chunks,
            introduced: &mut introduced,
        };
        let result = out.write_batch(&mut batch).await;
        in_flight.written(out.written);
        match result {
            Ok(()) => {}
            // Killed while the peer took no fds: on to the last words.
            Err(_) if handle.is_killed() => break,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                let waited = humantime_serde::re::humantime::format_duration(write_timeout);
                tracing::warn!(
                    conn = handle.id,
                    "slow consumer: its socket took nothing for {waited}, disconnecting"
                );
                let why =
                    format!("the socket took no bytes for {waited}: the client reads too slowly");
                handle.cut_off_slow(&why);
                break;
            }
            Err(e) => {
                tracing::debug!(conn = handle.id, cause = %e, "write failed");
                handle.writer_failed(ErrorCode::SlowConsumer, "the connection failed");
                drop(in_flight);
                handle.discard_queued();
                return;
            }
        }
    }
    if handle.is_killed() {
        handle.discard_queued();
    }
    // After the queue (a graceful close) or instead of it (a kill); a
    // socket that still takes nothing gets no more time.
    if let Some(frame) = handle.take_last_words() {
        let mut out = BytesMut::new();
        if frame.encode(&mut out).is_ok() {
            let _ = within(write_timeout, writer.write_all(&out)).await;
        }
    }
    let _ = within(write_timeout, writer.shutdown()).await;
}

/// The deliveries of the batch being written. Each is counted written when
/// a write holding it completes; what is left when this is dropped is
/// counted discarded: a write failed, or the task was aborted (a peer that
/// did not read within its closing grace) with the batch in hand.
struct InFlight<'a> {
    handle: &'a ConnHandle,
    msgs: u64,
}

impl<'a> InFlight<'a> {
    fn of(handle: &'a ConnHandle, batch: &[OutFrame]) -> Self {
        let msgs = batch.iter().map(|f| f.msgs as u64).sum();
        Self { handle, msgs }
    }

    /// `n` of them were written.
    fn written(&mut self, n: usize) {
        let n = (n as u64).min(self.msgs);
        self.msgs -= n;
        self.handle.wrote(n);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.handle.lose(self.msgs);
    }
}

/// Awaits `io`, failing with `TimedOut` if it makes no progress within
/// `limit`. The first poll comes before any timer: a socket with room (the
/// common case) costs no clock read and no timer.
async fn within<T>(limit: Duration, io: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let mut io = std::pin::pin!(io);
    if let Poll::Ready(done) = std::future::poll_fn(|cx| Poll::Ready(io.as_mut().poll(cx))).await {
        return done;
    }
    match tokio::time::timeout(limit, io).await {
        Ok(done) => done,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// What one batch is written with.
struct Out<'a, W> {
    writer: &'a mut W,
    fds: Option<&'a FdSender>,
    /// Its kill ends a wait for room for a segment's fd (see `write_batch`).
    handle: &'a ConnHandle,
    /// How long one write, or one fd, may wait for the peer to make room.
    write_timeout: Duration,
    /// Deliveries in `buf` and `chunks`, not yet written.
    pending: usize,
    /// Deliveries of the batch in writes that completed.
    written: usize,
    /// Small frames, copied together.
    buf: &'a mut BytesMut,
    /// What the next vectored write sends: runs of `buf`, large payloads.
    chunks: &'a mut Vec<Bytes>,
    /// The set pools the peer has mapped (it was passed each, and not told
    /// it is gone since).
    introduced: &'a mut HashSet<u32>,
}

/// An fd passed beside the stream before its frame.
#[derive(Clone, Copy)]
enum Passed<'a> {
    Segment(&'a SegmentFd),
    Pool(&'a PoolFd),
}

impl<W: AsyncWrite + Unpin> Out<'_, W> {
    /// Writes a batch: small frames coalesced, large payloads as their own
    /// `Bytes`, and each segment's fd passed before the frame announcing it.
    ///
    /// A kill ends a wait for fd room at once, with `Interrupted`: everything
    /// before is written whole, so the fatal error can still follow through
    /// the ring (a peer that stopped taking fds may still have ring room).
    async fn write_batch(&mut self, batch: &mut Vec<OutFrame>) -> io::Result<()> {
        for frame in batch.drain(..) {
            match &frame.beside {
                Some(Beside::Segment(segment, _)) => self.pass(Passed::Segment(segment)).await?,
                Some(Beside::Pool(pool)) if !self.introduced.contains(&pool.id()) => {
                    self.pass(Passed::Pool(pool)).await?;
                    self.introduced.insert(pool.id());
                }
                _ => {}
            }
            let mut head = frame.head;
            if !frame.fds.is_empty() {
                head = self.pass_fds(&frame.fds, head).await?;
            }
            // A run of copied frames is a head as long as it grew.
            for part in [head, frame.payload] {
                if part.len() < COPY_BELOW {
                    self.buf.extend_from_slice(&part);
                } else {
                    self.cut();
                    self.chunks.push(part);
                }
            }
            self.pending += frame.msgs as usize;
        }
        self.flush().await
    }

    /// Passes a segment's or a set pool's fd before the frame that needs
    /// it.
    async fn pass(&mut self, passed: Passed<'_>) -> io::Result<()> {
        let Some(fds) = self.fds else {
            // Only queued for connections that pass fds.
            return Err(io::Error::other("a segment for a connection without fds"));
        };
        let sent = match passed {
            Passed::Segment(segment) => fds.try_send(segment.as_fd())?,
            Passed::Pool(pool) => fds.try_pass_pool(pool)?,
        };
        if sent {
            return Ok(());
        }
        // The peer takes fds as it reads their frames: write the frames
        // before this one, then wait for room.
        self.flush().await?;
        let send = async {
            match passed {
                Passed::Segment(segment) => fds.send(segment.as_fd()).await,
                Passed::Pool(pool) => fds.pass_pool(pool).await,
            }
        };
        tokio::select! {
            sent = within(self.write_timeout, send) => sent,
            () = self.handle.killed().cancelled() => Err(io::ErrorKind::Interrupted.into()),
        }
    }

    /// Passes the fds attached to the frame whose head is `head`, after
    /// writing every frame before it (the peer takes fds as it reads their
    /// frames); returns what is left of `head` to write (on unix the fds
    /// ride on its first bytes). A kill ends the wait, as for a segment.
    async fn pass_fds(&mut self, attached: &Fds, head: Bytes) -> io::Result<Bytes> {
        let Some(fds) = self.fds else {
            // Only queued for connections that take fds.
            return Err(io::Error::other("fds for a connection that takes none"));
        };
        self.flush().await?;
        let borrowed = attached.borrowed();
        tokio::select! {
            sent = within(self.write_timeout, fds.send_attached(&borrowed, &head)) => {
                Ok(head.slice(sent?..))
            }
            () = self.handle.killed().cancelled() => Err(io::ErrorKind::Interrupted.into()),
        }
    }

    /// Writes what is buffered, and counts its deliveries written.
    async fn flush(&mut self) -> io::Result<()> {
        self.cut();
        let bytes: usize = self.chunks.iter().map(Bytes::len).sum();
        write_chunks(self.writer, self.chunks, self.write_timeout).await?;
        self.handle.traffic.wrote_bytes(bytes as u64);
        self.written += std::mem::take(&mut self.pending);
        Ok(())
    }

    /// Ends the current run of small frames.
    fn cut(&mut self) {
        if !self.buf.is_empty() {
            self.chunks.push(self.buf.split().freeze());
        }
    }
}

/// Writes every chunk, with vectored writes, handling short writes; each
/// write may wait up to `limit` for the peer to make room.
async fn write_chunks<W: AsyncWrite + Unpin>(
    writer: &mut W,
    chunks: &mut Vec<Bytes>,
    limit: Duration,
) -> io::Result<()> {
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[first..]
            .iter()
            .take(512)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut n = within(limit, writer.write_vectored(&slices)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let len = chunks[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                let rest = chunks[first].slice(n..);
                chunks[first] = rest;
                n = 0;
            }
        }
    }
    chunks.clear();
    Ok(())
}
