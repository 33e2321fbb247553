//! The daemon's configuration: TOML read into raw serde structs, checked
//! into a [`Config`] whose access rules are a validated [`Policy`].
//!
//! The file is parsed with `toml` first, so a bad key or value is reported
//! with its line; then the `config` crate layers `BUSD_DAEMON__<KEY>` and
//! `BUSD_LIMITS__<KEY>` environment variables over `[daemon]` and
//! `[limits]`. Packages (`[[package]]`) come from the file only.

mod bridge;
#[cfg(test)]
mod bridge_tests;
mod error;
mod raw;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use busd_policy::{Diagnostic, Policy, RawPolicy, SourceFile, toml_diagnostic};
use busd_transport::Endpoint;

pub use self::bridge::{BridgeConfig, subject_token};
pub use self::error::ConfigError;
use self::raw::{KeyOffsets, RawDaemon, RawFile, RawLayers, RawLimits};

/// The most worker threads `[daemon] threads` may ask for.
const MAX_THREADS: usize = 1024;
/// The longest `[daemon] shutdown_grace`: a stop must not hang a service
/// manager for minutes.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(300);
/// The least `[limits] max_preauth_frame`: a `Hello` with a long package
/// name and client name, or an `Auth`, must fit.
const MIN_PREAUTH_FRAME: u32 = 1024;
/// The longest `[daemon] busy_poll`: a reply that takes longer is not
/// worth a core's time spent polling for it.
const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// The configuration compiled into the binary (`config/busd.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/busd.toml");

/// A configuration the daemon can run with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from, for messages: a path or `<embedded default>`.
    pub source: String,
    /// The file it was loaded from, for reloads; `None` for the embedded
    /// default or text given to [`Config::parse`].
    pub path: Option<PathBuf>,
    /// The loopback TCP listener, if any.
    pub tcp: Option<SocketAddr>,
    /// The unix socket path, if any.
    pub unix: Option<PathBuf>,
    /// The access rules: packages, proofs, and `[daemon] unpackaged`.
    pub policy: Arc<Policy>,
    /// Rules that can never apply and the like, each `FILE:LINE: reason`;
    /// the daemon logs them at start and on reload.
    pub warnings: Vec<String>,
    /// Uids allowed to run `busd ctl`.
    pub admin_uids: Vec<u32>,
    /// Worker threads asked for; 0 lets [`Config::worker_threads`] choose.
    pub threads: usize,
    /// How long a connection that sent a request or a reply is polled
    /// without sleeping before the daemon waits for it (zero: never).
    pub busy_poll: Duration,
    /// How long a stopping daemon may take to deliver what is queued.
    pub shutdown_grace: Duration,
    /// Where the grants of `busd ctl grant` are kept over a restart
    /// (`None`: they end with the daemon).
    pub grants_file: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Bridges to NATS clusters (`[[bridge]]`).
    pub bridges: Vec<BridgeConfig>,
    /// Where the Prometheus metrics are served over HTTP (`[metrics]
    /// listen`), a loopback address; `None`: not served.
    pub metrics: Option<SocketAddr>,
    /// The `BUSD_DAEMON__*`, `BUSD_LIMITS__*` and `BUSD_METRICS__*` overrides it was loaded
    /// with (the environment, and `busd run`'s `--tcp` and `--unix`): a
    /// reload applies them again over the new file, as a start did.
    pub overrides: Vec<(String, String)>,
}

