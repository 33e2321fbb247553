//! Large payloads into a receiver's payload pool (shm connections set up
//! with pools): the daemon copies the payload once into a block of the
//! pool it gave that receiver, which maps it read-only and reads it in
//! place, and the frame carries only the block's place. The pool was
//! mapped once, so a steady stream costs no page faults, no `mmap` and no
//! `munmap` per message, unlike a sealed segment.
//!
//! A receiver has its own pool, so no process can read a payload it was
//! not given. Each block lent is charged to the receiver's owner (its
//! `limits.max_memory_per_identity` budget) until handed back: one that
//! holds its blocks fills only its own pool and budget, and its deliveries
//! then go the older way (a segment's fd, or the bytes in the rings,
//! charged as queued bytes are) until blocks come back.

use busd_proto::Body;

use crate::outbox::ConnHandle;
use crate::payload::Payload;

/// Payloads from this size on go through a receiver's pool: below it, the
/// rings move bytes as fast (a block is a whole page or more).
pub(crate) const POOLED_FROM: usize = 16 * 1024;

impl ConnHandle {
    /// Copies `payload` (`len` bytes) into a block of this receiver's pool;
    /// the body to send it with, or `None` to send it another way: no pool,
    /// a payload too small, no free block that large, or a segment that
    /// cannot be mapped (the other way tells).
    pub(crate) fn lend(&self, payload: &mut Payload, len: usize) -> Option<Body> {
        let (pool, budget) = self.pool.as_ref().filter(|_| len >= POOLED_FROM)?;
        let mut slot = pool.slot(len)?;
        // The block is the receiver's to hold, so its owner pays for it.
        if !budget.take_lent(slot.block_len()) {
            pool.cancel(slot);
            return None;
        }
        match payload.copy_to(slot.as_mut_slice()) {
            Ok(()) => Some(busd_transport::body_of(&slot)),
            Err(_) => {
                budget.give_back_lent(slot.block_len());
                pool.cancel(slot);
                None
            }
        }
    }
}
