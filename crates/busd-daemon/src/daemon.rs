//! The daemon: listeners, the shared router, the request timer, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use busd_proto::{Op, Status};
use busd_transport::{Endpoint, Listener, TcpListener, TransportError, UnixListener};
use bytes::Bytes;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hooks::Hooks;
use crate::metrics;
use crate::reload::{ReloadError, ReloadReport, reload};
use crate::session;
use crate::shared::Shared;
use crate::sync::lock;
use crate::tally::Deliveries;

/// A running daemon. Dropping it does not stop it: call [`Daemon::shutdown`]
/// or cancel the token given to [`Daemon::start_with`].
pub struct Daemon {
    shared: Arc<Shared>,
    endpoints: Vec<Endpoint>,
    metrics: Option<SocketAddr>,
}

/// Listening sockets handed over by a service manager (systemd's socket
/// activation, `LISTEN_FDS`). Those of a kind replace the configured
/// listener of that kind; a kind not handed over is bound as configured.
#[derive(Debug, Default)]
pub struct Inherited {
    /// TCP sockets; each must be bound to a loopback address.
    pub tcp: Vec<std::net::TcpListener>,
    /// Unix stream sockets bound to a path.
    pub unix: Vec<std::os::unix::net::UnixListener>,
}

impl Inherited {
    /// Whether nothing was handed over.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.unix.is_empty()
    }
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// Queued messages that their connections did not take within the
    /// shutdown grace, discarded.
    pub undelivered: u64,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be opened.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The metrics listener (`[metrics] listen`) could not be opened.
    #[error("cannot serve metrics on http://{addr}")]
    Metrics {
        /// The address configured.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Daemon {
    /// Binds the configured listeners and starts serving.
    ///
    /// # Errors
    /// [`StartError`] when a listener cannot be opened (address in use,
    /// another daemon on the socket, a non-loopback address, a socket path
    /// that is not safe to serve on: see `busd_transport::SocketPathError`).
    pub async fn start(config: Config) -> Result<Self, StartError> {
        Self::start_with(config, CancellationToken::new()).await
    }

    /// As [`Daemon::start`], stopping when `shutdown` is cancelled.
    ///
    /// # Errors
    /// As [`Daemon::start`].
    pub async fn start_with(
        config: Config,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        Self::start_hooked(config, shutdown, Hooks::default()).await
    }

    /// As [`Daemon::start_with`], serving on the sockets in `inherited`
    /// instead of binding the configured ones of their kind.
    ///
    /// # Errors
    /// As [`Daemon::start`]; [`TransportError::NotLoopback`] for an
    /// inherited TCP socket bound beyond loopback.
    pub async fn start_inherited(
        config: Config,
        shutdown: CancellationToken,
        inherited: Inherited,
    ) -> Result<Self, StartError> {
        Self::start_full(config, shutdown, Hooks::default(), inherited).await
    }

    /// As [`Daemon::start_with`], running `hooks` (fault injection, for
    /// tests).
    ///
    /// # Errors
    /// As [`Daemon::start`].
    pub async fn start_hooked(
        config: Config,
        shutdown: CancellationToken,
        hooks: Hooks,
    ) -> Result<Self, StartError> {
        Self::start_full(config, shutdown, hooks, Inherited::default()).await
    }

    async fn start_full(
        config: Config,
        shutdown: CancellationToken,
        hooks: Hooks,
        inherited: Inherited,
    ) -> Result<Self, StartError> {
        let mut tcp = Vec::new();
        if inherited.tcp.is_empty() {
            if let Some(addr) = config.tcp {
                tcp.push(TcpListener::bind(addr).await?);
            }
        }
        for socket in inherited.tcp {
            tcp.push(TcpListener::from_std(socket)?);
        }
        let mut unix = Vec::new();
        if inherited.unix.is_empty() {
            if let Some(path) = &config.unix {
                unix.push(UnixListener::bind(path).await?);
            }
        }
        for socket in inherited.unix {
            unix.push(UnixListener::from_std(socket)?);
        }
        for listener in &mut unix {
            listener.set_max_shm_ring(config.limits.shm_ring_bytes);
            // Checked with the config: only a size it refuses fails.
            listener
                .set_shm_pool(config.limits.shm_pool_bytes)
                .map_err(|source| TransportError::Io {
                    context: "limits.shm_pool_bytes".to_owned(),
                    source,
                })?;
        }
        let metrics = match config.metrics {
            Some(addr) => Some(bind_metrics(addr).await?),
            None => None,
        };
        let metrics_addr = metrics.as_ref().and_then(|l| l.local_addr().ok());
        let shared = Arc::new(Shared::new(config, shutdown, hooks));
        crate::grants::restore(&shared);
        let mut endpoints = Vec::new();
        for l in tcp {
            endpoints.push(l.endpoint());
            shared.tracker.spawn(accept_loop(l, Arc::clone(&shared)));
        }
        for l in unix {
            endpoints.push(l.endpoint());
            shared.tracker.spawn(accept_loop(l, Arc::clone(&shared)));
        }
        shared.tracker.spawn(timer_loop(Arc::clone(&shared)));
        crate::bridge::start(&shared);
        for e in &endpoints {
            tracing::info!(endpoint = %e, "listening");
        }
        if let Some(l) = metrics {
            shared.tracker.spawn(metrics::serve(l, Arc::clone(&shared)));
        }
        if let Some(addr) = metrics_addr {
            tracing::info!(endpoint = %format!("http://{addr}/metrics"), "serving metrics");
        }
        Ok(Self {
            shared,
            endpoints,
            metrics: metrics_addr,
        })
    }

    /// Where the Prometheus metrics are served (`[metrics] listen`, with
    /// the real port when configured with port 0): `http://ADDR/metrics`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// Every endpoint served: TCP ones first (with the real port when
    /// configured with port 0), then unix ones.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The first TCP endpoint, with the real port when configured with port 0.
    pub fn tcp_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| matches!(e, Endpoint::Tcp(_)))
    }

    /// The first unix socket endpoint.
    pub fn unix_endpoint(&self) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|e| matches!(e, Endpoint::Unix(_)))
    }

    /// The token that stops the daemon when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// A handle that reloads the configuration (SIGHUP, `busd ctl reload`).
    pub fn reloader(&self) -> Reloader {
        Reloader(Arc::clone(&self.shared))
    }

    /// Router counters.
    pub fn stats(&self) -> busd_core::Stats {
        lock(&self.shared.router).stats()
    }

    /// Where the router's deliveries ended: once the daemon is idle,
    /// their [`total`](Deliveries::total) is [`stats`](Self::stats)`().delivered`.
    pub fn deliveries(&self) -> Deliveries {
        self.shared.deliveries()
    }

    /// Client connections registered now.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared.router).connection_count()
    }

    /// Stops accepting, tells every client `ShuttingDown` after what is
    /// queued for it, and waits until every connection is closed (see
    /// [`Daemon::wait`]).
    pub async fn shutdown(self) -> Stopped {
        self.shared.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the daemon has been stopped through its token and every
    /// task has ended: each connection gets `[daemon] shutdown_grace` to
    /// take what is queued for it; what it did not is counted and logged.
    pub async fn wait(self) -> Stopped {
        self.shared.shutdown.cancelled().await;
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        let undelivered = self.shared.undelivered.load(Ordering::Relaxed);
        if undelivered > 0 {
            let grace = self.shared.config.shutdown_grace;
            let grace = humantime_serde::re::humantime::format_duration(grace);
            tracing::warn!(
                undelivered,
                "stopped: {undelivered} queued messages could not be delivered within {grace}"
            );
        } else {
            tracing::info!("stopped");
        }
        Stopped { undelivered }
    }
}

