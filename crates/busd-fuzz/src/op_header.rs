//! The MessagePack `Op` header: the codec's hand-written decoders for
//! plain `Pub` and `Msg` (`message_header.rs`, with their cache of the last
//! subject and sender) against rmp-serde, and the hand-written encoders
//! against rmp-serde's bytes.
//!
//! Input: headers, each a length byte and that many bytes, decoded in turn
//! through one codec, so its cache carries names from one to the next.
//!
//! Checks: no panic; the codec decodes each header exactly as rmp-serde
//! does, as one `Op` with nothing after it (the same op, or an error from
//! both); for every decoded op, `encode_head` (direct writers for plain
//! `Pub` and `Msg`, serde for the rest), `encode_pub_head` and
//! `encode_msg_head` write rmp-serde's bytes, and those bytes decode to the
//! same op through a fresh codec (no cached names) and the warm one.

use std::io::Cursor;

use busd_proto::{Body, FrameCodec, Op, encode_head, encode_msg_head, encode_pub_head};
use bytes::{BufMut, BytesMut};
use tokio_util::codec::Decoder;

/// `header` framed alone, without payload.
fn framed(header: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32(4 + header.len() as u32);
    buf.put_u32(header.len() as u32);
    buf.put_slice(header);
    buf
}

/// The op `codec` decodes from `header`, or `None` for an error.
fn decode(codec: &mut FrameCodec, header: &[u8]) -> Option<Op> {
    let mut buf = framed(header);
    let frame = codec.decode(&mut buf).ok()?;
    let frame = frame.expect("a whole frame");
    assert!(buf.is_empty() && frame.payload.is_empty());
    Some(frame.op)
}

/// The header bytes (after both lengths) of an encoded head.
fn header_of(head: &BytesMut) -> &[u8] {
    &head[8..]
}

/// Every writer of `op`'s header writes rmp-serde's bytes, and those
/// decode to `op`, through a fresh codec and through `codec`.
fn assert_writers_agree(op: &Op, codec: &mut FrameCodec) {
    let serde = rmp_serde::to_vec(op).expect("a decoded op encodes");
    let mut head = BytesMut::new();
    encode_head(op, 0, &mut head).expect("a decoded op encodes");
    assert_eq!(header_of(&head), serde, "encode_head for {op:?}");
    let mut borrowed = BytesMut::new();
    match op {
        Op::Pub { subject, headers } => {
            encode_pub_head(subject, headers.as_ref(), Body::Inline(0), &mut borrowed).unwrap();
            assert_eq!(header_of(&borrowed), serde, "encode_pub_head for {op:?}");
        }
        Op::Msg {
            sid,
            subject,
            from,
            headers,
        } => {
            encode_msg_head(
                *sid,
                subject,
                from,
                headers.as_ref(),
                Body::Inline(0),
                &mut borrowed,
            )
            .unwrap();
            assert_eq!(header_of(&borrowed), serde, "encode_msg_head for {op:?}");
        }
        _ => {}
    }
    assert_eq!(
        decode(&mut FrameCodec::new(u32::MAX), &serde).as_ref(),
        Some(op)
    );
    assert_eq!(decode(codec, &serde).as_ref(), Some(op));
}

/// rmp-serde's reading of `header`: one `Op` and nothing after it (a
/// header is exactly its op: bytes a reader would skip could hide data).
/// The reader is a cursor, whose position says what rmp-serde read.
fn serde_op(header: &[u8]) -> Option<Op> {
    let mut cursor = Cursor::new(header);
    let op = rmp_serde::from_read::<_, Op>(&mut cursor).ok()?;
    (cursor.position() == header.len() as u64).then_some(op)
}

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    let mut codec = FrameCodec::new(u32::MAX);
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (header, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        check_header(&mut codec, header);
    }
}

/// Decodes `header` through `codec` (whose cache earlier headers warmed)
/// and through rmp-serde, and checks the writers on what decodes.
///
/// # Panics
/// On any broken invariant.
pub fn check_header(codec: &mut FrameCodec, header: &[u8]) {
    let serde = serde_op(header);
    let ours = decode(codec, header);
    assert_eq!(ours, serde, "codec and serde disagree on {header:02x?}");
    if let Some(op) = ours {
        assert_writers_agree(&op, codec);
    }
}

/// The input that [`check`] reads as `headers`, in turn.
///
/// # Panics
/// If a header is longer than 255 bytes.
pub fn input(headers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in headers {
        out.push(u8::try_from(h.len()).expect("a header of at most 255 bytes"));
        out.extend_from_slice(h);
    }
    out
}
