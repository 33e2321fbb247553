//! A decoded frame and the encoding of its head.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use bytes::buf::Writer;
use bytes::{BufMut, Bytes, BytesMut};

use serde::ser::SerializeStructVariant;
use serde::{Serialize, Serializer};

use crate::codec_error::CodecError;
use crate::fds::{Fds, MAX_FDS_PER_FRAME};
use crate::layout::{
    FD_COUNT_FIELD, FDS_FLAG, HEADER_FLAGS, LENGTH_PREFIX, POOL_FLAG, POOL_REF_FIELD, SEGMENT_FLAG,
    SEGMENT_LEN_FIELD,
};
use crate::lease::Lease;
use crate::message_header;
use crate::op::{Headers, Op, Sender};
use crate::subject::Subject;

/// One protocol frame: an operation and its raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The header.
    pub op: Op,
    /// The payload, never parsed by the daemon; empty for most operations.
    /// For a frame that came with a [`segment`](Self::segment), a read-only
    /// view of the segment's mapping, or empty where the decoder's
    /// [`SegmentSource`](crate::SegmentSource) does not map (the daemon's:
    /// the segment's length is then [`SegmentFd::len`]).
    pub payload: Bytes,
    /// The sealed memfd the payload travelled in, beside the byte stream
    /// (shm connections only; see [`SegmentSource`](crate::SegmentSource)).
    pub segment: Option<SegmentFd>,
    /// Open files attached to a message, request or reply (unix and shm
    /// connections only), passed beside the stream; the frame announces
    /// how many.
    pub fds: Fds,
    /// Where the payload lies in the peer's payload pool, for a receiver
    /// that copies it from there (the daemon) rather than reading it in
    /// place from `payload`; the block goes back when this is dropped.
    pub lease: Option<Arc<Lease>>,
}

impl Frame {
    /// A frame without payload.
    pub fn new(op: Op) -> Self {
        Self::with_payload(op, Bytes::new())
    }

    /// A frame with a payload.
    pub fn with_payload(op: Op, payload: Bytes) -> Self {
        Self {
            op,
            payload,
            segment: None,
            fds: Fds::default(),
            lease: None,
        }
    }

    /// Appends the encoded frame to `dst`. A frame with a segment is encoded
    /// as a segment frame (its payload's length in place of the payload);
    /// its fd must reach the peer beside the stream, before these bytes. A
    /// frame with fds announces their count; they travel as the
    /// connection's transport passes them.
    ///
    /// # Errors
    /// As [`encode_head`] and [`announce_fds`].
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        match &self.segment {
            Some(segment) => encode_head_with(&self.op, Body::Segment(segment.len()), dst)?,
            None => encode_head_with(&self.op, Body::Inline(self.payload.len()), dst)?,
        }
        if let Err(e) = announce_fds(dst, start, self.fds.len()) {
            dst.truncate(start);
            return Err(e);
        }
        if self.segment.is_none() {
            dst.extend_from_slice(&self.payload);
        }
        Ok(())
    }
}

/// Announces `count` attached fds in the head encoded at `dst[start..]`
/// (by [`encode_head_with`] or its kin, with nothing after it but a
/// segment's length): sets [`FDS_FLAG`] and inserts the count after the
/// header. Nothing changes for a count of 0. A separate step, so that the
/// encoders of the hot path stay as they are: a frame with fds is rare and
/// pays for a small copy of its head.
///
/// # Errors
/// [`CodecError::Malformed`] for more than [`MAX_FDS_PER_FRAME`] fds or a
/// head that announces fds already; [`CodecError::FrameTooLarge`] when the
/// two bytes do not fit the length field.
pub fn announce_fds(dst: &mut BytesMut, start: usize, count: usize) -> Result<(), CodecError> {
    if count == 0 {
        return Ok(());
    }
    if count > MAX_FDS_PER_FRAME {
        return Err(CodecError::Malformed(format!(
            "{count} fds attached to one frame; at most {MAX_FDS_PER_FRAME} pass in one message"
        )));
    }
    let word = |at: usize| u32::from_be_bytes([dst[at], dst[at + 1], dst[at + 2], dst[at + 3]]);
    let (total, header_word) = (word(start), word(start + LENGTH_PREFIX));
    if header_word & FDS_FLAG != 0 {
        return Err(CodecError::Malformed("fds announced twice".into()));
    }
    let Some(total) = total.checked_add(FD_COUNT_FIELD as u32) else {
        return Err(CodecError::FrameTooLarge {
            len: u64::from(total) + FD_COUNT_FIELD as u64,
            max: u32::MAX,
        });
    };
    let header_len = (header_word & !HEADER_FLAGS) as usize;
    let at = start + 2 * LENGTH_PREFIX + header_len;
    let tail = dst[at..].to_vec();
    dst.truncate(at);
    dst.put_u16(count as u16);
    dst.extend_from_slice(&tail);
    dst[start..start + 4].copy_from_slice(&total.to_be_bytes());
    dst[start + 4..start + 8].copy_from_slice(&(header_word | FDS_FLAG).to_be_bytes());
    Ok(())
}

