//! What the soak did and saw, added up and printed, and the checks that
//! set the clients' own counts against the daemon's.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fleet::Tally;
use crate::probe::{RSS_SLACK, mib, n};

/// The daemon's fds and memory, as measured.
#[derive(Debug, Default)]
pub(crate) struct Footprint {
    pub(crate) fds_before: usize,
    pub(crate) fd_kinds_before: BTreeMap<String, usize>,
    pub(crate) fds_peak: usize,
    pub(crate) fds_after: usize,
    pub(crate) rss_before: u64,
    pub(crate) rss_peak: u64,
    pub(crate) rss_after: u64,
}

/// Reloads done during the traffic.
#[derive(Debug, Default)]
pub(crate) struct Reloads {
    pub(crate) by_sighup: u64,
    pub(crate) by_ctl: u64,
    /// Connections the `ctl reload`s closed (Retired's, when it was
    /// removed).
    pub(crate) closed: u64,
    /// Refused, or asking for a restart.
    pub(crate) problems: Vec<String>,
}

/// What the workers that exited on their own saw, summed.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub(crate) reports: u64,
    pub(crate) published: u64,
    pub(crate) received: u64,
    pub(crate) dropped: u64,
    pub(crate) order_violations: u64,
    pub(crate) requests_ok: u64,
    pub(crate) answered: u64,
    /// What failed for them, by kind (expected: a soak provokes them).
    pub(crate) errors: BTreeMap<String, u64>,
    /// Each worker's transport and identity, counted.
    pub(crate) kinds: BTreeMap<String, u64>,
}

impl Seen {
    pub(crate) fn of(reports: &[Value]) -> Self {
        let mut seen = Self::default();
        for r in reports {
            seen.reports += 1;
            seen.published += n(r, "published");
            seen.received += n(r, "received");
            seen.dropped += n(r, "dropped");
            seen.order_violations += n(r, "order_violations");
            seen.requests_ok += n(r, "requests_ok");
            seen.answered += n(r, "answered");
            if let Some(errors) = r["errors"].as_object() {
                for (what, count) in errors {
                    *seen.errors.entry(what.clone()).or_default() += count.as_u64().unwrap_or(0);
                }
            }
            let choices = r["choices"].as_str().unwrap_or("");
            let kind: Vec<&str> = choices.split(' ').take(2).collect();
            *seen.kinds.entry(kind.join(" ")).or_default() += 1;
        }
        seen
    }

    /// The clients' counts may not exceed the daemon's (killed workers
    /// report nothing, so they may fall short), and no subscriber may
    /// have seen a publisher's messages out of order.
    pub(crate) fn check(&self, stats: &Value, problems: &mut Vec<String>) {
        if self.order_violations > 0 {
            problems.push(format!(
                "{} messages arrived out of publish order (or twice)",
                self.order_violations
            ));
        }
        for (what, clients, key) in [
            ("published", self.published, "published"),
            ("received", self.received, "written"),
            ("were told dropped", self.dropped, "dropped"),
            ("got answers", self.requests_ok, "replies"),
        ] {
            if clients > n(stats, key) {
                problems.push(format!(
                    "clients {what} {clients}, more than the daemon's {key} {}",
                    n(stats, key)
                ));
            }
        }
    }
}

/// Prints the run's figures.
pub(crate) fn print(
    stats: &Value,
    seen: &Seen,
    fleet: &Tally,
    reloads: &Reloads,
    footprint: &Footprint,
) {
    eprintln!(
        "soak: workers: {} started, {} left on their own, {} SIGKILLed mid-traffic, {} frozen \
         (SIGSTOP) of which {} were SIGKILLed frozen; {} failed, {} hung",
        fleet.spawned,
        fleet.exited,
        fleet.killed,
        fleet.frozen,
        fleet.killed_frozen,
        fleet.failed.len(),
        fleet.hung.len()
    );
    eprintln!("soak: workers by transport and identity: {:?}", seen.kinds);
    eprintln!(
        "soak: reloads: {} by SIGHUP, {} by ctl reload (which closed {} Retired connections), \
         {} refused or asking for a restart",
        reloads.by_sighup,
        reloads.by_ctl,
        reloads.closed,
        reloads.problems.len()
    );
    eprintln!(
        "soak: the {} workers that left on their own published {}, received {}, were told \
         {} dropped, got {} answers, answered {} calls",
        seen.reports, seen.published, seen.received, seen.dropped, seen.requests_ok, seen.answered
    );
    eprintln!("soak: their errors: {:?}", seen.errors);
    eprintln!("soak: daemon counters: {stats}");
    eprintln!(
        "soak: daemon fds: {} before, {} at peak, {} after",
        footprint.fds_before, footprint.fds_peak, footprint.fds_after
    );
    eprintln!(
        "soak: daemon resident memory: {} before, {} at peak, {} after (bound: before + {})",
        mib(footprint.rss_before),
        mib(footprint.rss_peak),
        mib(footprint.rss_after),
        mib(RSS_SLACK)
    );
}
