//! Expiring grants (`busd ctl grant`): an allowance an admin adds on top
//! of the file, from one party to another, until it expires or is
//! revoked. The daemon keeps them in the [`Policy`](crate::Policy) in
//! force (a grant added, revoked or expired swaps in a new one, so cached
//! routes are rebuilt), and carries them over a reload of the file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use crate::identity::Identity;

/// One grant.
#[derive(Debug)]
pub struct Grant {
    /// Its id, for `busd ctl revoke`.
    pub id: u64,
    /// The sender it lets through: a package, `unpackaged:UID`, or any
    /// unpackaged client (no uid).
    pub from: Identity,
    /// The receiver it lets them reach, as `from`.
    pub to: Identity,
    /// Both directions, not only `from` to `to`.
    pub both_ways: bool,
    /// When it expires (for display: the daemon's timer removes it).
    pub until: SystemTime,
    /// Why it was granted, as the admin said.
    pub reason: Option<String>,
    /// Whether a delivery used it yet: the first use is audited.
    used: AtomicBool,
}

impl Grant {
    /// A grant not used yet.
    pub fn new(
        id: u64,
        (from, to): (Identity, Identity),
        both_ways: bool,
        until: SystemTime,
        reason: Option<String>,
    ) -> Self {
        Self {
            id,
            from,
            to,
            both_ways,
            until,
            reason,
            used: AtomicBool::new(false),
        }
    }

    /// Whether it lets a message from `from` reach `to`.
    pub fn covers(&self, from: &Identity, to: &Identity) -> bool {
        let one_way = |a: &Identity, b: &Identity| names(a, from) && names(b, to);
        one_way(&self.from, &self.to) || (self.both_ways && one_way(&self.to, &self.from))
    }

    /// Records a use; `true` the first time (to be audited).
    pub fn first_use(&self) -> bool {
        !self.used.swap(true, Ordering::Relaxed)
    }
}

/// Grants are the same grant when their ids are (a policy is compared
/// whole, and a grant's use flag is not part of what it says).
impl PartialEq for Grant {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Grant {}

/// Whether the party `party` (as granted) names the client `who`: its
/// package, or an unpackaged client of its uid (any, without one).
fn names(party: &Identity, who: &Identity) -> bool {
    match (&party.pfn, &who.pfn) {
        (Some(a), Some(b)) => a == b,
        (None, None) => party.uid.is_none() || party.uid == who.uid,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use busd_proto::Pfn;

    use super::*;

    #[test]
    fn a_grant_covers_its_parties_one_way_or_both() {
        let pfn = |s: &str| Identity::package(Pfn::parse(s).unwrap(), Some(1));
        let (a, b) = (pfn("A.A_1234567890abc"), pfn("B.B_1234567890abc"));
        let me = Identity::unpackaged(Some(1000));
        let one = Grant::new(
            1,
            (a.clone(), Identity::unpackaged(Some(1000))),
            false,
            SystemTime::now(),
            None,
        );
        assert!(one.covers(&a, &me));
        assert!(!one.covers(&me, &a), "one way");
        assert!(
            !one.covers(&a, &Identity::unpackaged(Some(1001))),
            "another uid"
        );
        assert!(!one.covers(&b, &me), "another package");
        let both = Grant::new(2, (a.clone(), b.clone()), true, SystemTime::now(), None);
        assert!(both.covers(&a, &b) && both.covers(&b, &a));
        let anyone = Grant::new(
            3,
            (Identity::unpackaged(None), a.clone()),
            false,
            SystemTime::now(),
            None,
        );
        assert!(anyone.covers(&me, &a));
        assert!(one.first_use() && !one.first_use(), "the first use only");
    }
}
