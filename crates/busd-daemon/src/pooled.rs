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
//! charged as queued bytes are) until blocks come back. A `block`
//! subscriber is waited for instead, as for room in its queue: its pool is
//! part of what it has to make room in.

use std::sync::Arc;

use busd_proto::Body;
use busd_transport::{PoolOut, PoolSlot};

use crate::budget::Budget;
use crate::outbox::{ConnHandle, Wait};
use crate::payload::Payload;

/// Payloads from this size on go through a receiver's pool: below it, the
/// rings move bytes as fast (a block is a whole page or more).
pub(crate) const POOLED_FROM: usize = 16 * 1024;

impl ConnHandle {
    /// Copies `payload` (`len` bytes) into a block of this receiver's pool;
    /// the body to send it with, or `None` to send it another way: no pool,
    /// a payload too small or too large, no free block that large, or a
    /// segment that cannot be mapped (the other way tells).
    pub(crate) fn lend(&self, payload: &mut Payload, len: usize) -> Option<Body> {
        let (pool, budget) = self.pool_for(len)?;
        let slot = pool.slot(len)?;
        fill(pool, budget, slot, payload)
    }

    /// As [`lend`](Self::lend), for a `block` subscriber: when its pool has
    /// no free block that large, waits for it to hand blocks back, as long
    /// as `wait` allows a publisher to wait for room in its queue (sending
    /// the bytes through the rings instead would only make it slower). A
    /// connection closing is not waited for.
    ///
    /// # Errors
    /// How long it waited, when no block came back in that time: the
    /// subscriber is to be cut off as a slow consumer.
    pub(crate) async fn lend_blocking<'d>(
        &self,
        payload: &mut Payload,
        len: usize,
        wait: impl FnOnce() -> Wait<'d>,
    ) -> Result<Option<Body>, std::time::Duration> {
        let Some((pool, budget)) = self.pool_for(len) else {
            return Ok(None);
        };
        if let Some(slot) = pool.slot(len) {
            return Ok(fill(pool, budget, slot, payload));
        }
        if self.is_killed() {
            return Ok(None);
        }
        let Wait { timeout, deadline } = wait();
        let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
        tokio::select! {
            slot = pool.slot_waiting_until(len, deadline) => match slot {
                Some(slot) => Ok(fill(pool, budget, slot, payload)),
                None => Err(timeout),
            },
            () = self.killed().cancelled() => Ok(None),
        }
    }

    /// Its pool and budget, if a payload of `len` bytes goes through them.
    fn pool_for(&self, len: usize) -> Option<(&Arc<PoolOut>, &Arc<Budget>)> {
        let (pool, budget) = self.pool.as_ref()?;
        (len >= POOLED_FROM && len as u64 <= pool.size()).then_some((pool, budget))
    }
}

/// Charges `slot` to the receiver's owner and copies `payload` into it;
/// `None` (and the block back in the pool) when the budget has no room
/// or the payload cannot be read.
fn fill(
    pool: &PoolOut,
    budget: &Budget,
    mut slot: PoolSlot,
    payload: &mut Payload,
) -> Option<Body> {
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
