//! A payload lent from the peer's payload pool (shm only): [`Lease`].
//!
//! A frame with `POOL_FLAG` carries only where its payload lies in the
//! pool its sender writes and the receiver maps read-only (see
//! `busd_shm::PoolWriter`). The receiver holds the block until it drops the
//! lease, which hands it back (the transport tells the sender in a
//! `Release`), so the sender lends it again only then.

use std::fmt;
use std::sync::Arc;

/// Where leased payloads come from: the transport's side of a peer's pool.
pub trait LeaseSource: Send + Sync + fmt::Debug {
    /// Copies the `dst.len()` bytes at `offset` of the pool into `dst`.
    /// The peer may write its pool meanwhile; it then gets the bytes it
    /// wrote, torn or not.
    fn copy_to(&self, offset: u64, dst: &mut [u8]);

    /// The block at `offset` is no longer needed: hand it back.
    fn release(&self, offset: u64);
}

/// A payload of `len` bytes at `offset` in the peer's pool, held until
/// dropped. Shared among receivers by `Arc`, as a segment's fd is.
pub struct Lease {
    offset: u64,
    len: u64,
    source: Arc<dyn LeaseSource>,
}

impl Lease {
    /// The block at `offset` holding `len` payload bytes, from `source`
    /// (which checked that the range lies in the pool).
    pub fn new(offset: u64, len: u64, source: Arc<dyn LeaseSource>) -> Self {
        Self {
            offset,
            len,
            source,
        }
    }

    /// The payload's length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the payload into `dst`, which must be exactly
    /// [`len`](Self::len) bytes long.
    ///
    /// # Panics
    /// If `dst` is another length (a bug in the caller).
    pub fn copy_to(&self, dst: &mut [u8]) {
        assert_eq!(
            dst.len() as u64,
            self.len,
            "a lease copied into the wrong size"
        );
        self.source.copy_to(self.offset, dst);
    }

    /// The payload, copied out.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = vec![0; self.len as usize];
        self.copy_to(&mut bytes);
        bytes
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Two leases are equal when they lend the same block of the same pool.
impl PartialEq for Lease {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
            && self.len == other.len
            && std::ptr::addr_eq(Arc::as_ptr(&self.source), Arc::as_ptr(&other.source))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.source.release(self.offset);
    }
}
