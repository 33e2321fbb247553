//! Connections, subscriptions and publish routing.

use std::collections::{HashMap, HashSet};

use ahash::AHashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use busd_policy::{Identity, Policy};
use busd_proto::{ErrorCode, Overflow, Pfn, Sender, Subject};

use crate::Stats;
use crate::requests::Calls;
use crate::route::{Route, RouteEpoch};
use crate::trie::{SubKey, Trie};

/// How many distinct subjects the match cache remembers before it starts over.
const CACHE_MAX: usize = 4096;

/// Per-identity limits (an identity is a package, or the uid of unpackaged clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterLimits {
    /// Connections one identity may hold.
    pub max_connections: usize,
    /// Subscriptions and services one identity may hold, all connections together.
    pub max_subscriptions: usize,
}

impl Default for RouterLimits {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            max_subscriptions: 1_000_000,
        }
    }
}

/// A delivery the daemon must make: a `Msg` for `sid` on the connection `handle`.
#[derive(Debug, Clone)]
pub struct Target<H> {
    /// The receiving connection.
    pub handle: H,
    /// Its connection id.
    pub conn: u64,
    /// The receiving subscription.
    pub sid: u64,
    /// What to do if the receiver's queue is full.
    pub overflow: Overflow,
}

/// One connection as `busd ctl clients` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Connection id.
    pub id: u64,
    /// Proven identity.
    pub identity: Identity,
    /// Subscriptions it holds.
    pub subscriptions: usize,
    /// Services it serves.
    pub services: usize,
    /// Calls routed to it and not yet answered.
    pub pending_calls: usize,
}

/// One subscription or service as `busd ctl subs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Connection id.
    pub conn: u64,
    /// The client's sid.
    pub sid: u64,
    /// Subject pattern, or service name.
    pub subject: Subject,
    /// Queue group, if any.
    pub queue: Option<String>,
    /// A service rather than a subscription.
    pub service: bool,
}

/// Why a `Sub` or `Serve` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeError {
    /// The protocol code for the `Error` frame.
    pub code: ErrorCode,
    /// What to tell the client.
    pub message: String,
}

impl SubscribeError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    Package(Pfn),
    Uid(Option<u32>),
}

impl Owner {
    fn of(identity: &Identity) -> Self {
        match &identity.pfn {
            Some(pfn) => Self::Package(pfn.clone()),
            None => Self::Uid(identity.uid),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    connections: usize,
    subscriptions: usize,
}

#[derive(Debug)]
struct SubInfo {
    subject: Subject,
    queue: Option<Arc<str>>,
    overflow: Overflow,
}

#[derive(Debug)]
pub(crate) struct Conn<H> {
    pub(crate) handle: H,
    pub(crate) identity: Arc<Identity>,
    pub(crate) sender: Sender,
    owner: Owner,
    subs: HashMap<u64, SubInfo>,
    pub(crate) serves: HashMap<u64, Subject>,
    /// Calls this connection must answer.
    pub(crate) serving: HashSet<u64>,
    /// Calls this connection asked and waits for.
    pub(crate) asking: HashSet<u64>,
}

/// One resolved subscription in a cached match.
#[derive(Debug, Clone)]
struct Entry<H> {
    handle: H,
    conn: u64,
    sid: u64,
    overflow: Overflow,
    identity: Arc<Identity>,
}

#[derive(Debug)]
struct Group<H> {
    members: Vec<Entry<H>>,
    next: usize,
}

#[derive(Debug)]
struct Matched<H> {
    plain: Vec<Entry<H>>,
    groups: Vec<Group<H>>,
}

/// The router: see the [crate docs](crate).
#[derive(Debug)]
pub struct Router<H> {
    pub(crate) conns: AHashMap<u64, Conn<H>>,
    trie: Trie,
    /// Keyed by subjects clients choose: a randomly keyed hash (ahash), fast
    /// on the publish path and not open to chosen collisions.
    cache: AHashMap<Box<str>, Matched<H>>,
    usage: HashMap<Owner, Usage>,
    pub(crate) calls: Calls,
    pub(crate) policy: Arc<Policy>,
    limits: RouterLimits,
    pub(crate) stats: Stats,
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
            usage: HashMap::new(),
            calls: Calls::default(),
            policy,
            limits,
            stats: Stats::default(),
            epoch: Arc::default(),
        }
    }

