//! One socket session after its handshake: a reader task and a writer task
//! around the owned halves, and the reconnect backoff.
//!
//! Reading never waits on writing: the reader task decodes frames and routes
//! them itself (see [`dispatch`](crate::dispatch)), and the writer task only
//! writes what callers appended to the shared outgoing buffer, taking it
//! whole so that everything appended while a write is in flight goes out in
//! the next single `write_all`. If both sides' socket buffers fill up, the
//! daemon can still drain ours while we drain theirs.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use busd_proto::{CodecError, Fds, LENGTH_PREFIX, Op};
use busd_transport::{BoxReader, BoxWriter, FdSender, FrameReader};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dispatch::Dispatch;
use crate::error::Error;
use crate::error::Source;
use crate::shared::{Shared, Side};

/// Frames the reader routes under one lock of the state, at most.
const READ_BATCH: usize = 64;
/// A written buffer larger than this is not kept for reuse.
const MAX_SPARE: usize = 8 * 1024 * 1024;

/// Why a session ended: words for the log and for the calls it fails, and
/// the error behind them (a bad frame's decode error, the daemon's closing
/// `Error`, a failed write's `io::Error`), if there is one.
#[derive(Debug)]
pub(crate) struct Ended {
    pub(crate) why: String,
    pub(crate) cause: Option<Source>,
}

impl Ended {
    /// An end that no error caused.
    pub(crate) fn plain(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            cause: None,
        }
    }

    /// The [`Disconnected`](crate::ErrorKind::Disconnected) error that the
    /// calls in flight fail with, caused by what ended the session.
    pub(crate) fn error(&self) -> Error {
        let lost = Error::disconnected(&self.why);
        match &self.cause {
            Some(cause) => lost.with_shared_source(Arc::clone(cause)),
            None => lost,
        }
    }

    /// An end caused by `cause`.
    pub(crate) fn caused(
        why: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            why: why.into(),
            cause: Some(Arc::new(cause)),
        }
    }
}

/// The running halves of a session, as the connection task sees them.
pub(crate) struct Pipes {
    /// Ends with why the connection ended (EOF, a bad frame), or once `stop`
    /// fires or the session is no longer the live one.
    pub(crate) reader_task: JoinHandle<Ended>,
    /// Ends only when a write fails, or after `finish`.
    pub(crate) writer_task: JoinHandle<io::Result<()>>,
    /// Tells the reader to stop; a delivery it is waiting to make is parked
    /// in the state for the next session.
    pub(crate) stop: CancellationToken,
    /// Tells the writer to write what is buffered, shut the socket's sending
    /// side down and end.
    pub(crate) finish: CancellationToken,
}

/// Starts the reader and writer tasks of connection number `epoch`.
pub(crate) fn spawn(
    reader: FrameReader<BoxReader>,
    writer: BoxWriter,
    fds: Option<FdSender>,
    shared: &Arc<Shared>,
    epoch: u64,
) -> Pipes {
    let stop = CancellationToken::new();
    let finish = CancellationToken::new();
    let reader_task = tokio::spawn(read_loop(reader, Arc::clone(shared), epoch, stop.clone()));
    let writer_task = tokio::spawn(write_loop(writer, fds, Arc::clone(shared), finish.clone()));
    Pipes {
        reader_task,
        writer_task,
        stop,
        finish,
    }
}

async fn read_loop(
    mut reader: FrameReader<BoxReader>,
    shared: Arc<Shared>,
    epoch: u64,
    stop: CancellationToken,
) -> Ended {
    const STOPPED: &str = "the session was stopped";
    if let Some(stall) = shared.with(|s| s.resume_blocked()) {
        if !stall.wait(&shared, &stop).await {
            return Ended::plain(STOPPED);
        }
    }
    let mut close_reason = None;
    let mut batch = Vec::new();
    let set_pools = shared.with(|s| s.set_pools.clone());
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        // Every whole frame already read, up to a batch, to route them all
        // under one lock of the state; a read only when none is left.
        let end = loop {
            match reader.decode() {
                Ok(Some(frame)) => {
                    // A set pool gone is forgotten before the next frame is
                    // decoded, not when the batch is dispatched: the daemon
                    // passes its fd again for a later frame that names it,
                    // and a mapping kept meanwhile would leave that fd
                    // unread, to be taken for the next new pool's.
                    if let (Op::PoolGone { pool }, Some(set_pools)) = (&frame.op, &set_pools) {
                        set_pools.gone(*pool);
                    }
                    batch.push(frame);
                    if batch.len() == READ_BATCH {
                        break None;
                    }
                }
                Ok(None) if reader.at_eof() => break Some(End::Closed),
                Ok(None) if !batch.is_empty() => break None,
                Ok(None) => {
                    // Biased towards bytes: `stopped` is polled only when
                    // none are there.
                    let filled = tokio::select! {
                        biased;
                        filled = reader.fill() => filled,
                        () = &mut stopped => return Ended::plain(STOPPED),
                    };
                    if let Err(err) = filled {
                        break Some(End::BadFrame(CodecError::from(err)));
                    }
                }
                Err(err) => break Some(End::BadFrame(err)),
            }
        };
        let mut frames = batch.drain(..);
        loop {
            let outcome = shared.with(|s| {
                frames
                    .by_ref()
                    .map(|frame| s.handle_frame(frame, epoch))
                    .find(|d| !matches!(d, Dispatch::Done))
            });
            match outcome {
                None | Some(Dispatch::Done) => break,
                Some(Dispatch::Stale) => return Ended::plain(STOPPED),
                Some(Dispatch::Closing(err)) => close_reason = Some(err),
                Some(Dispatch::Full(stall)) => {
                    if !stall.wait(&shared, &stop).await {
                        return Ended::plain(STOPPED);
                    }
                }
            }
        }
        if let Some(end) = end {
            return end.ended(close_reason);
        }
    }
}

