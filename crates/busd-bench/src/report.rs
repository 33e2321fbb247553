//! Results: one [`Summary`] per run, printed as a JSON line or a table.

use serde::{Deserialize, Serialize};

use crate::reqrep::histogram;
use crate::runner::Outcome;
use crate::spec::{CommonArgs, Role, Workload};

/// Most worker failures quoted in a summary.
const MAX_FAILURES: usize = 5;

/// One benchmark result, as printed by `--json` (one object per line).
///
/// Rates count what was *received*: messages delivered to subscribers
/// (pub/sub), or answered requests (reqrep); `mb_per_s` is payload bytes
/// received, in 10^6 bytes per second.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// `busd` or `nats`.
    pub system: String,
    /// `pubsub`, `fanout` or `reqrep`.
    pub workload: String,
    /// `tcp`, `unix` or `shm`.
    pub transport: String,
    /// Payload bytes.
    pub size: usize,
    /// Messages per publisher, or requests per requester (in a timed run,
    /// how many they sent on average).
    pub count: u64,
    /// A timed run's `--duration`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// Workers ran as separate processes.
    pub procs: bool,
    /// Publishers.
    pub pubs: u32,
    /// Subscribers.
    pub subs: u32,
    /// Requesters.
    pub requesters: u32,
    /// Responders.
    pub responders: u32,
    /// Flow-control window of each publisher, in messages; absent when
    /// off (the server's back-pressure paces publishers) and for reqrep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<u64>,
    /// busd's overflow policy for the subscriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow: Option<String>,
    /// Messages published, or requests made.
    pub sent: u64,
    /// Messages received by all subscribers, or successful responses.
    pub received: u64,
    /// What a lossless run receives.
    pub expected: u64,
    /// Messages never received, or failed requests.
    pub lost: u64,
    /// Messages received after a later one of the same publisher.
    pub out_of_order: u64,
    /// Workers whose connection or subscription ended early.
    pub disconnected: u32,
    /// From the start signal to the last receipt, in seconds.
    pub elapsed_s: f64,
    /// Received messages (or answered requests) per second.
    pub msgs_per_s: f64,
    /// Received payload, 10^6 bytes per second.
    pub mb_per_s: f64,
    /// Request latency percentiles, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    /// 90th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_us: Option<f64>,
    /// 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
    /// 99.9th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p999_us: Option<f64>,
    /// Why workers stopped early, if any did (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl Summary {
    /// Adds up an [`Outcome`] of `args.workload` run by `system` over `transport`.
    pub fn new(system: &str, transport: &str, args: &CommonArgs, outcome: &Outcome) -> Self {
        let reqrep = args.workload == Workload::Reqrep;
        let mut s = Summary {
            system: system.into(),
            workload: args.workload.name().into(),
            transport: transport.into(),
            size: args.size,
            count: args.count(),
            duration_s: args.duration.map(|d| d.as_secs_f64()),
            procs: args.procs,
            pubs: u32::from(args.pubs()),
            subs: args.subs(),
            requesters: if reqrep { args.requesters } else { 0 },
            responders: if reqrep { args.responders } else { 0 },
            window: if reqrep { None } else { args.window() },
            ..Summary::default()
        };
        s.expected = if reqrep {
            u64::from(args.requesters).saturating_mul(args.count())
        } else {
            (u64::from(s.pubs) * u64::from(s.subs)).saturating_mul(args.count())
        };
        let mut latency = histogram();
        let (mut end_ns, mut bytes) = (outcome.start_ns, 0);
        for (role, result) in &outcome.workers {
            let r = match result {
                Ok(r) => r,
                Err(e) => {
                    s.disconnected += 1;
                    s.failures.push(e.clone());
                    if let Role::Subscriber {
                        pubs,
                        count: Some(count),
                        ..
                    } = role
                    {
                        s.lost += u64::from(*pubs).saturating_mul(*count); // it reported nothing it got
                    }
                    continue;
                }
            };
            s.disconnected += u32::from(r.disconnected);
            s.failures.extend(r.error.clone());
            match role {
                Role::Publisher { .. } => s.sent += r.sent,
                Role::Subscriber { .. } => {
                    s.received += r.received;
                    s.lost += r.lost;
                    s.out_of_order += r.out_of_order;
                    bytes += r.bytes;
                    end_ns = end_ns.max(r.last_ns.unwrap_or(0));
                }
                Role::Requester { .. } => {
                    s.sent += r.sent;
                    s.received += r.received;
                    s.lost += r.errors;
                    bytes += r.bytes;
                    end_ns = end_ns.max(r.last_ns.unwrap_or(0));
                    for &(ns, n) in &r.latency {
                        latency.saturating_record_n(ns.clamp(1, latency.high()), n);
                    }
                }
                Role::Responder { .. } => {}
            }
        }
        if args.duration.is_some() {
            // What was sent is what a lossless run receives. A subscriber
            // that missed an end marker could not count that publisher's
            // lost tail, so the shortfall is the least that was lost.
            let (workers, per_sent) = if reqrep {
                (args.requesters, 1)
            } else {
                (s.pubs, u64::from(s.subs))
            };
            s.count = s.sent / u64::from(workers.max(1));
            s.expected = s.sent * per_sent;
            s.lost = s.lost.max(s.expected.saturating_sub(s.received));
        }
        if reqrep {
            s.lost += s.expected.saturating_sub(s.sent); // requests never made
        }
        s.failures.truncate(MAX_FAILURES);
        s.elapsed_s = end_ns.saturating_sub(outcome.start_ns) as f64 / 1e9;
        if s.elapsed_s > 0.0 {
            s.msgs_per_s = s.received as f64 / s.elapsed_s;
            s.mb_per_s = bytes as f64 / s.elapsed_s / 1e6;
        }
        if reqrep && !latency.is_empty() {
            let us = |q: f64| round(latency.value_at_quantile(q) as f64 / 1e3);
            s.p50_us = Some(us(0.50));
            s.p90_us = Some(us(0.90));
            s.p99_us = Some(us(0.99));
            s.p999_us = Some(us(0.999));
        }
        s.msgs_per_s = round(s.msgs_per_s);
        s.mb_per_s = round(s.mb_per_s);
        s
    }

    /// Whether everything expected arrived, in order, with no worker failing.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.out_of_order == 0
            && self.disconnected == 0
            && self.received == self.expected
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Prints `summaries` as one JSON object per line.
pub fn print_json(summaries: &[Summary]) {
    for s in summaries {
        match serde_json::to_string(s) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("bench: cannot encode a result: {e}"),
        }
    }
}

