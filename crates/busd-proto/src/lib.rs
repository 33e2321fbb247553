//! The busd wire protocol, shared by the daemon and every client.
//!
//! A frame is `u32 length` (big endian, counting everything after itself),
//! `u32 header length`, a MessagePack header (an [`Op`], encoded with
//! rmp-serde) and a raw payload that is never encoded, so the daemon can
//! forward it as a shared [`bytes::Bytes`] slice. [`FrameCodec`] checks the
//! length against `max_frame` before it allocates anything.
//!
//! This crate does no I/O: transports move bytes, the codec frames them.

#![forbid(unsafe_code)]

mod auth;
mod codec;
mod codec_error;
mod error;
mod fds;
mod flags;
mod frame;
mod layout;
mod lease;
mod message_header;
mod monitor;
mod op;
mod pfn;
mod subject;
mod value;

pub use auth::{AUTH_MAC_LEN, auth_mac, read_token};
pub use codec::{FrameCodec, SegmentSource};
pub use codec_error::CodecError;
pub use error::{ErrorCode, Status};
pub use fds::{Fds, MAX_FDS_PER_FRAME};
pub use frame::{
    Body, Frame, POOL_ID_SHIFT, PoolFd, SegmentFd, announce_fds, encode_head, encode_head_with,
    encode_msg_head, encode_pub_head, split_pool_offset,
};
pub use layout::{
    FD_COUNT_FIELD, FDS_FLAG, HEADER_FLAGS, LENGTH_PREFIX, POOL_FLAG, POOL_REF_FIELD, SEGMENT_FLAG,
    SEGMENT_LEN_FIELD,
};
pub use lease::{Lease, LeaseSource};
pub use monitor::{EventKind, MonitorEvent, Party};
pub use op::{
    AuthKind, CtlCommand, ExplainQuery, GrantRequest, Headers, Hello, Limits, Op, Overflow,
    RELAYED_FOR, Ref, Sender, Welcome,
};
pub use pfn::{Pfn, PfnError, publisher_id};
pub use subject::{Subject, SubjectError};
pub use value::{Value, ValueSet, ValueSetError};

/// The protocol version a client announces in `Hello` and the daemon accepts.
pub const PROTOCOL_VERSION: u16 = 1;
