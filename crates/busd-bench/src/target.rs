//! The daemon a bench runs against: one at a URL, or its own, started in
//! this process on `127.0.0.1:0` and a socket in a temp dir.

use std::time::Duration;

use busd_transport::Endpoint;
use tempfile::TempDir;

use busd_daemon::{Config, Daemon};

use crate::error::BenchError;

/// How long the workers' connections may take to close before the
/// bench's own daemon shuts down.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Where the bench connects, and the daemon it owns, if any.
pub(crate) struct Target {
    url: String,
    transport: &'static str,
    /// The bench's own daemon and the dir holding its socket.
    own: Option<(Daemon, TempDir)>,
}

impl Target {
    /// `server` if given, else a fresh daemon reached over `transport`.
    ///
    /// # Errors
    /// When the URL is invalid or the daemon cannot start.
    pub(crate) async fn resolve(
        server: Option<String>,
        transport: TransportArg,
    ) -> Result<Self, BenchError> {
        if let Some(url) = server {
            let endpoint: Endpoint = url
                .parse()
                .map_err(|e| BenchError::bus(format!("invalid --server {url}"), e))?;
            let transport = match endpoint {
                Endpoint::Tcp(_) => "tcp",
                Endpoint::Unix(_) => "unix",
                Endpoint::Shm(_) => "shm",
                // Many workers cannot share one inherited connection.
                Endpoint::Inherited(_) => {
                    return Err(BenchError::bus(
                        format!("--server {url}"),
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "an inherited connection (fd://) cannot carry a benchmark's many clients",
                        ),
                    ));
                }
            };
            return Ok(Self {
                url,
                transport,
                own: None,
            });
        }
        let dir = tempfile::tempdir()
            .map_err(|e| BenchError::io("cannot create a temp dir for the socket", e))?;
        // BUSD_* variables still tune it, e.g. BUSD_LIMITS__MAX_PENDING_MSGS.
        let env: Vec<(String, String)> = std::env::vars().collect();
        let mut config =
            Config::load_with_env(None, &env).map_err(|e| BenchError::Daemon(e.into()))?;
        config.tcp = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        config.unix = Some(dir.path().join("busd.sock"));
        let daemon = Daemon::start(config)
            .await
            .map_err(|e| BenchError::Daemon(e.into()))?;
        let (endpoint, name) = match transport {
            TransportArg::Tcp => (daemon.tcp_endpoint().cloned(), "tcp"),
            TransportArg::Unix => (daemon.unix_endpoint().cloned(), "unix"),
            // The unix socket serves shm clients too.
            TransportArg::Shm => match daemon.unix_endpoint() {
                Some(Endpoint::Unix(path)) => (Some(Endpoint::Shm(path.clone())), "shm"),
                _ => (None, "shm"),
            },
        };
        let url = endpoint
            .ok_or_else(|| BenchError::Options("the daemon has no such endpoint".into()))?
            .to_string();
        Ok(Self {
            url,
            transport: name,
            own: Some((daemon, dir)),
        })
    }

    /// The URL workers connect to.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// `tcp`, `unix` or `shm`.
    pub(crate) fn transport(&self) -> &'static str {
        self.transport
    }

    /// Stops the bench's own daemon, if it has one. The workers have
    /// dropped their clients by now; their connections are given a moment
    /// to close, so that none is told the daemon is shutting down (and
    /// logs it as a warning) on its way out.
    pub(crate) async fn stop(self) {
        if let Some((daemon, dir)) = self.own {
            let closing = async {
                while daemon.connection_count() > 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
            daemon.shutdown().await;
            drop(dir);
        }
    }
}

/// The transports of the bench's own daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// Loopback TCP.
    Tcp,
    /// Unix socket.
    Unix,
    /// Shared-memory rings, set up over the unix socket.
    Shm,
}