/// Prints `summaries` as a table, then any failures.
pub fn print_table(summaries: &[Summary]) {
    println!(
        "{:<6} {:<8} {:<9} {:>7} {:>5} {:>7} {:>10} {:>10} {:>8} {:>12} {:>9} {:>8} {:>8}",
        "system",
        "workload",
        "transport",
        "size",
        "procs",
        "fan",
        "sent",
        "received",
        "lost",
        "msgs/s",
        "MB/s",
        "p50 µs",
        "p99 µs"
    );
    for s in summaries {
        let fan = match s.workload.as_str() {
            "reqrep" => format!("{}:{}", s.requesters, s.responders),
            _ => format!("{}→{}", s.pubs, s.subs),
        };
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:<6} {:<8} {:<9} {:>7} {:>5} {:>7} {:>10} {:>10} {:>8} {:>12.0} {:>9.1} {:>8} {:>8}",
            s.system,
            s.workload,
            s.transport,
            s.size,
            if s.procs { "yes" } else { "no" },
            fan,
            s.sent,
            s.received,
            s.lost,
            s.msgs_per_s,
            s.mb_per_s,
            us(s.p50_us),
            us(s.p99_us)
        );
    }
    for s in summaries {
        if !s.is_clean() {
            eprintln!(
                "{} {} {}: NOT CLEAN: {} lost, {} out of order, {} workers failed or disconnected",
                s.system, s.workload, s.transport, s.lost, s.out_of_order, s.disconnected
            );
        }
        for f in &s.failures {
            eprintln!("  {f}");
        }
    }
}
