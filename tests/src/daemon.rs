//! An in-process daemon per test.

use std::path::PathBuf;

use busd::{Config, Daemon};
use busd_transport::Endpoint;
use tempfile::TempDir;

/// The transports every scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Loopback TCP.
    Tcp,
    /// Unix socket.
    Unix,
}

impl Transport {
    /// Every transport, for tests that loop over them.
    pub const ALL: [Transport; 2] = [Transport::Tcp, Transport::Unix];
}

/// A daemon on 127.0.0.1:0 and `<tempdir>/busd.sock`, shut down on
/// [`TestDaemon::stop`] (or abandoned with the test's runtime).
pub struct TestDaemon {
    daemon: Option<Daemon>,
    tcp: Endpoint,
    unix: Endpoint,
    /// The config it runs with, to restart it identically.
    pub config: Config,
    /// Temp dir holding the socket; removed on drop.
    pub dir: TempDir,
}

impl TestDaemon {
    /// The embedded default config on fresh endpoints.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// As [`TestDaemon::start`], after `tune` adjusts the config.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config =
            Config::parse("<test>", busd::DEFAULT_CONFIG, &[]).expect("default config");
        config.tcp = Some("127.0.0.1:0".parse().expect("addr"));
        config.unix = Some(dir.path().join("busd.sock"));
        tune(&mut config);
        let daemon = Daemon::start(config.clone()).await.expect("daemon starts");
        let tcp = daemon.tcp_endpoint().cloned().expect("tcp endpoint");
        let unix = daemon.unix_endpoint().cloned().expect("unix endpoint");
        // Restarts reuse the same port.
        config.tcp = match &tcp {
            Endpoint::Tcp(addr) => Some(*addr),
            Endpoint::Unix(_) => None,
        };
        Self {
            daemon: Some(daemon),
            tcp,
            unix,
            config,
            dir,
        }
    }

    /// The URL clients use for `transport`.
    pub fn url(&self, transport: Transport) -> String {
        match transport {
            Transport::Tcp => self.tcp.to_string(),
            Transport::Unix => self.unix.to_string(),
        }
    }

    /// The unix socket path.
    pub fn socket_path(&self) -> PathBuf {
        match &self.unix {
            Endpoint::Unix(p) => p.clone(),
            Endpoint::Tcp(_) => unreachable!("unix endpoint"),
        }
    }

    /// The running daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon running")
    }

    /// Shuts the daemon down and waits for it.
    pub async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }

    /// Stops and starts again on the same endpoints.
    pub async fn restart(&mut self) {
        self.stop().await;
        let daemon = Daemon::start(self.config.clone())
            .await
            .expect("daemon restarts");
        self.daemon = Some(daemon);
    }
}
