//! What every task of the daemon shares: the router under its lock, the
//! request timer's wake-up, the configuration, shutdown and the task tracker.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use busd_core::Router;
use busd_policy::Policy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::budget::Budgets;
use crate::config::Config;
use crate::hooks::Hooks;
use crate::outbox::ConnHandle;
use crate::sync::lock;
use crate::tally::{Deliveries, Tally};

/// State every task of the daemon shares.
pub(crate) struct Shared {
    /// Locked for routing decisions only, never across an await.
    pub(crate) router: Mutex<Router<Arc<ConnHandle>>>,
    /// Wakes the request timer for a deadline earlier than the one it
    /// sleeps towards (`Routed::wake_timer`).
    pub(crate) timer: Notify,
    /// As loaded at start; a reload swaps only the policy and admin uids.
    pub(crate) config: Config,
    /// Uids allowed to run ctl commands (replaced by a reload).
    pub(crate) admin_uids: Mutex<Vec<u32>>,
    pub(crate) next_id: AtomicU64,
    /// Messages discarded while the daemon stopped: their connection did
    /// not take them within the shutdown grace.
    pub(crate) undelivered: AtomicU64,
    /// Where the router's deliveries ended (see `tally`).
    pub(crate) tally: Arc<Tally>,
    pub(crate) shutdown: CancellationToken,
    /// Every owner's memory budget (`limits.max_memory_per_identity`).
    pub(crate) budgets: Budgets,
    /// Fault injection for tests (none in `busd run`).
    pub(crate) hooks: Hooks,
    pub(crate) tracker: TaskTracker,
}

impl Shared {
    /// The policy in force (swapped whole on reload).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(lock(&self.router).policy())
    }

    /// The delivery counters, with what the registered connections have
    /// queued (their queues are locked after the router's lock is let go,
    /// so a busy router waits for none of them).
    pub(crate) fn deliveries(&self) -> Deliveries {
        let handles: Vec<Arc<ConnHandle>> = lock(&self.router).handles().cloned().collect();
        let queued = handles.iter().map(|h| h.queued()).sum();
        self.tally.snapshot(queued)
    }
}
