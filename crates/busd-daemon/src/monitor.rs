//! `busd monitor`: every publish, request and reply, shown live to admins.
//!
//! [`Monitors`] is the daemon's list of the monitors running. A publish
//! reads one atomic count of them (`Relaxed`: a monitor started at the
//! same moment as a publish may miss it, as a subscription would) and,
//! while nobody monitors, builds, allocates and locks nothing for them.
//! Only when someone watches does a session ask the router who the
//! message reached and who the rules kept it from, and hand the event to
//! each watching monitor's [`Watch`], a bounded backlog that a task of its
//! own (`forward`) drains into the monitor's connection. A publisher never
//! waits for a monitor: a full backlog drops the event and counts it.

mod forward;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use busd_proto::{MonitorEvent, Subject};
use bytes::Bytes;

pub(crate) use self::forward::forward;
pub(crate) use self::watch::Watch;
use crate::sync::lock;

/// Calls whose service a monitor remembers for their replies, at most;
/// past it (calls that timed out are never answered) it starts over.
const CALLS_REMEMBERED: usize = 65_536;

/// The monitors running, daemon-wide.
#[derive(Debug, Default)]
pub(crate) struct Monitors {
    /// How many monitors are running: all that a publish reads while
    /// there are none.
    active: AtomicUsize,
    /// Locked to start and end monitors and to find who watches a
    /// subject; never across an await.
    watches: Mutex<Vec<Arc<Watch>>>,
    /// The service of each call a monitor saw asked, by call id, so that
    /// its reply (which names only the call) is shown under it. Emptied
    /// when the last monitor ends.
    calls: Mutex<HashMap<u64, Subject>>,
}

impl Monitors {
    /// Whether any monitor runs (one relaxed load).
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Starts `watch`; `false` if its connection already has a monitor
    /// under the same sid.
    pub(crate) fn start(&self, watch: Arc<Watch>) -> bool {
        let mut watches = lock(&self.watches);
        if watches
            .iter()
            .any(|w| w.conn == watch.conn && w.sid == watch.sid)
        {
            return false;
        }
        watches.push(watch);
        self.active.store(watches.len(), Ordering::Relaxed);
        true
    }

    /// Ends the monitors of connection `conn` that `which` picks (by sid),
    /// and returns them, stopped.
    pub(crate) fn end(&self, conn: u64, which: impl Fn(u64) -> bool) -> Vec<Arc<Watch>> {
        let mut ended = Vec::new();
        let mut watches = lock(&self.watches);
        watches.retain(|w| {
            let ends = w.conn == conn && which(w.sid);
            if ends {
                w.stop();
                ended.push(Arc::clone(w));
            }
            !ends
        });
        self.active.store(watches.len(), Ordering::Relaxed);
        if watches.is_empty() {
            lock(&self.calls).clear();
        }
        ended
    }

    /// Every running monitor: its connection, sid and filter.
    pub(crate) fn list(&self) -> Vec<(u64, u64, Subject)> {
        lock(&self.watches)
            .iter()
            .map(|w| (w.conn, w.sid, w.filter.clone()))
            .collect()
    }

    /// The monitors watching `subject` (a publish's subject or a service).
    pub(crate) fn watching(&self, subject: &Subject) -> Vec<Arc<Watch>> {
        lock(&self.watches)
            .iter()
            .filter(|w| w.filter.matches(subject))
            .cloned()
            .collect()
    }

    /// Remembers that call `call_id` asked `service`, for its reply.
    pub(crate) fn call_asked(&self, call_id: u64, service: &Subject) {
        let mut calls = lock(&self.calls);
        if calls.len() >= CALLS_REMEMBERED {
            calls.clear();
        }
        calls.insert(call_id, service.clone());
    }

    /// The service call `call_id` asked, if a monitor saw it asked.
    pub(crate) fn call_answered(&self, call_id: u64) -> Option<Subject> {
        lock(&self.calls).remove(&call_id)
    }
}

/// Hands `event` to each of `watchers`: with the message's headers and
/// the payload `contents` gives (asked at most once) to those that want
/// contents, with its size only to the others.
pub(crate) fn emit(
    watchers: &[Arc<Watch>],
    mut event: MonitorEvent,
    contents: impl FnOnce() -> Bytes,
) {
    let payload = if watchers.iter().any(|w| w.contents) {
        contents()
    } else {
        Bytes::new()
    };
    let headers = event.headers.take();
    for w in watchers {
        let mut e = event.clone();
        if w.contents {
            e.headers.clone_from(&headers);
            w.offer(e, payload.clone());
        } else {
            w.offer(e, Bytes::new());
        }
    }
}

/// Now, in microseconds since the Unix epoch (0 for a clock before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
