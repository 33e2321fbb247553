//! What every task of the daemon shares: the router under its lock, the
//! request timer's wake-up, the failed identity proofs per uid, the
//! configuration, the memory budgets, shutdown and the task tracker.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use busd_core::{ClientInfo, FailedProofs, Router, RouterLimits};
use busd_policy::Policy;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::activation::Activations;
use crate::budget::Budgets;
use crate::config::Config;
use crate::hooks::Hooks;
use crate::metrics::Recorded;
use crate::monitor::Monitors;
use crate::outbox::ConnHandle;
use crate::set_pools::SetPools;
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
    /// Failed identity proofs per peer uid, which space out that uid's
    /// claims (see `handshake`). Locked briefly, by handshakes only, never
    /// across an await.
    pub(crate) failed_proofs: Mutex<FailedProofs>,
    pub(crate) next_id: AtomicU64,
    /// The id of the next `busd ctl grant`.
    pub(crate) next_grant: AtomicU64,
    /// Held while `[daemon] grants_file` is written: one writer at a time,
    /// each writing the grants in force when it took it.
    pub(crate) grants_saving: Mutex<()>,
    /// Messages discarded while the daemon stopped: their connection did
    /// not take them within the shutdown grace.
    pub(crate) undelivered: AtomicU64,
    /// Where the router's deliveries ended (see `tally`).
    pub(crate) tally: Arc<Tally>,
    pub(crate) shutdown: CancellationToken,
    /// Every owner's memory budget (`limits.max_memory_per_identity`).
    pub(crate) budgets: Budgets,
    /// Services started on demand, and the requests waiting for them.
    pub(crate) activations: Activations,
    /// Every owner's fd budget (`limits.max_fds_in_flight`), in fds.
    pub(crate) fd_budgets: Budgets,
    /// What the metrics need that nothing else keeps.
    pub(crate) metrics: Recorded,
    /// The `busd monitor`s running (see `monitor`).
    pub(crate) monitors: Monitors,
    /// Pools shared by the shm receivers of one receiver set.
    pub(crate) set_pools: SetPools,
    /// The counters of each `[[bridge]]`, in config order.
    pub(crate) bridges: Vec<Arc<crate::bridge::BridgeStats>>,
    /// Fault injection for tests (none in `busd run`).
    pub(crate) hooks: Hooks,
    pub(crate) tracker: TaskTracker,
}

impl Shared {
    /// The state of a daemon starting with `config`, stopped by
    /// `shutdown`, running `hooks`.
    pub(crate) fn new(config: Config, shutdown: CancellationToken, hooks: Hooks) -> Self {
        let limits = RouterLimits {
            max_connections: config.limits.max_connections,
            max_subscriptions: config.limits.max_subscriptions,
            max_pending_requests: config.limits.max_pending_requests,
        };
        let budget = usize::try_from(config.limits.max_memory_per_identity).unwrap_or(usize::MAX);
        let fd_budget = config.limits.max_fds_in_flight;
        let set_pools = SetPools::new(config.limits.shm_pool_bytes, config.limits.shm_set_pools);
        let bridges = crate::bridge::stats_for(&config.bridges);
        Self {
            router: Mutex::new(Router::new(Arc::clone(&config.policy), limits)),
            timer: Notify::new(),
            admin_uids: Mutex::new(config.admin_uids.clone()),
            failed_proofs: Mutex::new(FailedProofs::new()),
            config,
            next_id: AtomicU64::new(1),
            next_grant: AtomicU64::new(1),
            grants_saving: Mutex::new(()),
            undelivered: AtomicU64::new(0),
            tally: Arc::default(),
            budgets: Budgets::new(budget),
            fd_budgets: Budgets::new(fd_budget),
            metrics: Recorded::default(),
            activations: Activations::default(),
            shutdown,
            monitors: Monitors::default(),
            set_pools,
            bridges,
            hooks,
            tracker: TaskTracker::new(),
        }
    }

    /// The policy in force (swapped whole on reload).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(lock(&self.router).policy())
    }

    /// Every registered connection with its handle, by id. The handles'
    /// queues and counters are for the caller to read after the router's
    /// lock is let go.
    pub(crate) fn connections(&self) -> Vec<(ClientInfo, Arc<ConnHandle>)> {
        connections_in(&lock(&self.router))
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

/// Every connection registered with `router`, with its handle, by id.
pub(crate) fn connections_in(
    router: &Router<Arc<ConnHandle>>,
) -> Vec<(ClientInfo, Arc<ConnHandle>)> {
    router
        .clients()
        .into_iter()
        .filter_map(|c| {
            let handle = Arc::clone(router.connection(c.id)?.1);
            Some((c, handle))
        })
        .collect()
}
