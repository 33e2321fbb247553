//! The tokio-util codec that frames a byte stream.

use std::fmt;
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::codec_error::CodecError;
use crate::fds::{Fds, MAX_FDS_PER_FRAME};
use crate::frame::{Frame, SegmentFd};
use crate::layout::{
    FD_COUNT_FIELD, FDS_FLAG, HEADER_FLAGS, LENGTH_PREFIX, POOL_FLAG, POOL_REF_FIELD, SEGMENT_FLAG,
    SEGMENT_LEN_FIELD,
};
use crate::lease::Lease;
use crate::message_header::{NameCache, decode_with_serde};
use crate::op::Op;

/// The least a partly read frame's buffer grows by at a time.
const GROWTH_FLOOR: usize = 64 * 1024;

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
pub struct FrameCodec {
    max_frame: u32,
    /// Where segment frames find their payloads; `None` refuses them.
    segments: Option<Box<dyn SegmentSource>>,
    /// The names the last message frames carried (see [`NameCache`]).
    names: NameCache,
    /// Bytes of the stream decoded into whole frames: where the next frame
    /// starts (what an fd source needs to tell whose fds arrived).
    position: u64,
    /// The source's flag for fds waiting (see [`SegmentSource::fds_waiting`]):
    /// while it is down, a frame announcing none is not asked about.
    fds_waiting: Option<Arc<AtomicBool>>,
}

impl fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCodec")
            .field("max_frame", &self.max_frame)
            .field("segments", &self.segments.is_some())
            .finish()
    }
}

/// Where a decoder finds the payload of a segment frame: the sealed memfd
/// the peer passed beside the byte stream (an shm connection's socket).
///
/// The sender passes a segment's fd before the frame that announces it, so
/// by the time the frame is decoded the fd is there to take: taking never
/// waits.
pub trait SegmentSource: Send {
    /// Takes the next segment, which the frame being decoded announced as
    /// `len` bytes: its fd, and its read-only bytes if this source maps
    /// segments (else an empty `Bytes`; the fd then says the length).
    ///
    /// # Errors
    /// [`CodecError::Malformed`] when no fd came, the segment is not a
    /// sealed memfd, or its length is not `len`; [`CodecError::Io`] when
    /// reading the fd fails.
    fn take(&mut self, len: u64) -> Result<(Bytes, SegmentFd), CodecError>;

    /// Takes the `count` fds attached to the frame at bytes `frame` of the
    /// stream (called for every frame, `count` 0 included, so a source can
    /// refuse fds that arrived unannounced).
    ///
    /// The default, for a source that passes segments only, refuses every fd.
    ///
    /// # Errors
    /// [`CodecError::Malformed`] when the fds that came are not exactly the
    /// `count` announced (the source closes them).
    fn take_fds(&mut self, frame: Range<u64>, count: usize) -> Result<Vec<OwnedFd>, CodecError> {
        let _ = frame;
        if count == 0 {
            return Ok(Vec::new());
        }
        Err(CodecError::Malformed(
            "fds travel only over unix and shm connections".into(),
        ))
    }

    /// The payload of a pooled frame: `len` bytes at `offset` of the
    /// peer's pool, either as bytes to read in place (which hand the block
    /// back when the last copy is dropped) or as a [`Lease`] to copy from
    /// (the daemon's way: it copies into each receiver's pool).
    ///
    /// The default, for a source without a pool, refuses it.
    ///
    /// # Errors
    /// [`CodecError::Malformed`] when the range is not inside the pool, or
    /// the connection has none.
    fn take_pooled(&mut self, offset: u64, len: u64) -> Result<(Bytes, Option<Lease>), CodecError> {
        let _ = (offset, len);
        Err(CodecError::Malformed(
            "a pooled frame on a connection without a payload pool".into(),
        ))
    }

    /// A flag this source raises while fds it received wait to be taken:
    /// while it is down, [`take_fds`](Self::take_fds) would find nothing
    /// to refuse for a frame announcing none, and is not asked about it
    /// (a call per frame is a measurable part of decoding small frames).
    /// `None`, the default: asked about every frame.
    fn fds_waiting(&self) -> Option<Arc<AtomicBool>> {
        None
    }
}

impl FrameCodec {
    /// A codec that refuses frames longer than `max_frame` bytes (counted
    /// after the first length field).
    pub fn new(max_frame: u32) -> Self {
        Self {
            max_frame,
            segments: None,
            names: NameCache::default(),
            position: 0,
            fds_waiting: None,
        }
    }

