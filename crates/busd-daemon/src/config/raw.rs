//! The configuration file as written: serde structs for the `toml` pass
//! (every key, unknown ones refused) and for the `config` crate pass
//! (`[daemon]` and `[limits]` only, with environment overrides).

use std::collections::BTreeMap;
use std::time::Duration;

use busd_policy::{RawPackage, ServicesMode, UnpackagedMode};
use serde::Deserialize;
use serde::de::IgnoredAny;
use toml::Spanned;

/// The whole file, for the line-precise `toml` pass. Every key is optional
/// in a file: what it leaves out comes from the embedded default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFile {
    #[allow(dead_code, reason = "checked here, read in the layered pass")]
    pub(super) daemon: RawDaemon,
    #[allow(dead_code, reason = "checked here, read in the layered pass")]
    pub(super) limits: RawLimits,
    #[allow(dead_code, reason = "checked here, read in the layered pass")]
    pub(super) metrics: RawMetrics,
    /// Packages come from the file only, never from the environment.
    pub(super) package: Vec<RawPackage>,
    /// Bridges to NATS, from the file only.
    pub(super) bridge: Vec<Spanned<super::bridge::RawBridge>>,
}

/// `[daemon]` and `[limits]` after the environment is layered over the
/// file; `[[package]]` tables are ignored here.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLayers {
    pub(super) daemon: RawDaemon,
    pub(super) limits: RawLimits,
    pub(super) metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDaemon {
    pub(super) tcp: Option<String>,
    pub(super) unix: Option<String>,
    pub(super) unpackaged: Option<UnpackagedMode>,
    pub(super) services: Option<ServicesMode>,
    pub(super) admin_uids: Option<Vec<u32>>,
    pub(super) threads: Option<usize>,
    #[serde(with = "humantime_serde")]
    pub(super) busy_poll: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub(super) shutdown_grace: Option<Duration>,
    pub(super) grants_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pub(super) max_frame: Option<u32>,
    pub(super) max_pending_msgs: Option<u32>,
    pub(super) max_pending_bytes: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_subscriptions: Option<usize>,
    #[serde(with = "humantime_serde")]
    pub(super) auth_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub(super) block_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub(super) foreign_block_timeout: Option<Duration>,
    pub(super) shm_ring_bytes: Option<u64>,
    pub(super) shm_pool_bytes: Option<u64>,
    pub(super) shm_set_pools: Option<usize>,
    pub(super) max_pending_requests: Option<usize>,
    pub(super) max_memory_per_identity: Option<u64>,
    pub(super) max_preauth_frame: Option<u32>,
    #[serde(with = "humantime_serde")]
    pub(super) frame_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub(super) write_timeout: Option<Duration>,
    #[serde(with = "humantime_serde")]
    pub(super) activation_timeout: Option<Duration>,
    pub(super) max_fds_per_message: Option<usize>,
    pub(super) max_fds_in_flight: Option<usize>,
}

/// Where each `[daemon]` and `[limits]` key is in the file, so an invalid
/// value names its line.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct KeyOffsets {
    daemon: BTreeMap<String, Spanned<IgnoredAny>>,
    limits: BTreeMap<String, Spanned<IgnoredAny>>,
    metrics: BTreeMap<String, Spanned<IgnoredAny>>,
}

impl KeyOffsets {
    /// The byte offset of `section.key`'s value, if the file sets it.
    pub(super) fn get(&self, dotted: &str) -> Option<usize> {
        let (section, key) = dotted.split_once('.')?;
        let table = match section {
            "daemon" => &self.daemon,
            "limits" => &self.limits,
            "metrics" => &self.metrics,
            _ => return None,
        };
        table.get(key).map(|v| v.span().start)
    }
}
