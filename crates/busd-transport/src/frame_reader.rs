//! Frames read from a connection, decoded where they lie.
//!
//! `tokio_util`'s `FramedRead` hands out one frame per poll of a `Stream`:
//! each frame passes through its state machine and is moved several times
//! on the way, and a caller can only learn that the next frame is not there
//! yet by polling again. A busy connection has hundreds of frames in one
//! read, so [`FrameReader`] keeps the two steps apart: [`decode`] takes the
//! next whole frame from the bytes already read (no await, no I/O), and
//! [`fill`] reads more, the one place that waits. A caller knows it is
//! about to wait, which is when it settles what it batched.
//!
//! [`decode`]: FrameReader::decode
//! [`fill`]: FrameReader::fill

use std::io;
use std::time::Duration;

use busd_proto::{CodecError, Frame, FrameCodec};
use bytes::BytesMut;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::codec::Decoder;

/// What a read asks for at first, and again after a read that did not
/// fill it (an idle or slow connection holds no more than this).
const MIN_READ: usize = 8 * 1024;
/// What a read asks for at most: reads that fill what they asked double
/// it up to this, so a busy publisher costs one system call per many
/// frames.
const MAX_READ: usize = 64 * 1024;

/// Reads frames from `R` with a [`FrameCodec`].
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    codec: FrameCodec,
    buf: BytesMut,
    read_size: usize,
    eof: bool,
    /// Bytes read since the start (with `buf`'s length, how far decoding
    /// has come, counted per read rather than per frame).
    read_total: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `io`; nothing is allocated until the first read.
    pub fn new(io: R, codec: FrameCodec) -> Self {
        Self {
            io,
            codec,
            buf: BytesMut::new(),
            read_size: MIN_READ,
            eof: false,
            read_total: 0,
        }
    }

    /// The codec, to change its limit after a handshake.
    pub fn codec_mut(&mut self) -> &mut FrameCodec {
        &mut self.codec
    }

    /// The next frame among the bytes already read, if one is whole.
    ///
    /// # Errors
    /// A frame the codec refuses; after the end of the stream, also bytes
    /// left over that make no whole frame.
    #[inline]
    pub fn decode(&mut self) -> Result<Option<Frame>, CodecError> {
        if self.eof {
            self.codec.decode_eof(&mut self.buf)
        } else {
            self.codec.decode(&mut self.buf)
        }
    }

    /// Bytes read and not yet decoded: the start of a frame still coming
    /// (or frames [`decode`](Self::decode) has not been asked for yet).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes decoded into frames since the start: unchanged between two
    /// waits, it says the frame being read is still the same one.
    pub fn consumed(&self) -> u64 {
        self.read_total - self.buf.len() as u64
    }

    /// The memory the reader holds for bytes read and to be read.
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the peer has closed its side (what was read may still hold
    /// frames: [`decode`](Self::decode) until it returns `None`).
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// Reads more bytes, waiting for them; `false` at the end of the stream.
    ///
    /// Cancel-safe: dropping the future loses no bytes.
    ///
    /// # Errors
    /// The connection's read error.
    pub async fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.buf.is_empty() && self.buf.capacity() > self.read_size {
            // Nothing is pending: let go of room a burst left (the frames
            // split off it keep their part alive only as long as they
            // live), so a quiet connection holds no more than a small read.
            self.buf = BytesMut::new();
        }
        // The codec reserves room for a whole frame once it knows its
        // length; this only makes sure a read has room worth a system call.
        if self.buf.capacity() - self.buf.len() < self.read_size / 4 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.read_total += n as u64;
        self.read_size = if n == room {
            (self.read_size * 2).min(MAX_READ)
        } else {
            MIN_READ
        };
        Ok(true)
    }

    /// Reads and discards what the peer sends (and what was read and not
    /// decoded), letting go of the buffer; `false` at the end of the
    /// stream. For a connection being closed: the peer's bytes still on
    /// their way are taken, so that the close is a clean end of stream,
    /// not a reset that would destroy the error the peer is being sent.
    ///
    /// # Errors
    /// The connection's read error.
    pub async fn discard(&mut self) -> io::Result<bool> {
        self.buf = BytesMut::new();
        if self.eof {
            return Ok(false);
        }
        let mut scratch = [0u8; 8192];
        let n = self.io.read(&mut scratch).await?;
        self.eof = n == 0;
        Ok(n > 0)
    }

    /// As [`fill`](Self::fill), but only what comes within `window`,
    /// polling for it without letting the thread sleep: other tasks and
    /// the reactor run between polls. `None` if nothing came (or `window`
    /// is zero); then [`fill`](Self::fill) waits as usual.
    ///
    /// A reply on its way is then taken without the wake-up of a sleeping
    /// thread, at the price of the CPU the polls take.
    pub async fn fill_within(&mut self, window: Duration) -> Option<io::Result<bool>> {
        if window.is_zero() {
            return None;
        }
        // The system clock, not tokio's: a paused test clock never moves
        // while a task keeps yielding.
        let until = std::time::Instant::now() + window;
        loop {
            if let Some(filled) = self.fill().now_or_never() {
                return Some(filled);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            tokio::task::yield_now().await;
        }
    }

    /// The next frame, reading as much as it takes; `None` at a clean end
    /// of the stream.
    pub async fn next(&mut self) -> Option<Result<Frame, CodecError>> {
        loop {
            match self.decode() {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) if self.eof => return None,
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if let Err(e) = self.fill().await {
                return Some(Err(e.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use busd_proto::{Frame, FrameCodec, Op};
    use bytes::{Bytes, BytesMut};
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn encoded(frames: &[Frame]) -> BytesMut {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out).unwrap();
        }
        out
    }

    #[tokio::test]
    async fn frames_split_across_reads_come_out_whole_and_in_order() {
        let frames: Vec<Frame> = (0..500u32)
            .map(|i| {
                Frame::with_payload(
                    Op::Pub {
                        subject: "a.b".parse().unwrap(),
                        headers: None,
                    },
                    Bytes::from(vec![i as u8; (i as usize * 37) % 3000]),
                )
            })
            .collect();
        let bytes = encoded(&frames);
        let (mut tx, rx) = tokio::io::duplex(1000);
        let writer = tokio::spawn(async move {
            // Odd-sized writes, so frames and even length fields are cut.
            for chunk in bytes.chunks(777) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(rx, FrameCodec::new(1 << 20));
        let mut got = Vec::new();
        while let Some(frame) = reader.next().await {
            got.push(frame.unwrap());
        }
        writer.await.unwrap();
        assert_eq!(got.len(), frames.len());
        for (a, b) in got.iter().zip(&frames) {
            assert_eq!(a.payload, b.payload);
        }
        assert!(reader.at_eof());
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_an_error_not_a_clean_end() {
        let mut bytes = encoded(&[Frame::new(Op::Ping)]);
        bytes.truncate(bytes.len() - 1);
        let (mut tx, rx) = tokio::io::duplex(64);
        tx.write_all(&bytes).await.unwrap();
        drop(tx);
        let mut reader = FrameReader::new(rx, FrameCodec::new(1024));
        assert!(matches!(reader.next().await, Some(Err(_))));
    }

    #[tokio::test]
    async fn a_busy_fill_takes_what_comes_within_its_window_and_gives_up_after_it() {
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(rx, FrameCodec::new(1024));
        assert!(
            reader.fill_within(Duration::ZERO).await.is_none(),
            "no window, no poll"
        );
        let start = std::time::Instant::now();
        assert!(reader.fill_within(Duration::from_millis(2)).await.is_none());
        assert!(start.elapsed() >= Duration::from_millis(2));

        // Written by another task while the reader polls: its yields let it run.
        let writer = tokio::spawn(async move {
            tx.write_all(&encoded(&[Frame::new(Op::Ping)]))
                .await
                .unwrap();
            tx
        });
        let filled = reader.fill_within(Duration::from_secs(60)).await;
        assert!(matches!(filled, Some(Ok(true))));
        assert!(matches!(
            reader.decode(),
            Ok(Some(Frame { op: Op::Ping, .. }))
        ));
        drop(writer.await.unwrap());
        assert!(matches!(
            reader.fill_within(Duration::from_secs(60)).await,
            Some(Ok(false))
        ));
    }

    #[tokio::test]
    async fn reads_grow_while_they_fill_and_shrink_when_they_do_not() {
        let frames: Vec<Frame> = (0..2000)
            .map(|_| Frame::with_payload(Op::Ping, Bytes::from_static(&[7; 100])))
            .collect();
        let bytes = encoded(&frames);
        let (mut tx, rx) = tokio::io::duplex(MAX_READ * 4);
        tx.write_all(&bytes).await.unwrap();
        let mut reader = FrameReader::new(rx, FrameCodec::new(1024));
        let (mut total, mut sizes) = (0, Vec::new());
        while total < bytes.len() {
            let before = reader.buf.len();
            assert!(reader.fill().await.unwrap());
            total += reader.buf.len() - before;
            sizes.push(reader.read_size);
        }
        assert_eq!(sizes[..3], [2 * MIN_READ, 4 * MIN_READ, MAX_READ]);
        while reader.decode().unwrap().is_some() {}
        assert!(reader.buf.capacity() > MIN_READ, "room left from the burst");
        // Waiting for more once the burst is over lets that room go.
        assert!(reader.fill().now_or_never().is_none());
        assert!(reader.buf.capacity() <= MIN_READ);
        // The last read found less than it asked for.
        assert_eq!(reader.read_size, MIN_READ);
    }
}
