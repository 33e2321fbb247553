//! NATS publishes to the local bus: the bridge subscribes on NATS to each
//! `import` pattern and publishes what arrives on the same subject here,
//! as its own package, with the remote sender in `Busd-Sender`. The
//! local rules then decide who receives it, as for any publish of the
//! bridge's package. Requests (messages with a reply subject) are for
//! NATS services, not for this bridge, and are left alone.

use std::sync::atomic::Ordering;

use busd_proto::{Headers, Subject};
use futures::StreamExt;

use super::Ends;
use super::headers::from_nats;

/// Runs the bridge's import side until the daemon stops.
pub(super) async fn run(ends: &Ends) {
    let each = ends.config.import.iter().map(|p| forward(ends, p));
    futures::future::join_all(each).await;
}

/// Publishes locally what NATS delivers for `pattern`.
async fn forward(ends: &Ends, pattern: &Subject) {
    let mut sub = match ends
        .nats
        .client
        .subscribe(pattern.as_str().to_owned())
        .await
    {
        Ok(sub) => sub,
        Err(e) => {
            tracing::error!(bridge = %ends.config.name, %pattern, cause = %e, "cannot import: the NATS subscription failed");
            return;
        }
    };
    let stats = &ends.stats;
    while let Some(msg) = sub.next().await {
        if msg.reply.is_some() {
            continue;
        }
        let subject = match Subject::parse(msg.subject.as_str()) {
            Ok(s) if !s.has_wildcards() => s,
            _ => {
                stats.dropped_in.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bridge = %ends.config.name, subject = %msg.subject, "a NATS subject the local bus cannot carry: dropped");
                continue;
            }
        };
        let headers: Headers = from_nats(msg.headers.as_ref()).unwrap_or_default();
        let len = msg.payload.len();
        match ends
            .local
            .publish_with_headers(subject, headers, &msg.payload)
            .await
        {
            Ok(()) => stats.into.add(len),
            Err(e) => {
                stats.dropped_in.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(bridge = %ends.config.name, cause = %e, "cannot publish an import locally: dropped");
            }
        }
    }
}
