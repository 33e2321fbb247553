//! Bridges to NATS (`[[bridge]]`): chosen subjects and services of the
//! local bus offered to a NATS cluster, and chosen NATS subjects and
//! services brought in, for fleets of hosts that outgrow one machine.
//!
//! A bridge is a client of this daemon like any other: its connection is
//! one end of a socket pair the daemon made, so it is its package (`pfn`)
//! by the daemon's act, and the ordinary in/out rules decide which local
//! packages may send out through it and which may receive what it brings
//! in. What differs is only that it may serve wildcard names as a relay
//! (requests nobody here serves by name), and answer with the statuses of
//! the bus it relays (`Busd-Status`).
//!
//! - `local`: the bridge's connection to this daemon.
//! - `nats`: the connection to the cluster, its state and counters.
//! - `outbound`: local publishes to NATS, through a bounded buffer that
//!   holds them while NATS is away and drops (counted) past its bound,
//!   so that an outage never slows local traffic.
//! - `inbound`: NATS publishes to local subscribers.
//! - `calls`: requests both ways, with their outcomes mapped.
//! - `headers`: busd's headers as NATS's, and back.
//! - `stats`: what `busd ctl bridges` and the metrics show.

mod calls;
mod headers;
mod inbound;
mod local;
mod nats;
mod outbound;
mod stats;

use std::sync::Arc;

use busd_proto::{Headers, Status};

use crate::config::BridgeConfig;
use crate::shared::Shared;

pub(crate) use stats::{BridgeStats, BridgeView, State};

/// The header naming who sent a message or request on the other bus:
/// `HOST/PFN` (`HOST/unpackaged` for an unpackaged client).
pub(crate) const SENDER_HEADER: &str = busd_proto::RELAYED_FOR;
/// The header with which a bridge answers what the other bus answered: a
/// daemon status (`NoResponders`, `Timeout`, ...), `Success` or `Failure`.
pub(crate) const STATUS_HEADER: &str = "Busd-Status";
/// The header telling the bridge on the other side how long a request may
/// take, in milliseconds.
pub(crate) const TIMEOUT_HEADER: &str = "Busd-Timeout-Ms";

/// The status a bridge's answer stands for: a `Failure` carrying a daemon
/// status in [`STATUS_HEADER`] is that status (a remote `NoResponders` is
/// the caller's `NoResponders`); anything else is as sent.
pub(crate) fn relayed_status(status: Status, headers: Option<&Headers>) -> Status {
    if status != Status::Failure {
        return status;
    }
    let named = headers
        .and_then(|h| h.get(STATUS_HEADER))
        .map(String::as_str);
    match named {
        Some("NoResponders") => Status::NoResponders,
        Some("NotAuthorized") => Status::NotAuthorized,
        Some("Timeout") => Status::Timeout,
        Some("ResponderGone") => Status::ResponderGone,
        _ => status,
    }
}

/// The counters of every configured bridge, made with the daemon.
pub(crate) fn stats_for(bridges: &[BridgeConfig]) -> Vec<Arc<BridgeStats>> {
    bridges
        .iter()
        .map(|b| Arc::new(BridgeStats::new(b)))
        .collect()
}

/// What `busd ctl bridges` shows: each bridge, in config order.
pub(crate) fn views(shared: &Shared) -> Vec<BridgeView> {
    shared.bridges.iter().map(|b| b.view()).collect()
}

/// Starts every configured bridge; each runs until the daemon stops.
pub(crate) fn start(shared: &Arc<Shared>) {
    for (config, stats) in shared.config.bridges.iter().zip(&shared.bridges) {
        let run = run(Arc::clone(shared), config.clone(), Arc::clone(stats));
        shared.tracker.spawn(run);
    }
}

/// One bridge, until the daemon stops.
async fn run(shared: Arc<Shared>, config: BridgeConfig, stats: Arc<BridgeStats>) {
    let host = config.host.clone().unwrap_or_else(hostname);
    let started = async {
        let local = (local::connect(&shared, &config).await)
            .map_err(|e| format!("cannot join the local bus: {e}"))?;
        let nats = (nats::connect(&config, &stats).await)
            .map_err(|e| format!("cannot start its NATS client: {e}"))?;
        Ok::<_, String>((local, nats))
    };
    let (local, nats) = match started.await {
        Ok(ends) => ends,
        Err(why) => {
            tracing::error!(bridge = %config.name, cause = %why, "the bridge cannot start");
            stats.set_failed(&why);
            return;
        }
    };
    tracing::info!(bridge = %config.name, pfn = %config.pfn, %host, servers = ?config.nats, "bridge started");
    let ends = Ends {
        prefix: config.prefix_for(&host),
        config: Arc::new(config),
        host: Arc::from(host.as_str()),
        local,
        nats,
        stats,
    };
    let work = async {
        tokio::join!(
            nats::track_server(&ends.nats, &ends.stats),
            outbound::run(&ends),
            inbound::run(&ends),
            calls::serve_exports(&ends),
            calls::relay_imports(&ends),
        )
    };
    tokio::select! {
        _ = shared.shutdown.cancelled() => {}
        _ = work => {}
    }
    ends.stats.set_closed();
    tracing::info!(bridge = %ends.config.name, "bridge stopped");
}

/// What a running bridge's parts share.
pub(crate) struct Ends {
    pub(crate) config: Arc<BridgeConfig>,
    /// This host's name, as `Busd-Sender` and `{hostname}` give it.
    pub(crate) host: Arc<str>,
    /// The export prefix, `{hostname}` filled in.
    pub(crate) prefix: Option<String>,
    pub(crate) local: busd_client::Client,
    pub(crate) nats: nats::Nats,
    pub(crate) stats: Arc<BridgeStats>,
}

impl Ends {
    /// The NATS subject a local `subject` is exported as.
    pub(crate) fn exported(&self, subject: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}.{subject}"),
            None => subject.to_owned(),
        }
    }

    /// The local subject a NATS subject under the export prefix stands for.
    pub(crate) fn unexported<'a>(&self, subject: &'a str) -> Option<&'a str> {
        match &self.prefix {
            Some(prefix) => subject.strip_prefix(prefix.as_str())?.strip_prefix('.'),
            None => Some(subject),
        }
    }

    /// `Busd-Sender` for a local sender.
    pub(crate) fn sender_of(&self, from: &busd_proto::Sender) -> String {
        match &from.pfn {
            Some(pfn) => format!("{}/{pfn}", self.host),
            None => format!("{}/unpackaged", self.host),
        }
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`), or `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
