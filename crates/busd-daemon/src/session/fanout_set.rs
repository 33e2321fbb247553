//! A large publish's one copy into the pool of its receiver set (see
//! `set_pools`): the shm receivers that take set pools all get their frame
//! from the same block, where each would otherwise get a copy in its own
//! pool. The other receivers, and any the set's pool could not take, get
//! theirs as before.

use std::sync::Arc;

use busd_core::Target;
use busd_proto::{Body, Overflow, POOL_ID_SHIFT, PoolFd};
use tokio::time::Instant;

use super::link::Link;
use crate::outbox::{ConnHandle, Wait};
use crate::payload::Payload;
use crate::pooled::POOLED_FROM;
use crate::set_pools::MAX_MEMBERS;

/// How long a publisher waits at most for a block of a full set pool
/// before each receiver gets its own copy. Members that read on hand
/// blocks back within it; a member that holds its blocks would otherwise
/// hold up every publish to the set for a whole `block_timeout`.
const SET_POOL_PATIENCE: std::time::Duration = std::time::Duration::from_millis(10);

/// A payload copied once into a set pool.
pub(super) struct SetDelivery {
    /// The pool, passed to a receiver that has not mapped it yet.
    pub(super) pool: PoolFd,
    /// Where the payload lies, as each frame says.
    pub(super) body: Body,
    /// By target index: whether that target's frame names the pool.
    pub(super) to: Vec<bool>,
}

impl Link {
    /// Copies `payload` (`len` bytes) into the pool of the set of
    /// `targets` that take set pools, when there are two or more; `None`
    /// when there are not, or the pool cannot take it (none to be had, no
    /// free block in time, no budget): every target then gets its own.
    ///
    /// With no free block, waits as a publisher waits for room in `block`
    /// subscribers' queues (until the earliest of their deadlines, which
    /// the same publish's other waits then share), if every member is one,
    /// but no longer than [`SET_POOL_PATIENCE`].
    pub(super) async fn lend_to_set(
        &self,
        targets: &[Target<Arc<ConnHandle>>],
        payload: &mut Payload,
        len: usize,
        (own, foreign): (&mut Option<Instant>, &mut Option<Instant>),
    ) -> Option<SetDelivery> {
        let set_pools = &self.shared.set_pools;
        if !set_pools.enabled() || len < POOLED_FROM || len as u64 > set_pools.size() {
            return None;
        }
        // One frame per connection names a block: a connection with two
        // matching subscriptions gets the second the other way.
        let mut members: Vec<(usize, &Arc<ConnHandle>)> = Vec::new();
        for (i, t) in targets.iter().enumerate() {
            let takes = t.handle.set_pools
                && t.overflow != Overflow::DropOldest
                && !t.handle.is_killed()
                && !members.iter().any(|(_, h)| h.id == t.conn);
            if takes {
                members.push((i, &t.handle));
            }
        }
        if !(2..=MAX_MEMBERS).contains(&members.len()) {
            return None;
        }
        let pool = set_pools.of(members.iter().map(|(_, h)| *h).collect())?;
        let mut slot = match pool.slot(len) {
            Some(slot) => slot,
            None => {
                let all_block = members
                    .iter()
                    .all(|(i, _)| targets[*i].overflow == Overflow::Block);
                if !all_block || pool.jammed() {
                    return None;
                }
                let mut until: Option<Instant> = None;
                for (i, _) in &members {
                    let Wait { timeout, deadline } =
                        self.block_wait(&targets[*i], (&mut *own, &mut *foreign));
                    let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                    until = Some(until.map_or(at, |u| u.min(at)));
                }
                let until = until?.min(Instant::now() + SET_POOL_PATIENCE);
                pool.slot_waiting_until(len, until).await?
            }
        };
        if payload.copy_to(slot.as_mut_slice()).is_err() {
            pool.cancel(slot);
            return None;
        }
        let offset = slot.offset();
        let index = |h: &ConnHandle| pool.member_index(h.id).map(|m| 1u64 << m);
        let asked = members
            .iter()
            .filter_map(|(_, h)| index(h))
            .fold(0, |a, b| a | b);
        let got = pool.lend(slot, asked);
        if got == 0 {
            return None;
        }
        let mut to = vec![false; targets.len()];
        for (i, h) in &members {
            to[*i] = index(h).is_some_and(|bit| got & bit != 0);
        }
        Some(SetDelivery {
            body: Body::Pooled {
                offset: (u64::from(pool.fd.id()) << POOL_ID_SHIFT) | offset,
                len: len as u64,
            },
            pool: pool.fd.clone(),
            to,
        })
    }
}
