//! Set pools: payload pools the daemon shares among all the shm receivers
//! of one receiver set, so that a large payload fanned out to N of them is
//! copied once instead of once each (a receiver's own pool: see `pooled`).
//!
//! # Isolation
//! - A set pool belongs to one exact set of connections, its members, and
//!   is written only with payloads of publishes whose route holds every
//!   member: payloads the rules let each of them receive. A member may
//!   read any block of it, so nothing else ever lies there; a connection
//!   that joins or leaves the route makes another set, with another pool.
//! - The daemon is its one writer (members map it read-only, as their own
//!   pools) and writes only blocks no member holds: a block is lent again
//!   once every member it went to has handed it back, or left.
//! - Each member is charged every block it holds, as if it were its own
//!   copy. A member that holds its blocks fills the pool: publishers then
//!   wait briefly for blocks, and past that deliver the older way (each
//!   receiver's own pool), where a member that takes nothing is cut off as
//!   a slow consumer. Nobody else's budget pays for it.
//! - A member naming a block it does not hold, or a pool it is not a
//!   member of, breaks the protocol and is closed.
//!
//! # Lifetime
//! A pool is retired when one of its members leaves, or (at
//! `limits.shm_set_pools`) when it is the least recently used and has been
//! idle for [`IDLE`]: nothing more is written into it, its members'
//! writers tell them (`PoolGone`), and it is dropped, memfd and all, once
//! every block has come back. A retired pool's memory stays while a
//! member holds one block of it, so retired pools count too: with as many
//! of them as the limit, no new pool is made until some drain, and a
//! member holding old blocks cannot make the daemon pile up pools.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use busd_proto::PoolFd;
use busd_transport::{PoolOut, PoolSlot};
use tokio::time::Instant;

use crate::budget::Budget;
use crate::outbox::ConnHandle;
use crate::sync::lock;

/// The most members a set pool has: one bit each in a block's holders.
pub(crate) const MAX_MEMBERS: usize = 64;
/// How long a pool must have been unused before another set's takes its
/// place at the limit: sets that alternate quickly share none rather than
/// each make and unmake a pool at every turn.
const IDLE: Duration = Duration::from_secs(1);

/// Every set pool of the daemon.
#[derive(Debug)]
pub(crate) struct SetPools {
    /// Each pool's size (`limits.shm_pool_bytes`).
    size: u64,
    /// Live pools at most (`limits.shm_set_pools`).
    limit: usize,
    registry: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// Live pools, by their members' ids (sorted).
    by_set: HashMap<Box<[u64]>, Arc<SetPool>>,
    /// Live pools, and retired ones with blocks still out, by pool id.
    by_id: HashMap<u32, Arc<SetPool>>,
    /// The last id given (0 is a connection's own pool).
    last_id: u32,
}

/// One receiver set's pool.
#[derive(Debug)]
pub(crate) struct SetPool {
    /// Its memfd and id, passed to each member before the first payload.
    pub(crate) fd: PoolFd,
    /// Which blocks are free; wakes publishers waiting for blocks when
    /// some come back.
    writer: PoolOut,
    /// Sorted by connection id.
    members: Box<[Member]>,
    /// Taken before `writer`'s own lock, never after.
    state: Mutex<State>,
    /// Set once a publisher waited for blocks in vain; cleared when one
    /// comes back. Publishers do not wait on a jammed pool.
    jammed: AtomicBool,
}

#[derive(Debug)]
struct Member {
    conn: u64,
    /// Its owner's, charged the blocks it holds.
    budget: Arc<Budget>,
    /// Told when the pool is retired; weak, so a pool keeps no connection.
    handle: Weak<ConnHandle>,
}

#[derive(Debug)]
struct State {
    /// Blocks lent out, by offset.
    held: HashMap<u64, Held>,
    /// Nothing more is written into it.
    retired: bool,
    last_used: Instant,
}

#[derive(Debug)]
struct Held {
    /// The members holding it, one bit each (by index in `members`).
    holders: u64,
    /// The block's size, as charged to each holder.
    block: u64,
}

impl SetPools {
    /// Pools of `size` bytes, at most `limit` live at once (0: none).
    pub(crate) fn new(size: u64, limit: usize) -> Self {
        Self {
            size,
            limit: if size == 0 { 0 } else { limit },
            registry: Mutex::default(),
        }
    }

    /// Whether set pools are given at all.
    pub(crate) fn enabled(&self) -> bool {
        self.limit > 0
    }

