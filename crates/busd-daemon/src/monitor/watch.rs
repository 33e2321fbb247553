//! One monitor: what it watches, and the bounded backlog of its events
//! that its forwarder drains.

use std::collections::VecDeque;
use std::sync::Mutex;

use busd_proto::{MonitorEvent, Subject};
use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::sync::lock;

/// One running monitor.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The monitoring connection.
    pub(crate) conn: u64,
    /// Its id for this monitor.
    pub(crate) sid: u64,
    /// What it watches.
    pub(crate) filter: Subject,
    /// Whether its events carry headers and payloads.
    pub(crate) contents: bool,
    /// Locked by publishers (to offer) and the forwarder (to take), briefly.
    backlog: Mutex<Backlog>,
    /// Wakes the forwarder after an offer (a permit is kept if it is busy).
    ready: Notify,
    /// Cancelled when the monitor ends: the forwarder stops.
    stopped: CancellationToken,
}

/// The events waiting for the forwarder.
#[derive(Debug)]
struct Backlog {
    events: VecDeque<(MonitorEvent, Bytes)>,
    /// Payload bytes among them.
    bytes: usize,
    /// At most this many events and payload bytes wait.
    max: (usize, usize),
    /// Events dropped since the forwarder last took the backlog.
    dropped: u64,
    /// Since the monitor started, for the audit line that ends it.
    totals: Totals,
}

/// What a monitor was shown and what it missed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    /// Events queued for it.
    pub(crate) events: u64,
    /// Events dropped because it fell behind.
    pub(crate) dropped: u64,
}

impl Watch {
    /// A monitor of connection `conn` under `sid`, whose backlog holds at
    /// most `max_events` events and `max_bytes` payload bytes.
    pub(crate) fn new(
        (conn, sid): (u64, u64),
        filter: Subject,
        contents: bool,
        (max_events, max_bytes): (usize, usize),
    ) -> Self {
        Self {
            conn,
            sid,
            filter,
            contents,
            backlog: Mutex::new(Backlog {
                events: VecDeque::new(),
                bytes: 0,
                max: (max_events.max(1), max_bytes.max(1)),
                dropped: 0,
                totals: Totals::default(),
            }),
            ready: Notify::new(),
            stopped: CancellationToken::new(),
        }
    }

    /// Queues `event` (with `payload`) for the monitor, or drops and
    /// counts it when the backlog is full; never waits.
    pub(crate) fn offer(&self, event: MonitorEvent, payload: Bytes) {
        {
            let mut b = lock(&self.backlog);
            let (max_events, max_bytes) = b.max;
            // An empty backlog takes one event however large, as an
            // outbound queue does.
            let full = !b.events.is_empty()
                && (b.events.len() >= max_events || b.bytes + payload.len() > max_bytes);
            if full {
                b.dropped += 1;
                b.totals.dropped += 1;
                return;
            }
            b.bytes += payload.len();
            b.totals.events += 1;
            b.events.push_back((event, payload));
        }
        self.ready.notify_one();
    }

    /// Moves the waiting events into `into`; how many were dropped since
    /// the last call (after all of them: a full backlog drops the newest).
    pub(crate) fn take(&self, into: &mut Vec<(MonitorEvent, Bytes)>) -> u64 {
        let mut b = lock(&self.backlog);
        into.extend(b.events.drain(..));
        b.bytes = 0;
        std::mem::take(&mut b.dropped)
    }

    /// Waits until an event was offered since the last wait.
    pub(crate) async fn offered(&self) {
        self.ready.notified().await;
    }

    /// Ends the monitor: its forwarder stops, what waits is let go.
    pub(crate) fn stop(&self) {
        self.stopped.cancel();
        let mut b = lock(&self.backlog);
        b.events.clear();
        b.bytes = 0;
    }

    /// Cancelled once the monitor has ended.
    pub(crate) fn stopped(&self) -> &CancellationToken {
        &self.stopped
    }

    /// What it was shown and missed so far.
    pub(crate) fn totals(&self) -> Totals {
        lock(&self.backlog).totals
    }
}
