//! The result of a run, in the schema of busd bench's `Summary`
//! (crates/busd-bench/src/report.rs), so that `natsbench table` reads it
//! beside busd's and NATS's; plus what the worker processes cost.

use serde::Serialize;

use crate::worker::RoleResult;

/// One run's result, printed as one JSON line.
///
/// Rates count what was received, as busd's do: messages delivered to all
/// subscribers over the time from the start signal to the last receipt,
/// and `mb_per_s` the payload bytes of those, in 10^6 bytes per second.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) system: &'static str,
    pub(crate) workload: &'static str,
    pub(crate) transport: &'static str,
    pub(crate) size: usize,
    pub(crate) count: u64,
    pub(crate) procs: bool,
    pub(crate) pubs: u32,
    pub(crate) subs: u32,
    pub(crate) requesters: u32,
    pub(crate) responders: u32,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) expected: u64,
    pub(crate) lost: u64,
    pub(crate) out_of_order: u64,
    pub(crate) disconnected: u32,
    pub(crate) elapsed_s: f64,
    pub(crate) msgs_per_s: f64,
    pub(crate) mb_per_s: f64,
    /// CPU time (user + system) of the publisher and subscriber
    /// processes, in µs per message sent.
    pub(crate) cpu_us_per_msg: f64,
    /// Their minor page faults per message sent.
    pub(crate) minflt_per_msg: f64,
    /// Samples each subscriber buffers before the publisher waits.
    pub(crate) buffer: usize,
    /// Why workers stopped early, if any did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) failures: Vec<String>,
}

/// What the workers cost, from `getrusage(RUSAGE_CHILDREN)` once all were
/// waited for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cost {
    pub(crate) cpu_us: f64,
    pub(crate) minflt: f64,
}

impl Cost {
    /// The children's usage so far (those already waited for).
    pub(crate) fn of_children() -> anyhow::Result<Self> {
        use nix::sys::resource::{UsageWho, getrusage};
        use nix::sys::time::TimeValLike as _;
        let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
        let cpu = usage.user_time() + usage.system_time();
        Ok(Self {
            cpu_us: cpu.num_microseconds() as f64,
            minflt: usage.minor_page_faults() as f64,
        })
    }
}

impl Summary {
    /// Adds up the workers' results: the publisher's (if it reported) and
    /// each subscriber's (or why it did not report).
    pub(crate) fn add(
        &mut self,
        publisher: Result<RoleResult, String>,
        subscribers: Vec<Result<RoleResult, String>>,
        start_ns: u64,
    ) {
        self.expected = u64::from(self.subs) * self.count;
        match publisher {
            Ok(r) => {
                self.sent = r.sent;
                self.failures.extend(r.error);
            }
            Err(e) => {
                self.disconnected += 1;
                self.failures.push(format!("publisher: {e}"));
            }
        }
        let (mut bytes, mut end_ns) = (0, start_ns);
        for r in subscribers {
            match r {
                Ok(r) => {
                    self.received += r.received;
                    self.lost += r.lost;
                    self.out_of_order += r.out_of_order;
                    self.failures.extend(r.error);
                    bytes += r.bytes;
                    end_ns = end_ns.max(r.last_ns);
                }
                Err(e) => {
                    self.disconnected += 1;
                    self.lost += self.count; // it reported nothing it got
                    self.failures.push(format!("subscriber: {e}"));
                }
            }
        }
        self.elapsed_s = end_ns.saturating_sub(start_ns) as f64 / 1e9;
        if self.elapsed_s > 0.0 {
            self.msgs_per_s = round(self.received as f64 / self.elapsed_s, 1);
            self.mb_per_s = round(bytes as f64 / self.elapsed_s / 1e6, 1);
        }
    }

    /// Sets the cost per message sent.
    pub(crate) fn set_cost(&mut self, cost: Cost) {
        let sent = self.sent.max(1) as f64;
        self.cpu_us_per_msg = round(cost.cpu_us / sent, 2);
        self.minflt_per_msg = round(cost.minflt / sent, 3);
    }

    /// Whether everything expected arrived, in order, with no worker failing.
    pub(crate) fn is_clean(&self) -> bool {
        self.lost == 0
            && self.out_of_order == 0
            && self.disconnected == 0
            && self.received == self.expected
    }

    /// A few readable lines, for a run without `--json`.
    pub(crate) fn print_text(&self) {
        println!(
            "iceoryx2 {} 1→{} {} B × {}: received {} of {} (lost {}, out of order {}) in {:.3} s: \
             {:.0} msgs/s, {:.1} MB/s; {:.2} µs CPU and {:.3} minor faults per message sent",
            self.workload,
            self.subs,
            self.size,
            self.count,
            self.received,
            self.expected,
            self.lost,
            self.out_of_order,
            self.elapsed_s,
            self.msgs_per_s,
            self.mb_per_s,
            self.cpu_us_per_msg,
            self.minflt_per_msg
        );
        for f in &self.failures {
            eprintln!("  {f}");
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(received: u64, last_ns: u64) -> Result<RoleResult, String> {
        Ok(RoleResult {
            received,
            bytes: received * 1_000_000,
            last_ns,
            ..RoleResult::default()
        })
    }

    #[test]
    fn rates_count_received_bytes_up_to_the_last_receipt() {
        let mut sut = Summary {
            subs: 2,
            count: 10,
            ..Summary::default()
        };
        let publisher = Ok(RoleResult {
            sent: 10,
            ..RoleResult::default()
        });
        sut.add(
            publisher,
            vec![sub(10, 1_500_000_000), sub(10, 2_000_000_000)],
            1_000_000_000,
        );
        assert_eq!(sut.elapsed_s, 1.0);
        assert_eq!((sut.msgs_per_s, sut.mb_per_s), (20.0, 20.0));
        assert!(sut.is_clean());
        sut.set_cost(Cost {
            cpu_us: 1234.0,
            minflt: 5.0,
        });
        assert_eq!((sut.cpu_us_per_msg, sut.minflt_per_msg), (123.4, 0.5));
    }

    #[test]
    fn a_silent_subscriber_lost_everything() {
        let mut sut = Summary {
            subs: 2,
            count: 10,
            ..Summary::default()
        };
        sut.add(
            Ok(RoleResult::default()),
            vec![sub(10, 2), Err("gone".into())],
            1,
        );
        assert_eq!((sut.lost, sut.disconnected), (10, 1));
        assert!(!sut.is_clean());
    }
}
