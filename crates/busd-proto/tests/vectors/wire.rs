//! A [`Meaning`] to bytes and back, through the encoders and the decoder
//! the daemon and the SDK use. What travels beside the stream (a
//! segment's memfd, a pool, attached fds) is played by `/dev/null` and by
//! a source that records what the decoder asked of it: that record is
//! what the frame said.

use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use busd_proto::{
    Body, CodecError, Fds, Frame, FrameCodec, Lease, SegmentFd, SegmentSource, announce_fds,
    encode_head_with,
};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::meaning::{Meaning, Payload};

fn dev_null() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .expect("/dev/null opens")
        .into()
}

fn fds(count: usize) -> Fds {
    Fds::new((0..count).map(|_| dev_null()).collect())
}

/// The frame's bytes as the Rust encoders write them: `Frame::encode`
/// (through the codec) for a payload in the stream or in a segment, and
/// the daemon's and the SDK's `encode_head_with` + `announce_fds` for a
/// pooled one (a `Frame` holds no pool reference to encode).
///
/// # Errors
/// The encoder's.
pub(crate) fn encode(meaning: &Meaning) -> Result<Vec<u8>, CodecError> {
    let mut buf = BytesMut::new();
    match &meaning.payload {
        Payload::Inline(bytes) => {
            let mut frame = Frame::with_payload(meaning.op.clone(), Bytes::from(bytes.clone()));
            frame.fds = fds(meaning.fds);
            FrameCodec::new(u32::MAX).encode(&frame, &mut buf)?;
        }
        Payload::Segment(len) => {
            let mut frame = Frame::new(meaning.op.clone());
            frame.segment = Some(SegmentFd::new(dev_null(), *len));
            frame.fds = fds(meaning.fds);
            FrameCodec::new(u32::MAX).encode(&frame, &mut buf)?;
        }
        Payload::Pooled { offset, len } => {
            let body = Body::Pooled {
                offset: *offset,
                len: *len,
            };
            encode_head_with(&meaning.op, body, &mut buf)?;
            announce_fds(&mut buf, 0, meaning.fds)?;
        }
    }
    Ok(buf.to_vec())
}

/// What the decoder asked its source for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    Segment(u64),
    Pooled { offset: u64, len: u64 },
    Fds(usize),
}

/// A source that hands out whatever is asked (so that only the bytes
/// decide what is refused) and records it.
struct Recorder(Arc<Mutex<Vec<Asked>>>);

impl Recorder {
    fn note(&self, asked: Asked) {
        self.0.lock().expect("not poisoned").push(asked);
    }
}

impl SegmentSource for Recorder {
    fn take(&mut self, len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
        self.note(Asked::Segment(len));
        Ok((Bytes::new(), SegmentFd::new(dev_null(), len)))
    }

    fn take_fds(&mut self, _frame: Range<u64>, count: usize) -> Result<Vec<OwnedFd>, CodecError> {
        if count > 0 {
            self.note(Asked::Fds(count));
        }
        Ok((0..count).map(|_| dev_null()).collect())
    }

    fn take_pooled(&mut self, offset: u64, len: u64) -> Result<(Bytes, Option<Lease>), CodecError> {
        self.note(Asked::Pooled { offset, len });
        Ok((Bytes::new(), None))
    }
}

/// Decodes `bytes`, which must hold exactly one frame, with a frame limit
/// of `max_frame`, on a connection that passes everything (shm with
/// pools and fds): what the frame means, or why the decoder refused it.
/// One byte short, the frame must not decode yet.
///
/// # Errors
/// The decoder's.
pub(crate) fn decode(bytes: &[u8], max_frame: u32) -> Result<Meaning, CodecError> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let source = Box::new(Recorder(Arc::clone(&asked)));
    let mut codec = FrameCodec::with_segments(max_frame, source);
    if let Some(short) = bytes.len().checked_sub(1) {
        // Refusals that the first bytes decide come out here already; an
        // incomplete frame asks nothing of the source.
        let mut partial = BytesMut::from(&bytes[..short]);
        let early = codec.decode(&mut partial)?;
        assert!(
            early.is_none(),
            "a frame decoded from all but its last byte"
        );
    }
    let mut buf = BytesMut::from(bytes);
    let frame = codec.decode(&mut buf)?.expect("a whole frame");
    assert!(buf.is_empty(), "{} bytes after the frame", buf.len());
    let asked = asked.lock().expect("not poisoned").clone();
    let (payload, fd_count) = match asked.as_slice() {
        [] => (Payload::Inline(frame.payload.to_vec()), 0),
        [Asked::Fds(n)] => (Payload::Inline(frame.payload.to_vec()), *n),
        [Asked::Segment(len)] => (Payload::Segment(*len), 0),
        [Asked::Segment(len), Asked::Fds(n)] => (Payload::Segment(*len), *n),
        [Asked::Pooled { offset, len }] => (
            Payload::Pooled {
                offset: *offset,
                len: *len,
            },
            0,
        ),
        [Asked::Pooled { offset, len }, Asked::Fds(n)] => (
            Payload::Pooled {
                offset: *offset,
                len: *len,
            },
            *n,
        ),
        other => panic!("the decoder asked its source for {other:?}"),
    };
    assert_eq!(
        frame.fds.len(),
        fd_count,
        "fds taken and fds attached differ"
    );
    if let Payload::Segment(len) = payload {
        let attached = frame.segment.as_ref().map(SegmentFd::len);
        assert_eq!(
            attached,
            Some(len),
            "segment taken and segment attached differ"
        );
    }
    Ok(Meaning {
        op: frame.op,
        payload,
        fds: fd_count,
    })
}
