//! Owning a unix socket path: one daemon per path, stale files replaced safely,
//! the socket file removed when the daemon stops.
//!
//! A lock file beside the socket (`<path>.lock`) is `flock`ed for the
//! listener's lifetime. Whoever holds the lock owns the path, so a socket file
//! found there while holding it was left by a daemon that died, and can be
//! removed. The lock file itself is never removed: unlinking it while another
//! process is about to lock it would let two daemons each lock a different
//! file. The kernel drops the lock when its holder exits, however it exits.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, Mode, OFlags};
use tracing::{debug, info, warn};

use crate::error::TransportError;

/// Mode of a socket directory busd creates (an existing one is left alone).
const DIR_MODE: u32 = 0o750;
/// Mode of the socket: the owner and its group may connect.
const SOCKET_MODE: u32 = 0o660;
/// Mode of the lock file.
const LOCK_MODE: u32 = 0o600;

/// The claim on a socket path, held as long as the listener lives.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    /// Holds the exclusive `flock`; closing it (on drop) releases the lock.
    _lock: File,
    /// `(dev, inode)` of the socket we bound, so that on drop we only remove
    /// our own socket, never a file someone put there since.
    bound: Option<(u64, u64)>,
}

impl SocketFile {
    /// Claims `path`: creates its directory if missing, takes the lock and
    /// removes a stale socket file. The path is then free to bind.
    pub(crate) fn claim(path: &Path) -> Result<Self, TransportError> {
        let path = std::path::absolute(path).map_err(|err| {
            TransportError::io(format!("invalid socket path {}", path.display()), err)
        })?;
        if let Some(dir) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|err| {
                    let context = format!("cannot create socket directory {}", dir.display());
                    TransportError::io(context, err)
                })?;
        }
        let lock = lock(&path)?;
        remove_stale(&path)?;
        Ok(Self {
            path,
            _lock: lock,
            bound: None,
        })
    }

    /// The absolute socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records the socket just bound at the path (so drop removes it) and
    /// sets its mode.
    pub(crate) fn mark_bound(&mut self) -> Result<(), TransportError> {
        let meta = fs::symlink_metadata(&self.path).map_err(|err| self.io("cannot stat", err))?;
        self.bound = Some((meta.dev(), meta.ino()));
        fs::set_permissions(&self.path, fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(|err| self.io("cannot set the mode of", err))
    }

    fn io(&self, what: &str, err: io::Error) -> TransportError {
        TransportError::io(format!("{what} socket {}", self.path.display()), err)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Some((dev, ino)) = self.bound else {
            return;
        };
        // Runs before the lock is released (fields drop after this body).
        match fs::symlink_metadata(&self.path) {
            Ok(meta) if meta.file_type().is_socket() && meta.dev() == dev && meta.ino() == ino => {
                match fs::remove_file(&self.path) {
                    Ok(()) => debug!(path = %self.path.display(), "socket removed"),
                    Err(err) => {
                        warn!(path = %self.path.display(), cause = %err, "cannot remove socket");
                    }
                }
            }
            Ok(_) => warn!(
                path = %self.path.display(),
                "socket path now holds another file; leaving it in place"
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                debug!(path = %self.path.display(), "socket already removed");
            }
            Err(err) => warn!(path = %self.path.display(), cause = %err, "cannot stat socket"),
        }
    }
}

/// `<path>.lock`.
fn lock_path(path: &Path) -> PathBuf {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

/// Opens (creating it if needed) and exclusively locks the lock file of
/// `path`, without waiting.
fn lock(path: &Path) -> Result<File, TransportError> {
    let lock_path = lock_path(path);
    // O_NOFOLLOW: never follow a symlink planted in place of the lock file.
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let file = rustix::fs::open(&lock_path, flags, Mode::from_raw_mode(LOCK_MODE))
        .map(File::from)
        .map_err(|err| {
            let context = format!("cannot open lock file {}", lock_path.display());
            TransportError::io(context, err.into())
        })?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(TransportError::AlreadyRunning(path.to_owned())),
        Err(err) => Err(TransportError::io(
            format!("cannot lock {}", lock_path.display()),
            err.into(),
        )),
    }
}

/// Removes a socket file left at `path` by a daemon that died; refuses to
/// touch anything that is not a socket. Call only while holding the lock.
fn remove_stale(path: &Path) -> Result<(), TransportError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            info!(path = %path.display(), "removing stale socket left by a previous busd");
            fs::remove_file(path).map_err(|err| {
                TransportError::io(
                    format!("cannot remove stale socket {}", path.display()),
                    err,
                )
            })
        }
        Ok(_) => Err(TransportError::NotASocket(path.to_owned())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(TransportError::io(
            format!("cannot inspect socket path {}", path.display()),
            err,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_sits_beside_the_socket() {
        assert_eq!(
            lock_path(Path::new("/run/busd/busd.sock")),
            PathBuf::from("/run/busd/busd.sock.lock")
        );
    }

    #[test]
    fn creates_missing_directories_with_mode_0750() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/busd.sock");
        let claim = SocketFile::claim(&path).unwrap();
        assert_eq!(claim.path(), path);
        let mode = fs::metadata(dir.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode();
        // The process umask may only remove bits.
        assert_eq!(mode & !DIR_MODE & 0o777, 0, "{mode:o}");
        let lock_mode = fs::metadata(lock_path(&path)).unwrap().permissions().mode();
        assert_eq!(lock_mode & 0o777 & !LOCK_MODE, 0, "{lock_mode:o}");
    }

    #[test]
    fn leaves_an_existing_directory_mode_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let _claim = SocketFile::claim(&dir.path().join("busd.sock")).unwrap();
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn a_symlink_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let path = dir.path().join("busd.sock");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = SocketFile::claim(&path).unwrap_err();
        assert!(matches!(err, TransportError::NotASocket(_)), "{err:?}");
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn the_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busd.sock");
        let first = SocketFile::claim(&path).unwrap();
        assert!(matches!(
            SocketFile::claim(&path),
            Err(TransportError::AlreadyRunning(_))
        ));
        drop(first);
        let _second = SocketFile::claim(&path).unwrap();
        assert!(lock_path(&path).exists());
    }
}
