//! A bridge's state and counters, for `busd ctl bridges` and the metrics:
//! atomics written by the bridge's tasks, read by anyone.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use serde::Serialize;

use crate::config::BridgeConfig;
use crate::sync::lock;

/// Where a bridge's NATS connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// Not connected yet since start.
    Connecting,
    /// Connected to a server of the cluster.
    Connected,
    /// Lost the server; reconnecting.
    Disconnected,
    /// Could not start (see `error`), or stopped with the daemon.
    Closed,
}

impl State {
    pub(crate) const ALL: [State; 4] = [
        State::Connecting,
        State::Connected,
        State::Disconnected,
        State::Closed,
    ];

    /// The name the metrics and `ctl` use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Disconnected => "disconnected",
            State::Closed => "closed",
        }
    }
}

/// A message count and its bytes.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub(crate) msgs: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

impl Flow {
    pub(crate) fn add(&self, bytes: usize) {
        self.msgs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// One bridge's counters.
#[derive(Debug)]
pub(crate) struct BridgeStats {
    pub(crate) name: String,
    pub(crate) pfn: String,
    state: AtomicU8,
    /// The server connected to, or last connected to.
    server: Mutex<Option<String>>,
    /// Why it could not start, or the last error NATS reported since it
    /// was last connected.
    error: Mutex<Option<String>>,
    /// Local publishes sent to NATS.
    pub(crate) out: Flow,
    /// NATS publishes delivered locally.
    pub(crate) into: Flow,
    /// Local publishes dropped: the buffer was full while NATS was away,
    /// or NATS refused them.
    pub(crate) dropped_out: AtomicU64,
    /// NATS publishes that could not be delivered locally (a subject the
    /// local bus cannot carry, the local connection lost).
    pub(crate) dropped_in: AtomicU64,
    /// Local publishes waiting for NATS now.
    pub(crate) buffered: AtomicU64,
    /// Requests from local callers relayed to NATS.
    pub(crate) calls_out: AtomicU64,
    /// Requests from NATS relayed to local services.
    pub(crate) calls_in: AtomicU64,
    /// Times the connection to NATS was made again after it was lost.
    pub(crate) reconnects: AtomicU64,
}

/// What `busd ctl bridges` shows of one bridge.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BridgeView {
    pub(crate) name: String,
    pub(crate) pfn: String,
    pub(crate) state: State,
    pub(crate) server: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) msgs_out: u64,
    pub(crate) bytes_out: u64,
    pub(crate) msgs_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) dropped_out: u64,
    pub(crate) dropped_in: u64,
    pub(crate) buffered: u64,
    pub(crate) calls_out: u64,
    pub(crate) calls_in: u64,
    pub(crate) reconnects: u64,
}

impl BridgeStats {
    pub(crate) fn new(config: &BridgeConfig) -> Self {
        Self {
            name: config.name.clone(),
            pfn: config.pfn.to_string(),
            state: AtomicU8::new(State::Connecting as u8),
            server: Mutex::new(None),
            error: Mutex::new(None),
            out: Flow::default(),
            into: Flow::default(),
            dropped_out: AtomicU64::new(0),
            dropped_in: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            calls_out: AtomicU64::new(0),
            calls_in: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    pub(crate) fn state(&self) -> State {
        let raw = self.state.load(Ordering::Acquire);
        State::ALL
            .into_iter()
            .find(|s| *s as u8 == raw)
            .unwrap_or(State::Closed)
    }

    /// Connected; a reconnect unless it is the first time.
    pub(crate) fn set_connected(&self) {
        let before = self.state.swap(State::Connected as u8, Ordering::AcqRel);
        if before != State::Connecting as u8 {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *lock(&self.error) = None;
    }

    /// What NATS last reported wrong.
    pub(crate) fn set_error(&self, why: String) {
        *lock(&self.error) = Some(why);
    }

    /// The server it is connected to.
    pub(crate) fn set_server(&self, server: String) {
        *lock(&self.server) = Some(server);
    }

    pub(crate) fn set_disconnected(&self) {
        let _ = self.state.compare_exchange(
            State::Connected as u8,
            State::Disconnected as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub(crate) fn set_failed(&self, why: &str) {
        self.set_error(why.to_owned());
        self.set_closed();
    }

    pub(crate) fn set_closed(&self) {
        self.state.store(State::Closed as u8, Ordering::Release);
    }

    pub(crate) fn view(&self) -> BridgeView {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BridgeView {
            name: self.name.clone(),
            pfn: self.pfn.clone(),
            state: self.state(),
            server: lock(&self.server).clone(),
            error: lock(&self.error).clone(),
            msgs_out: get(&self.out.msgs),
            bytes_out: get(&self.out.bytes),
            msgs_in: get(&self.into.msgs),
            bytes_in: get(&self.into.bytes),
            dropped_out: get(&self.dropped_out),
            dropped_in: get(&self.dropped_in),
            buffered: get(&self.buffered),
            calls_out: get(&self.calls_out),
            calls_in: get(&self.calls_in),
            reconnects: get(&self.reconnects),
        }
    }
}