/// A sealed memfd holding one payload (`F_SEAL_WRITE`, `F_SEAL_SHRINK`,
/// `F_SEAL_GROW`: its bytes can change no more), passed beside the byte
/// stream of an shm connection. Cloning shares the fd: the daemon hands the
/// same open file to every receiver the rules allow, copying nothing.
#[derive(Debug, Clone)]
pub struct SegmentFd {
    fd: Arc<OwnedFd>,
    len: u64,
}

impl SegmentFd {
    /// Wraps the fd of a segment of `len` bytes; its seals and size are the
    /// creator's or the reader's business (see `busd-shm`), not this type's.
    pub fn new(fd: OwnedFd, len: u64) -> Self {
        Self {
            fd: Arc::new(fd),
            len,
        }
    }

    /// The payload's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the length is zero (never for a segment received: empty
    /// ones are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsFd for SegmentFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl PartialEq for SegmentFd {
    /// The same shared fd (not merely the same bytes).
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.fd, &other.fd)
    }
}

/// A set pool's memfd and its id, for the daemon's writer to pass to a
/// receiver before the first frame whose payload lies in it (see
/// [`Body::Pooled`]). Cloning shares the fd.
#[derive(Debug, Clone)]
pub struct PoolFd {
    fd: Arc<OwnedFd>,
    id: u32,
}

impl PoolFd {
    /// Wraps the memfd of set pool `id` (never 0: that is a connection's
    /// own pool).
    pub fn new(fd: OwnedFd, id: u32) -> Self {
        debug_assert_ne!(id, 0, "pool id 0 is a connection's own pool");
        Self {
            fd: Arc::new(fd),
            id,
        }
    }

    /// The pool's id: the high 32 bits of its blocks' offsets on the wire.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl AsFd for PoolFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Where a set pool's id lies in the offsets of its blocks: the high 32
/// bits (pools are at most 1 GiB, so offsets fit in the low 30).
pub const POOL_ID_SHIFT: u32 = 32;

/// Splits a pooled frame's offset into its pool's id (0: the connection's
/// own pool) and the offset within that pool.
pub fn split_pool_offset(offset: u64) -> (u32, u64) {
    (
        (offset >> POOL_ID_SHIFT) as u32,
        offset & u64::from(u32::MAX),
    )
}

/// What follows a frame's header on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// This many payload bytes, in the stream.
    Inline(usize),
    /// A segment of this many bytes, passed beside the stream: the frame
    /// carries only the length (8 bytes, big-endian) and sets
    /// [`SEGMENT_FLAG`] in its header-length field.
    Segment(u64),
    /// A payload of `len` bytes at `offset` in the sender's payload pool:
    /// the frame carries both (8 bytes each, big-endian) and sets
    /// [`POOL_FLAG`] in its header-length field. From the daemon, the high
    /// 32 bits of `offset` may name a set pool ([`POOL_ID_SHIFT`]): one it
    /// shares among the receivers of one receiver set, whose memfd it
    /// passes beside the stream before the first frame that names it.
    Pooled {
        /// Where the payload's block starts in the pool (and, in the high
        /// 32 bits, which pool).
        offset: u64,
        /// The payload's length.
        len: u64,
    },
}

impl Body {
    /// The body of a payload of `len` bytes: passed beside the stream when
    /// `as_segment`, else in it.
    pub fn of(len: usize, as_segment: bool) -> Self {
        if as_segment {
            Self::Segment(len as u64)
        } else {
            Self::Inline(len)
        }
    }
}

