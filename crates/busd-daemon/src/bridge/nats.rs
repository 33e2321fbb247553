//! The bridge's NATS client: async-nats, reconnecting to the configured
//! servers forever, its state mirrored into the bridge's counters and a
//! watch the outbound buffer waits on.

use std::sync::Arc;

use async_nats::{ConnectOptions, Event, ServerAddr};
use tokio::sync::watch;

use super::stats::BridgeStats;
use crate::config::BridgeConfig;

/// A bridge's connection to its cluster.
pub(crate) struct Nats {
    pub(crate) client: async_nats::Client,
    /// Whether the client is connected now.
    pub(crate) connected: watch::Receiver<bool>,
}

/// Starts the client: it connects in the background (the daemon starts
/// whether or not the cluster is up) and reconnects whenever it is lost.
pub(crate) async fn connect(
    config: &BridgeConfig,
    stats: &Arc<BridgeStats>,
) -> Result<Nats, String> {
    let servers = config
        .nats
        .iter()
        .map(|u| u.parse::<ServerAddr>().map_err(|e| format!("{u}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, connected) = watch::channel(false);
    let (counters, name) = (Arc::clone(stats), config.name.clone());
    let options = credentials(config)
        .await?
        .name(format!("busd-bridge-{}", config.name))
        // Its own publishes must not come back as imports.
        .no_echo()
        // Only the URLs configured: never a server the cluster announces.
        .ignore_discovered_servers()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .ping_interval(config.ping_interval)
        .event_callback(move |event| {
            let (counters, tx, name) = (Arc::clone(&counters), tx.clone(), name.clone());
            async move { on_event(&event, &counters, &tx, &name) }
        });
    let client = options
        .connect(servers)
        .await
        .map_err(|e| format!("NATS client: {e}"))?;
    Ok(Nats { client, connected })
}

/// Keeps the bridge's counters naming the server it is connected to.
/// (Not from the event callback: the client holds the callback, which
/// would then hold the client, and it would never be dropped.)
pub(crate) async fn track_server(nats: &Nats, stats: &BridgeStats) {
    let mut connected = nats.connected.clone();
    loop {
        if connected.wait_for(|up| *up).await.is_err() {
            return;
        }
        let info = nats.client.server_info();
        let server = format!("{}:{}", info.host, info.port);
        tracing::info!(bridge = %stats.name, %server, "connected to NATS");
        stats.set_server(server);
        if connected.wait_for(|up| !*up).await.is_err() {
            return;
        }
    }
}

fn on_event(event: &Event, stats: &BridgeStats, connected: &watch::Sender<bool>, bridge: &str) {
    match event {
        Event::Connected => {
            stats.set_connected();
            connected.send_replace(true);
        }
        Event::Disconnected => {
            tracing::warn!(bridge, "lost NATS; reconnecting");
            stats.set_disconnected();
            connected.send_replace(false);
        }
        Event::SlowConsumer(sid) => {
            tracing::warn!(
                bridge,
                sid,
                "NATS dropped messages for the bridge (slow consumer)"
            );
            stats
                .dropped_in
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Event::ServerError(e) => {
            tracing::warn!(bridge, cause = %e, "NATS refused the bridge");
            stats.set_error(format!("NATS: {e}"));
        }
        Event::ClientError(e) => {
            tracing::warn!(bridge, cause = %e, "the NATS client failed");
            stats.set_error(format!("NATS client: {e}"));
        }
        other => tracing::info!(bridge, event = %other, "NATS event"),
    }
}

/// Options with the bridge's credentials: a `.creds` file (JWT and nkey
/// seed), a bare nkey seed, or a token.
async fn credentials(config: &BridgeConfig) -> Result<ConnectOptions, String> {
    let Some(path) = &config.credentials else {
        return Ok(ConnectOptions::new());
    };
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("credentials {}: {e}", path.display()))?;
    let text = text.trim();
    if text.contains("BEGIN NATS USER JWT") {
        return ConnectOptions::with_credentials(text)
            .map_err(|e| format!("credentials {}: {e}", path.display()));
    }
    if text.starts_with("SU") && !text.contains(char::is_whitespace) {
        return Ok(ConnectOptions::with_nkey(text.to_owned()));
    }
    Ok(ConnectOptions::with_token(text.to_owned()))
}
