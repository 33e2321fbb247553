//! Per-identity limits: what each package (or each uid of unpackaged
//! clients) holds, counted against [`RouterLimits`]. More connections
//! never buy more budget: the count is the owner's, not the connection's.

use std::collections::HashMap;

use busd_policy::Identity;
use busd_proto::Pfn;

use crate::error::RouterError;

/// Per-identity limits (an identity is a package, or the uid of unpackaged clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterLimits {
    /// Connections one identity may hold.
    pub max_connections: usize,
    /// Subscriptions and services one identity may hold, all connections together.
    pub max_subscriptions: usize,
    /// Requests one connection may have in flight (a connection's, not
    /// its identity's: one client's backlog must not refuse its
    /// package's other clients).
    pub max_pending_requests: usize,
}

impl Default for RouterLimits {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            max_subscriptions: 1_000_000,
            max_pending_requests: 65_536,
        }
    }
}

/// Whom a connection's usage is charged to: its package, or for an
/// unpackaged client its uid. More connections never buy more budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A proven package.
    Package(Pfn),
    /// The uid of unpackaged clients (`None` where the transport cannot tell).
    Uid(Option<u32>),
}

impl Owner {
    /// Whom `identity`'s usage is charged to.
    pub fn of(identity: &Identity) -> Self {
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

/// What every owner holds.
#[derive(Debug)]
pub(crate) struct Ledger {
    usage: HashMap<Owner, Usage>,
    limits: RouterLimits,
}

impl Ledger {
    pub(crate) fn new(limits: RouterLimits) -> Self {
        Self {
            usage: HashMap::new(),
            limits,
        }
    }

    /// Charges a connection to `identity`'s owner, which it returns.
    ///
    /// # Errors
    /// [`RouterError::TooManyConnections`] past `max_connections`.
    pub(crate) fn add_connection(&mut self, identity: &Identity) -> Result<Owner, RouterError> {
        let owner = Owner::of(identity);
        let usage = self.usage.entry(owner.clone()).or_default();
        if usage.connections >= self.limits.max_connections {
            return Err(RouterError::TooManyConnections {
                owner: identity.clone(),
                held: usage.connections,
            });
        }
        usage.connections += 1;
        Ok(owner)
    }

    /// Charges a subscription or service to `owner` (`identity`'s).
    ///
    /// # Errors
    /// [`RouterError::TooManySubscriptions`] past `max_subscriptions`.
    pub(crate) fn add_subscription(
        &mut self,
        owner: &Owner,
        identity: &Identity,
    ) -> Result<(), RouterError> {
        let usage = self.usage.entry(owner.clone()).or_default();
        if usage.subscriptions >= self.limits.max_subscriptions {
            return Err(RouterError::TooManySubscriptions {
                owner: identity.clone(),
                held: usage.subscriptions,
            });
        }
        usage.subscriptions += 1;
        Ok(())
    }

    /// The limits it enforces.
    pub(crate) fn limits(&self) -> &RouterLimits {
        &self.limits
    }

    pub(crate) fn release_subscription(&mut self, owner: &Owner) {
        if let Some(u) = self.usage.get_mut(owner) {
            u.subscriptions = u.subscriptions.saturating_sub(1);
        }
    }

    /// Releases a connection and the `subscriptions` it held.
    pub(crate) fn release_connection(&mut self, owner: &Owner, subscriptions: usize) {
        if let Some(u) = self.usage.get_mut(owner) {
            u.connections = u.connections.saturating_sub(1);
            u.subscriptions = u.subscriptions.saturating_sub(subscriptions);
            if u.connections == 0 && u.subscriptions == 0 {
                self.usage.remove(owner);
            }
        }
    }
}
