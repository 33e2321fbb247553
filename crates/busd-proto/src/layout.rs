//! Where a frame's fields lie: the sizes and flag that the encoder
//! (`frame`) writes and the decoder (`codec`) reads, kept here so that
//! neither of the two depends on the other for them.
//!
//! ```text
//! u32 length          big endian, counting everything after itself
//! u32 header length   big endian; SEGMENT_FLAG set for a segment frame,
//!                     POOL_FLAG for a pooled one, FDS_FLAG for a frame
//!                     with fds attached
//! header              MessagePack (an Op)
//! u16 fd count        big endian, 1..=253; only with FDS_FLAG
//! payload             inline; for a segment frame its u64 length; for a
//!                     pooled frame the u64 offset and u64 length of its
//!                     block in the sender's payload pool
//! ```
//!
//! A frame without `FDS_FLAG` carries no fds, so frames written before fds
//! could be attached read as they always did.

/// Size of each of the two length fields.
pub const LENGTH_PREFIX: usize = 4;

/// Set in a frame's header-length field when its payload is a segment.
pub const SEGMENT_FLAG: u32 = 1 << 31;

/// Bytes a segment frame carries after its header: the segment's length.
pub const SEGMENT_LEN_FIELD: usize = 8;

/// Set in a frame's header-length field when its payload lies in the
/// sender's payload pool (shm only): [`POOL_REF_FIELD`] bytes say where.
pub const POOL_FLAG: u32 = 1 << 29;

/// Bytes a pooled frame carries after its header: the payload's offset in
/// the pool and its length.
pub const POOL_REF_FIELD: usize = 16;

/// All the flags of the header-length field; the rest is the length.
pub const HEADER_FLAGS: u32 = SEGMENT_FLAG | FDS_FLAG | POOL_FLAG;

/// Set in a frame's header-length field when fds are attached to it: a
/// `u16` count follows the header.
pub const FDS_FLAG: u32 = 1 << 30;

/// Bytes of the fd count a frame with [`FDS_FLAG`] carries after its header.
pub const FD_COUNT_FIELD: usize = 2;
