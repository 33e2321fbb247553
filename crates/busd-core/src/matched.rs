//! What a subject matched, as the router caches it, and the pick of the
//! receivers the rules allow.

use std::sync::Arc;

use busd_policy::{Identity, Policy};
use busd_proto::{Overflow, Subject};

use crate::audit;
use crate::route::Target;
use crate::stats::Stats;

/// One resolved subscription in a cached match.
#[derive(Debug, Clone)]
pub(crate) struct Entry<H> {
    pub(crate) handle: H,
    pub(crate) conn: u64,
    pub(crate) sid: u64,
    pub(crate) overflow: Overflow,
    pub(crate) identity: Arc<Identity>,
}

impl<H: Clone> Entry<H> {
    fn target(&self) -> Target<H> {
        Target {
            handle: self.handle.clone(),
            conn: self.conn,
            sid: self.sid,
            overflow: self.overflow,
        }
    }
}

/// The members of one queue group, picked round robin.
#[derive(Debug)]
pub(crate) struct Group<H> {
    pub(crate) members: Vec<Entry<H>>,
    pub(crate) next: usize,
}

/// Every subscription one subject matched: plain ones, and queue groups.
#[derive(Debug)]
pub(crate) struct Matched<H> {
    pub(crate) plain: Vec<Entry<H>>,
    pub(crate) groups: Vec<Group<H>>,
}

/// What [`Matched::deliver`] did.
pub(crate) struct Delivered {
    pub(crate) delivered: usize,
    /// No queue group picked a member and no delivery was denied.
    pub(crate) reusable: bool,
}

impl<H: Clone> Matched<H> {
    /// Adds to `out` the receivers the rules let `sender` reach: every
    /// plain subscription, and one member of each queue group; to
    /// `denied`, if given (a monitor watches), those the rules kept out.
    pub(crate) fn deliver(
        &mut self,
        policy: &Policy,
        stats: &mut Stats,
        (sender, subject): (&Identity, &Subject),
        out: &mut Vec<Target<H>>,
        mut denied: Option<&mut Vec<(u64, Arc<Identity>)>>,
    ) -> Delivered {
        let start = out.len();
        let denied_before = stats.denied;
        let mut deny = |stats: &mut Stats, e: &Entry<H>| {
            stats.denied += 1;
            audit::denied(
                sender,
                &e.identity,
                subject,
                &policy.decide(sender, &e.identity),
            );
            if let Some(denied) = denied.as_deref_mut() {
                denied.push((e.conn, Arc::clone(&e.identity)));
            }
        };
        for e in &self.plain {
            if policy.allows(sender, &e.identity) {
                out.push(e.target());
            } else {
                deny(stats, e);
            }
        }
        for group in &mut self.groups {
            let n = group.members.len();
            let pick = (0..n)
                .map(|i| (group.next + i) % n)
                .find(|&i| policy.allows(sender, &group.members[i].identity));
            match pick {
                Some(i) => {
                    group.next = i + 1;
                    out.push(group.members[i].target());
                }
                None => deny(stats, &group.members[0]),
            }
        }
        Delivered {
            delivered: out.len() - start,
            reusable: self.groups.is_empty() && stats.denied == denied_before,
        }
    }
}
