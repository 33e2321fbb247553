//! One socket session after its handshake: a reader task and a writer task
//! around the owned halves, and the reconnect backoff.
//!
//! Reading never waits on writing: the reader task only decodes frames and
//! hands them to the connection task, and the writer task only writes the
//! buffers it is given. If the two sides' socket buffers fill up, the daemon
//! can still drain ours while we drain theirs.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use busd_proto::{CodecError, Frame, FrameCodec, Welcome};
use busd_transport::{BoxReader, BoxWriter};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use crate::handshake::Session;

/// Frames read ahead of the connection task; past this the reader stops
/// reading, which pushes back onto the socket.
const INBOUND_CAPACITY: usize = 1024;

/// The running halves of a session, as the connection task sees them.
pub(crate) struct Pipes {
    /// Decoded frames; `None` once the socket is closed or broken.
    pub(crate) frames: mpsc::Receiver<Result<Frame, CodecError>>,
    /// Buffers to write; at most one at a time is in flight.
    pub(crate) to_writer: mpsc::Sender<BytesMut>,
    /// Buffers back from the writer, emptied, once written; `None` when the
    /// write side failed.
    pub(crate) written: mpsc::Receiver<BytesMut>,
    pub(crate) reader_task: JoinHandle<()>,
    pub(crate) writer_task: JoinHandle<()>,
}

/// Splits `session` into a reader task and a writer task.
pub(crate) fn spawn(session: Session) -> (Pipes, Welcome) {
    let (frames_tx, frames) = mpsc::channel(INBOUND_CAPACITY);
    let (to_writer, writer_rx) = mpsc::channel(1);
    let (written_tx, written) = mpsc::channel(1);
    let reader_task = tokio::spawn(read_loop(session.reader, frames_tx));
    let writer_task = tokio::spawn(write_loop(session.writer, writer_rx, written_tx));
    let pipes = Pipes {
        frames,
        to_writer,
        written,
        reader_task,
        writer_task,
    };
    (pipes, session.welcome)
}

async fn read_loop(
    mut reader: FramedRead<BoxReader, FrameCodec>,
    frames: mpsc::Sender<Result<Frame, CodecError>>,
) {
    while let Some(item) = reader.next().await {
        let last = item.is_err();
        if frames.send(item).await.is_err() || last {
            return;
        }
    }
}

async fn write_loop(
    mut writer: BoxWriter,
    mut buffers: mpsc::Receiver<BytesMut>,
    written: mpsc::Sender<BytesMut>,
) {
    while let Some(mut buf) = buffers.recv().await {
        if let Err(err) = writer.write_all(&buf).await {
            tracing::debug!(cause = %err, "write to busd failed");
            return;
        }
        buf.clear();
        if written.send(buf).await.is_err() {
            break;
        }
    }
    let _ = writer.shutdown().await;
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
