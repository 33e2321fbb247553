//! The daemon's configuration: TOML read into raw serde structs, checked
//! into a [`Config`].
//!
//! The file is parsed with `toml` first, so a bad key or value is reported
//! with its line; then the `config` crate layers `BUSD_<SECTION>__<KEY>`
//! environment variables over it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use busd_policy::UnpackagedMode;
use busd_transport::Endpoint;
use serde::Deserialize;

/// The configuration compiled into the binary (`config/busd.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/busd.toml");

/// A configuration the daemon can run with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from, for messages: a path or `<embedded default>`.
    pub source: String,
    /// The loopback TCP listener, if any.
    pub tcp: Option<SocketAddr>,
    /// The unix socket path, if any.
    pub unix: Option<PathBuf>,
    /// May unpackaged clients talk to each other.
    pub unpackaged: UnpackagedMode,
    /// Uids allowed to run `busd ctl`.
    pub admin_uids: Vec<u32>,
    /// Limits.
    pub limits: Limits,
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
    pub auth_timeout: Duration,
}

/// Why a configuration was refused; the daemon exits with code 2.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    source_name: String,
    message: String,
}

impl ConfigError {
    fn new(source_name: &str, message: impl Into<String>) -> Self {
        Self {
            source_name: source_name.to_owned(),
            message: message.into(),
        }
    }
}

// Every key is optional in a file: what it leaves out comes from the
// embedded default, which sets them all.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    daemon: RawDaemon,
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDaemon {
    tcp: Option<String>,
    unix: Option<String>,
    unpackaged: Option<UnpackagedMode>,
    admin_uids: Option<Vec<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_frame: Option<u32>,
    max_pending_msgs: Option<u32>,
    max_pending_bytes: Option<u64>,
    max_connections: Option<usize>,
    max_subscriptions: Option<usize>,
    #[serde(with = "humantime_serde")]
    auth_timeout: Option<Duration>,
}

/// The value of a key that the embedded default always sets.
fn required<T>(name: &str, key: &str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or_else(|| ConfigError::new(name, format!("{key}: missing")))
}

