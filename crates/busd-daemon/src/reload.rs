//! Reloading the configuration: new access rules swapped in whole, or not
//! at all.

use busd_proto::ErrorCode;
use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::shared::Shared;
use crate::sync::lock;

/// What a reload applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReloadReport {
    /// Packages the new rules configure.
    pub packages: usize,
    /// Connections closed because their package is no longer configured.
    pub disconnected: usize,
    /// The new file's warnings, each `FILE:LINE: reason`.
    pub warnings: Vec<String>,
    /// Keys that changed but apply only after a restart (listeners, limits).
    pub need_restart: Vec<&'static str>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReloadError {
    /// The file is invalid: the old rules stay.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A dry run of a file the admin asking could not read itself.
    #[error("{0}")]
    Unreadable(String),
}

/// Re-reads the configuration, with the overrides the daemon started with
/// (so `busd run --tcp` still wins over the file), and applies its access
/// rules atomically: an invalid file changes nothing. Connections of
/// packages that are gone are closed; every route obeys the new rules from
/// the next delivery on.
///
/// # Errors
/// [`ReloadError::Config`] naming the file, line and reason.
pub(crate) fn reload(shared: &Shared) -> Result<ReloadReport, ReloadError> {
    let path = shared.config.path.as_deref();
    let new = match Config::load_with_env(path, &shared.config.overrides) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target: "busd::audit", cause = %e, "reload refused: the old rules stay");
            return Err(e.into());
        }
    };
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    let need_restart = needs_restart(&shared.config, &new);
    if !need_restart.is_empty() {
        tracing::warn!(
            keys = ?need_restart,
            "listeners and limits change only with a restart; the new access rules apply now"
        );
    }
    let packages = new.policy.packages.len();
    let removed = {
        let mut router = lock(&shared.router);
        let policy = crate::grants::carried_over(router.policy(), &new.policy);
        router.set_policy(policy)
    };
    for (_, handle) in &removed {
        handle.cut_off(
            ErrorCode::NotAuthorized,
            "your package was removed from the configuration",
        );
    }
    *lock(&shared.admin_uids) = new.admin_uids.clone();
    tracing::info!(target: "busd::audit", packages, disconnected = removed.len(), "configuration reloaded");
    Ok(ReloadReport {
        packages,
        disconnected: removed.len(),
        warnings: new.warnings,
        need_restart,
    })
}

/// The keys that differ between `old` and `new` but apply only after a
/// restart (listeners, limits, bridges).
pub(crate) fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("daemon.tcp", new.tcp != old.tcp),
        ("daemon.unix", new.unix != old.unix),
        ("limits", new.limits != old.limits),
        ("bridge", new.bridges != old.bridges),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}
