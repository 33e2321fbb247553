//! `busd_transport::FrameReader` over a stream served in reads of chosen
//! sizes, some not ready (the read's future dropped and polled anew, as a
//! `select!` does).
//!
//! Input: a byte choosing `max_frame` ([`max_frame`]), a count `k` (0 to
//! 15), `k` read sizes used in turn (0: not ready once, 255: all that
//! fits), then the stream.
//!
//! Checks: no panic; the reader yields exactly the frames, and ends
//! exactly as (cleanly or with the same error), `FrameCodec` decoding the
//! whole stream at once, however reads cut it and wherever they are
//! cancelled: no byte lost or repeated. After each frame, `consumed()`
//! is where that frame ends in the stream; at any time the memory the
//! reader holds (`held()`) follows the bytes it has read, never the
//! length a frame claims.

use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use busd_proto::FrameCodec;
use busd_transport::FrameReader;
use tokio::io::{AsyncRead, ReadBuf};

use crate::frame_codec::SLACK;
use crate::stream::{End, decode_stream, max_frame};

/// Serves `stream` in reads of `sizes[i]` bytes, in turn.
struct Chunked<'a> {
    stream: &'a [u8],
    sizes: &'a [u8],
    step: usize,
    /// The last read was not ready: the next one is, so reads progress.
    was_pending: bool,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = match self.sizes.get(self.step % self.sizes.len().max(1)) {
            None | Some(255) => usize::MAX,
            Some(&size) => usize::from(size),
        };
        self.step += 1;
        if size == 0 && !self.was_pending {
            self.was_pending = true;
            return Poll::Pending;
        }
        self.was_pending = false;
        let n = size.max(1).min(self.stream.len()).min(buf.remaining());
        buf.put_slice(&self.stream[..n]);
        self.stream = &self.stream[n..];
        Poll::Ready(Ok(()))
    }
}

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    let Some((&[limit, k], rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let k = usize::from(k % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(k);
    check_reads(max_frame(limit), sizes, stream);
}

/// Reads `stream` served in reads of `sizes` (as in the input) through a
/// `FrameReader` with a codec of `max_frame`.
///
/// # Panics
/// On any broken invariant.
pub fn check_reads(max_frame: u32, sizes: &[u8], stream: &[u8]) {
    let (want, want_end) = decode_stream(&mut FrameCodec::new(max_frame), stream);
    let io = Chunked {
        stream,
        sizes,
        step: 0,
        was_pending: false,
    };
    let mut reader = FrameReader::new(io, FrameCodec::new(max_frame));
    let mut cx = Context::from_waker(Waker::noop());
    let mut got = Vec::new();
    let end = loop {
        let polled = pin!(reader.next()).poll(&mut cx);
        let read = reader.consumed() as usize + reader.buffered();
        assert!(
            reader.held() <= 4 * read + 2 * SLACK,
            "{} bytes held after reading {read}",
            reader.held()
        );
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                let at = got.len();
                let ends = want.get(at).map(|(_, ends)| *ends);
                assert_eq!(Some(reader.consumed() as usize), ends, "frame {at}");
                got.push(frame);
            }
            Poll::Ready(Some(Err(e))) => break End::Error(e.to_string()),
            Poll::Ready(None) => break End::Clean,
            // Dropped while a read was not ready, and asked again.
            Poll::Pending => {}
        }
    };
    let want: Vec<_> = want.into_iter().map(|(frame, _)| frame).collect();
    assert_eq!(got, want);
    assert_eq!(end, want_end);
    if end == End::Clean {
        assert!(reader.at_eof());
        assert_eq!(reader.consumed(), stream.len() as u64);
    }
}