/// Appends everything of a frame but its payload to `dst`: both lengths and
/// the MessagePack header. The caller sends `payload_len` bytes of payload
/// right after, typically as a separate `Bytes` in a vectored write, so a
/// payload shared by many receivers is never copied in user space.
///
/// # Errors
/// [`CodecError::FrameTooLarge`] if the frame would not fit in a `u32`
/// length, [`CodecError::Malformed`] if the header cannot be encoded.
pub fn encode_head(op: &Op, payload_len: usize, dst: &mut BytesMut) -> Result<(), CodecError> {
    encode_head_with(op, Body::Inline(payload_len), dst)
}

/// As [`encode_head`], for either kind of [`Body`]; for a segment the
/// appended bytes are the whole frame.
///
/// # Errors
/// As [`encode_head`].
pub fn encode_head_with(op: &Op, body: Body, dst: &mut BytesMut) -> Result<(), CodecError> {
    match op {
        // The ops of every message, written directly (serde costs as much again).
        Op::Pub {
            subject,
            headers: None,
        } => encode_pub_head(subject, None, body, dst),
        Op::Msg {
            sid,
            subject,
            from,
            headers: None,
        } => encode_msg_head(*sid, subject, from, None, body, dst),
        _ => encode_with(op, body, dst),
    }
}

fn encode_with<T: Serialize + ?Sized>(
    op: &T,
    body: Body,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    encode_header(body, dst, |w| {
        rmp_serde::encode::write(w, op).map_err(|e| CodecError::Malformed(e.to_string()))
    })
}

/// Appends both lengths and the header that `write` writes.
fn encode_header(
    body: Body,
    dst: &mut BytesMut,
    write: impl FnOnce(&mut Writer<&mut BytesMut>) -> Result<(), CodecError>,
) -> Result<(), CodecError> {
    let start = dst.len();
    dst.reserve(2 * LENGTH_PREFIX + 64);
    dst.put_u64(0); // both lengths, patched below once the header is written
    let mut writer = dst.writer();
    if let Err(e) = write(&mut writer) {
        let dst = writer.into_inner();
        dst.truncate(start);
        return Err(e);
    }
    let dst = writer.into_inner();
    let header_len = dst.len() - start - 2 * LENGTH_PREFIX;
    let (in_stream, flag) = match body {
        Body::Inline(len) => (len, 0),
        Body::Segment(_) => (SEGMENT_LEN_FIELD, SEGMENT_FLAG),
        Body::Pooled { .. } => (POOL_REF_FIELD, POOL_FLAG),
    };
    let total = LENGTH_PREFIX + header_len + in_stream;
    let (Ok(total), Ok(header_word)) = (u32::try_from(total), u32::try_from(header_len)) else {
        dst.truncate(start);
        return Err(CodecError::FrameTooLarge {
            len: total as u64,
            max: u32::MAX,
        });
    };
    if header_word & HEADER_FLAGS != 0 {
        dst.truncate(start);
        return Err(CodecError::Malformed("header over 512 MiB".into()));
    }
    dst[start..start + 4].copy_from_slice(&total.to_be_bytes());
    dst[start + 4..start + 8].copy_from_slice(&(header_word | flag).to_be_bytes());
    match body {
        Body::Inline(_) => {}
        Body::Segment(len) => dst.put_u64(len),
        Body::Pooled { offset, len } => {
            dst.put_u64(offset);
            dst.put_u64(len);
        }
    }
    Ok(())
}

/// Appends the head of a `Pub` to `dst`, encoded exactly as [`Op::Pub`]
/// would be, but from a borrowed subject: a client publishing to one
/// subject again and again need not clone it (an atomic reference count
/// update each way) for every message.
///
/// # Errors
/// As [`encode_head`].
pub fn encode_pub_head(
    subject: &Subject,
    headers: Option<&Headers>,
    body: Body,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    match headers {
        None => encode_header(body, dst, |w| {
            message_header::put_plain_pub(w.get_mut(), subject);
            Ok(())
        }),
        Some(headers) => encode_with(&PubRef { subject, headers }, body, dst),
    }
}

/// Borrowed mirror of `Op::Pub` with headers; its encoding is checked
/// against the owned one in tests.
struct PubRef<'a> {
    subject: &'a Subject,
    headers: &'a Headers,
}

