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
//! The processes themselves (their connection, logs, reaping and idle
//! exit) are in `child`.

mod child;

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
use crate::shared::Shared;
use crate::sync::lock;

/// Starts allowed within [`START_WINDOW`] before a service is held back.
const MAX_STARTS: usize = 5;
const START_WINDOW: Duration = Duration::from_secs(10);
/// How long a service that started too often is held back.
const HOLD_BACK: Duration = Duration::from_secs(30);
/// Requests one service may hold while it starts.
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
}

impl Held {
    /// Answers the request with the daemon's error `code`.
    fn fail(self, code: ErrorCode, why: &str) {
        let rid = Some(Ref::Rid(self.rid));
        self.handle.send_error(code, why.to_owned(), rid);
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
    generation: std::sync::atomic::AtomicU64,
}

/// One service as `busd ctl services` shows its activation.
#[derive(Debug, Serialize)]
pub(crate) struct ActivationDoc {
    /// `idle`, `starting`, `running`, or `held back until …`.
    pub(crate) state: String,
    pub(crate) pids: Vec<u32>,
    pub(crate) starts: u64,
    pub(crate) failed_starts: u64,
    /// Requests held while it started and then routed to it.
    pub(crate) activated_requests: u64,
    /// Requests waiting for it now.
    pub(crate) waiting: usize,
}

impl Activations {
    /// Holds `held` until `rule`'s service serves, starting it unless a
    /// start is under way; or answers it at once when the service may not
    /// be started now.
    pub(crate) fn hold(&self, shared: &Arc<Shared>, rule: &ServiceRule, held: Held) {
        let now = Instant::now();
        let mut failed = Vec::new();
        {
            let mut entries = lock(&self.entries);
            let entry = entries.entry(rule.name.clone()).or_default();
            if let Some(until) = entry.held_back_until.filter(|u| *u > now) {
                let wait = until - now;
                let why = format!(
                    "service {} started {MAX_STARTS} times within {START_WINDOW:?} and is held back for {}s more",
                    rule.name,
                    wait.as_secs() + 1
                );
                drop(entries);
                held.fail(ErrorCode::ResourceLimitsExceeded, &why);
                return;
            }
            if entry.held.len() >= MAX_HELD {
                let why = format!(
                    "{MAX_HELD} requests already wait for service {} to start",
                    rule.name
                );
                drop(entries);
                held.fail(ErrorCode::ResourceLimitsExceeded, &why);
                return;
            }
            let deadline = Instant::from_std(held.times.1);
            let key = (held.from, held.rid);
            entry.held.push(held);
            expire_at(shared, rule.name.clone(), key, deadline);
            if entry.starting.is_none() {
                if let Err((code, why)) = self.start(shared, rule, entry, now) {
                    failed.extend(entry.held.drain(..).map(|h| (h, code, why.clone())));
                }
            }
        }
        for (h, code, why) in failed {
            h.fail(code, &why);
        }
    }

    /// Starts one instance of `rule`'s service for `entry`, within its
    /// limits.
    fn start(
        &self,
        shared: &Arc<Shared>,
        rule: &ServiceRule,
        entry: &mut Entry,
        now: Instant,
    ) -> Result<(), (ErrorCode, String)> {
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
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        entry.recent_starts.push_back(now);
        entry.starts += 1;
        match child::spawn(shared, rule, generation) {
            Ok(pid) => {
                entry.starting = Some(Starting { generation, pid });
                entry.pids.push(pid);
                let timeout = shared.config.limits.activation_timeout;
                let (shared, name) = (Arc::clone(shared), rule.name.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(timeout).await;
                    shared.activations.not_served(&name, generation, timeout);
                });
                Ok(())
            }
            Err(e) => {
                entry.failed_starts += 1;
                tracing::warn!(service = %rule.name, cause = %e, "cannot start the service");
                let why = format!("service {} could not be started: {e}", rule.name);
                Err((ErrorCode::AppUnavailable, why))
            }
        }
    }

    /// `service` is served now: the requests held for it are routed.
    pub(crate) fn served(&self, shared: &Arc<Shared>, service: &Subject) {
        let held = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(service) else {
                return;
            };
            entry.starting = None;
            entry.activated_requests += entry.held.len() as u64;
            std::mem::take(&mut entry.held)
        };
        for h in held {
            crate::session::route_request(shared, h);
        }
    }

    /// Start `generation` of `service` has had `timeout` to serve.
    fn not_served(&self, service: &Subject, generation: u64, timeout: Duration) {
        let (held, pid) = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(service) else {
                return;
            };
            match entry.starting {
                Some(s) if s.generation == generation => {
                    entry.starting = None;
                    entry.failed_starts += 1;
                    (std::mem::take(&mut entry.held), s.pid)
                }
                _ => return,
            }
        };
        tracing::warn!(%service, pid, "started, but did not serve within {timeout:?}: stopping it");
        child::terminate(pid);
        let why = format!("service {service} was started but did not serve within {timeout:?}");
        for h in held {
            h.fail(ErrorCode::AppServiceUnavailable, &why);
        }
    }

    /// Process `pid` of `service` (start `generation`) exited.
    fn exited(&self, service: &Subject, generation: u64, pid: u32, how: &str) {
        let held = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(service) else {
                return;
            };
            entry.pids.retain(|p| *p != pid);
            match entry.starting {
                Some(s) if s.generation == generation => {
                    entry.starting = None;
                    entry.failed_starts += 1;
                    std::mem::take(&mut entry.held)
                }
                _ => return,
            }
        };
        let why = format!("service {service} exited before it served ({how})");
        for h in held {
            h.fail(ErrorCode::AppUnavailable, &why);
        }
    }

    /// The held request `(from, rid)` for `service` reached its deadline.
    fn expire(&self, service: &Subject, (from, rid): (u64, u64)) {
        let held = {
            let mut entries = lock(&self.entries);
            let Some(entry) = entries.get_mut(service) else {
                return;
            };
            let Some(at) = entry
                .held
                .iter()
                .position(|h| (h.from, h.rid) == (from, rid))
            else {
                return;
            };
            entry.held.swap_remove(at)
        };
        let resp = Op::Resp {
            rid: held.rid,
            status: Status::Timeout,
            headers: None,
        };
        held.handle.send(&resp, Bytes::new());
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

/// Answers the held request `key` of `service` `Timeout` at `deadline`,
/// unless it has gone on by then.
fn expire_at(shared: &Arc<Shared>, service: Subject, key: (u64, u64), deadline: Instant) {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline).await;
        shared.activations.expire(&service, key);
    });
}