/// The `[limits]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest frame, in bytes.
    pub max_frame: u32,
    /// Outbound queue bound per connection, in messages.
    pub max_pending_msgs: u32,
    /// Outbound queue bound per connection, in bytes.
    pub max_pending_bytes: u64,
    /// Connections per package or uid.
    pub max_connections: usize,
    /// Subscriptions and services per package or uid.
    pub max_subscriptions: usize,
    /// Time allowed for the handshake.
    pub auth_timeout: std::time::Duration,
    /// How long a publisher waits for room in a `block` subscriber's queue
    /// before that subscriber is cut off.
    pub block_timeout: std::time::Duration,
    /// As `block_timeout`, when the subscriber is of another package or uid
    /// than the publisher and the publisher's package does not set
    /// `accept_block`: another owner may not hold a publisher for long.
    pub foreign_block_timeout: std::time::Duration,
    /// The largest ring (each way) an shm client may set up, in bytes.
    pub shm_ring_bytes: u64,
    /// The payload pool the daemon gives each shm client, and the largest
    /// a client may offer, in bytes (0: no pools).
    pub shm_pool_bytes: u64,
    /// Set pools the daemon keeps at once (each `shm_pool_bytes`), shared
    /// by the shm receivers of one receiver set so that a payload fanned
    /// out to them is copied once (0: none).
    pub shm_set_pools: usize,
    /// Requests one connection may have in flight.
    pub max_pending_requests: usize,
    /// Bytes the daemon holds for one package or uid, all its connections
    /// together: frames it is sending, messages queued for it.
    pub max_memory_per_identity: u64,
    /// Longest frame accepted before the handshake is over, in bytes.
    pub max_preauth_frame: u32,
    /// A frame that has started must be complete within this.
    pub frame_timeout: std::time::Duration,
    /// A peer whose socket takes no bytes for this long is cut off.
    pub write_timeout: std::time::Duration,
    /// How long a service the daemon starts has to serve its name before
    /// the requests waiting for it are answered `AppServiceUnavailable`.
    pub activation_timeout: std::time::Duration,
    /// Fds one message, request or reply may carry.
    pub max_fds_per_message: usize,
    /// Fds the daemon holds for one package or uid at once, all its
    /// connections together: received from it and not yet passed on to
    /// (or dropped for) every receiver.
    pub max_fds_in_flight: usize,
}

impl Config {
    /// Loads `path`, or the embedded default when `None`, with environment
    /// overrides from `BUSD_<SECTION>__<KEY>` variables. Relative token
    /// files are read from the config file's directory.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the line and the reason.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// As [`Config::load`], with the environment given (for tests).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with_env(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        match path {
            Some(path) => Self::load_checked(path, env).map(|(config, _)| config),
            None => Self::parse("<embedded default>", DEFAULT_CONFIG, env),
        }
    }

    /// Parses configuration text; `name` labels errors, and relative token
    /// files are read from the current directory.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(name: &str, text: &str, env: &[(String, String)]) -> Result<Self, ConfigError> {
        Self::parse_at(name, text, Path::new("."), env)
    }

    /// Parses configuration text whose relative token files live under
    /// `base_dir` (normally the config file's directory).
    ///
    /// # Errors
    /// As [`Config::load`]; an invalid policy gives every error found.
    pub fn parse_at(
        name: &str,
        text: &str,
        base_dir: &Path,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        Self::parse_checked(name, text, base_dir, env).map(|(config, _)| config)
    }

    /// As [`Config::load_with_env`] for a file, also giving the warnings
    /// with their lines (for `busd check-config`).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_checked(
        path: &Path,
        env: &[(String, String)],
    ) -> Result<(Self, Vec<Diagnostic>), ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::invalid(&name, None, format!("cannot read: {e}")))?;
        // Absolute, so token files and reloads do not depend on the
        // working directory.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let base_dir = absolute.parent().unwrap_or(Path::new("."));
        let (mut config, warnings) = Self::parse_checked(&name, &text, base_dir, env)?;
        config.path = Some(absolute);
        Ok((config, warnings))
    }

    fn parse_checked(
        name: &str,
        text: &str,
        base_dir: &Path,
        env: &[(String, String)],
    ) -> Result<(Self, Vec<Diagnostic>), ConfigError> {
        let file = SourceFile::new(name, text, base_dir);
        // Line-precise errors for the file itself, packages included.
        let raw_file: RawFile = toml::from_str(text).map_err(|e| {
            let d = toml_diagnostic(&file, &e);
            let column = e.span().map(|s| column_of(text, s.start));
            ConfigError::Invalid {
                file: name.to_owned(),
                line: d.line,
                column,
                reason: d.message,
            }
        })?;
        let offsets: KeyOffsets = toml::from_str(text).unwrap_or_default();
        let overrides = overrides_in(env);
        let layers = layer_env(name, text, &overrides)?;
        let unpackaged = layers.daemon.unpackaged.unwrap_or_default();
        let checked = Policy::from_raw(
            &file,
            RawPolicy {
                unpackaged,
                services: layers.daemon.services.unwrap_or_default(),
                packages: raw_file.package,
                granted: raw_file
                    .bridge
                    .iter()
                    .map(|b| b.get_ref().pfn().to_owned())
                    .collect(),
            },
        )?;
        let bridges =
            bridge::check(&file, &checked.policy, raw_file.bridge).map_err(ConfigError::Bridges)?;
        let v = Validator {
            file: &file,
            offsets: &offsets,
            overrides: &overrides,
        };
        let DaemonKeys {
            tcp,
            unix,
            admin_uids,
            threads,
            busy_poll,
            shutdown_grace,
            grants_file,
        } = v.daemon(layers.daemon)?;
        let config = Self {
            source: name.to_owned(),
            path: None,
            tcp,
            unix,
            policy: Arc::new(checked.policy),
            warnings: checked.warnings.iter().map(ToString::to_string).collect(),
            admin_uids,
            threads,
            busy_poll,
            shutdown_grace,
            grants_file,
            limits: v.limits(layers.limits)?,
            bridges,
            metrics: v.loopback("metrics.listen", layers.metrics.listen, "127.0.0.1:9271")?,
            overrides,
        };
        Ok((config, checked.warnings))
    }

    /// The daemon runtime's worker threads: `[daemon] threads`, or when
    /// that is 0, half the cores and at least one. The clients a local bus
    /// serves run on the same cores, and every message handed from one
    /// daemon thread to another costs a wake-up and cache traffic: on two
    /// cores, one daemon thread moved 25-35% more small messages per second
    /// than two, at 25-35% less daemon CPU per message.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    }

    /// The endpoint clients should use by default: the unix socket if any.
    pub fn client_endpoint(&self) -> Option<Endpoint> {
        self.unix
            .clone()
            .map(Endpoint::Unix)
            .or(self.tcp.map(Endpoint::Tcp))
    }
}