impl Config {
    /// Loads `path`, or the embedded default when `None`, with environment
    /// overrides from `BUSD_<SECTION>__<KEY>` variables.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, the line or key, and the reason.
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
        let (name, text) = match path {
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::new(&name, format!("cannot read: {e}")))?;
                (name, text)
            }
            None => ("<embedded default>".to_owned(), DEFAULT_CONFIG.to_owned()),
        };
        Self::parse(&name, &text, env)
    }

    /// Parses configuration text; `name` labels errors.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(name: &str, text: &str, env: &[(String, String)]) -> Result<Self, ConfigError> {
        // Line-precise errors for the file itself.
        toml::from_str::<RawConfig>(text)
            .map_err(|e| ConfigError::new(name, toml_error(text, &e)))?;
        let overrides: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("BUSD_DAEMON__") || k.starts_with("BUSD_LIMITS__"))
            .cloned()
            .collect();
        let raw: RawConfig = config::Config::builder()
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
            .map_err(|e| ConfigError::new(name, format!("environment override: {e}")))?;
        Self::validate(name, raw)
    }

    fn validate(name: &str, raw: RawConfig) -> Result<Self, ConfigError> {
        let err = |key: &str, why: String| ConfigError::new(name, format!("daemon.{key}: {why}"));
        let d = raw.daemon;
        let tcp_text = required(name, "daemon.tcp", d.tcp)?;
        let tcp = match tcp_text.trim() {
            "" => None,
            s => {
                let addr: SocketAddr = s.parse().map_err(|e| {
                    err(
                        "tcp",
                        format!("{s:?} is not an address like 127.0.0.1:4271 ({e})"),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(err(
                        "tcp",
                        format!(
                            "{addr} is not a loopback address; busd listens on 127.0.0.1 or ::1 only"
                        ),
                    ));
                }
                Some(addr)
            }
        };
        let unix_text = required(name, "daemon.unix", d.unix)?;
        let unix = match unix_text.trim() {
            "" => None,
            "auto" => Some(Endpoint::default_unix_path()),
            s if Path::new(s).is_absolute() => Some(PathBuf::from(s)),
            s => {
                return Err(err(
                    "unix",
                    format!("{s:?} must be an absolute path, \"auto\" or \"\""),
                ));
            }
        };
        if tcp.is_none() && unix.is_none() {
            return Err(err(
                "tcp",
                "both tcp and unix are disabled: nothing to listen on".into(),
            ));
        }
        let l = raw.limits;
        let lim = |key: &str, why: &str| ConfigError::new(name, format!("limits.{key}: {why}"));
        let limits = Limits {
            max_frame: required(name, "limits.max_frame", l.max_frame)?,
            max_pending_msgs: required(name, "limits.max_pending_msgs", l.max_pending_msgs)?,
            max_pending_bytes: required(name, "limits.max_pending_bytes", l.max_pending_bytes)?,
            max_connections: required(name, "limits.max_connections", l.max_connections)?,
            max_subscriptions: required(name, "limits.max_subscriptions", l.max_subscriptions)?,
            auth_timeout: required(name, "limits.auth_timeout", l.auth_timeout)?,
        };
        let l = limits;
        if l.max_frame < 1024 {
            return Err(lim("max_frame", "must be at least 1024 bytes"));
        }
        if l.max_pending_msgs == 0 || l.max_pending_bytes < u64::from(l.max_frame) {
            return Err(lim(
                "max_pending_bytes",
                "the queue must hold at least one message of max_frame bytes",
            ));
        }
        if l.max_connections == 0 || l.max_subscriptions == 0 {
            return Err(lim("max_connections", "limits must be at least 1"));
        }
        if l.auth_timeout.is_zero() {
            return Err(lim("auth_timeout", "must be more than zero"));
        }
        Ok(Self {
            source: name.to_owned(),
            tcp,
            unix,
            unpackaged: required(name, "daemon.unpackaged", d.unpackaged)?,
            admin_uids: required(name, "daemon.admin_uids", d.admin_uids)?,
            limits,
        })
    }

    /// The endpoint clients should use by default: the unix socket if any.
    pub fn client_endpoint(&self) -> Option<Endpoint> {
        self.unix
            .clone()
            .map(Endpoint::Unix)
            .or(self.tcp.map(Endpoint::Tcp))
    }
}

/// "line L, column C: reason" from a toml error.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let reason = e.message();
    match e.span() {
        Some(span) => {
            let upto = &text[..span.start.min(text.len())];
            let line = upto.matches('\n').count() + 1;
            let col = upto.len() - upto.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {reason}")
        }
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::parse("default", DEFAULT_CONFIG, &[]).unwrap();
        assert_eq!(c.tcp, Some("127.0.0.1:4271".parse().unwrap()));
        assert!(c.unix.is_some());
        assert_eq!(c.unpackaged, UnpackagedMode::SameUid);
    }

    #[test]
    fn bad_values_name_line_and_key() {
        let text = DEFAULT_CONFIG.replace("max_frame = 8388608", "max_frame = \"big\"");
        let e = Config::parse("x.toml", &text, &[]).unwrap_err().to_string();
        assert!(e.starts_with("x.toml: line "), "{e}");
        assert!(e.contains("invalid type"), "{e}");
        let text = DEFAULT_CONFIG.replace("[limits]", "[limits]\nmax_frmae = 1");
        let e = Config::parse("x.toml", &text, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown field `max_frmae`"), "{e}");
        let text = DEFAULT_CONFIG.replace("127.0.0.1:4271", "0.0.0.0:4271");
        let e = Config::parse("x.toml", &text, &[]).unwrap_err().to_string();
        assert!(
            e.contains("daemon.tcp: 0.0.0.0:4271 is not a loopback address"),
            "{e}"
        );
    }

    #[test]
    fn a_partial_file_takes_the_rest_from_the_default() {
        let c = Config::parse("p.toml", "[limits]\nmax_frame = 4096\n", &[]).unwrap();
        assert_eq!(c.limits.max_frame, 4096);
        assert_eq!(c.limits.max_pending_msgs, 65536);
        assert_eq!(c.unpackaged, UnpackagedMode::SameUid);
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = [
            ("BUSD_LIMITS__MAX_FRAME".to_owned(), "65536".to_owned()),
            ("BUSD_DAEMON__TCP".to_owned(), "127.0.0.1:0".to_owned()),
            ("BUSD_URL".to_owned(), "tcp://ignored".to_owned()),
        ];
        let c = Config::parse("default", DEFAULT_CONFIG, &env).unwrap();
        assert_eq!(c.limits.max_frame, 65536);
        assert_eq!(c.tcp, Some("127.0.0.1:0".parse().unwrap()));
        let env = [("BUSD_LIMITS__MAX_FRAME".to_owned(), "lots".to_owned())];
        let e = Config::parse("default", DEFAULT_CONFIG, &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("limits.max_frame") || e.contains("max_frame"),
            "{e}"
        );
    }
}