    /// The largest payload a set pool holds.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The pool of the receiver set `members` (distinct connections that
    /// take set pools, 2 to [`MAX_MEMBERS`]), made if there is none yet;
    /// `None` at the limit with no pool idle long enough to retire, or
    /// when the memfd cannot be made.
    pub(crate) fn of(&self, mut members: Vec<&Arc<ConnHandle>>) -> Option<Arc<SetPool>> {
        if !(2..=MAX_MEMBERS).contains(&members.len()) {
            return None;
        }
        members.sort_unstable_by_key(|h| h.id);
        let key: Vec<u64> = members.iter().map(|h| h.id).collect();
        let mut registry = lock(&self.registry);
        if let Some(pool) = registry.by_set.get(key.as_slice()) {
            return Some(Arc::clone(pool));
        }
        // A route made just before a member's session ended may still name
        // it. Its `leave` comes after its session is marked finishing, and
        // takes this lock: a pool made for it now would never be retired,
        // and the blocks lent to it never come back.
        if members.iter().any(|h| h.is_closing()) {
            return None;
        }
        let draining = registry.by_id.len() - registry.by_set.len();
        if draining >= self.limit
            || (registry.by_set.len() >= self.limit && !registry.retire_idle())
        {
            return None;
        }
        let members = members
            .iter()
            .map(|h| {
                Some(Member {
                    conn: h.id,
                    budget: Arc::clone(&h.pool.as_ref()?.1),
                    handle: Arc::downgrade(h),
                })
            })
            .collect::<Option<Box<[Member]>>>()?;
        let id = registry.next_id();
        let (writer, fd) = match PoolOut::create("busd-set-pool", self.size) {
            Ok(made) => made,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot make a set pool; copying to each receiver");
                return None;
            }
        };
        let pool = Arc::new(SetPool {
            fd: PoolFd::new(fd, id),
            writer,
            members,
            state: Mutex::new(State {
                held: HashMap::new(),
                retired: false,
                last_used: Instant::now(),
            }),
            jammed: AtomicBool::new(false),
        });
        registry.by_set.insert(key.into(), Arc::clone(&pool));
        registry.by_id.insert(id, Arc::clone(&pool));
        Some(pool)
    }

    /// Takes back the blocks of set pool `id` that connection `conn` hands
    /// back.
    ///
    /// # Errors
    /// What is wrong, when `conn` is not a member of a pool `id` or does
    /// not hold one of the blocks (those before it were taken back).
    pub(crate) fn release(&self, conn: u64, id: u32, offsets: &[u64]) -> Result<(), String> {
        let pool = lock(&self.registry).by_id.get(&id).cloned();
        let Some((pool, member)) =
            pool.and_then(|p| p.member_index(conn).map(|member| (p, member)))
        else {
            return Err(format!(
                "set pool {id} handed back, which it was never given"
            ));
        };
        let mut drained = false;
        for &offset in offsets {
            drained = pool.give_back(member, offset)?;
        }
        if drained {
            self.forget_drained(&pool);
        }
        Ok(())
    }

    /// Connection `conn` is gone: the blocks it held go back, and every
    /// pool it was a member of is retired.
    pub(crate) fn leave(&self, conn: u64) {
        let mut registry = lock(&self.registry);
        let pools: Vec<Arc<SetPool>> = registry
            .by_id
            .values()
            .filter(|p| p.member_index(conn).is_some())
            .cloned()
            .collect();
        for pool in pools {
            registry.retire(&pool);
            let Some(member) = pool.member_index(conn) else {
                continue;
            };
            if pool.drop_member(member) {
                registry.by_id.remove(&pool.fd.id());
            }
        }
    }

    /// Live pools, and retired ones whose blocks are not all back.
    pub(crate) fn count(&self) -> (usize, usize) {
        let registry = lock(&self.registry);
        let live = registry.by_set.len();
        (live, registry.by_id.len() - live)
    }

    /// Drops a retired pool whose last block came back.
    fn forget_drained(&self, pool: &Arc<SetPool>) {
        let mut registry = lock(&self.registry);
        let id = pool.fd.id();
        if registry
            .by_id
            .get(&id)
            .is_some_and(|p| Arc::ptr_eq(p, pool))
            && pool.drained()
        {
            registry.by_id.remove(&id);
        }
    }
}

impl Registry {
    /// An id no pool has: ids wrap only after 4 billion pools, and skip
    /// those still draining.
    fn next_id(&mut self) -> u32 {
        loop {
            self.last_id = self.last_id.wrapping_add(1);
            if self.last_id != 0 && !self.by_id.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }

    /// Retires the least recently used live pool if it has been idle for
    /// [`IDLE`]; whether one was.
    fn retire_idle(&mut self) -> bool {
        let idlest = self
            .by_set
            .values()
            .map(|p| (lock(&p.state).last_used, p))
            .min_by_key(|(used, _)| *used);
        match idlest {
            Some((used, pool)) if used.elapsed() >= IDLE => {
                let pool = Arc::clone(pool);
                self.retire(&pool);
                if pool.drained() {
                    self.by_id.remove(&pool.fd.id());
                }
                true
            }
            _ => false,
        }
    }

    /// Writes nothing more into `pool`, and has its members told.
    fn retire(&mut self, pool: &Arc<SetPool>) {
        let key: Box<[u64]> = pool.members.iter().map(|m| m.conn).collect();
        if self.by_set.get(&key).is_some_and(|p| Arc::ptr_eq(p, pool)) {
            self.by_set.remove(&key);
        }
        let mut state = lock(&pool.state);
        if std::mem::replace(&mut state.retired, true) {
            return;
        }
        drop(state);
        for member in &pool.members {
            if let Some(handle) = member.handle.upgrade() {
                handle.set_pool_gone(pool.fd.id());
            }
        }
    }
}

impl SetPool {
    /// A block for a payload of `len` bytes, if one is free and the pool
    /// is not retired.
    pub(crate) fn slot(&self, len: usize) -> Option<PoolSlot> {
        let mut state = lock(&self.state);
        if state.retired {
            return None;
        }
        state.last_used = Instant::now();
        self.writer.slot(len)
    }

