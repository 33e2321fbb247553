//! Memory charged before it is spent (dbus-broker's model): every byte
//! the daemon holds for a client counts against the budget of its owner
//! (its package, or the uid of unpackaged clients), all its connections
//! together, so more connections never buy more memory.
//!
//! Two kinds of bytes are held for a client: a frame it is sending, read
//! in part (charged to the sender), and messages queued for it because it
//! does not read (charged to the reader, whose not reading holds them).
//! The same budgets, counted in fds rather than bytes, bound the files
//! the daemon holds for an owner (`limits.max_fds_in_flight`): an
//! [`FdCharge`] rides with the files it covers and gives its share back
//! when the last copy of them is gone.
//!
//! A connection takes its owner's budget in blocks as its bytes grow and
//! gives them back as they shrink ([`Credit`]), so the per-message paths
//! compare two numbers and touch no shared counter. A client over its
//! owner's budget gets `LimitExceeded` and is closed; nobody else is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use busd_core::Owner;
use busd_policy::Identity;

use crate::sync::lock;

/// The unit a connection takes its owner's budget in. An idle connection
/// holds a block for its read buffer (8 KiB at rest) and up to two of
/// slack for its queue: 24 KiB, so that the default `max_connections`
/// (16,384) of idle connections fit the default budget (512 MiB) with room
/// to spare, where 16 KiB blocks would have overdrawn it.
pub(crate) const BLOCK: usize = 8 * 1024;

/// One owner's budget.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes taken by the owner's connections (in whole blocks).
    held: AtomicUsize,
    limit: usize,
    /// The owner, for the audit log.
    pub(crate) owner: String,
}

impl Budget {
    /// Takes `n` bytes of the budget; `false` (nothing taken) if that would
    /// go over it.
    fn try_take(&self, n: usize) -> bool {
        let before = self.held.fetch_add(n, Ordering::AcqRel);
        if before + n > self.limit {
            self.held.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes taken now.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// Every owner's budget, made on first use and gone with its last
/// connection.
#[derive(Debug)]
pub(crate) struct Budgets {
    by_owner: Mutex<HashMap<Owner, Weak<Budget>>>,
    limit: usize,
}

impl Budgets {
    /// Budgets of `limit` bytes per owner.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            by_owner: Mutex::new(HashMap::new()),
            limit,
        }
    }

    /// `identity`'s owner's budget.
    pub(crate) fn of(&self, identity: &Identity) -> Arc<Budget> {
        let owner = Owner::of(identity);
        let mut map = lock(&self.by_owner);
        if let Some(budget) = map.get(&owner).and_then(Weak::upgrade) {
            return budget;
        }
        // Owners whose connections are all gone leave nothing behind.
        map.retain(|_, b| b.strong_count() > 0);
        let budget = Arc::new(Budget {
            held: AtomicUsize::new(0),
            limit: self.limit,
            owner: identity.to_string(),
        });
        map.insert(owner, Arc::downgrade(&budget));
        budget
    }
}

/// What one connection holds of its owner's budget, for one kind of bytes.
#[derive(Debug)]
pub(crate) struct Credit {
    budget: Arc<Budget>,
    /// Taken, in whole blocks.
    held: usize,
}

impl Credit {
    /// No credit yet, against `budget`.
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Self { budget, held: 0 }
    }

    /// Makes the credit cover `bytes`, taking more blocks if it must;
    /// `false` if the owner's budget has no room for them.
    #[inline]
    pub(crate) fn cover(&mut self, bytes: usize) -> bool {
        if bytes <= self.held {
            return true;
        }
        self.grow(bytes)
    }

    #[cold]
    fn grow(&mut self, bytes: usize) -> bool {
        let more = (bytes - self.held).next_multiple_of(BLOCK);
        if !self.budget.try_take(more) {
            return false;
        }
        self.held += more;
        true
    }

    /// Gives back what covering `bytes` no longer needs, keeping a block of
    /// slack so that a queue hovering at a block's edge does not take and
    /// give back on every message.
    #[inline]
    pub(crate) fn settle(&mut self, bytes: usize) {
        if self.held > bytes + 2 * BLOCK {
            let keep = (bytes + BLOCK).next_multiple_of(BLOCK);
            self.budget.give_back(self.held - keep);
            self.held = keep;
        }
    }

