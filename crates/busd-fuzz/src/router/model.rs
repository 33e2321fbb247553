//! What the router should do, written as plainly as possible: every
//! subscription in a map, every publish matched against all of them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use busd_core::{RouterLimits, Target};
use busd_proto::{Overflow, Subject};

/// A subscription as the model keeps it.
pub(super) struct Sub {
    pub(super) pattern: Subject,
    pub(super) queue: Option<u8>,
    pub(super) overflow: Overflow,
}

/// Why the model refuses a subscription.
pub(super) enum Refused {
    UnknownConnection,
    SidInUse,
    TooMany,
}

struct Conn {
    uid: Option<u32>,
    subs: BTreeMap<u64, Sub>,
}

/// Per queue group (or the plain subscriptions): the (conn, sid) of its
/// matching members the rules allow, and how many members match.
type Expected = (Vec<(u64, u64)>, usize);

#[derive(Default)]
pub(super) struct Model {
    conns: BTreeMap<u64, Conn>,
    /// Every connection id handed out is at most this.
    last_id: u64,
    /// Connections and subscriptions per uid (the ledger's owners).
    usage: HashMap<Option<u32>, (usize, usize)>,
    pub(super) published: u64,
    pub(super) delivered: u64,
    pub(super) denied: u64,
}

impl Model {
    /// A fresh connection id.
    pub(super) fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// A connection picked by `b`: with its top bit set, any id (maybe
    /// one that is gone, refused or never given), else an open one or,
    /// one time in `n + 1`, an unknown one.
    pub(super) fn pick(&self, b: u8) -> u64 {
        if b & 0x80 != 0 {
            return u64::from(b & 0x7f) % (self.last_id + 1);
        }
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        ids.get(usize::from(b) % (ids.len() + 1))
            .copied()
            .unwrap_or(u64::MAX)
    }

    pub(super) fn is_open(&self, id: u64) -> bool {
        self.conns.contains_key(&id)
    }

    pub(super) fn connections(&self) -> usize {
        self.conns.len()
    }

    pub(super) fn subscriptions(&self) -> usize {
        self.conns.values().map(|c| c.subs.len()).sum()
    }

    /// Whether connection `id` of `uid` is within the limit (and now open).
    pub(super) fn connect(&mut self, id: u64, uid: Option<u32>, limits: RouterLimits) -> bool {
        let usage = self.usage.entry(uid).or_default();
        if usage.0 >= limits.max_connections {
            return false;
        }
        usage.0 += 1;
        let subs = BTreeMap::new();
        self.conns.insert(id, Conn { uid, subs });
        true
    }

    /// The router's checks, in its order: the connection, the sid, the
    /// owner's limit.
    pub(super) fn subscribe(
        &mut self,
        conn: u64,
        sid: u64,
        sub: Sub,
        limits: RouterLimits,
    ) -> Result<(), Refused> {
        let c = self
            .conns
            .get_mut(&conn)
            .ok_or(Refused::UnknownConnection)?;
        let usage = self.usage.get_mut(&c.uid).expect("a connected owner");
        match c.subs.entry(sid) {
            Entry::Occupied(_) => Err(Refused::SidInUse),
            Entry::Vacant(_) if usage.1 >= limits.max_subscriptions => Err(Refused::TooMany),
            Entry::Vacant(vacant) => {
                usage.1 += 1;
                vacant.insert(sub);
                Ok(())
            }
        }
    }

    /// Whether there was such a subscription to drop.
    pub(super) fn unsubscribe(&mut self, conn: u64, sid: u64) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if c.subs.remove(&sid).is_none() {
            return false;
        }
        self.usage.get_mut(&c.uid).expect("an owner").1 -= 1;
        true
    }

    pub(super) fn disconnect(&mut self, conn: u64) {
        if let Some(c) = self.conns.remove(&conn) {
            let usage = self.usage.get_mut(&c.uid).expect("an owner");
            usage.0 -= 1;
            usage.1 -= c.subs.len();
        }
    }

    /// Checks a publish's targets from `from` to `subject`, and counts it.
    pub(super) fn check(&mut self, from: u64, subject: &Subject, targets: &[Target<u64>]) {
        let Some(sender) = self.conns.get(&from) else {
            assert!(targets.is_empty(), "an unknown publisher routed");
            return;
        };
        let allows = |uid: Option<u32>| sender.uid.is_some() && sender.uid == uid;
        let mut want: BTreeMap<Option<u8>, Expected> = BTreeMap::new();
        for (&conn, c) in &self.conns {
            for (&sid, sub) in &c.subs {
                if sub.pattern.matches(subject) {
                    let group = want.entry(sub.queue).or_default();
                    group.1 += 1;
                    if allows(c.uid) {
                        group.0.push((conn, sid));
                    }
                }
            }
        }
        let mut got: BTreeMap<Option<u8>, Vec<(u64, u64)>> = BTreeMap::new();
        for t in targets {
            assert_eq!(t.handle, t.conn);
            let sub = &self.conns[&t.conn].subs[&t.sid];
            assert_eq!(t.overflow, sub.overflow);
            got.entry(sub.queue).or_default().push((t.conn, t.sid));
        }
        got.values_mut().for_each(|g| g.sort_unstable());
        for (queue, (allowed, members)) in &want {
            let got = got.remove(queue).unwrap_or_default();
            match queue {
                None => {
                    assert_eq!(&got, allowed, "plain receivers of {subject}");
                    self.denied += (members - allowed.len()) as u64;
                }
                Some(_) if allowed.is_empty() => {
                    assert!(got.is_empty());
                    self.denied += 1;
                }
                Some(q) => {
                    assert_eq!(got.len(), 1, "group {q} of {subject}: {got:?}");
                    assert!(allowed.contains(&got[0]));
                }
            }
        }
        assert!(got.is_empty(), "receivers that do not match: {got:?}");
        self.published += 1;
        self.delivered += targets.len() as u64;
    }
}
