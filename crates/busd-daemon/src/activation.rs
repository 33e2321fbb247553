//! Services started on demand (`[[package.service]] exec`), as Windows
//! starts an app service when a caller needs it.
//!
//! A request for such a service that nobody serves is held, and the
//! service started (once, however many requests arrive meanwhile); when
//! the started process serves the name, every held request is routed to
//! it. A start that fails, a process that exits first, or one that does
//! not serve within `limits.activation_timeout` answers the held requests
//! `AppUnavailable` or `AppServiceUnavailable`; a service that started
//! [`MAX_STARTS`] times within [`START_WINDOW`] is held back for
//! [`HOLD_BACK`], and its callers told `ResourceLimitsExceeded`. Each
//! held request still ends by its own deadline (`Timeout`).
//!
//! This module keeps the books; the session's side (`session::activate`)
//! starts processes (`child`: their connection, logs, reaping and idle
//! exit) and routes or answers what the books give back.

pub(crate) mod child;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use busd_policy::ServiceRule;
use busd_proto::{ErrorCode, Headers, Op, Ref, Status, Subject};
use bytes::Bytes;
use serde::Serialize;
use tokio::time::Instant;

use crate::outbox::ConnHandle;
use crate::payload::Payload;
use crate::sync::lock;

/// Starts allowed within [`START_WINDOW`] before a service is held back.
const MAX_STARTS: usize = 5;
const START_WINDOW: Duration = Duration::from_secs(10);
/// How long a service that started too often is held back.
const HOLD_BACK: Duration = Duration::from_secs(30);
/// Requests one service may hold while it starts (their bytes are bounded
/// by `limits.max_pending_bytes`, as one connection's queue is).
const MAX_HELD: usize = 4096;

/// A request waiting for its service to start.
pub(crate) struct Held {
    pub(crate) from: u64,
    pub(crate) handle: Arc<ConnHandle>,
    pub(crate) rid: u64,
    pub(crate) service: Subject,
    pub(crate) times: (std::time::Instant, std::time::Instant),
    pub(crate) headers: Option<Headers>,
    pub(crate) payload: Payload,
    /// The open files attached, admitted and charged already.
    pub(crate) fds: busd_proto::Fds,
}

impl Held {
    /// Answers the request with the daemon's error `code`.
    pub(crate) fn fail(self, code: ErrorCode, why: &str) {
        let rid = Some(Ref::Rid(self.rid));
        self.handle.send_error(code, why.to_owned(), rid);
    }

    /// Answers the request `Timeout`: its deadline passed while it waited.
    pub(crate) fn time_out(self) {
        let resp = Op::Resp {
            rid: self.rid,
            status: Status::Timeout,
            headers: None,
        };
        self.handle.send(&resp, Bytes::new());
    }

    /// Its key among the requests waiting for one service.
    pub(crate) fn key(&self) -> (u64, u64) {
        (self.from, self.rid)
    }
}

/// Where a started service is.
#[derive(Debug, Clone, Copy)]
struct Starting {
    generation: u64,
    pid: u32,
}

/// One service's activation state.
#[derive(Default)]
struct Entry {
    starting: Option<Starting>,
    held: Vec<Held>,
    /// The payload bytes `held` keeps.
    held_bytes: usize,
    recent_starts: VecDeque<Instant>,
    held_back_until: Option<Instant>,
    /// Processes started for it and not yet reaped.
    pids: Vec<u32>,
    starts: u64,
    failed_starts: u64,
    activated_requests: u64,
}

/// Every service's activation state.
#[derive(Default)]
pub(crate) struct Activations {
    entries: Mutex<HashMap<Subject, Entry>>,
}

