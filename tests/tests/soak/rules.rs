//! The soak's configuration: three packages proven by tokens, and two
//! rule sets the soak switches between with reloads, so that access rules
//! decide deliveries and requests all along and change under traffic.
//!
//! - `open`: Weather and Maps talk both ways; Weather also with Retired;
//!   Weather may send to unpackaged clients, Maps receive from them.
//! - `strict`: Maps no longer accepts Weather (Maps to Weather still
//!   flows), and Retired is gone: its connections are closed on reload
//!   and new ones refused.
//!
//! Queues are small and waits short, so that slow subscribers overflow,
//! blocking ones are cut off and frozen clients time out within a soak.

use std::path::{Path, PathBuf};

use busd_e2e::Package;
use busd_e2e::access::{config_toml, write_config_dir};

pub(crate) const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
pub(crate) const MAPS: &str = "Fabrikam.Maps_1234567890abc";
pub(crate) const RETIRED: &str = "Northwind.Retired_0123456789abc";

/// A custom capability some services require; only Weather has it.
pub(crate) const CAPABILITY: &str = "soak.cap";

/// The identities a worker may take: a name for reports, and its package.
pub(crate) const IDENTITIES: &[(&str, Option<&str>)] = &[
    ("weather", Some(WEATHER)),
    ("weather", Some(WEATHER)),
    ("maps", Some(MAPS)),
    ("maps", Some(MAPS)),
    ("retired", Some(RETIRED)),
    ("retired", Some(RETIRED)),
    ("unpackaged", None),
    ("unpackaged", None),
];

/// What every rule set shares: the limits (a reload that changed them
/// would only warn that they need a restart).
const LIMITS: &str = r#"
[limits]
max_frame = 1048576
max_pending_msgs = 512
max_pending_bytes = 2097152
block_timeout = "200ms"
write_timeout = "2s"
"#;

/// One of the two rule sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    Open,
    Strict,
}

impl Rules {
    pub(crate) fn other(self) -> Self {
        match self {
            Self::Open => Self::Strict,
            Self::Strict => Self::Open,
        }
    }

    fn packages(self) -> Vec<Package> {
        let weather = Package::new(WEATHER).exempt_out().capability(CAPABILITY);
        let maps = Package::new(MAPS).exempt_in().sends_to(&[WEATHER]);
        match self {
            Self::Open => vec![
                weather.accepts(&[MAPS, RETIRED]).sends_to(&[MAPS, RETIRED]),
                maps.accepts(&[WEATHER]),
                Package::new(RETIRED)
                    .accepts(&[WEATHER])
                    .sends_to(&[WEATHER]),
            ],
            Self::Strict => vec![weather.accepts(&[MAPS]).sends_to(&[MAPS]), maps],
        }
    }

    /// Writes every package's token and the `open` rules into `dir`; the
    /// config's path.
    pub(crate) fn setup(dir: &Path) -> PathBuf {
        write_config_dir(dir, "same-uid", &Self::Open.packages());
        Self::Open.write(dir)
    }

    /// Writes these rules as `dir`'s config, replacing the file whole.
    pub(crate) fn write(self, dir: &Path) -> PathBuf {
        let path = dir.join("busd.toml");
        let text = config_toml("same-uid", &self.packages()) + LIMITS;
        let tmp = dir.join(".soak.toml.new");
        std::fs::write(&tmp, text).expect("write the config");
        std::fs::rename(&tmp, &path).expect("replace the config");
        path
    }
}
