//! What a benchmark run is made of: the options every bench shares, the
//! roles its workers play, and what each worker reports back.
//!
//! A [`WorkerSpec`] travels to a worker process as one JSON argument and a
//! [`RoleResult`] comes back as one JSON line, so the same types serve the
//! in-process runner and the `--procs` runner.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{BenchError, ensure};

/// The most messages one publisher may number: the sequence has 48 bits,
/// and its last value marks the end of a `--duration` run.
pub(crate) const MAX_COUNT: u64 = (1 << 48) - 2;

/// The workloads of `busd bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// N publishers → M subscribers on one subject.
    Pubsub,
    /// One publisher → M subscribers.
    Fanout,
    /// K requesters call a service served by R responders.
    Reqrep,
    /// N connections, each subscribed to a subject of its own, held open and silent.
    Idle,
}

impl Workload {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pubsub => "pubsub",
            Self::Fanout => "fanout",
            Self::Reqrep => "reqrep",
            Self::Idle => "idle",
        }
    }
}

/// A publisher's flow-control window (`--window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// No confirmations until the end: the server paces the publisher.
    Off,
    /// At most about this many messages unconfirmed.
    Messages(u64),
}

/// A message count, or "off".
fn parse_window(text: &str) -> Result<Window, String> {
    match text {
        "off" => Ok(Window::Off),
        n => n
            .parse()
            .map(Window::Messages)
            .map_err(|e| format!("{text:?} is neither a message count nor \"off\": {e}")),
    }
}

/// The options every bench front end (busd's and natsbench's) shares.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Payload size in bytes (pub/sub needs at least 8, for the sequence number).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Messages per publisher, or requests per requester
    /// [default: 100000 for pubsub and fanout, 20000 for reqrep].
    #[arg(long)]
    pub count: Option<u64>,
    /// Run for this long instead of a count ("10s", "500ms"): publishers
    /// and requesters go on until it has passed, then say how many they
    /// sent, and every one of those is still checked for.
    #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration, conflicts_with = "count")]
    pub duration: Option<Duration>,
    /// Publishers (pubsub; fanout has exactly one).
    #[arg(long, default_value_t = 1)]
    pub pubs: u16,
    /// Subscribers [default: 1 for pubsub, 8 for fanout].
    #[arg(long)]
    pub subs: Option<u32>,
    /// Concurrent requesters (reqrep).
    #[arg(long, default_value_t = 1)]
    pub requesters: u32,
    /// Responders of the service (reqrep).
    #[arg(long, default_value_t = 1)]
    pub responders: u32,
    /// Flow control: a publisher waits for the server to confirm everything
    /// but its last WINDOW messages, or "off" to leave the pacing to the
    /// server [default: off for busd's lossless `block` policy, whose
    /// back-pressure paces publishers; else 4 MiB / size, within 16..=1024].
    #[arg(long, value_parser = parse_window)]
    pub window: Option<Window>,
    /// Connections to open and hold (idle).
    #[arg(long, default_value_t = 100)]
    pub conns: u32,
    /// Subscriptions each of them holds, each on a subject of its own
    /// (idle): `--conns 1 --subjects 100000` puts 100,000 unrelated
    /// subscriptions in the daemon.
    #[arg(long, default_value_t = 1)]
    pub subjects: u32,
    /// How long to hold them (idle), e.g. `30s` or `2m` (a bare number is
    /// seconds); Ctrl-C ends the hold sooner, and so does the end of stdin
    /// when stdin is a pipe.
    #[arg(long, default_value = "5s", value_parser = seconds_or_duration)]
    pub hold: Duration,
    /// Run publishers, subscribers, requesters and responders as separate processes.
    #[arg(long)]
    pub procs: bool,
    /// One JSON object per line instead of a progress bar and a table.
    #[arg(long)]
    pub json: bool,
    /// How long a subscriber waits for its next message before it counts
    /// the rest as lost, e.g. `10s` (a bare number is seconds); also the
    /// request timeout.
    #[arg(long, default_value = "10s", value_parser = seconds_or_duration)]
    pub idle_timeout: Duration,
}

/// A duration such as `500ms` or `2m`; a bare number is seconds, as these
/// options always took.
fn seconds_or_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime_serde::re::humantime::parse_duration(text)
        .map_err(|e| format!("{e}: give a duration such as 500ms or 30s"))
}

