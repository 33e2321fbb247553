//! An in-process daemon per test.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use busd_daemon::{Config, Daemon};
use busd_transport::Endpoint;
use tempfile::TempDir;

/// The config file name in the daemon's temp dir.
const CONFIG_FILE: &str = "busd.toml";

/// Writes `secret` to `path` (parents created) with mode 0600, even when
/// the file exists with another mode.
pub(crate) fn write_secret(path: &Path, secret: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("token dir");
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::io::Write::write_all(&mut f, secret.as_bytes()).expect("write token");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// The transports every scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Loopback TCP.
    Tcp,
    /// Unix socket.
    Unix,
    /// Shared-memory rings, set up over the unix socket.
    Shm,
}

impl Transport {
    /// Every transport, for tests that loop over them.
    pub const ALL: [Transport; 3] = [Transport::Tcp, Transport::Unix, Transport::Shm];
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
        let config =
            Config::parse("<test>", busd_daemon::DEFAULT_CONFIG, &[]).expect("default config");
        Self::launch(dir, config, tune).await
    }

    /// A daemon running the config file `toml_body`, written as
    /// `<tempdir>/busd.toml` beside its token files: each `(path, secret)`
    /// of `tokens` is written at `path` relative to the config file with
    /// mode 0600. The listeners are then moved to 127.0.0.1:0 and a socket
    /// in the temp dir, whatever the file says. [`TestDaemon::reload`]
    /// re-reads the same file.
    pub async fn start_with_config(toml_body: &str, tokens: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, secret) in tokens {
            write_secret(&dir.path().join(path), secret);
        }
        let path = dir.path().join(CONFIG_FILE);
        std::fs::write(&path, toml_body).expect("write config");
        let config = Config::load(Some(&path))
            .unwrap_or_else(|e| panic!("test config refused: {e}\n{toml_body}"));
        Self::launch(dir, config, |_| {}).await
    }

    /// The embedded default config, with `hooks` injecting faults.
    pub async fn start_hooked(hooks: busd_daemon::Hooks) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            Config::parse("<test>", busd_daemon::DEFAULT_CONFIG, &[]).expect("default config");
        Self::launch_hooked(dir, config, |_| {}, hooks).await
    }

    async fn launch(dir: TempDir, config: Config, tune: impl FnOnce(&mut Config)) -> Self {
        Self::launch_hooked(dir, config, tune, busd_daemon::Hooks::default()).await
    }

    async fn launch_hooked(
        dir: TempDir,
        mut config: Config,
        tune: impl FnOnce(&mut Config),
        hooks: busd_daemon::Hooks,
    ) -> Self {
        config.tcp = Some("127.0.0.1:0".parse().expect("addr"));
        config.unix = Some(dir.path().join("busd.sock"));
        tune(&mut config);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let daemon = Daemon::start_hooked(config.clone(), shutdown, hooks)
            .await
            .expect("daemon starts");
        let tcp = daemon.tcp_endpoint().cloned().expect("tcp endpoint");
        let unix = daemon.unix_endpoint().cloned().expect("unix endpoint");
        // Restarts reuse the same port.
        config.tcp = match &tcp {
            Endpoint::Tcp(addr) => Some(*addr),
            _ => None,
        };
        Self {
            daemon: Some(daemon),
            tcp,
            unix,
            config,
            dir,
        }
    }

    /// The config file of [`TestDaemon::start_with_config`].
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(CONFIG_FILE)
    }

    /// Where a token file named relative to the config file lives.
    pub fn token_path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes (or replaces) a token file relative to the config file, mode 0600.
    pub fn write_token(&self, relative: &str, secret: &str) {
        write_secret(&self.token_path(relative), secret);
    }

    /// Replaces the config file with `toml_body`; the running daemon sees
    /// it at the next [`TestDaemon::reload`]. Written beside and renamed
    /// over, so a reload never reads half a file.
    pub fn rewrite_config(&self, toml_body: &str) {
        let tmp = self.dir.path().join(".busd.toml.new");
        std::fs::write(&tmp, toml_body).expect("write config");
        std::fs::rename(&tmp, self.config_path()).expect("replace config");
    }

    /// Reloads the configuration file, as SIGHUP does.
    ///
    /// # Errors
    /// Why the daemon refused the file (the old rules stay), as the
    /// daemon words it.
    pub fn reload(&self) -> Result<(), String> {
        match self.daemon().reloader().reload() {
            Ok(_report) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// [`TestDaemon::rewrite_config`], then [`TestDaemon::reload`].
    ///
    /// # Errors
    /// As [`TestDaemon::reload`].
    pub fn reconfigure(&self, toml_body: &str) -> Result<(), String> {
        self.rewrite_config(toml_body);
        self.reload()
    }

    /// The URL clients use for `transport`.
    pub fn url(&self, transport: Transport) -> String {
        match transport {
            Transport::Tcp => self.tcp.to_string(),
            Transport::Unix => self.unix.to_string(),
            Transport::Shm => Endpoint::Shm(self.socket_path()).to_string(),
        }
    }

    /// The unix socket path.
    pub fn socket_path(&self) -> PathBuf {
        match &self.unix {
            Endpoint::Unix(p) => p.clone(),
            _ => unreachable!("unix endpoint"),
        }
    }

    /// The running daemon.
    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("daemon running")
    }

    /// Shuts the daemon down and waits for it.
    pub async fn stop(&mut self) -> Option<busd_daemon::Stopped> {
        match self.daemon.take() {
            Some(d) => Some(d.shutdown().await),
            None => None,
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
