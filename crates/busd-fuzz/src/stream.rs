//! What the codec checks share: the limit an input byte chooses, a whole
//! stream decoded at once (the reference the incremental reader is held
//! to), a segment source without a connection, and the frame round trip.

use busd_proto::{CodecError, Frame, FrameCodec, SegmentFd, SegmentSource};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// The `max_frame` an input's selector byte chooses: 16 B to 4 KiB
/// (`16 << (selector % 9)`), so short inputs hit the limit; with bit 7
/// set, 1 GiB, so a short input can claim a length far beyond what it
/// holds (what a reader reserves for it must follow what arrives).
pub fn max_frame(selector: u8) -> u32 {
    if selector & 0x80 != 0 {
        1 << 30
    } else {
        16 << (selector % 9)
    }
}

/// How decoding a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// At a frame boundary, with nothing left over.
    Clean,
    /// With this error (its message): a refused frame, or a partial one at
    /// the end.
    Error(String),
}

/// Decodes all of `bytes` as one stream that then ends: every frame up to
/// the first error, each with the count of bytes consumed once it was
/// decoded, and how the stream ended.
pub fn decode_stream(codec: &mut FrameCodec, bytes: &[u8]) -> (Vec<(Frame, usize)>, End) {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push((frame, bytes.len() - buf.len())),
            Ok(None) => return (frames, End::Clean),
            Err(e) => return (frames, End::Error(e.to_string())),
        }
    }
}

/// Hands out a segment of the announced length without its bytes, as the
/// daemon's source does (it passes the fd on): an fd of `/dev/null`.
#[derive(Debug, Default)]
pub struct FakeSegments;

impl SegmentSource for FakeSegments {
    fn take(&mut self, len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
        let fd = std::fs::File::open("/dev/null")?;
        Ok((Bytes::new(), SegmentFd::new(fd.into(), len)))
    }
}

/// The frame's bytes, as any encoder writes them.
///
/// # Panics
/// If the frame cannot be encoded.
pub fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    frame
        .encode(&mut out)
        .unwrap_or_else(|e| panic!("a decoded frame must encode again: {e}: {frame:?}"));
    out
}

/// Asserts that `a` and `b` carry the same op and payload, and segments of
/// the same length (a segment's fd is never the same twice).
fn assert_same(a: &Frame, b: &Frame) {
    assert_eq!(a.op, b.op);
    assert_eq!(a.payload, b.payload);
    assert_eq!(
        a.segment.as_ref().map(SegmentFd::len),
        b.segment.as_ref().map(SegmentFd::len)
    );
}

/// Decode → encode → decode: a frame the codec accepted encodes to bytes
/// that decode (whole, with nothing left over) to the same frame, and
/// encoding that again gives the same bytes.
///
/// # Panics
/// If any of that fails.
pub fn assert_round_trip(frame: &Frame) {
    let first = encode(frame);
    // No limit here: the canonical encoding of a frame may be longer than
    // the bytes it was decoded from (a variant sent as its index, say).
    let mut codec = FrameCodec::with_segments(u32::MAX, Box::new(FakeSegments));
    let mut buf = first.clone();
    let again = match codec.decode(&mut buf) {
        Ok(Some(again)) => again,
        other => panic!("re-encoded {frame:?} decodes as {other:?}"),
    };
    assert!(buf.is_empty(), "re-encoded {frame:?} left {buf:?}");
    assert_same(frame, &again);
    assert_eq!(first, encode(&again), "encoding is not a fixed point");
}