/// Why the reader stops once the frames read before are routed.
enum End {
    /// The daemon closed the connection.
    Closed,
    /// A frame could not be decoded.
    BadFrame(CodecError),
}

impl End {
    /// How the session ended, given the reason the daemon announced before
    /// closing, if it did.
    fn ended(self, close_reason: Option<Error>) -> Ended {
        match self {
            Self::Closed => close_reason.map_or_else(
                || Ended::plain("busd closed the connection"),
                |err| Ended::caused(err.to_string(), err),
            ),
            Self::BadFrame(err) => Ended::caused(format!("bad frame from busd: {err}"), err),
        }
    }
}

async fn write_loop(
    mut writer: BoxWriter,
    fds: Option<FdSender>,
    shared: Arc<Shared>,
    finish: CancellationToken,
) -> io::Result<()> {
    let mut spare = BytesMut::new();
    let mut side = Side::default();
    let releases = fds.as_ref().and_then(FdSender::releases);
    if let Some(releases) = releases {
        // Woken when messages in the daemon's pool are dropped; a weak
        // handle, so the pool does not keep the client alive.
        let weak = Arc::downgrade(&shared);
        releases.set_waker(move || {
            if let Some(shared) = weak.upgrade() {
                shared.wake_writer.notify_one();
            }
        });
    }
    loop {
        // Blocks of the daemon's pool whose messages were dropped.
        if let Some(blocks) = releases.map(|r| r.take()).filter(|b| !b.is_empty()) {
            shared.with(|s| s.write(&Op::Release { blocks }));
        }
        if let Some(mut buf) = shared.take_out(&mut spare, &mut side) {
            if let Err(err) = write_out(&mut writer, fds.as_ref(), &buf, &mut side).await {
                tracing::debug!(cause = %err, "write to busd failed");
                return Err(err);
            }
            buf.clear();
            if buf.capacity() <= MAX_SPARE {
                spare = buf;
            }
            continue;
        }
        if finish.is_cancelled() {
            return writer.shutdown().await;
        }
        tokio::select! {
            () = shared.wake_writer.notified() => {}
            () = finish.cancelled() => {}
        }
    }
}

/// Writes `buf`, passing each segment's fd before the frame at its offset,
/// and each frame's attached fds after its segment, with or before it.
async fn write_out(
    writer: &mut BoxWriter,
    fds: Option<&FdSender>,
    buf: &[u8],
    side: &mut Side,
) -> io::Result<()> {
    let mut written = 0;
    let mut attached = side.fds.drain(..).peekable();
    for (at, segment) in side.segments.drain(..) {
        // Those of earlier frames first; a frame's own after its segment.
        while let Some((fds_at, set)) = attached.next_if(|(fds_at, _)| *fds_at < at) {
            written = pass_attached(writer, fds, buf, (written, fds_at), &set).await?;
        }
        let Some(fds) = fds else {
            // Segments are made only for connections that pass fds.
            return Err(io::Error::other("a segment for a connection without fds"));
        };
        if !fds.try_send(segment.as_fd())? {
            // busd takes fds as it reads their frames: write those first.
            writer.write_all(&buf[written..at]).await?;
            written = at;
            fds.send(segment.as_fd()).await?;
        }
    }
    for (fds_at, set) in attached {
        written = pass_attached(writer, fds, buf, (written, fds_at), &set).await?;
    }
    writer.write_all(&buf[written..]).await
}

/// Writes `buf[written..at]`, then passes `set`, the fds of the frame at
/// `at` (with its first bytes, on unix); returns how far `buf` is written.
async fn pass_attached(
    writer: &mut BoxWriter,
    fds: Option<&FdSender>,
    buf: &[u8],
    (written, at): (usize, usize),
    set: &Fds,
) -> io::Result<usize> {
    let Some(fds) = fds else {
        // Attached only on connections that pass fds (see `Shared::attachable`).
        return Err(io::Error::other("fds for a connection without fd passing"));
    };
    writer.write_all(&buf[written..at]).await?;
    // busd takes fds as it reads their frames: those before are written.
    // On unix they ride on this frame's bytes, and on no later frame's
    // (whose own fds or segment must go first).
    let frame = buf.get(at..at + LENGTH_PREFIX).map_or(0, |len| {
        LENGTH_PREFIX + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize
    });
    let end = (at + frame).min(buf.len());
    let sent = fds.send_attached(&set.borrowed(), &buf[at..end]).await?;
    Ok(at + sent)
}

/// Reconnect delays: 20 ms doubling to 2 s, each with up to 25 % jitter so
/// that many clients of a restarted daemon do not come back in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    seed: RandomState,
    attempt: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(20);
    const MAX: Duration = Duration::from_secs(2);

    pub(crate) fn new() -> Self {
        Self {
            next: Self::FIRST,
            seed: RandomState::new(),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.attempt += 1;
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        let jitter_permille = self.seed.hash_one(self.attempt) % 250;
        base + base * jitter_permille as u32 / 1000
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u64 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_two_seconds_with_bounded_jitter() {
        let mut backoff = Backoff::new();
        let mut base = Backoff::FIRST;
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(
                delay >= base && delay <= base + base / 4,
                "{delay:?} vs {base:?}"
            );
            base = (base * 2).min(Backoff::MAX);
        }
        assert_eq!(backoff.attempts(), 20);
    }
}