    /// Registers connection `conn` with its proven identity.
    ///
    /// # Errors
    /// `LimitExceeded` when the identity already holds `max_connections`.
    pub fn connect(
        &mut self,
        conn: u64,
        identity: Identity,
        handle: H,
    ) -> Result<(), SubscribeError> {
        let owner = Owner::of(&identity);
        let usage = self.usage.entry(owner.clone()).or_default();
        if usage.connections >= self.limits.max_connections {
            return Err(SubscribeError::new(
                ErrorCode::LimitExceeded,
                format!("{identity} already holds {} connections", usage.connections),
            ));
        }
        usage.connections += 1;
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
    /// `ProtocolViolation` for a sid in use, `LimitExceeded` past `max_subscriptions`.
    pub fn subscribe(
        &mut self,
        conn: u64,
        sid: u64,
        subject: Subject,
        queue: Option<String>,
        overflow: Overflow,
    ) -> Result<(), SubscribeError> {
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
    pub(crate) fn claim_sid(&mut self, conn: u64, sid: u64) -> Result<(), SubscribeError> {
        let Some(c) = self.conns.get(&conn) else {
            return Err(SubscribeError::new(
                ErrorCode::ProtocolViolation,
                "unknown connection",
            ));
        };
        if c.subs.contains_key(&sid) || c.serves.contains_key(&sid) {
            return Err(SubscribeError::new(
                ErrorCode::ProtocolViolation,
                format!("sid {sid} is already in use on this connection"),
            ));
        }
        let usage = self.usage.entry(c.owner.clone()).or_default();
        if usage.subscriptions >= self.limits.max_subscriptions {
            return Err(SubscribeError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "{} already holds {} subscriptions and services",
                    c.identity, usage.subscriptions
                ),
            ));
        }
        usage.subscriptions += 1;
        Ok(())
    }