/// `Op::Pub`'s position in `Op`, as serde numbers variants.
const PUB_VARIANT_INDEX: u32 = 6;

impl Serialize for PubRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = s.serialize_struct_variant("Op", PUB_VARIANT_INDEX, "Pub", 2)?;
        v.serialize_field("subject", self.subject)?;
        v.serialize_field("headers", &Some(self.headers))?;
        v.end()
    }
}

/// Appends the head of a `Msg` delivery to `dst`, encoded exactly as
/// [`Op::Msg`] would be, but from borrowed parts: the daemon's fan-out loop
/// encodes one head per receiver and must not clone the subject, sender and
/// headers for each.
///
/// # Errors
/// As [`encode_head`].
pub fn encode_msg_head(
    sid: u64,
    subject: &Subject,
    from: &Sender,
    headers: Option<&Headers>,
    body: Body,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    if headers.is_none() {
        return encode_header(body, dst, |w| {
            message_header::put_plain_msg(w.get_mut(), sid, subject, from);
            Ok(())
        });
    }
    let msg = MsgRef {
        sid,
        subject,
        from,
        headers,
    };
    encode_with(&msg, body, dst)
}

/// Borrowed mirror of `Op::Msg`; its encoding is checked against the
/// owned one in tests.
struct MsgRef<'a> {
    sid: u64,
    subject: &'a Subject,
    from: &'a Sender,
    headers: Option<&'a Headers>,
}

/// `Op::Msg`'s position in `Op`, as serde numbers variants.
const MSG_VARIANT_INDEX: u32 = 7;

impl Serialize for MsgRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = s.serialize_struct_variant("Op", MSG_VARIANT_INDEX, "Msg", 4)?;
        v.serialize_field("sid", &self.sid)?;
        v.serialize_field("subject", self.subject)?;
        v.serialize_field("from", self.from)?;
        v.serialize_field("headers", &self.headers)?;
        v.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pfn::Pfn;

    #[test]
    fn pub_heads_from_a_borrowed_subject_are_serdes_bytes() {
        let subject = Subject::from_static("weather.today.paris");
        let mut headers = Headers::new();
        headers.insert("k".into(), "v".into());
        for h in [None, Some(headers)] {
            let owned = Op::Pub {
                subject: subject.clone(),
                headers: h.clone(),
            };
            for body in [Body::Inline(5), Body::Segment(1 << 20)] {
                let mut heads = [BytesMut::new(), BytesMut::new()];
                encode_with(&owned, body, &mut heads[0]).unwrap();
                encode_pub_head(&subject, h.as_ref(), body, &mut heads[1]).unwrap();
                assert_eq!(heads[0], heads[1], "{owned:?} {body:?}");
            }
        }
    }

    #[test]
    fn msg_heads_written_directly_are_serdes_bytes() {
        let subject = Subject::from_static("weather.today");
        let pfn = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap();
        let mut headers = Headers::new();
        headers.insert("k".into(), "v".into());
        // Every MessagePack integer width, packaged or not, with and without
        // headers (the written and the serde path).
        let ids = [0, 127, 128, 255, 256, 65_535, 65_536, 1 << 32, u64::MAX];
        for (sid, client_id) in ids.iter().zip(ids.iter().rev()) {
            for pfn in [Some(pfn.clone()), None] {
                for h in [None, Some(headers.clone())] {
                    let from = Sender {
                        client_id: *client_id,
                        pfn: pfn.clone(),
                    };
                    let owned = Op::Msg {
                        sid: *sid,
                        subject: subject.clone(),
                        from: from.clone(),
                        headers: h.clone(),
                    };
                    for body in [Body::Inline(5), Body::Segment(1 << 20)] {
                        // serde's bytes, the borrowed parts', the owned op's
                        let mut heads = [BytesMut::new(), BytesMut::new(), BytesMut::new()];
                        encode_with(&owned, body, &mut heads[0]).unwrap();
                        encode_msg_head(*sid, &subject, &from, h.as_ref(), body, &mut heads[1])
                            .unwrap();
                        encode_head_with(&owned, body, &mut heads[2]).unwrap();
                        assert_eq!(heads[0], heads[1], "{owned:?} {body:?}");
                        assert_eq!(heads[0], heads[2], "{owned:?} {body:?}");
                    }
                }
            }
        }
    }
}