    /// A codec that also accepts segment frames, taking their payloads from
    /// `segments`; a segment may be as long as a frame (`max_frame`).
    pub fn with_segments(max_frame: u32, segments: Box<dyn SegmentSource>) -> Self {
        Self {
            max_frame,
            fds_waiting: segments.fds_waiting(),
            segments: Some(segments),
            names: NameCache::default(),
            position: 0,
        }
    }

    /// The limit this codec enforces.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Changes the limit (once a handshake has told it), keeping the
    /// segment source.
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
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
            // Room grows with what arrives, never more than doubling what
            // was read: a peer that announces a large frame and stalls holds
            // about what it sent, not the length it claimed.
            let missing = LENGTH_PREFIX + len - src.len();
            src.reserve(missing.min(src.len().max(GROWTH_FLOOR)));
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        let at = self.position;
        self.position += (LENGTH_PREFIX + len) as u64;
        let frame = at..self.position;
        let mut body = src.split_to(len).freeze();
        let header_word = body.get_u32();
        let header_len = (header_word & !HEADER_FLAGS) as usize;
        if header_len > body.len() {
            return Err(CodecError::Malformed(format!(
                "header length {header_len} exceeds the frame's {} remaining bytes",
                body.len()
            )));
        }
        // Read in place: splitting the header off as its own `Bytes` would
        // cost two reference-count updates per frame.
        let header = &body[..header_len];
        let op = match self.names.decode(header) {
            Some(op) => op,
            None => decode_with_serde(header)?,
        };
        body.advance(header_len);
        let fd_count = if header_word & FDS_FLAG == 0 {
            0
        } else {
            fd_count(&op, &mut body)?
        };
        if header_word & POOL_FLAG != 0 {
            return self
                .pooled(op, body, header_word, (frame, fd_count))
                .map(Some);
        }
        if header_word & SEGMENT_FLAG == 0 {
            let fds = self.take_fds(frame, fd_count)?;
            let mut frame = Frame::with_payload(op, body);
            frame.fds = fds;
            return Ok(Some(frame));
        }
        if body.len() != SEGMENT_LEN_FIELD {
            return Err(CodecError::Malformed(format!(
                "a segment frame carries {SEGMENT_LEN_FIELD} bytes after its header, not {}",
                body.len()
            )));
        }
        let len = body.get_u64();
        if len == 0 {
            return Err(CodecError::Malformed("an empty segment".into()));
        }
        let (payload, segment) = self.beside(len, "segment")?.take(len)?;
        // Passed after the segment, so taken after it.
        let fds = self.take_fds(frame, fd_count)?;
        Ok(Some(Frame {
            op,
            payload,
            segment: Some(segment),
            fds,
            lease: None,
        }))
    }
}

impl FrameCodec {
    /// The source of a payload of `len` bytes that travels beside the
    /// stream (a `kind` frame: segment or pooled), once `len` is within
    /// `max_frame` and the connection has one (shm).
    fn beside(&mut self, len: u64, kind: &str) -> Result<&mut Box<dyn SegmentSource>, CodecError> {
        if len > u64::from(self.max_frame) {
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_frame,
            });
        }
        self.segments.as_mut().ok_or_else(|| {
            CodecError::Malformed(format!("{kind} frames travel only over shm connections"))
        })
    }

    /// The rest of a pooled frame (`POOL_FLAG`): its payload's place in the
    /// peer's pool, which the source checks and lends.
    fn pooled(
        &mut self,
        op: Op,
        mut body: Bytes,
        header_word: u32,
        (frame, fd_count): (Range<u64>, usize),
    ) -> Result<Frame, CodecError> {
        if header_word & SEGMENT_FLAG != 0 {
            return Err(CodecError::Malformed(
                "a frame both pooled and a segment".into(),
            ));
        }
        if body.len() != POOL_REF_FIELD {
            return Err(CodecError::Malformed(format!(
                "a pooled frame carries {POOL_REF_FIELD} bytes after its header, not {}",
                body.len()
            )));
        }
        let (offset, len) = (body.get_u64(), body.get_u64());
        let (payload, lease) = self.beside(len, "pooled")?.take_pooled(offset, len)?;
        let fds = self.take_fds(frame, fd_count)?;
        Ok(Frame {
            op,
            payload,
            segment: None,
            fds,
            lease: lease.map(Arc::new),
        })
    }
}