    /// Whether `other` is charged to the same owner.
    pub(crate) fn same_owner(&self, other: &Credit) -> bool {
        Arc::ptr_eq(&self.budget, &other.budget)
    }

    /// The owner, for the audit log.
    pub(crate) fn owner(&self) -> &str {
        &self.budget.owner
    }
}

impl Drop for Credit {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

/// Bytes of an owner's budget held by the blocks of its pool the daemon
/// wrote and it has not handed back yet (shm; see `pooled`).
impl Budget {
    /// Takes `bytes` for blocks lent; `false` (nothing taken) if they do
    /// not fit.
    pub(crate) fn take_lent(&self, bytes: u64) -> bool {
        usize::try_from(bytes).is_ok_and(|n| self.try_take(n))
    }

    /// Gives back `bytes` of blocks handed back (or of a pool gone).
    pub(crate) fn give_back_lent(&self, bytes: u64) {
        self.give_back(usize::try_from(bytes).unwrap_or(usize::MAX));
    }
}

/// Fds held for an owner, taken from its fd budget and given back on drop.
#[derive(Debug)]
pub(crate) struct FdCharge {
    budget: Arc<Budget>,
    fds: usize,
}

impl FdCharge {
    /// Charges `fds` to `budget`; `None` (nothing taken) if they do not fit.
    pub(crate) fn take(budget: &Arc<Budget>, fds: usize) -> Option<Self> {
        budget.try_take(fds).then(|| Self {
            budget: Arc::clone(budget),
            fds,
        })
    }
}

impl Drop for FdCharge {
    fn drop(&mut self) {
        self.budget.give_back(self.fds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(limit: usize) -> (Budgets, Identity, Identity) {
        (
            Budgets::new(limit),
            Identity::unpackaged(Some(1000)),
            Identity::unpackaged(Some(1001)),
        )
    }

    #[test]
    fn connections_of_one_owner_share_its_budget() {
        let (budgets, alice, _) = budgets(8 * BLOCK);
        let mut a = Credit::new(budgets.of(&alice));
        let mut b = Credit::new(budgets.of(&alice));
        assert!(a.cover(5 * BLOCK));
        assert!(b.cover(3 * BLOCK));
        assert!(!b.cover(3 * BLOCK + 1), "a ninth block is over the budget");
        drop(a);
        assert!(b.cover(8 * BLOCK), "what a closed connection held is free");
    }

    #[test]
    fn fd_charges_share_the_owners_budget_until_dropped() {
        let (budgets, alice, _) = budgets(16);
        let budget = budgets.of(&alice);
        let ten = FdCharge::take(&budget, 10).unwrap();
        assert!(FdCharge::take(&budgets.of(&alice), 7).is_none());
        let six = FdCharge::take(&budget, 6).unwrap();
        drop(ten);
        assert_eq!(budget.held(), 6);
        drop(six);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn owners_do_not_share() {
        let (budgets, alice, bob) = budgets(4 * BLOCK);
        let mut a = Credit::new(budgets.of(&alice));
        let mut b = Credit::new(budgets.of(&bob));
        assert!(a.cover(4 * BLOCK));
        assert!(b.cover(4 * BLOCK));
    }

    #[test]
    fn credit_shrinks_with_what_it_covers_but_keeps_a_block() {
        let (budgets, alice, _) = budgets(100 * BLOCK);
        let budget = budgets.of(&alice);
        let mut a = Credit::new(Arc::clone(&budget));
        assert!(a.cover(10 * BLOCK + 1));
        assert_eq!(budget.held(), 11 * BLOCK);
        a.settle(10 * BLOCK);
        assert_eq!(budget.held(), 11 * BLOCK, "within slack: nothing moves");
        a.settle(1);
        assert_eq!(budget.held(), 2 * BLOCK);
        a.settle(0);
        assert_eq!(budget.held(), 2 * BLOCK);
        drop(a);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn an_owner_without_connections_leaves_nothing() {
        let (budgets, alice, bob) = budgets(BLOCK);
        drop(budgets.of(&alice));
        let _bob = budgets.of(&bob);
        assert_eq!(lock(&budgets.by_owner).len(), 1);
    }
}
