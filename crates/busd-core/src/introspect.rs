//! The router's live state as `busd ctl clients` and `busd ctl subs` show it.

use busd_policy::Identity;
use busd_proto::{Overflow, Subject};

use crate::router::Router;

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
    /// What happens when the subscriber falls behind (`None` for a service).
    pub overflow: Option<Overflow>,
    /// A service rather than a subscription.
    pub service: bool,
}

impl<H: Clone> Router<H> {
    /// Connection `conn`'s proven identity and handle, if it is registered.
    pub fn connection(&self, conn: u64) -> Option<(&Identity, &H)> {
        self.conns.get(&conn).map(|c| (&*c.identity, &c.handle))
    }

    /// A capability that `who` lacks and every way to call `service`
    /// requires (its configured rule's, or all its responders'), if any:
    /// what a refused caller may be told.
    pub fn capability_lacking(&self, who: &Identity, service: &Subject) -> Option<String> {
        let lacks = |cap: &str| !self.policy().has_capability(who, cap);
        let configured = self.policy().service(service);
        if let Some(cap) = configured.and_then(|r| r.require_capability.as_deref()) {
            return lacks(cap).then(|| cap.to_owned());
        }
        let each = self.calls.capabilities(service);
        // Only when no responder would take the caller for want of it.
        let all_lacking = !each.is_empty() && each.iter().all(|c| c.is_some_and(lacks));
        each.first()
            .copied()
            .flatten()
            .filter(|_| all_lacking)
            .map(str::to_owned)
    }

    /// Every registered connection's handle.
    pub fn handles(&self) -> impl Iterator<Item = &H> {
        self.conns.values().map(|c| &c.handle)
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
                    overflow: Some(info.overflow),
                    service: false,
                });
            }
            for (sid, service) in &c.serves {
                out.push(Registration {
                    conn: *id,
                    sid: *sid,
                    subject: service.clone(),
                    queue: None,
                    overflow: None,
                    service: true,
                });
            }
        }
        out.sort_by_key(|r| (r.conn, r.sid));
        out
    }
}