/// One service as `busd ctl services` shows its activation.
#[derive(Debug, Serialize)]
pub(crate) struct ActivationDoc {
    /// `idle`, `starting`, `running`, or `held back for Ns`.
    pub(crate) state: String,
    pub(crate) pids: Vec<u32>,
    pub(crate) starts: u64,
    pub(crate) failed_starts: u64,
    /// Requests held while it started and then routed to it.
    pub(crate) activated_requests: u64,
    /// Requests waiting for it now.
    pub(crate) waiting: usize,
}

/// What became of a request [`Activations::hold`] took.
pub(crate) enum Admitted {
    /// It waits for a start under way.
    Waiting,
    /// It waits, and the caller must start `generation` of the
    /// service, then say how it went ([`Activations::started`] or
    /// [`Activations::start_failed`]).
    Start { generation: u64 },
    /// The service may not be started now: answer these with `code`.
    Refused {
        held: Vec<Held>,
        code: ErrorCode,
        why: String,
    },
}

impl Activations {
    /// Holds `held` until `rule`'s service serves, within `max_bytes` of
    /// payload held for it; whether a start is needed, or why it cannot be.
    pub(crate) fn hold(&self, rule: &ServiceRule, held: Held, max_bytes: usize) -> Admitted {
        let now = Instant::now();
        let mut entries = lock(&self.entries);
        let entry = entries.entry(rule.name.clone()).or_default();
        if let Some(until) = entry.held_back_until.filter(|u| *u > now) {
            let why = format!(
                "service {} started {MAX_STARTS} times within {START_WINDOW:?} and is held back for {}s more",
                rule.name,
                (until - now).as_secs() + 1
            );
            let code = ErrorCode::ResourceLimitsExceeded;
            return Admitted::Refused {
                held: vec![held],
                code,
                why,
            };
        }
        let len = held.payload.len();
        if entry.held.len() >= MAX_HELD || entry.held_bytes + len > max_bytes {
            let why = format!(
                "{} requests ({} bytes) already wait for service {} to start",
                entry.held.len(),
                entry.held_bytes,
                rule.name
            );
            let code = ErrorCode::ResourceLimitsExceeded;
            return Admitted::Refused {
                held: vec![held],
                code,
                why,
            };
        }
        entry.held_bytes += len;
        entry.held.push(held);
        if entry.starting.is_some() {
            return Admitted::Waiting;
        }
        match self.may_start(rule, entry, now) {
            Ok(generation) => Admitted::Start { generation },
            Err((code, why)) => Admitted::Refused {
                held: take_held(entry),
                code,
                why,
            },
        }
    }

    /// Whether `rule`'s service may start again, within its limits; the
    /// start's generation, counted as under way.
    fn may_start(
        &self,
        rule: &ServiceRule,
        entry: &mut Entry,
        now: Instant,
    ) -> Result<u64, (ErrorCode, String)> {
        if entry.pids.len() >= rule.max_instances as usize {
            let why = format!(
                "service {} has {} instances running, its max_instances, and none serves it",
                rule.name,
                entry.pids.len()
            );
            return Err((ErrorCode::ResourceLimitsExceeded, why));
        }
        while entry
            .recent_starts
            .front()
            .is_some_and(|t| now.duration_since(*t) > START_WINDOW)
        {
            entry.recent_starts.pop_front();
        }
        if entry.recent_starts.len() >= MAX_STARTS {
            entry.held_back_until = Some(now + HOLD_BACK);
            tracing::warn!(service = %rule.name, "started {MAX_STARTS} times within {START_WINDOW:?}: held back for {HOLD_BACK:?}");
            let why = format!(
                "service {} started {MAX_STARTS} times within {START_WINDOW:?}; it is held back for {HOLD_BACK:?}",
                rule.name
            );
            return Err((ErrorCode::ResourceLimitsExceeded, why));
        }
        // Starts are told apart within their service only.
        let generation = entry.starts;
        entry.recent_starts.push_back(now);
        entry.starts += 1;
        entry.starting = Some(Starting { generation, pid: 0 });
        Ok(generation)
    }

