//! Results: one [`Summary`] per run, printed as a JSON line or a table.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::reqrep::histogram;
use crate::runner::Outcome;
use crate::spec::{CommonArgs, Role, RoleResult, Workload};

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
    /// busd's publishers wrote each payload in place in shared memory
    /// (`busd bench --in-place` over shm, payloads at or above the
    /// segment threshold); absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
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
    /// CPU time (user + system) of every process of the run, in µs per
    /// message sent: set by `bench/compare.sh` (the bench's processes and
    /// the server's share) and by `iox2bench` (its workers), never by the
    /// bench itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_msg: Option<f64>,
    /// Minor page faults of the same processes per message sent, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minflt_per_msg: Option<f64>,
    /// Why workers stopped early, if any did (the first few).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl Summary {
    /// Adds up an [`Outcome`] of `args.workload` run by `system` over `transport`.
    pub fn new(system: &str, transport: &str, args: &CommonArgs, outcome: &Outcome) -> Self {
        let reqrep = args.workload == Workload::Reqrep;
        let mut s = Summary::planned(system, transport, args);
        let tally = s.add_workers(outcome);
        if args.duration.is_some() {
            s.settle_timed_run(args);
        }
        if reqrep {
            s.lost += s.expected.saturating_sub(s.sent); // requests never made
        }
        s.failures.truncate(MAX_FAILURES);
        s.set_rates(outcome.start_ns, &tally);
        if reqrep {
            s.set_percentiles(&tally.latency);
        }
        s
    }

    /// The run as asked for, before any result: who takes part and what a
    /// lossless run receives.
    fn planned(system: &str, transport: &str, args: &CommonArgs) -> Self {
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
        s
    }

    /// Adds every worker's counts and failures to these; returns what the
    /// rates and percentiles are computed from.
    fn add_workers(&mut self, outcome: &Outcome) -> Tally {
        let mut tally = Tally {
            end_ns: outcome.start_ns,
            bytes: 0,
            latency: histogram(),
        };
        for (role, result) in &outcome.workers {
            match result {
                Ok(r) => self.add_result(role, r, &mut tally),
                Err(e) => self.add_failed_worker(role, e),
            }
        }
        tally
    }

    /// Counts a worker that reported no result, only why.
    fn add_failed_worker(&mut self, role: &Role, error: &str) {
        self.disconnected += 1;
        self.failures.push(error.to_string());
        if let Role::Subscriber {
            pubs,
            count: Some(count),
            ..
        } = role
        {
            self.lost += u64::from(*pubs).saturating_mul(*count); // it reported nothing it got
        }
    }

    /// Adds one worker's result, as its role counts it.
    fn add_result(&mut self, role: &Role, r: &RoleResult, tally: &mut Tally) {
        self.disconnected += u32::from(r.disconnected);
        self.failures.extend(r.error.clone());
        match role {
            Role::Publisher { .. } => self.sent += r.sent,
            Role::Subscriber { .. } => {
                self.received += r.received;
                self.lost += r.lost;
                self.out_of_order += r.out_of_order;
                tally.bytes += r.bytes;
                tally.end_ns = tally.end_ns.max(r.last_ns.unwrap_or(0));
            }
            Role::Requester { .. } => {
                self.sent += r.sent;
                self.received += r.received;
                self.lost += r.errors;
                tally.bytes += r.bytes;
                tally.end_ns = tally.end_ns.max(r.last_ns.unwrap_or(0));
                let latency = &mut tally.latency;
                for &(ns, n) in &r.latency {
                    latency.saturating_record_n(ns.clamp(1, latency.high()), n);
                }
            }
            Role::Responder { .. } => {}
        }
    }

    /// A timed run's count and expectation come from what was sent.
    fn settle_timed_run(&mut self, args: &CommonArgs) {
        // What was sent is what a lossless run receives. A subscriber
        // that missed an end marker could not count that publisher's
        // lost tail, so the shortfall is the least that was lost.
        let (workers, per_sent) = if args.workload == Workload::Reqrep {
            (args.requesters, 1)
        } else {
            (self.pubs, u64::from(self.subs))
        };
        self.count = self.sent / u64::from(workers.max(1));
        self.expected = self.sent * per_sent;
        self.lost = self.lost.max(self.expected.saturating_sub(self.received));
    }

    /// Elapsed time and the rates over it, rounded to one decimal.
    fn set_rates(&mut self, start_ns: u64, tally: &Tally) {
        self.elapsed_s = tally.end_ns.saturating_sub(start_ns) as f64 / 1e9;
        if self.elapsed_s > 0.0 {
            self.msgs_per_s = round(self.received as f64 / self.elapsed_s);
            self.mb_per_s = round(tally.bytes as f64 / self.elapsed_s / 1e6);
        }
    }

    /// Request latency percentiles, if any request was answered.
    fn set_percentiles(&mut self, latency: &Histogram<u64>) {
        if latency.is_empty() {
            return;
        }
        let us = |q: f64| round(latency.value_at_quantile(q) as f64 / 1e3);
        self.p50_us = Some(us(0.50));
        self.p90_us = Some(us(0.90));
        self.p99_us = Some(us(0.99));
        self.p999_us = Some(us(0.999));
    }

    /// Whether everything expected arrived, in order, with no worker failing.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.out_of_order == 0
            && self.disconnected == 0
            && self.received == self.expected
    }
}

/// What the summary's rates and percentiles are computed from, gathered
/// while the workers' results are added up.
struct Tally {
    /// Unix time (ns) of the last message received or request answered.
    end_ns: u64,
    /// Payload bytes received.
    bytes: u64,
    /// Request latencies, in nanoseconds.
    latency: Histogram<u64>,
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
