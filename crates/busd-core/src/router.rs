//! Connections, subscriptions and publish routing.
//!
//! Services and requests are routed in `services.rs`, and `busd ctl`'s
//! views made in `introspect.rs`: both extend [`Router`] from above, and
//! nothing here calls into them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ahash::AHashMap;
use busd_policy::{Identity, Policy};
use busd_proto::{Overflow, Sender, Subject};

use crate::calls::{Call, Calls, Unanswered};
use crate::error::RouterError;
use crate::ledger::{Ledger, Owner, RouterLimits};
use crate::matched::{Entry, Group, Matched};
use crate::route::{Route, RouteEpoch, Target};
use crate::stats::{ServiceCounts, Stats};
use crate::trie::{SubKey, Trie};

/// How many distinct subjects the match cache remembers before it starts over.
const CACHE_MAX: usize = 4096;

/// One subscription of a connection.
#[derive(Debug)]
pub(crate) struct SubInfo {
    pub(crate) subject: Subject,
    pub(crate) queue: Option<Arc<str>>,
    pub(crate) overflow: Overflow,
}

/// One registered connection.
#[derive(Debug)]
pub(crate) struct Conn<H> {
    pub(crate) handle: H,
    pub(crate) identity: Arc<Identity>,
    pub(crate) sender: Sender,
    pub(crate) owner: Owner,
    pub(crate) subs: HashMap<u64, SubInfo>,
    pub(crate) serves: HashMap<u64, Subject>,
    /// Calls this connection must answer.
    pub(crate) serving: HashSet<u64>,
    /// Calls this connection asked and waits for.
    pub(crate) asking: HashSet<u64>,
}

/// The router: see the [crate docs](crate).
#[derive(Debug)]
pub struct Router<H> {
    pub(crate) conns: AHashMap<u64, Conn<H>>,
    trie: Trie,
    /// Keyed by subjects clients choose: a randomly keyed hash (ahash), fast
    /// on the publish path and not open to chosen collisions.
    cache: AHashMap<Box<str>, Matched<H>>,
    pub(crate) ledger: Ledger,
    pub(crate) calls: Calls,
    pub(crate) policy: Arc<Policy>,
    pub(crate) stats: Stats,
    /// How each configured service's requests ended.
    pub(crate) per_service: std::collections::HashMap<Subject, ServiceCounts>,
    /// Shared with publishing sessions (see [`Route`]); holds the
    /// `published` and `delivered` counts.
    epoch: Arc<RouteEpoch>,
}

impl<H: Clone> Router<H> {
    /// A router enforcing `policy` and `limits`.
    pub fn new(policy: Arc<Policy>, limits: RouterLimits) -> Self {
        Self {
            conns: AHashMap::new(),
            trie: Trie::default(),
            cache: AHashMap::new(),
            ledger: Ledger::new(limits),
            calls: Calls::default(),
            policy,
            stats: Stats::default(),
            per_service: std::collections::HashMap::new(),
            epoch: Arc::default(),
        }
    }

    /// Registers connection `conn` with its proven identity.
    ///
    /// # Errors
    /// [`RouterError::TooManyConnections`] when the identity already holds
    /// `max_connections`.
    pub fn connect(&mut self, conn: u64, identity: Identity, handle: H) -> Result<(), RouterError> {
        let owner = self.ledger.add_connection(&identity)?;
        let sender = Sender {
            client_id: conn,
            pfn: identity.pfn.clone(),
        };
        self.conns.insert(
            conn,
            Conn {
                handle,
                identity: Arc::new(identity),
                sender,
                owner,
                subs: HashMap::new(),
                serves: HashMap::new(),
                serving: HashSet::new(),
                asking: HashSet::new(),
            },
        );
        Ok(())
    }

    /// The sender identity the daemon stamps on `conn`'s messages.
    pub fn sender(&self, conn: u64) -> Option<&Sender> {
        self.conns.get(&conn).map(|c| &c.sender)
    }

    /// Subscribes `conn`'s `sid` to `subject`.
    ///
    /// # Errors
    /// [`RouterError::SidInUse`] for a sid in use,
    /// [`RouterError::TooManySubscriptions`] past `max_subscriptions`.
    pub fn subscribe(
        &mut self,
        conn: u64,
        sid: u64,
        subject: Subject,
        queue: Option<String>,
        overflow: Overflow,
    ) -> Result<(), RouterError> {
        self.claim_sid(conn, sid)?;
        let key = SubKey { conn, sid };
        self.trie.insert(&subject, key);
        self.cache.clear();
        self.epoch.bump();
        if let Some(c) = self.conns.get_mut(&conn) {
            let queue = queue.map(Arc::from);
            c.subs.insert(
                sid,
                SubInfo {
                    subject,
                    queue,
                    overflow,
                },
            );
        }
        Ok(())
    }

