//! What a scrape shows: read from the live state when it asks (router
//! counters, the delivery tally, each connection's traffic and queue),
//! beside what `Recorded` kept. Nothing here runs between scrapes.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::label;
use crate::bridge::{BridgeView, State};
use crate::shared::{Shared, connections_in};
use crate::sync::lock;
use crate::traffic::TrafficDoc;

/// The registry a listener serves: the daemon's state, read per scrape,
/// and the request latency histogram.
pub(super) fn registry(shared: Arc<Shared>) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "busd_request_duration_seconds",
        "Time from a request read to its responder's answer read, for requests a responder answered",
        shared.metrics.request_seconds.clone(),
    );
    registry.register_collector(Box::new(Live(shared)));
    registry
}

/// The daemon's state, read at each scrape.
struct Live(Arc<Shared>);

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live")
    }
}

/// Per identity: traffic (live and closed connections together) and what
/// is queued for its live connections.
#[derive(Default)]
struct PerIdentity {
    traffic: TrafficDoc,
    queued: u64,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let shared = &self.0;
        // A closing connection leaves the router and enters `closed` under
        // the router's lock (see `Recorded::closed`): read both under it,
        // and its counters are in one or the other, never both or neither.
        let (stats, subscriptions, pending, live, closed) = {
            let router = lock(&shared.router);
            let closed = lock(&shared.metrics.closed).clone();
            (
                router.stats(),
                router.subscription_count(),
                router.pending_requests(),
                connections_in(&router),
                closed,
            )
        };
        let deliveries = shared.deliveries();
        let mut connections: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        let mut identities: BTreeMap<String, PerIdentity> = BTreeMap::new();
        for (identity, traffic) in closed {
            identities.entry(identity).or_default().traffic += traffic;
        }
        for (client, handle) in live {
            let who = label(&client.identity);
            *connections
                .entry((who.clone(), handle.origin.transport))
                .or_default() += 1;
            let entry = identities.entry(who).or_default();
            entry.traffic += handle.traffic();
            entry.queued += handle.queued();
        }

        let mut family = Family::new(&mut encoder);
        family.gauge(
            "busd_connections",
            "Client connections open now, by identity and transport",
            connections.iter().map(|((who, transport), n)| {
                (
                    vec![("identity", who.as_str()), ("transport", transport)],
                    *n,
                )
            }),
        )?;
        family.gauge(
            "busd_subscriptions",
            "Subscriptions registered now (services not included)",
            [(vec![], subscriptions as u64)],
        )?;
        family.gauge(
            "busd_pending_requests",
            "Requests routed and not yet answered",
            [(vec![], pending as u64)],
        )?;
        let (live_pools, draining) = shared.set_pools.count();
        family.gauge(
            "busd_shm_set_pools",
            "Set pools: live, or retired with blocks still held (draining)",
            [
                (vec![("state", "live")], live_pools as u64),
                (vec![("state", "draining")], draining as u64),
            ],
        )?;
        let per = |f: fn(&PerIdentity) -> u64| {
            identities
                .iter()
                .map(move |(who, p)| (vec![("identity", who.as_str())], f(p)))
                .collect::<Vec<_>>()
        };
        for (name, help, value) in PER_IDENTITY {
            family.counter(name, help, per(value))?;
        }
        family.gauge(
            "busd_queued_messages",
            "Deliveries waiting in the outbound queues of live connections, by identity",
            per(|p| p.queued),
        )?;
        family.counter(
            "busd_deliveries",
            "Where the router's deliveries ended, daemon-wide",
            [
                (vec![("outcome", "written")], deliveries.written),
                (vec![("outcome", "dropped")], deliveries.dropped),
                (vec![("outcome", "discarded")], deliveries.discarded),
                (vec![("outcome", "failed")], deliveries.failed),
            ],
        )?;
        family.counter(
            "busd_routed_deliveries",
            "Deliveries routed: one per receiving subscription of a publish",
            [(vec![], stats.delivered)],
        )?;
        let recorded = &shared.metrics;
        family.counter(
            "busd_slow_consumer_disconnects",
            "Connections cut off as slow consumers",
            [(vec![], shared.tally.slow_consumers())],
        )?;
        let auth: Vec<_> = lock(&recorded.auth_failures)
            .iter()
            .map(|(reason, n)| (vec![("reason", *reason)], *n))
            .collect();
        family.counter("busd_auth_failures", "Handshakes refused, by reason", auth)?;
        family.counter(
            "busd_requests",
            "Requests by how they ended",
            [
                (
                    vec![("status", "success")],
                    recorded.replies_success.load(Ordering::Relaxed),
                ),
                (
                    vec![("status", "failure")],
                    recorded.replies_failure.load(Ordering::Relaxed),
                ),
                (vec![("status", "no_responders")], stats.no_responders),
                (vec![("status", "unknown_service")], stats.unknown_services),
                (vec![("status", "not_authorized")], stats.not_authorized),
                (vec![("status", "timeout")], stats.timeouts),
                (vec![("status", "responder_gone")], stats.responder_gone),
                (vec![("status", "requester_gone")], stats.requester_gone),
                (
                    vec![("status", "limit_exceeded")],
                    stats.requests_over_limit,
                ),
            ],
        )?;
        family.counter(
            "busd_late_replies",
            "Replies dropped: late, repeated, or for a requester that left",
            [(vec![], stats.late_replies)],
        )?;
        bridges(&mut family, &crate::bridge::views(shared))
    }
}