/// The variables of `env` that override `[daemon]` and `[limits]`, in
/// order (a later one wins, as `busd run`'s flags win over the
/// environment).
fn overrides_in(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| {
            ["BUSD_DAEMON__", "BUSD_LIMITS__", "BUSD_METRICS__"]
                .iter()
                .any(|prefix| k.starts_with(prefix))
        })
        .cloned()
        .collect()
}

/// The embedded default, then the file, then the `overrides`.
fn layer_env(
    name: &str,
    text: &str,
    overrides: &[(String, String)],
) -> Result<RawLayers, ConfigError> {
    let overrides: config::Map<String, String> = overrides.iter().cloned().collect();
    config::Config::builder()
        .add_source(config::File::from_str(
            DEFAULT_CONFIG,
            config::FileFormat::Toml,
        ))
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix("BUSD")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("daemon.admin_uids")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| ConfigError::invalid(name, None, format!("environment override: {e}")))
}

/// The 1-based column of a byte offset.
fn column_of(text: &str, offset: usize) -> usize {
    let upto = &text[..offset.min(text.len())];
    upto.len() - upto.rfind('\n').map_or(0, |i| i + 1) + 1
}

/// The checked `[daemon]` keys that end up in [`Config`].
struct DaemonKeys {
    tcp: Option<SocketAddr>,
    unix: Option<PathBuf>,
    admin_uids: Vec<u32>,
    threads: usize,
    busy_poll: Duration,
    shutdown_grace: Duration,
    grants_file: Option<PathBuf>,
}

/// Checks `[daemon]` and `[limits]`, naming the line of a bad key, or the
/// variable (or `busd run` flag) that set it.
struct Validator<'a> {
    file: &'a SourceFile<'a>,
    offsets: &'a KeyOffsets,
    overrides: &'a [(String, String)],
}