    /// Checks that `sid` is free on `conn` and counts it against the owner's limit.
    pub(crate) fn claim_sid(&mut self, conn: u64, sid: u64) -> Result<(), RouterError> {
        let Some(c) = self.conns.get(&conn) else {
            return Err(RouterError::UnknownConnection);
        };
        if c.subs.contains_key(&sid) || c.serves.contains_key(&sid) {
            return Err(RouterError::SidInUse(sid));
        }
        self.ledger.add_subscription(&c.owner, &c.identity)
    }

    /// Removes the subscription or service `sid` of `conn`; returns whether it existed.
    pub fn unsubscribe(&mut self, conn: u64, sid: u64) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        let owner = c.owner.clone();
        if let Some(info) = c.subs.remove(&sid) {
            self.trie.remove(&info.subject, SubKey { conn, sid });
            self.cache.clear();
            self.epoch.bump();
        } else if let Some(service) = c.serves.remove(&sid) {
            self.calls.remove_responder(&service, conn, sid);
        } else {
            return false;
        }
        self.ledger.release_subscription(&owner);
        true
    }

    /// Routes a publish from `from` to `subject`: pushes one [`Target`] per
    /// receiving subscription onto `out` (every allowed plain subscriber,
    /// one allowed member of each queue group). Denied deliveries are
    /// counted and audited, never reported to the publisher.
    pub fn publish(&mut self, from: u64, subject: &Subject, out: &mut Vec<Target<H>>) {
        self.route_into(from, subject, out, None);
    }

    /// As [`publish`](Self::publish), into `route`, which a later publish
    /// to the same subject may use again without the router (see
    /// [`Route::reuse`]).
    pub fn route(&mut self, from: u64, subject: &Subject, route: &mut Route<H>) {
        route.targets.clear();
        let epoch = self.epoch.current();
        let denied_before = self.stats.denied;
        let reusable = self.route_into(from, subject, &mut route.targets, None);
        route.denied = self.stats.denied - denied_before;
        route.reusable = reusable.then(|| (subject.clone(), epoch));
    }

    /// As [`route`](Self::route), for a publish that a monitor watches:
    /// also adds to `denied` each receiver the rules kept it from (its
    /// connection id and identity), which a plain route only counts.
    pub fn route_watched(
        &mut self,
        from: u64,
        subject: &Subject,
        route: &mut Route<H>,
        denied: &mut Vec<(u64, Arc<Identity>)>,
    ) {
        route.targets.clear();
        let epoch = self.epoch.current();
        let denied_before = self.stats.denied;
        let reusable = self.route_into(from, subject, &mut route.targets, Some(denied));
        route.denied = self.stats.denied - denied_before;
        route.reusable = reusable.then(|| (subject.clone(), epoch));
    }

    /// What sessions need to check and count reused routes.
    pub fn epoch(&self) -> Arc<RouteEpoch> {
        Arc::clone(&self.epoch)
    }

    /// Routes a publish into `out` (and who was denied into `denied`, if
    /// given); whether the same publish would be routed the same way until
    /// the epoch changes.
    fn route_into(
        &mut self,
        from: u64,
        subject: &Subject,
        out: &mut Vec<Target<H>>,
        denied: Option<&mut Vec<(u64, Arc<Identity>)>>,
    ) -> bool {
        let Some(sender) = self.conns.get(&from) else {
            return false;
        };
        let sender = &sender.identity;
        // One lookup when cached (every publish but a subject's first).
        let routed = if let Some(matched) = self.cache.get_mut(subject.as_str()) {
            matched.deliver(
                &self.policy,
                &mut self.stats,
                (sender, subject),
                out,
                denied,
            )
        } else {
            if self.cache.len() >= CACHE_MAX {
                self.cache.clear();
            }
            let mut matched = resolve(&self.trie, &self.conns, subject);
            let routed = matched.deliver(
                &self.policy,
                &mut self.stats,
                (sender, subject),
                out,
                denied,
            );
            self.cache.insert(subject.as_str().into(), matched);
            routed
        };
        self.epoch.count(1, routed.delivered as u64);
        routed.reusable
    }

    /// Forgets connection `conn`: its subscriptions, services and requests.
    /// Returns the requests it was serving, which must be answered
    /// `ResponderGone` at once.
    pub fn disconnect(&mut self, conn: u64) -> Vec<Unanswered<H>> {
        let Some(c) = self.conns.remove(&conn) else {
            return Vec::new();
        };
        // Also when it held no subscription: routes it made as a
        // publisher must not outlive it.
        self.epoch.bump();
        for (sid, info) in &c.subs {
            self.trie.remove(&info.subject, SubKey { conn, sid: *sid });
        }
        for (sid, service) in &c.serves {
            self.calls.remove_responder(service, conn, *sid);
        }
        self.ledger
            .release_connection(&c.owner, c.subs.len() + c.serves.len());
        if !c.subs.is_empty() {
            self.cache.clear();
        }
        self.forget_calls(&c)
    }

    /// Drops the calls of a departed connection: those it asked are
    /// forgotten, those it served are returned for `ResponderGone`.
    fn forget_calls(&mut self, gone: &Conn<H>) -> Vec<Unanswered<H>> {
        for call_id in &gone.asking {
            if let Some(call) = self.calls.remove(*call_id) {
                self.stats.requester_gone += 1;
                self.count_service(&call.service, |c| c.requester_gone += 1);
                if let Some(r) = self.conns.get_mut(&call.responder) {
                    forget(&mut r.serving, *call_id);
                }
            }
        }
        let mut out = Vec::new();
        for call_id in &gone.serving {
            if let Some(call) = self.calls.remove(*call_id) {
                self.stats.responder_gone += 1;
                self.count_service(&call.service, |c| c.responder_gone += 1);
                out.extend(self.finish(*call_id, &call));
            }
        }
        out
    }

    /// Takes an ended call off both its connections' books; where its
    /// answer goes, if the requester is still there.
    pub(crate) fn finish(&mut self, call_id: u64, call: &Call) -> Option<Unanswered<H>> {
        if let Some(r) = self.conns.get_mut(&call.responder) {
            forget(&mut r.serving, call_id);
        }
        let asker = self.conns.get_mut(&call.requester)?;
        forget(&mut asker.asking, call_id);
        Some(Unanswered {
            requester: asker.handle.clone(),
            rid: call.rid,
            received: call.received,
        })
    }

    /// Swaps in a new policy (after a reload). Every later delivery,
    /// queue-group pick and request obeys it, since the router asks the
    /// policy on each one. Returns the connections whose package the new
    /// policy no longer has, which the daemon must close.
    pub fn set_policy(&mut self, policy: Arc<Policy>) -> Vec<(u64, H)> {
        self.policy = policy;
        self.epoch.bump();
        let gone = self.gone_under(&self.policy);
        gone.into_iter()
            .filter_map(|id| Some((id, self.conns.get(&id)?.handle.clone())))
            .collect()
    }

    /// The connections whose package `policy` does not configure.
    pub(crate) fn gone_under(&self, policy: &Policy) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| {
                c.identity
                    .pfn
                    .as_ref()
                    .is_some_and(|p| !policy.packages.contains_key(p))
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The policy in force.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        Stats {
            published: self.epoch.published.load(Ordering::Relaxed),
            delivered: self.epoch.delivered.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    /// Connections registered.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Subscriptions registered (services not included).
    pub fn subscription_count(&self) -> usize {
        self.trie.len()
    }
}

/// Every subscription `subject` matches, with what delivery needs of each.
/// Takes `call_id` off a connection's books, giving back the room a flood
/// of calls left (see [`shrunk_room`](crate::calls::shrunk_room)).
fn forget(calls: &mut HashSet<u64>, call_id: u64) {
    calls.remove(&call_id);
    if let Some(room) = crate::calls::shrunk_room(calls.len(), calls.capacity()) {
        calls.shrink_to(room);
    }
}

fn resolve<H: Clone>(trie: &Trie, conns: &AHashMap<u64, Conn<H>>, subject: &Subject) -> Matched<H> {
    let mut plain = Vec::new();
    let mut groups: HashMap<Arc<str>, Vec<Entry<H>>> = HashMap::new();
    trie.matches(subject, &mut |key| {
        let Some(c) = conns.get(&key.conn) else {
            return;
        };
        let Some(info) = c.subs.get(&key.sid) else {
            return;
        };
        let entry = Entry {
            handle: c.handle.clone(),
            conn: key.conn,
            sid: key.sid,
            overflow: info.overflow,
            identity: Arc::clone(&c.identity),
        };
        match &info.queue {
            Some(q) => groups.entry(Arc::clone(q)).or_default().push(entry),
            None => plain.push(entry),
        }
    });
    let mut groups: Vec<(Arc<str>, Vec<Entry<H>>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    Matched {
        plain,
        groups: groups
            .into_iter()
            .map(|(_, mut members)| {
                // A stable order, so round robin is fair across cache rebuilds.
                members.sort_by_key(|e| (e.conn, e.sid));
                Group { members, next: 0 }
            })
            .collect(),
    }
}
