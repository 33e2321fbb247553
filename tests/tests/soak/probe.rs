//! Looking at the daemon from outside: its open fds and memory in
//! `/proc`, its counters through `busd ctl stats`, and whether a fresh
//! client still gets served.

use std::collections::BTreeMap;
use std::time::Duration;

use busd_client::{Client, CtlCommand};
use futures::StreamExt;
use serde_json::Value;

/// How far above its baseline the daemon's resident memory may stay once
/// every client is gone: jemalloc hands freed memory back within about a
/// second, so this is for what stays cached by design (the router's maps
/// keep their capacity, thread caches).
pub(crate) const RSS_SLACK: u64 = 32 << 20;

/// How long the daemon may take to settle after the last client is gone:
/// a closing connection has up to 5 s to flush and lingers 1 s more.
pub(crate) const SETTLE: Duration = Duration::from_secs(30);

/// The daemon's open fds.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// The daemon's open fds by what they are (`socket`, `anon_inode:[eventfd]`,
/// `/memfd:…`, a file), to tell what leaked.
pub(crate) fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return kinds;
    };
    for entry in dir.flatten() {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        // socket:[1234] and memfd names carry numbers of their own.
        let kind = if target.starts_with("/memfd:") {
            "memfd".to_owned()
        } else {
            target.chars().filter(|c| !c.is_ascii_digit()).collect()
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

/// `busd ctl stats`.
pub(crate) async fn stats(admin: &Client) -> Value {
    tokio::time::timeout(Duration::from_secs(10), admin.ctl(CtlCommand::Stats))
        .await
        .expect("ctl stats answers within 10 s")
        .expect("ctl stats")
}

/// A counter of `stats` (0 if absent, which `problems` reports).
pub(crate) fn n(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

/// What does not add up in `stats` of an idle daemon with only the
/// soak's own admin connection left.
pub(crate) fn problems(stats: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in [
        "published",
        "delivered",
        "written",
        "dropped",
        "discarded",
        "failed",
        "queued",
        "requests",
        "replies",
        "timeouts",
        "responder_gone",
        "requester_gone",
    ] {
        if stats[key].as_u64().is_none() {
            out.push(format!("ctl stats has no {key}"));
        }
    }
    let delivered = n(stats, "delivered");
    let ended: u64 = ["written", "dropped", "discarded", "failed", "queued"]
        .iter()
        .map(|k| n(stats, k))
        .sum();
    if delivered != ended {
        out.push(format!(
            "delivered {delivered} != written + dropped + discarded + failed + queued = {ended}"
        ));
    }
    let requests = n(stats, "requests");
    let answered: u64 = [
        "replies",
        "timeouts",
        "responder_gone",
        "requester_gone",
        "pending_requests",
    ]
    .iter()
    .map(|k| n(stats, k))
    .sum();
    if requests != answered {
        out.push(format!(
            "requests {requests} != replies + timeouts + responder_gone + requester_gone + pending_requests = {answered}"
        ));
    }
    for (key, want) in [("queued", 0), ("pending_requests", 0), ("connections", 1)] {
        if n(stats, key) != want {
            out.push(format!("{key} is {}, not {want}", n(stats, key)));
        }
    }
    out
}

/// Whether a fresh client on `url` is served: a message to its own
/// subscription comes back, and a request to its own service is answered.
pub(crate) async fn round_trip(url: &str) -> Result<(), String> {
    let exchange = async {
        let client = Client::builder(url)
            .name("soak-probe")
            .reconnect(false)
            .connect()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut sub = client
            .subscribe("probe.echo")
            .await
            .map_err(|e| e.to_string())?;
        client
            .publish("probe.echo", "ping")
            .await
            .map_err(|e| e.to_string())?;
        let msg = sub.next().await.ok_or("the subscription ended")?;
        if msg.payload.as_ref() != b"ping" {
            return Err(format!("got {:?}", msg.payload));
        }
        let mut svc = client.serve("probe.svc").await.map_err(|e| e.to_string())?;
        let serving = tokio::spawn(async move {
            if let Some(request) = svc.next().await {
                let _ = request.respond("pong").await;
            }
        });
        let answer = client
            .request("probe.svc", "ping")
            .await
            .map_err(|e| format!("request: {e}"))?;
        let _ = serving.await;
        if answer.payload.as_ref() != b"pong" {
            return Err(format!("answered {:?}", answer.payload));
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err("no round trip within 10 s".to_owned()))
        .map_err(|e| format!("{url}: {e}"))
}

/// Polls `check` every 100 ms until it holds or `limit` passes; whether
/// it held.
pub(crate) async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let until = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `bytes` in MiB, for reports.
pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}