/// Reloads the daemon's configuration; cheap to clone.
#[derive(Clone)]
pub struct Reloader(Arc<Shared>);

impl Reloader {
    /// Re-reads the configuration file and applies its access rules
    /// atomically; on error the old rules stay.
    ///
    /// # Errors
    /// [`ReloadError`]: why the new file was refused.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        reload(&self.0)
    }
}

/// Binds the metrics listener, on a loopback address only (as the
/// configuration checks, and again here for one built in code).
async fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    if !busd_transport::is_loopback(addr.ip()) {
        return Err(TransportError::NotLoopback(addr).into());
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Metrics { addr, source })
}

async fn accept_loop<L: Listener>(mut listener: L, shared: Arc<Shared>) {
    let endpoint = listener.endpoint();
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    shared.tracker.spawn(session::run(Arc::clone(&shared), conn));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning, keep serving.
                    tracing::error!(%endpoint, cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    // Dropping the listener here removes the unix socket file.
}

/// Answers `Timeout` to requests whose deadline passed.
async fn timer_loop(shared: Arc<Shared>) {
    loop {
        let next = lock(&shared.router).next_deadline();
        let sleep = async {
            match next {
                Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {}
            () = shared.timer.notified() => {}
            () = shared.shutdown.cancelled() => return,
        }
        let expired = lock(&shared.router).expire(Instant::now().into_std());
        for u in expired {
            let resp = Op::Resp {
                rid: u.rid,
                status: Status::Timeout,
                headers: None,
            };
            u.requester.send(&resp, Bytes::new());
        }
    }
}
