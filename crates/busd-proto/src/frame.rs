//! A decoded frame and the encoding of its head.

use bytes::{BufMut, Bytes, BytesMut};

use serde::ser::SerializeStructVariant;
use serde::{Serialize, Serializer};

use crate::codec::{CodecError, LENGTH_PREFIX};
use crate::{Headers, Op, Sender, Subject};

/// One protocol frame: an operation and its raw payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The header.
    pub op: Op,
    /// The payload, never parsed by the daemon; empty for most operations.
    pub payload: Bytes,
}

impl Frame {
    /// A frame without payload.
    pub fn new(op: Op) -> Self {
        Self {
            op,
            payload: Bytes::new(),
        }
    }

    /// A frame with a payload.
    pub fn with_payload(op: Op, payload: Bytes) -> Self {
        Self { op, payload }
    }

    /// The encoded size of this frame, lengths included.
    ///
    /// # Errors
    /// As [`encode_head`].
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode_head(&self.op, self.payload.len(), dst)?;
        dst.extend_from_slice(&self.payload);
        Ok(())
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
    encode_with(op, payload_len, dst)
}

fn encode_with<T: Serialize + ?Sized>(
    op: &T,
    payload_len: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let start = dst.len();
    dst.reserve(2 * LENGTH_PREFIX + 64);
    dst.put_u64(0); // both lengths, patched below once the header is written
    let mut writer = dst.writer();
    rmp_serde::encode::write(&mut writer, op).map_err(|e| CodecError::Malformed(e.to_string()))?;
    let dst = writer.into_inner();
    let header_len = dst.len() - start - 2 * LENGTH_PREFIX;
    let total = LENGTH_PREFIX + header_len + payload_len;
    let Ok(total) = u32::try_from(total) else {
        dst.truncate(start);
        return Err(CodecError::FrameTooLarge {
            len: total as u64,
            max: u32::MAX,
        });
    };
    // header_len < total, so it fits too.
    dst[start..start + 4].copy_from_slice(&total.to_be_bytes());
    dst[start + 4..start + 8].copy_from_slice(&(header_len as u32).to_be_bytes());
    Ok(())
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
    payload_len: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let msg = MsgRef {
        sid,
        subject,
        from,
        headers,
    };
    encode_with(&msg, payload_len, dst)
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
    use crate::Pfn;

    #[test]
    fn borrowed_msg_head_encodes_like_the_owned_op() {
        let subject = Subject::from_static("weather.today");
        let from = Sender {
            client_id: 42,
            pfn: Some(Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap()),
        };
        let mut headers = Headers::new();
        headers.insert("k".into(), "v".into());
        for h in [None, Some(headers)] {
            let owned = Op::Msg {
                sid: 9,
                subject: subject.clone(),
                from: from.clone(),
                headers: h.clone(),
            };
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            encode_head(&owned, 5, &mut a).unwrap();
            encode_msg_head(9, &subject, &from, h.as_ref(), 5, &mut b).unwrap();
            assert_eq!(a, b);
        }
    }
}
