//! The access rules as written in the TOML file, before any checking.
//!
//! These structs only mirror the file's keys (unknown keys are refused by
//! serde); [`Policy::from_raw`](crate::Policy::from_raw) turns them into a
//! validated [`Policy`](crate::Policy). Values carry their byte span
//! ([`Spanned`]) so every later error can name its line.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::UnpackagedMode;
use crate::services::{RawService, ServicesMode};

/// One `[[package]]` table, keys exactly as documented:
///
/// ```toml
/// [[package]]
/// pfn = "Contoso.Weather_8wekyb3d8bbwe"
/// loopback = true
/// token_file = "tokens/weather.key"
/// uids = [1000]
/// exe = ["/usr/bin/weather"]
/// in = ["Fabrikam.Maps_1234567890abc"]
/// out = ["Fabrikam.Maps_1234567890abc"]
/// exempt_in = false
/// exempt_out = false
/// accept_block = false
/// capabilities = ["contoso.hsa"]
/// user = "weather"
/// group = "weather"
///
/// [[package.service]]
/// name = "contoso.weather.forecast"
/// exec = ["/usr/lib/contoso/weather-service", "--serve"]
/// require_capability = "contoso.hsa"
/// idle_exit = "60s"
/// max_instances = 1
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPackage {
    pub(crate) pfn: Spanned<String>,
    #[serde(default)]
    pub(crate) loopback: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) token_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub(crate) uids: Option<Spanned<Vec<u32>>>,
    #[serde(default)]
    pub(crate) exe: Option<Spanned<Vec<Spanned<PathBuf>>>>,
    #[serde(default, rename = "in")]
    pub(crate) accept_from: Vec<Spanned<String>>,
    #[serde(default, rename = "out")]
    pub(crate) send_to: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) exempt_in: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) exempt_out: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) accept_block: bool,
    #[serde(default)]
    pub(crate) capabilities: Vec<Spanned<String>>,
    /// Who the services busd starts for it run as, when busd runs as root.
    #[serde(default)]
    pub(crate) user: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) group: Option<Spanned<String>>,
    /// `[[package.service]]` tables: the services it owns.
    #[serde(default)]
    pub(crate) service: Vec<RawService>,
}

/// The policy part of a configuration: `[daemon] unpackaged` and the
/// `[[package]]` tables, in file order.
#[derive(Debug, Clone, Default)]
pub struct RawPolicy {
    /// May unpackaged clients talk to each other.
    pub unpackaged: UnpackagedMode,
    /// May names no package owns be served.
    pub services: ServicesMode,
    /// The packages as written.
    pub packages: Vec<RawPackage>,
    /// Packages the daemon gives to connections it makes itself (its
    /// bridges): they need no proof, since no client ever claims them.
    pub granted: Vec<String>,
}

/// A file holding only access rules (other `[daemon]` keys are ignored),
/// for [`Policy::from_toml`](crate::Policy::from_toml).
#[derive(Debug, Deserialize)]
pub(crate) struct RawPolicyFile {
    #[serde(default)]
    pub(crate) daemon: RawDaemonPart,
    #[serde(default)]
    pub(crate) package: Vec<RawPackage>,
}

/// The one `[daemon]` key the policy needs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDaemonPart {
    #[serde(default)]
    pub(crate) unpackaged: UnpackagedMode,
    #[serde(default)]
    pub(crate) services: ServicesMode,
}