impl CommonArgs {
    /// The `--duration` in whole milliseconds, for the workers.
    pub fn duration_ms(&self) -> Option<u64> {
        self.duration
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Messages per publisher or requests per requester; with a
    /// `--duration`, the most any one may send.
    pub fn count(&self) -> u64 {
        if self.duration.is_some() {
            return MAX_COUNT;
        }
        self.count.unwrap_or(match self.workload {
            Workload::Pubsub | Workload::Fanout => 100_000,
            Workload::Reqrep => 20_000,
            Workload::Idle => 0,
        })
    }

    /// Publishers for this workload.
    pub fn pubs(&self) -> u16 {
        match self.workload {
            Workload::Fanout => 1,
            Workload::Pubsub => self.pubs,
            Workload::Reqrep | Workload::Idle => 0,
        }
    }

    /// Subscribers for this workload.
    pub fn subs(&self) -> u32 {
        match self.workload {
            Workload::Pubsub => self.subs.unwrap_or(1),
            Workload::Fanout => self.subs.unwrap_or(8),
            Workload::Reqrep | Workload::Idle => 0,
        }
    }

    /// The flow-control window, in messages; `None` when it is off.
    pub fn window(&self) -> Option<u64> {
        match self.window {
            Some(Window::Off) => None,
            Some(Window::Messages(n)) => Some(n.max(1)),
            None => Some(((4 << 20) / self.size.max(1) as u64).clamp(16, 1024)),
        }
    }

    /// Checks the combination before anything starts.
    ///
    /// # Errors
    /// A message naming the bad option.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.workload == Workload::Idle {
            ensure(self.conns >= 1, || "--conns must be at least 1".into())?;
            ensure(self.subjects >= 1, || {
                "--subjects must be at least 1".into()
            })?;
            ensure(!self.procs, || {
                "idle holds its connections in one process; --procs does not apply".into()
            })?;
            return Ok(());
        }
        let pubsub = self.workload != Workload::Reqrep;
        ensure(!pubsub || self.size >= 8, || {
            format!(
                "--size must be at least 8 for {}: the payload carries a sequence number",
                self.workload.name()
            )
        })?;
        ensure(self.workload != Workload::Fanout || self.pubs == 1, || {
            "fanout has exactly one publisher; use pubsub for --pubs".into()
        })?;
        ensure(!pubsub || (self.pubs() >= 1 && self.subs() >= 1), || {
            "pub/sub needs at least one publisher and one subscriber".into()
        })?;
        ensure(
            pubsub || (self.requesters >= 1 && self.responders >= 1),
            || "reqrep needs at least one requester and one responder".into(),
        )?;
        ensure(self.count() >= 1, || "--count must be at least 1".into())?;
        ensure(self.count() <= MAX_COUNT, || {
            "--count must be below 2^48 - 1".into()
        })?;
        ensure(
            self.duration.is_none_or(|d| d >= Duration::from_millis(1)),
            || "--duration must be at least 1ms".into(),
        )?;
        Ok(())
    }
}

/// One worker's job, as sent to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec<B> {
    /// The bus driver's own options.
    pub bus: B,
    /// Where the server is.
    pub url: String,
    /// The client name to announce.
    pub name: String,
    /// What to do.
    pub role: Role,
}

/// The part a worker plays.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Receives and checks `pubs × count` messages.
    Subscriber {
        /// The subject to subscribe to.
        subject: String,
        /// How many publishers send.
        pubs: u16,
        /// Messages each publisher sends; `None` for a timed run, where
        /// each publisher ends with a message saying how many it sent.
        count: Option<u64>,
        /// Give up after this long without a message.
        idle_timeout_ms: u64,
    },
    /// Sends `count` numbered messages.
    Publisher {
        /// The subject to publish to.
        subject: String,
        /// This publisher's number, stamped in each payload.
        index: u16,
        /// Messages to send (at most, in a timed run).
        count: u64,
        /// Send until this many milliseconds have passed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
        /// Payload size.
        size: usize,
        /// Unconfirmed messages allowed in flight; `None`: no limit but
        /// the server's back-pressure.
        window: Option<u64>,
    },
    /// Answers requests with their own payload until told to stop.
    Responder {
        /// The service name.
        service: String,
    },
    /// Makes `count` requests one after the other, timing each.
    Requester {
        /// The service name.
        service: String,
        /// Requests to make (at most, in a timed run).
        count: u64,
        /// Make requests until this many milliseconds have passed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_ms: Option<u64>,
        /// Payload size.
        size: usize,
        /// Request timeout.
        timeout_ms: u64,
    },
}

impl Role {
    /// Whether the role must be in place before the clock starts
    /// (subscribers, responders) rather than being what the clock times.
    pub fn is_passive(&self) -> bool {
        matches!(self, Self::Subscriber { .. } | Self::Responder { .. })
    }
}

/// What one worker reports; runners add these up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleResult {
    /// Messages published or requests made.
    pub sent: u64,
    /// Messages received, or successful responses.
    pub received: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Messages a subscriber never saw.
    pub lost: u64,
    /// Messages that came after a later one of the same publisher.
    pub out_of_order: u64,
    /// Failed requests, or foreign messages.
    pub errors: u64,
    /// The connection or subscription ended before the work was done.
    pub disconnected: bool,
    /// Why the worker stopped early, if it did.
    pub error: Option<String>,
    /// Unix time (ns) of the last message received or request answered.
    pub last_ns: Option<u64>,
    /// Request latencies: (nanoseconds, how many), from an HDR histogram.
    pub latency: Vec<(u64, u64)>,
}

/// Nanoseconds since the Unix epoch: a clock every process on the machine shares.
pub(crate) fn unix_ns() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
