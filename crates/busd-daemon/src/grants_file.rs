//! `[daemon] grants_file`: the grants of `busd ctl grant` kept over a
//! restart. The whole list is written after every change (to a temporary
//! file in the same directory, mode 0600, synced, then renamed over the
//! old one, so a crash leaves the old list or the new one), and read back
//! when the daemon starts; grants that expired meanwhile are dropped.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use busd_policy::{Grant, Identity, Party};
use serde::{Deserialize, Serialize};

/// One grant as the file keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Kept {
    pub(crate) id: u64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) both_ways: bool,
    /// When it expires, in seconds since the Unix epoch.
    pub(crate) until_s: u64,
    pub(crate) reason: Option<String>,
}

impl Kept {
    pub(crate) fn of(g: &Grant) -> Self {
        let until = g.until.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            id: g.id,
            from: g.from.party(),
            to: g.to.party(),
            both_ways: g.both_ways,
            until_s: until.as_secs(),
            reason: g.reason.clone(),
        }
    }

    /// The grant, and how long it has left; `None` once expired.
    ///
    /// # Errors
    /// A party the file names that cannot be read.
    pub(crate) fn grant(&self) -> Result<Option<(Grant, Duration)>, String> {
        let until = UNIX_EPOCH + Duration::from_secs(self.until_s);
        let Ok(left) = until.duration_since(SystemTime::now()) else {
            return Ok(None);
        };
        let party = |s: &str| match Party::parse(s)? {
            Party::Identity(who) => Ok::<Identity, String>(who),
            Party::Client(id) => Err(format!("{id}: a client id is no party to keep")),
        };
        let parties = (party(&self.from)?, party(&self.to)?);
        let grant = Grant::new(self.id, parties, self.both_ways, until, self.reason.clone());
        Ok(Some((grant, left)))
    }
}

/// Writes `grants` to `path`, replacing what it held.
///
/// # Errors
/// The I/O error.
pub(crate) fn save(path: &Path, grants: &[Kept]) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(grants).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The grants `path` keeps; none if it does not exist.
///
/// # Errors
/// The I/O error, or what is wrong with its contents.
pub(crate) fn load(path: &Path) -> Result<Vec<Kept>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}