    /// As [`slot`](Self::slot), waiting until `deadline` for blocks to come
    /// back when none is free; `None` past it (the pool is then jammed, and
    /// not waited on again until a block comes back), or once it is
    /// retired.
    pub(crate) async fn slot_waiting_until(
        &self,
        len: usize,
        deadline: Instant,
    ) -> Option<PoolSlot> {
        if lock(&self.state).retired {
            return None;
        }
        // A slot of a pool retired meanwhile is refused by `lend`.
        let slot = self.writer.slot_waiting_until(len, deadline).await;
        if slot.is_none() {
            self.jammed.store(true, Ordering::Relaxed);
        }
        slot
    }

    /// Whether a publisher waited for its blocks in vain since the last
    /// one came back.
    pub(crate) fn jammed(&self) -> bool {
        self.jammed.load(Ordering::Relaxed)
    }

    /// Gives back a block that was never sent.
    pub(crate) fn cancel(&self, slot: PoolSlot) {
        self.writer.cancel(slot);
    }

    /// Lends the written block `slot` to the members in `to` (one bit per
    /// member index), each charged its size; those whose budget has no
    /// room are left out. The members that got it (none, and the block
    /// back in the pool, once the pool is retired).
    pub(crate) fn lend(&self, slot: PoolSlot, to: u64) -> u64 {
        let block = slot.block_len();
        let mut state = lock(&self.state);
        let mut got = 0;
        if !state.retired {
            for (i, member) in self.members.iter().enumerate() {
                if to & (1 << i) != 0 && member.budget.take_lent(block) {
                    got |= 1 << i;
                }
            }
        }
        if got == 0 {
            self.writer.cancel(slot);
        } else {
            state.held.insert(
                slot.offset(),
                Held {
                    holders: got,
                    block,
                },
            );
        }
        got
    }

    /// Where connection `conn` is among the members, if it is one.
    pub(crate) fn member_index(&self, conn: u64) -> Option<usize> {
        self.members.binary_search_by_key(&conn, |m| m.conn).ok()
    }

    /// The block at `offset` is back from member `member`; whether the pool
    /// is now retired with every block back.
    fn give_back(&self, member: usize, offset: u64) -> Result<bool, String> {
        let bit = 1 << member;
        let mut state = lock(&self.state);
        let Some(held) = state.held.get_mut(&offset).filter(|h| h.holders & bit != 0) else {
            return Err(format!(
                "set pool {} block at {offset} handed back, which it does not hold",
                self.fd.id()
            ));
        };
        held.holders &= !bit;
        self.members[member].budget.give_back_lent(held.block);
        if held.holders != 0 {
            return Ok(false);
        }
        state.held.remove(&offset);
        let drained = state.retired && state.held.is_empty();
        drop(state);
        // Wakes publishers waiting for a block.
        let freed = self.writer.handed_back(&[offset]);
        debug_assert!(freed.is_ok(), "a held block not lent");
        self.jammed.store(false, Ordering::Relaxed);
        Ok(drained)
    }

    /// Member `member` is gone: every block it held is given back for it.
    /// Whether the pool is now retired with every block back.
    fn drop_member(&self, member: usize) -> bool {
        let bit = 1 << member;
        let mut state = lock(&self.state);
        let mut freed = Vec::new();
        state.held.retain(|&offset, h| {
            if h.holders & bit != 0 {
                h.holders &= !bit;
                self.members[member].budget.give_back_lent(h.block);
            }
            if h.holders == 0 {
                freed.push(offset);
            }
            h.holders != 0
        });
        let drained = state.retired && state.held.is_empty();
        drop(state);
        let taken = self.writer.handed_back(&freed);
        debug_assert!(taken.is_ok(), "a held block not lent");
        drained
    }

    /// Whether it is retired with every block back.
    fn drained(&self) -> bool {
        let state = lock(&self.state);
        state.retired && state.held.is_empty()
    }
}

/// Set pools retired for one connection, for its writer to tell it about
/// (`PoolGone`); the writer looks at each turn, at the cost of one atomic
/// load while none is waiting.
#[derive(Debug, Default)]
pub(crate) struct GonePools {
    ids: Mutex<Vec<u32>>,
    pending: AtomicBool,
}

impl GonePools {
    pub(crate) fn push(&self, id: u32) {
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(id);
        self.pending.store(true, Ordering::Release);
    }

    /// The ids waiting, taken (empty when none).
    pub(crate) fn take(&self) -> Vec<u32> {
        // A load first: the writer looks at every turn, and a swap would
        // write the line each time.
        if !self.pending.load(Ordering::Acquire) || !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.ids.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
