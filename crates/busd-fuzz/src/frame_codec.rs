//! `FrameCodec::decode` on any bytes.
//!
//! Input: a byte choosing `max_frame` ([`max_frame`]), a byte of flags
//! (bit 0: accept segment frames), then the stream.
//!
//! Checks, frame by frame: no panic; a frame is announced within
//! `max_frame` and consumes exactly its announced length; its payload (or
//! segment) fits in it; it round trips (decode → encode → decode gives the
//! same frame, and encoding is a fixed point). Waiting for more consumes
//! nothing, and the room it reserves follows the bytes that came, not the
//! length claimed; a length over the limit is refused before the buffer
//! grows at all.

use busd_proto::{CodecError, FrameCodec, LENGTH_PREFIX};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::stream::{FakeSegments, assert_round_trip, max_frame};

/// Room a decoder may hold beyond a small multiple of the bytes it was
/// given: the codec grows a partial frame's buffer by at least 64 KiB at a
/// time, and `BytesMut` may double an allocation.
pub const SLACK: usize = 256 << 10;

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    let Some((&[limit, flags], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    check_stream(max_frame(limit), flags & 1 != 0, stream);
}

/// Decodes `stream`, already in a buffer, with a codec of `max_frame`
/// (taking segments if `segments`), frame by frame until it waits or
/// fails.
///
/// # Panics
/// On any broken invariant.
pub fn check_stream(max_frame: u32, segments: bool, stream: &[u8]) {
    let mut codec = if segments {
        FrameCodec::with_segments(max_frame, Box::new(FakeSegments))
    } else {
        FrameCodec::new(max_frame)
    };
    let max = max_frame as usize;
    let mut buf = BytesMut::from(stream);
    loop {
        let (len_before, cap_before) = (buf.len(), buf.capacity());
        let announced = buf
            .first_chunk::<LENGTH_PREFIX>()
            .map(|b| u32::from_be_bytes(*b) as usize);
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let announced = announced.expect("a frame starts with its length");
                assert!(announced <= max);
                assert_eq!(buf.len(), len_before - LENGTH_PREFIX - announced);
                match &frame.segment {
                    Some(segment) => {
                        assert!(segments, "a segment frame without a segment source");
                        assert!((1..=u64::from(max_frame)).contains(&segment.len()));
                    }
                    None => assert!(LENGTH_PREFIX + frame.payload.len() <= announced),
                }
                assert_round_trip(&frame);
            }
            Ok(None) => {
                assert_eq!(buf.len(), len_before, "waiting consumed bytes");
                match announced {
                    None => assert!(buf.len() < LENGTH_PREFIX),
                    Some(len) => {
                        assert!(len <= max);
                        assert!(buf.len() < LENGTH_PREFIX + len);
                        // Room for what came, perhaps doubled, and a
                        // step more; never the length claimed.
                        let bound = cap_before.max(4 * stream.len() + SLACK);
                        assert!(
                            buf.capacity() <= bound,
                            "{} bytes held for {} of a frame claiming {len}",
                            buf.capacity(),
                            buf.len()
                        );
                    }
                }
                return;
            }
            Err(CodecError::FrameTooLarge { len, max: refused }) => {
                assert_eq!(refused, max_frame);
                assert!(len > u64::from(refused));
                let announced = announced.expect("a frame starts with its length");
                if announced > max {
                    assert_eq!(len, announced as u64);
                    assert_eq!(buf.capacity(), cap_before, "grew for a refused frame");
                }
                // Else a segment frame within the limit announced a longer
                // segment.
                return;
            }
            Err(CodecError::Malformed(_)) => return,
            Err(e) => panic!("no i/o in a buffer: {e}"),
        }
    }
}
