//! What every task of the daemon shares: the router under its lock, the
//! request timer's wake-up, the configuration, shutdown and the task tracker.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use busd_core::Router;
use busd_policy::Policy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::outbox::ConnHandle;
use crate::sync::lock;

/// The router and the deadline the timer task sleeps towards, under one lock.
pub(crate) struct RouterState {
    pub(crate) router: Router<Arc<ConnHandle>>,
    /// The deadline the timer is armed for; a request with an earlier one
    /// must wake it.
    pub(crate) armed: Option<std::time::Instant>,
}

/// State every task of the daemon shares.
pub(crate) struct Shared {
    /// Locked for routing decisions only, never across an await.
    pub(crate) router: Mutex<RouterState>,
    pub(crate) timer: Notify,
    /// As loaded at start; a reload swaps only the policy and admin uids.
    pub(crate) config: Config,
    /// Uids allowed to run ctl commands (replaced by a reload).
    pub(crate) admin_uids: Mutex<Vec<u32>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl Shared {
    /// The policy in force (swapped whole on reload).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(lock(&self.router).router.policy())
    }
}