    /// Start `generation` of `service` runs as process `pid`.
    pub(crate) fn started(&self, service: &Subject, generation: u64, pid: u32) {
        if let Some(entry) = lock(&self.entries).get_mut(service) {
            entry.pids.push(pid);
            if let Some(s) = entry
                .starting
                .as_mut()
                .filter(|s| s.generation == generation)
            {
                s.pid = pid;
            }
        }
    }

    /// Start `generation` of `service` failed: the requests to answer.
    pub(crate) fn start_failed(&self, service: &Subject, generation: u64) -> Vec<Held> {
        self.end_start(service, generation, |_| {})
            .map(|(held, _)| held)
            .unwrap_or_default()
    }

    /// `service` is served now: the requests held for it, to route.
    pub(crate) fn served(&self, service: &Subject) -> Vec<Held> {
        let mut entries = lock(&self.entries);
        let Some(entry) = entries.get_mut(service) else {
            return Vec::new();
        };
        entry.starting = None;
        entry.activated_requests += entry.held.len() as u64;
        take_held(entry)
    }

    /// Start `generation` of `service` has had its time to serve and has
    /// not: the requests to answer and the process to stop, if it is
    /// still the start under way.
    pub(crate) fn not_served(
        &self,
        service: &Subject,
        generation: u64,
    ) -> Option<(Vec<Held>, u32)> {
        self.end_start(service, generation, |_| {})
    }

    /// Process `pid` of `service` (start `generation`) exited: the
    /// requests to answer if it had not served yet.
    pub(crate) fn exited(&self, service: &Subject, generation: u64, pid: u32) -> Vec<Held> {
        self.end_start(service, generation, |e| e.pids.retain(|p| *p != pid))
            .map(|(held, _)| held)
            .unwrap_or_default()
    }

    /// Ends start `generation` of `service` as failed, if it is the one
    /// under way, after `also`; its held requests and pid.
    fn end_start(
        &self,
        service: &Subject,
        generation: u64,
        also: impl FnOnce(&mut Entry),
    ) -> Option<(Vec<Held>, u32)> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(service)?;
        also(entry);
        let starting = entry.starting.filter(|s| s.generation == generation)?;
        entry.starting = None;
        entry.failed_starts += 1;
        Some((take_held(entry), starting.pid))
    }

    /// Takes the held request `(from, rid)` of `service`, at its deadline.
    pub(crate) fn expire(&self, service: &Subject, (from, rid): (u64, u64)) -> Option<Held> {
        let mut entries = lock(&self.entries);
        let entry = entries.get_mut(service)?;
        let at = entry
            .held
            .iter()
            .position(|h| (h.from, h.rid) == (from, rid))?;
        let held = entry.held.swap_remove(at);
        entry.held_bytes -= held.payload.len();
        Some(held)
    }

    /// Every service that has been activated, for `busd ctl services`.
    pub(crate) fn snapshot(&self) -> HashMap<Subject, ActivationDoc> {
        let now = Instant::now();
        lock(&self.entries)
            .iter()
            .map(|(name, e)| {
                let state = match (e.held_back_until.filter(|u| *u > now), e.starting) {
                    (Some(until), _) => format!("held back for {}s", (until - now).as_secs() + 1),
                    (None, Some(_)) => "starting".to_owned(),
                    (None, None) if e.pids.is_empty() => "idle".to_owned(),
                    (None, None) => "running".to_owned(),
                };
                let doc = ActivationDoc {
                    state,
                    pids: e.pids.clone(),
                    starts: e.starts,
                    failed_starts: e.failed_starts,
                    activated_requests: e.activated_requests,
                    waiting: e.held.len(),
                };
                (name.clone(), doc)
            })
            .collect()
    }
}

/// Every request `entry` holds, its bytes no longer held.
fn take_held(entry: &mut Entry) -> Vec<Held> {
    entry.held_bytes = 0;
    std::mem::take(&mut entry.held)
}
