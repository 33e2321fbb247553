//! A decoded frame and the encoding of its head.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Op;
use crate::codec::{CodecError, LENGTH_PREFIX};

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