impl Validator<'_> {
    fn err(&self, key: &str, why: impl std::fmt::Display) -> ConfigError {
        // `daemon.tcp` is `BUSD_DAEMON__TCP`: the value came from there, not
        // from the file's line.
        let var = format!("BUSD_{}", key.replace('.', "__").to_uppercase());
        if self.overrides.iter().any(|(k, _)| *k == var) {
            let source = match key {
                "daemon.tcp" | "daemon.unix" => {
                    let flag = key.trim_start_matches("daemon.");
                    format!("{var} (or busd run --{flag})")
                }
                _ => var,
            };
            return ConfigError::invalid(&source, None, format!("{key}: {why}"));
        }
        let line = self.offsets.get(key).map(|at| self.file.line_of(at));
        ConfigError::invalid(self.file.name(), line, format!("{key}: {why}"))
    }

    /// The value of a key that the embedded default always sets.
    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.err(key, "missing"))
    }

    /// A loopback address, or `None` for `""`.
    fn loopback(
        &self,
        key: &str,
        value: Option<String>,
        example: &str,
    ) -> Result<Option<SocketAddr>, ConfigError> {
        let s = self.required(key, value)?;
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = s.parse().map_err(|e| {
            let why = format!("{s:?} is not an address like {example} ({e})");
            self.err(key, why)
        })?;
        if !busd_transport::is_loopback(addr.ip()) {
            let why =
                format!("{addr} is not a loopback address; busd listens on 127.0.0.1 or ::1 only");
            return Err(self.err(key, why));
        }
        Ok(Some(addr))
    }

    fn daemon(&self, d: RawDaemon) -> Result<DaemonKeys, ConfigError> {
        let tcp = self.loopback("daemon.tcp", d.tcp, "127.0.0.1:4271")?;
        let unix = match self.required("daemon.unix", d.unix)?.trim() {
            "" => None,
            "auto" => Some(Endpoint::default_unix_path()),
            s if Path::new(s).is_absolute() => Some(PathBuf::from(s)),
            s => {
                let why = format!("{s:?} must be an absolute path, \"auto\" or \"\"");
                return Err(self.err("daemon.unix", why));
            }
        };
        if tcp.is_none() && unix.is_none() {
            let why = "both tcp and unix are disabled: nothing to listen on";
            return Err(self.err("daemon.tcp", why));
        }
        self.required("daemon.unpackaged", d.unpackaged)?;
        let admin_uids = self.required("daemon.admin_uids", d.admin_uids)?;
        let threads = self.required("daemon.threads", d.threads)?;
        if threads > MAX_THREADS {
            let why = format!("must be at most {MAX_THREADS} (0 chooses from the cores)");
            return Err(self.err("daemon.threads", why));
        }
        let busy_poll = self.required("daemon.busy_poll", d.busy_poll)?;
        if busy_poll > MAX_BUSY_POLL {
            let max = humantime_serde::re::humantime::format_duration(MAX_BUSY_POLL);
            return Err(self.err("daemon.busy_poll", format!("must be at most {max}")));
        }
        let shutdown_grace = self.required("daemon.shutdown_grace", d.shutdown_grace)?;
        if shutdown_grace > MAX_SHUTDOWN_GRACE {
            let max = humantime_serde::re::humantime::format_duration(MAX_SHUTDOWN_GRACE);
            return Err(self.err("daemon.shutdown_grace", format!("must be at most {max}")));
        }
        let grants_file = d.grants_file;
        if grants_file.as_ref().is_some_and(|f| !f.is_absolute()) {
            return Err(self.err("daemon.grants_file", "must be an absolute path"));
        }
        Ok(DaemonKeys {
            tcp,
            unix,
            admin_uids,
            threads,
            busy_poll,
            shutdown_grace,
            grants_file,
        })
    }

    fn limits(&self, l: RawLimits) -> Result<Limits, ConfigError> {
        let limits = Limits {
            max_frame: self.required("limits.max_frame", l.max_frame)?,
            max_pending_msgs: self.required("limits.max_pending_msgs", l.max_pending_msgs)?,
            max_pending_bytes: self.required("limits.max_pending_bytes", l.max_pending_bytes)?,
            max_connections: self.required("limits.max_connections", l.max_connections)?,
            max_subscriptions: self.required("limits.max_subscriptions", l.max_subscriptions)?,
            auth_timeout: self.required("limits.auth_timeout", l.auth_timeout)?,
            block_timeout: self.required("limits.block_timeout", l.block_timeout)?,
            foreign_block_timeout: self
                .required("limits.foreign_block_timeout", l.foreign_block_timeout)?,
            shm_ring_bytes: self.required("limits.shm_ring_bytes", l.shm_ring_bytes)?,
            shm_pool_bytes: self.required("limits.shm_pool_bytes", l.shm_pool_bytes)?,
            shm_set_pools: self.required("limits.shm_set_pools", l.shm_set_pools)?,
            max_pending_requests: self
                .required("limits.max_pending_requests", l.max_pending_requests)?,
            max_memory_per_identity: self
                .required("limits.max_memory_per_identity", l.max_memory_per_identity)?,
            max_preauth_frame: self.required("limits.max_preauth_frame", l.max_preauth_frame)?,
            frame_timeout: self.required("limits.frame_timeout", l.frame_timeout)?,
            write_timeout: self.required("limits.write_timeout", l.write_timeout)?,
            activation_timeout: self.required("limits.activation_timeout", l.activation_timeout)?,
            max_fds_per_message: self
                .required("limits.max_fds_per_message", l.max_fds_per_message)?,
            max_fds_in_flight: self.required("limits.max_fds_in_flight", l.max_fds_in_flight)?,
        };
        let l = limits;
        if l.max_frame < 1024 {
            return Err(self.err("limits.max_frame", "must be at least 1024 bytes"));
        }
        if l.max_pending_msgs == 0 || l.max_pending_bytes < u64::from(l.max_frame) {
            let why = "the queue must hold at least one message of max_frame bytes";
            return Err(self.err("limits.max_pending_bytes", why));
        }
        if l.max_connections == 0 || l.max_subscriptions == 0 {
            return Err(self.err("limits.max_connections", "limits must be at least 1"));
        }
        if l.auth_timeout.is_zero() {
            return Err(self.err("limits.auth_timeout", "must be more than zero"));
        }
        for (key, timeout) in [
            ("limits.block_timeout", l.block_timeout),
            ("limits.foreign_block_timeout", l.foreign_block_timeout),
            ("limits.frame_timeout", l.frame_timeout),
            ("limits.write_timeout", l.write_timeout),
            ("limits.activation_timeout", l.activation_timeout),
        ] {
            if timeout.is_zero() {
                return Err(self.err(key, "must be more than zero"));
            }
        }
        if l.foreign_block_timeout > l.block_timeout {
            let why = "must be at most limits.block_timeout";
            return Err(self.err("limits.foreign_block_timeout", why));
        }
        if l.max_memory_per_identity < l.max_pending_bytes + u64::from(l.max_frame) {
            let why = "must hold at least one connection's full queue and one frame (max_pending_bytes + max_frame)";
            return Err(self.err("limits.max_memory_per_identity", why));
        }
        if l.max_fds_per_message > busd_proto::MAX_FDS_PER_FRAME {
            let why = format!(
                "must be at most {} (what one unix message carries)",
                busd_proto::MAX_FDS_PER_FRAME
            );
            return Err(self.err("limits.max_fds_per_message", &why));
        }
        if l.max_fds_in_flight < l.max_fds_per_message {
            let why = "must hold at least one message's fds (max_fds_per_message)";
            return Err(self.err("limits.max_fds_in_flight", why));
        }
        if l.max_pending_requests == 0 {
            return Err(self.err("limits.max_pending_requests", "must be at least 1"));
        }
        if !(MIN_PREAUTH_FRAME..=l.max_frame).contains(&l.max_preauth_frame) {
            let why = format!("must be from {MIN_PREAUTH_FRAME} bytes to max_frame");
            return Err(self.err("limits.max_preauth_frame", why));
        }
        let rings = busd_transport::MIN_SHM_RING..=busd_transport::MAX_SHM_RING;
        if !l.shm_ring_bytes.is_power_of_two() || !rings.contains(&l.shm_ring_bytes) {
            let why = format!(
                "must be a power of two from {} to {} bytes",
                rings.start(),
                rings.end()
            );
            return Err(self.err("limits.shm_ring_bytes", why));
        }
        let pools = busd_transport::MIN_SHM_POOL..=busd_transport::MAX_SHM_POOL;
        let pool = l.shm_pool_bytes;
        if pool != 0 && (!pool.is_power_of_two() || !pools.contains(&pool)) {
            let why = format!(
                "must be 0 (no pools) or a power of two from {} to {} bytes",
                pools.start(),
                pools.end()
            );
            return Err(self.err("limits.shm_pool_bytes", why));
        }
        Ok(limits)
    }
}