    fn release_sid(&mut self, owner: &Owner) {
        if let Some(u) = self.usage.get_mut(owner) {
            u.subscriptions = u.subscriptions.saturating_sub(1);
        }
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
            self.remove_responder(&service, conn, sid);
        } else {
            return false;
        }
        self.release_sid(&owner);
        true
    }

    /// Routes a publish from `from` to `subject`: pushes one [`Target`] per
    /// receiving subscription onto `out` (every allowed plain subscriber,
    /// one allowed member of each queue group). Denied deliveries are
    /// counted and audited, never reported to the publisher.
    pub fn publish(&mut self, from: u64, subject: &Subject, out: &mut Vec<Target<H>>) {
        self.route_into(from, subject, out);
    }

    /// As [`publish`](Self::publish), into `route`, which a later publish
    /// to the same subject may use again without the router (see
    /// [`Route::reuse`]).
    pub fn route(&mut self, from: u64, subject: &Subject, route: &mut Route<H>) {
        route.targets.clear();
        let epoch = self.epoch.current();
        let reusable = self.route_into(from, subject, &mut route.targets);
        route.reusable = reusable.then(|| (subject.clone(), epoch));
    }

    /// What sessions need to check and count reused routes.
    pub fn epoch(&self) -> Arc<RouteEpoch> {
        Arc::clone(&self.epoch)
    }

    /// Routes a publish into `out`; whether the same publish would be
    /// routed the same way until the epoch changes.
    fn route_into(&mut self, from: u64, subject: &Subject, out: &mut Vec<Target<H>>) -> bool {
        let Some(sender) = self.conns.get(&from) else {
            return false;
        };
        // One lookup when cached (every publish but a subject's first).
        let routed = if let Some(matched) = self.cache.get_mut(subject.as_str()) {
            deliver(
                &self.policy,
                &mut self.stats,
                &sender.identity,
                subject,
                matched,
                out,
            )
        } else {
            if self.cache.len() >= CACHE_MAX {
                self.cache.clear();
            }
            let mut matched = self.resolve(subject);
            let sender = &self.conns[&from].identity;
            let routed = deliver(
                &self.policy,
                &mut self.stats,
                sender,
                subject,
                &mut matched,
                out,
            );
            self.cache.insert(subject.as_str().into(), matched);
            routed
        };
        self.epoch.count(1, routed.delivered as u64);
        routed.reusable
    }

    fn resolve(&self, subject: &Subject) -> Matched<H> {
        let mut plain = Vec::new();
        let mut groups: HashMap<Arc<str>, Vec<Entry<H>>> = HashMap::new();
        self.trie.matches(subject, &mut |key| {
            let Some(c) = self.conns.get(&key.conn) else {
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

    /// Forgets connection `conn`: its subscriptions, services and requests.
    /// Returns the requests it was serving, which must be answered
    /// `ResponderGone` at once.
    pub fn disconnect(&mut self, conn: u64) -> Vec<crate::Unanswered<H>> {
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
            self.remove_responder(service, conn, *sid);
        }
        if let Some(u) = self.usage.get_mut(&c.owner) {
            u.connections = u.connections.saturating_sub(1);
            u.subscriptions = u
                .subscriptions
                .saturating_sub(c.subs.len() + c.serves.len());
            if u.connections == 0 && u.subscriptions == 0 {
                self.usage.remove(&c.owner);
            }
        }
        if !c.subs.is_empty() {
            self.cache.clear();
        }
        self.forget_calls(&c)
    }

    /// Swaps in a new policy (after a reload). Every later delivery,
    /// queue-group pick and request obeys it, since the router asks the
    /// policy on each one. Returns the connections whose package the new
    /// policy no longer has, which the daemon must close.
    pub fn set_policy(&mut self, policy: Arc<Policy>) -> Vec<(u64, H)> {
        self.policy = policy;
        self.epoch.bump();
        self.conns
            .iter()
            .filter(|(_, c)| {
                c.identity
                    .pfn
                    .as_ref()
                    .is_some_and(|p| !self.policy.packages.contains_key(p))
            })
            .map(|(id, c)| (*id, c.handle.clone()))
            .collect()
    }

    /// Every connection, for `busd ctl clients`.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let mut out: Vec<ClientInfo> = self
            .conns
            .iter()
            .map(|(id, c)| ClientInfo {
                id: *id,
                identity: Identity::clone(&c.identity),
                subscriptions: c.subs.len(),
                services: c.serves.len(),
                pending_calls: c.serving.len(),
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// Every subscription and service, for `busd ctl subs`.
    pub fn registrations(&self) -> Vec<Registration> {
        let mut out = Vec::new();
        for (id, c) in &self.conns {
            for (sid, info) in &c.subs {
                out.push(Registration {
                    conn: *id,
                    sid: *sid,
                    subject: info.subject.clone(),
                    queue: info.queue.as_deref().map(str::to_owned),
                    service: false,
                });
            }
            for (sid, service) in &c.serves {
                out.push(Registration {
                    conn: *id,
                    sid: *sid,
                    subject: service.clone(),
                    queue: None,
                    service: true,
                });
            }
        }
        out.sort_by_key(|r| (r.conn, r.sid));
        out
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

/// What [`deliver`] did.
struct Delivered {
    delivered: usize,
    /// No queue group picked a member and no delivery was denied.
    reusable: bool,
}

/// Adds to `out` the receivers in `matched` that the rules let `sender`
/// reach: every plain subscription, and one member of each queue group.
fn deliver<H: Clone>(
    policy: &Policy,
    stats: &mut Stats,
    sender: &Identity,
    subject: &Subject,
    matched: &mut Matched<H>,
    out: &mut Vec<Target<H>>,
) -> Delivered {
    let start = out.len();
    let denied_before = stats.denied;
    for e in &matched.plain {
        if policy.allows(sender, &e.identity) {
            out.push(e.target());
        } else {
            stats.denied += 1;
            audit_denied(sender, &e.identity, subject);
        }
    }
    for group in &mut matched.groups {
        let n = group.members.len();
        let pick = (0..n)
            .map(|i| (group.next + i) % n)
            .find(|&i| policy.allows(sender, &group.members[i].identity));
        match pick {
            Some(i) => {
                group.next = i + 1;
                out.push(group.members[i].target());
            }
            None => {
                stats.denied += 1;
                audit_denied(sender, &group.members[0].identity, subject);
            }
        }
    }
    Delivered {
        delivered: out.len() - start,
        reusable: matched.groups.is_empty() && stats.denied == denied_before,
    }
}

pub(crate) fn audit_denied(from: &Identity, to: &Identity, what: &Subject) {
    tracing::info!(target: "busd::audit", %from, %to, subject = %what, "delivery denied");
}
