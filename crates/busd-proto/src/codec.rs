//! The tokio-util codec that frames a byte stream.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{ErrorCode, Frame};

/// Size of each of the two length fields.
pub const LENGTH_PREFIX: usize = 4;

/// Frames a byte stream into [`Frame`]s and back.
///
/// The length field is checked against `max_frame` before any buffer is
/// reserved for the frame, so a hostile peer cannot make the reader
/// allocate more than `max_frame` bytes.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use busd_proto::{Frame, FrameCodec, Op};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = FrameCodec::new(1 << 20);
/// let mut buf = BytesMut::new();
/// codec.encode(Frame::with_payload(Op::Ping, Bytes::from_static(b"hi")), &mut buf)?;
/// let frame = codec.decode(&mut buf)?.expect("a whole frame");
/// assert_eq!(frame.op, Op::Ping);
/// assert_eq!(&frame.payload[..], b"hi");
/// # Ok::<(), busd_proto::CodecError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: u32,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The frame's length is over the limit.
    #[error("frame of {len} bytes is over the limit of {max} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// The header is not a valid operation, or the lengths disagree.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl CodecError {
    /// The protocol error code to send the peer before closing.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::Io(_) | Self::Malformed(_) => ErrorCode::ProtocolViolation,
        }
    }
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_frame` bytes (counted
    /// after the first length field).
    pub fn new(max_frame: u32) -> Self {
        Self { max_frame }
    }

    /// The limit this codec enforces.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        if src.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if len > self.max_frame {
            return Err(CodecError::FrameTooLarge {
                len: u64::from(len),
                max: self.max_frame,
            });
        }
        let len = len as usize;
        if len < LENGTH_PREFIX {
            return Err(CodecError::Malformed(format!(
                "frame length {len} leaves no room for the header length"
            )));
        }
        if src.len() < LENGTH_PREFIX + len {
            // Only now, with the length known to be within bounds.
            src.reserve(LENGTH_PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        let mut body = src.split_to(len).freeze();
        let header_len = body.get_u32() as usize;
        if header_len > body.len() {
            return Err(CodecError::Malformed(format!(
                "header length {header_len} exceeds the frame's {} remaining bytes",
                body.len()
            )));
        }
        let header = body.split_to(header_len);
        let op =
            rmp_serde::from_slice(&header).map_err(|e| CodecError::Malformed(e.to_string()))?;
        Ok(Some(Frame { op, payload: body }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        Encoder::<&Frame>::encode(self, &frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        frame.encode(dst)?;
        let len = (dst.len() - start - LENGTH_PREFIX) as u64;
        if len > u64::from(self.max_frame) {
            dst.truncate(start);
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};

    use super::*;
    use crate::{Op, Overflow, Subject};

    fn round_trip(frame: Frame) {
        let mut codec = FrameCodec::new(1 << 20);
        let mut buf = BytesMut::new();
        codec.encode(&frame, &mut buf).unwrap();
        // Fed one byte at a time, the frame comes out once and whole.
        let mut partial = BytesMut::new();
        let mut out = None;
        for byte in buf.iter() {
            assert!(out.is_none());
            partial.put_u8(*byte);
            out = codec.decode(&mut partial).unwrap();
        }
        assert_eq!(out, Some(frame));
        assert!(partial.is_empty());
    }

    #[test]
    fn frames_round_trip() {
        round_trip(Frame::new(Op::Ping));
        round_trip(Frame::new(Op::Sub {
            sid: 7,
            subject: Subject::from_static("a.*.c"),
            queue: Some("workers".into()),
            overflow: Overflow::Block,
        }));
        round_trip(Frame::with_payload(
            Op::Pub {
                subject: Subject::from_static("a.b"),
                headers: None,
            },
            Bytes::from(vec![0xAB; 1000]),
        ));
    }

    #[test]
    fn oversized_length_is_refused_before_allocating() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        let cap = buf.capacity();
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FrameTooLarge);
        assert_eq!(buf.capacity(), cap, "no buffer grown for a refused frame");
    }

    #[test]
    fn garbage_header_is_a_protocol_violation() {
        let mut codec = FrameCodec::new(1024);
        let mut buf = BytesMut::new();
        buf.put_u32(8);
        buf.put_u32(4);
        buf.put_slice(&[0xc1, 0xc1, 0xc1, 0xc1]); // 0xc1 is never valid MessagePack
        assert_eq!(
            codec.decode(&mut buf).unwrap_err().code(),
            ErrorCode::ProtocolViolation
        );

        let mut buf = BytesMut::new();
        buf.put_u32(8);
        buf.put_u32(100); // header longer than the frame
        buf.put_u32(0);
        assert_eq!(
            codec.decode(&mut buf).unwrap_err().code(),
            ErrorCode::ProtocolViolation
        );
    }

    #[test]
    fn encoder_refuses_frames_over_the_limit() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        let frame = Frame::with_payload(Op::Ping, Bytes::from(vec![0; 100]));
        assert!(matches!(
            codec.encode(&frame, &mut buf),
            Err(CodecError::FrameTooLarge { .. })
        ));
        assert!(buf.is_empty());
    }
}