/// The bridges to NATS: state, server, and their traffic each way.
fn bridges(family: &mut Family<'_, '_>, views: &[BridgeView]) -> Result<(), fmt::Error> {
    if views.is_empty() {
        return Ok(());
    }
    let states = views.iter().flat_map(|b| {
        State::ALL.into_iter().map(move |s| {
            let labels = vec![("bridge", b.name.as_str()), ("state", s.as_str())];
            (labels, u64::from(b.state == s))
        })
    });
    family.gauge(
        "busd_bridge_state",
        "Each bridge's NATS connection: 1 for the state it is in",
        states,
    )?;
    let servers = views.iter().filter_map(|b| {
        let server = b.server.as_deref()?;
        let up = u64::from(b.state == State::Connected);
        Some((vec![("bridge", b.name.as_str()), ("server", server)], up))
    });
    family.gauge(
        "busd_bridge_server",
        "The NATS server each bridge is (1) or was last (0) connected to",
        servers,
    )?;
    let both = |out: fn(&BridgeView) -> u64, into: fn(&BridgeView) -> u64| {
        views
            .iter()
            .flat_map(move |b| {
                let name = b.name.as_str();
                [
                    (vec![("bridge", name), ("direction", "out")], out(b)),
                    (vec![("bridge", name), ("direction", "in")], into(b)),
                ]
            })
            .collect::<Vec<_>>()
    };
    let one = |f: fn(&BridgeView) -> u64| {
        views
            .iter()
            .map(move |b| (vec![("bridge", b.name.as_str())], f(b)))
            .collect::<Vec<_>>()
    };
    for (name, help, out, into) in BRIDGE_FLOWS {
        family.counter(name, help, both(out, into))?;
    }
    family.gauge(
        "busd_bridge_buffered",
        "Messages waiting in each bridge's buffer for NATS",
        one(|b| b.buffered),
    )?;
    family.counter(
        "busd_bridge_reconnects",
        "Times each bridge connected to NATS again after losing it",
        one(|b| b.reconnects),
    )
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A bridge counter kept each way: name, help, out, in.
type BridgeFlow = (
    &'static str,
    &'static str,
    fn(&BridgeView) -> u64,
    fn(&BridgeView) -> u64,
);

/// The counters each bridge keeps for both directions.
const BRIDGE_FLOWS: [BridgeFlow; 4] = [
    (
        "busd_bridge_messages",
        "Messages across each bridge: out to NATS, in from NATS",
        |b| b.msgs_out,
        |b| b.msgs_in,
    ),
    (
        "busd_bridge_bytes",
        "Payload bytes across each bridge",
        |b| b.bytes_out,
        |b| b.bytes_in,
    ),
    (
        "busd_bridge_dropped",
        "Messages each bridge dropped: out (its buffer full while NATS was away), in (undeliverable here)",
        |b| b.dropped_out,
        |b| b.dropped_in,
    ),
    (
        "busd_bridge_calls",
        "Requests relayed: out (local callers to NATS services), in (NATS callers to local services)",
        |b| b.calls_out,
        |b| b.calls_in,
    ),
];

/// A metric read from each identity's totals: name, help, value.
type PerIdentityMetric = (&'static str, &'static str, fn(&PerIdentity) -> u64);

/// The counters kept per identity.
const PER_IDENTITY: [PerIdentityMetric; 7] = [
    (
        "busd_messages_published",
        "Messages published, by the publisher's identity",
        |p| p.traffic.published,
    ),
    (
        "busd_messages_delivered",
        "Messages written to the receiver, by the receiver's identity",
        |p| p.traffic.received,
    ),
    (
        "busd_messages_denied",
        "Deliveries the access rules kept back, by the publisher's identity",
        |p| p.traffic.denied,
    ),
    (
        "busd_messages_dropped",
        "Deliveries dropped by the receiver's drop-oldest subscriptions, by its identity",
        |p| p.traffic.dropped,
    ),
    (
        "busd_messages_discarded",
        "Deliveries lost with the receiver's connection (cut off, or closed with them queued), by its identity",
        |p| p.traffic.discarded,
    ),
    (
        "busd_received_bytes",
        "Bytes read from clients, by identity",
        |p| p.traffic.bytes_in,
    ),
    (
        "busd_sent_bytes",
        "Bytes written to clients, by identity",
        |p| p.traffic.bytes_out,
    ),
];

/// Writes metric families, each a name, its help and its labelled values.
struct Family<'e, 'f> {
    encoder: &'e mut DescriptorEncoder<'f>,
}

impl<'e, 'f> Family<'e, 'f> {
    fn new(encoder: &'e mut DescriptorEncoder<'f>) -> Self {
        Self { encoder }
    }

    fn counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        values: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) -> Result<(), fmt::Error> {
        self.family(name, help, MetricType::Counter, values, ConstCounter::new)
    }

    fn gauge<'a>(
        &mut self,
        name: &str,
        help: &str,
        values: impl IntoIterator<Item = (Labels<'a>, u64)>,
    ) -> Result<(), fmt::Error> {
        self.family(name, help, MetricType::Gauge, values, |v| {
            ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
        })
    }

    fn family<'a, M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        values: impl IntoIterator<Item = (Labels<'a>, u64)>,
        metric: impl Fn(u64) -> M,
    ) -> Result<(), fmt::Error> {
        // A family with no samples yet (no auth failure so far, a bridge
        // never connected) is left out: strict OpenMetrics parsers refuse
        // a descriptor with nothing under it.
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return Ok(());
        }
        let mut family = self.encoder.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in values {
            // An unlabelled value is its family's only one.
            if labels.is_empty() {
                return metric(value).encode(family);
            }
            metric(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
