//! `busd ctl reload --dry-run [FILE]`: a reload rehearsed. The new file
//! is validated and compared with the rules in force for the connections
//! live now; nothing is applied.

use std::path::Path;

use busd_core::Router;
use serde::Serialize;

use crate::config::Config;
use crate::reload::{ReloadError, needs_restart};
use crate::shared::Shared;
use crate::sync::lock;

/// What a reload of the file would do now.
#[derive(Debug, Serialize)]
pub(crate) struct DryRunReport {
    /// The file rehearsed.
    file: String,
    /// Packages it configures.
    packages: usize,
    /// Its warnings, each `FILE:LINE: reason`.
    warnings: Vec<String>,
    /// Keys that changed but would apply only after a restart.
    need_restart: Vec<&'static str>,
    /// Connections that would be closed (their package is gone).
    would_close: Vec<ClientRef>,
    /// Subscriptions and services whose senders would change.
    changes: Vec<ChangeDoc>,
    /// Whether anything would be cut: a connection closed, or a sender
    /// someone would stop hearing from.
    cuts: bool,
    /// The grants in force, which the reload keeps (by id).
    grants_kept: Vec<u64>,
}

/// A live client, as the report names it.
#[derive(Debug, Serialize)]
struct ClientRef {
    id: u64,
    /// Its package, or `unpackaged:UID`.
    who: String,
}

/// A subscription or service whose senders would change.
#[derive(Debug, Serialize)]
struct ChangeDoc {
    client: ClientRef,
    sid: u64,
    /// `subscription` or `service`.
    kind: &'static str,
    subject: String,
    stops_from: Vec<ClientRef>,
    starts_from: Vec<ClientRef>,
}

/// Rehearses a reload of `file` (by default the daemon's own), with the
/// overrides the daemon started with, for an admin of uid `caller`.
///
/// # Errors
/// [`ReloadError::Config`] for an invalid file, as a reload would refuse
/// it; a file `caller` could not read itself is not read for it (the
/// daemon may run as root, an admin need not), and is refused as
/// [`ReloadError::Unreadable`].
pub(crate) fn dry_run(
    shared: &Shared,
    file: Option<&Path>,
    caller: Option<u32>,
) -> Result<DryRunReport, ReloadError> {
    if let Some(file) = file {
        readable_by(file, caller)?;
    }
    let path = file.or(shared.config.path.as_deref());
    let new = Config::load_with_env(path, &shared.config.overrides)?;
    let router = lock(&shared.router);
    // The grants in force would stay.
    let policy = crate::grants::carried_over(router.policy(), &new.policy);
    let rehearsal = router.rehearse(&policy);
    let client = |id: u64| client_ref(&router, id);
    let changes = rehearsal
        .changes
        .iter()
        .map(|c| ChangeDoc {
            client: client(c.registration.conn),
            sid: c.registration.sid,
            kind: if c.registration.service {
                "service"
            } else {
                "subscription"
            },
            subject: c.registration.subject.to_string(),
            stops_from: c.stops.iter().map(|&id| client(id)).collect(),
            starts_from: c.starts.iter().map(|&id| client(id)).collect(),
        })
        .collect();
    Ok(DryRunReport {
        file: new.source.clone(),
        packages: new.policy.packages.len(),
        need_restart: needs_restart(&shared.config, &new),
        would_close: rehearsal.closed.iter().map(|&id| client(id)).collect(),
        changes,
        cuts: rehearsal.cuts(),
        grants_kept: policy.grants.iter().map(|g| g.id).collect(),
        warnings: new.warnings,
    })
}

fn client_ref<H: Clone>(router: &Router<H>, id: u64) -> ClientRef {
    let who = router
        .connection(id)
        .map_or_else(|| "gone".to_owned(), |(who, _)| who.party());
    ClientRef { id, who }
}

/// Refuses a file `caller` could not read with its own rights: one it
/// neither owns nor may read as others (or, for a group, without
/// knowing the caller's groups, not at all), unless the caller is root.
fn readable_by(file: &Path, caller: Option<u32>) -> Result<(), ReloadError> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| ReloadError::Unreadable(format!("{}: {why}", file.display()));
    if !file.is_absolute() {
        return Err(refuse("not an absolute path".into()));
    }
    let meta = std::fs::metadata(file).map_err(|e| refuse(e.to_string()))?;
    let readable = match caller {
        Some(0) => true,
        Some(uid) if meta.uid() == uid => meta.mode() & 0o400 != 0,
        Some(_) => meta.mode() & 0o004 != 0,
        None => false,
    };
    if readable {
        Ok(())
    } else {
        Err(refuse("not readable by the admin asking".into()))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::readable_by;

    #[test]
    fn a_file_is_read_for_an_admin_only_if_it_could_read_it_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("busd.toml");
        std::fs::write(&file, "").unwrap();
        let owner = rustix::process::getuid().as_raw();
        let other = owner.wrapping_add(1).max(1);
        let set = |mode| std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
        set(0o600).unwrap();
        assert!(readable_by(&file, Some(owner)).is_ok() || owner == 0);
        assert!(
            readable_by(&file, Some(other)).is_err(),
            "not another uid's"
        );
        assert!(readable_by(&file, Some(0)).is_ok(), "root reads anything");
        set(0o644).unwrap();
        assert!(readable_by(&file, Some(other)).is_ok(), "readable by all");
        set(0o044).unwrap();
        if owner != 0 {
            assert!(
                readable_by(&file, Some(owner)).is_err(),
                "its owner may not read it"
            );
        }
        assert!(
            readable_by(std::path::Path::new("busd.toml"), Some(0)).is_err(),
            "relative"
        );
        assert!(readable_by(&dir.path().join("missing.toml"), Some(0)).is_err());
        assert!(readable_by(&file, None).is_err(), "no uid known");
    }
}
