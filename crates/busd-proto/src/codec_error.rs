//! [`CodecError`]: why a frame could not be read or written, shared by the
//! encoder (`frame`) and the decoder (`codec`).

use crate::error::ErrorCode;

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