impl FrameCodec {
    /// The `count` fds of the frame at `frame`, from the segment source;
    /// a connection without one takes none.
    fn take_fds(&mut self, frame: Range<u64>, count: usize) -> Result<Fds, CodecError> {
        if count == 0
            && self
                .fds_waiting
                .as_ref()
                .is_some_and(|waiting| !waiting.load(Ordering::Acquire))
        {
            return Ok(Fds::default());
        }
        match self.segments.as_mut() {
            Some(source) => {
                let fds = source.take_fds(frame, count)?;
                if fds.len() != count {
                    return Err(CodecError::Malformed(format!(
                        "{} fds came with a frame announcing {count}",
                        fds.len()
                    )));
                }
                Ok(Fds::new(fds))
            }
            None if count == 0 => Ok(Fds::default()),
            None => Err(CodecError::Malformed(
                "fds travel only over unix and shm connections".into(),
            )),
        }
    }
}

/// Reads the fd count a frame with [`FDS_FLAG`] carries after its header,
/// checking that its op may carry fds at all.
fn fd_count(op: &Op, body: &mut Bytes) -> Result<usize, CodecError> {
    if body.len() < FD_COUNT_FIELD {
        return Err(CodecError::Malformed(
            "a frame announcing fds is too short for their count".into(),
        ));
    }
    let count = usize::from(body.get_u16());
    if count == 0 || count > MAX_FDS_PER_FRAME {
        return Err(CodecError::Malformed(format!(
            "a frame announcing {count} fds (1 to {MAX_FDS_PER_FRAME} may be attached)"
        )));
    }
    if !matches!(
        op,
        Op::Pub { .. } | Op::Msg { .. } | Op::Req { .. } | Op::Call { .. } | Op::Resp { .. }
    ) {
        return Err(CodecError::Malformed(format!(
            "fds attached to a {} frame; only messages, requests and replies carry them",
            op.name()
        )));
    }
    Ok(count)
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
        // A segment counts as if it were in the stream: the peer may have
        // to copy it into one (the daemon, for a tcp or unix receiver).
        let len = (dst.len() - start - LENGTH_PREFIX) as u64
            + frame.segment.as_ref().map_or(0, SegmentFd::len);
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
    use crate::error::ErrorCode;
    use crate::frame::announce_fds;
    use crate::layout::LENGTH_PREFIX;
    use crate::op::{Op, Overflow};
    use crate::subject::Subject;

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
    fn a_claimed_length_buys_no_memory_until_its_bytes_arrive() {
        let mut codec = FrameCodec::new(8 << 20);
        let mut src = BytesMut::new();
        src.put_u32(8 << 20);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.capacity() < 256 << 10, "{}", src.capacity());
        // 100 KiB in: room stays within a small multiple of what came.
        src.put_bytes(0, 100 << 10);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert!(src.capacity() < 512 << 10, "{}", src.capacity());
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

    /// A frame whose header is `op`'s followed by `trailing`, counted in
    /// the header's length, then `payload`.
    fn with_trailing(op: &Op, trailing: &[u8], payload: &[u8]) -> BytesMut {
        let mut header = rmp_serde::to_vec(op).unwrap();
        header.extend_from_slice(trailing);
        let mut buf = BytesMut::new();
        buf.put_u32((LENGTH_PREFIX + header.len() + payload.len()) as u32);
        buf.put_u32(header.len() as u32);
        buf.put_slice(&header);
        buf.put_slice(payload);
        buf
    }

    #[test]
    fn bytes_after_the_header_op_are_a_protocol_violation() {
        let mut headers = crate::op::Headers::new();
        headers.insert("k".into(), "v".into());
        let ops = [
            // Decoded by serde…
            Op::Ping,
            Op::Pub {
                subject: Subject::from_static("a.b"),
                headers: Some(headers),
            },
            Op::Sub {
                sid: 1,
                subject: Subject::from_static("a.>"),
                queue: None,
                overflow: Overflow::Block,
            },
            // …and by the fast paths of message_header.
            pub_op(),
            Op::Msg {
                sid: 3,
                subject: Subject::from_static("a.b"),
                from: crate::op::Sender {
                    client_id: 9,
                    pfn: None,
                },
                headers: None,
            },
        ];
        // A whole value, a marker that is never valid, values cut short
        // (a map's marker alone, a string's first byte), and zeros.
        let trailers: [&[u8]; 5] = [&[0xc0], &[0xc1], &[0x81], &[0xd9, 0x05, b'a'], &[0; 7]];
        for op in &ops {
            let mut codec = FrameCodec::new(1024);
            let mut whole = with_trailing(op, &[], b"payload");
            let frame = codec.decode(&mut whole).unwrap().expect("a whole frame");
            assert_eq!(&frame.op, op);
            for trailing in trailers {
                let mut buf = with_trailing(op, trailing, b"payload");
                let err = FrameCodec::new(1024).decode(&mut buf).unwrap_err();
                assert_eq!(
                    err.code(),
                    ErrorCode::ProtocolViolation,
                    "{op:?} {trailing:?}"
                );
                assert!(err.to_string().contains("bytes follow"), "{op:?}: {err}");
            }
        }
    }

    /// Hands out `/dev/null` fds with a payload of the announced length,
    /// recording what was asked.
    struct FakeSegments(std::sync::Arc<std::sync::Mutex<Vec<u64>>>);

    impl SegmentSource for FakeSegments {
        fn take(&mut self, len: u64) -> Result<(Bytes, SegmentFd), CodecError> {
            self.0.lock().unwrap().push(len);
            let fd = std::fs::File::open("/dev/null")?;
            Ok((
                Bytes::from(vec![7; len as usize]),
                SegmentFd::new(fd.into(), len),
            ))
        }
    }

    fn pub_op() -> Op {
        Op::Pub {
            subject: Subject::from_static("big.data"),
            headers: None,
        }
    }

    #[test]
    fn segment_frames_carry_only_their_length_and_take_the_payload_beside() {
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut codec = FrameCodec::with_segments(1 << 20, Box::new(FakeSegments(asked.clone())));
        let fd = std::fs::File::open("/dev/null").unwrap();
        let mut frame = Frame::with_payload(pub_op(), Bytes::from(vec![7; 100_000]));
        frame.segment = Some(SegmentFd::new(fd.into(), 100_000));
        let mut buf = BytesMut::new();
        codec.encode(&frame, &mut buf).unwrap();
        assert!(buf.len() < 100, "the payload stays out of the stream");
        let decoded = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(*asked.lock().unwrap(), [100_000]);
        assert_eq!(decoded.op, frame.op);
        assert_eq!(decoded.payload, frame.payload);
        assert!(decoded.segment.is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn segment_frames_are_refused_where_no_fds_pass_or_when_malformed() {
        let fd = || SegmentFd::new(std::fs::File::open("/dev/null").unwrap().into(), 4);
        let mut frame = Frame::with_payload(pub_op(), Bytes::from_static(b"data"));
        frame.segment = Some(fd());
        let mut buf = BytesMut::new();
        FrameCodec::new(1024).encode(&frame, &mut buf).unwrap();
        let err = FrameCodec::new(1024).decode(&mut buf.clone()).unwrap_err();
        assert!(err.to_string().contains("only over shm"), "{err}");

        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut codec = FrameCodec::with_segments(1024, Box::new(FakeSegments(asked.clone())));
        // A length field of 7 bytes instead of 8.
        let mut short = buf.clone();
        short.truncate(short.len() - 1);
        let total = u32::from_be_bytes(short[..4].try_into().unwrap()) - 1;
        short[..4].copy_from_slice(&total.to_be_bytes());
        assert_eq!(
            codec.decode(&mut short).unwrap_err().code(),
            ErrorCode::ProtocolViolation
        );
        // Empty, and over the frame limit.
        for (len, code) in [
            (0, ErrorCode::ProtocolViolation),
            (1025, ErrorCode::FrameTooLarge),
        ] {
            let mut bad = buf.clone();
            let at = bad.len() - 8;
            bad[at..].copy_from_slice(&u64::to_be_bytes(len));
            assert_eq!(codec.decode(&mut bad).unwrap_err().code(), code);
        }
        assert!(
            asked.lock().unwrap().is_empty(),
            "no fd taken for a bad frame"
        );
        // A segment counts against the limit on the way out too.
        frame.segment = Some(SegmentFd::new(
            std::fs::File::open("/dev/null").unwrap().into(),
            2000,
        ));
        let err = codec.encode(&frame, &mut BytesMut::new()).unwrap_err();
        assert!(matches!(err, CodecError::FrameTooLarge { .. }));
    }

    /// Hands out as many `/dev/null` fds as asked, recording each frame's
    /// place in the stream and count; refuses segments.
    struct FakeFds(std::sync::Arc<std::sync::Mutex<Asked>>);

    /// Each frame's place in the stream and the fds it announced.
    type Asked = Vec<(Range<u64>, usize)>;

    impl SegmentSource for FakeFds {
        fn take(&mut self, _: u64) -> Result<(Bytes, SegmentFd), CodecError> {
            Err(CodecError::Malformed("no segments here".into()))
        }

        fn take_fds(
            &mut self,
            frame: Range<u64>,
            count: usize,
        ) -> Result<Vec<OwnedFd>, CodecError> {
            self.0.lock().unwrap().push((frame, count));
            let dev_null = || std::fs::File::open("/dev/null").map(OwnedFd::from);
            Ok((0..count).map(|_| dev_null()).collect::<Result<_, _>>()?)
        }
    }

    fn with_fds(op: Op, payload: &'static [u8], count: usize) -> Frame {
        let mut frame = Frame::with_payload(op, Bytes::from_static(payload));
        let dev_null = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        frame.fds = Fds::new((0..count).map(|_| dev_null()).collect());
        frame
    }

    #[test]
    fn frames_announce_their_fds_and_the_source_is_asked_for_each_frame() {
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut codec = FrameCodec::with_segments(1 << 20, Box::new(FakeFds(asked.clone())));
        let frames = [
            Frame::new(Op::Ping),
            with_fds(pub_op(), b"two files", 2),
            with_fds(pub_op(), b"", 1),
        ];
        let mut buf = BytesMut::new();
        let mut ends = Vec::new();
        for frame in &frames {
            codec.encode(frame, &mut buf).unwrap();
            ends.push(buf.len() as u64);
        }
        for frame in &frames {
            let got = codec.decode(&mut buf).unwrap().unwrap();
            assert_eq!(got.op, frame.op);
            assert_eq!(got.payload, frame.payload);
            assert_eq!(got.fds.len(), frame.fds.len());
        }
        let asked = asked.lock().unwrap();
        assert_eq!(
            *asked,
            [
                (0..ends[0], 0),
                (ends[0]..ends[1], 2),
                (ends[1]..ends[2], 1)
            ]
        );
        // Without fds, a frame is encoded as it always was.
        let (mut plain, mut announced) = (BytesMut::new(), BytesMut::new());
        Frame::with_payload(pub_op(), Bytes::from_static(b"x"))
            .encode(&mut plain)
            .unwrap();
        with_fds(pub_op(), b"x", 1).encode(&mut announced).unwrap();
        assert_eq!(announced.len(), plain.len() + FD_COUNT_FIELD);
        assert_eq!(plain[4] & 0x40, 0);
    }

    #[test]
    fn fds_are_refused_without_a_source_on_other_ops_and_past_the_kernels_limit() {
        let mut buf = BytesMut::new();
        with_fds(pub_op(), b"x", 1).encode(&mut buf).unwrap();
        let err = FrameCodec::new(1024).decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("only over unix and shm"), "{err}");

        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut codec = FrameCodec::with_segments(1024, Box::new(FakeFds(asked.clone())));
        // A Ping with fds: encoded by hand, as no encoder would.
        let mut ping = BytesMut::new();
        Frame::new(Op::Ping).encode(&mut ping).unwrap();
        announce_fds(&mut ping, 0, 1).unwrap();
        let err = codec.decode(&mut ping).unwrap_err();
        assert!(err.to_string().contains("a Ping frame"), "{err}");
        // Counts of 0 and over 253 in the field.
        for count in [0u16, 254] {
            let mut bad = BytesMut::new();
            with_fds(pub_op(), b"", 1).encode(&mut bad).unwrap();
            let at = bad.len() - FD_COUNT_FIELD;
            bad[at..].copy_from_slice(&count.to_be_bytes());
            let err = codec.decode(&mut bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ProtocolViolation, "{count}");
        }
        assert!(
            asked.lock().unwrap().is_empty(),
            "no fd taken for a bad frame"
        );
        let err = announce_fds(&mut BytesMut::new(), 0, 254).unwrap_err();
        assert!(err.to_string().contains("at most 253"), "{err}");
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
