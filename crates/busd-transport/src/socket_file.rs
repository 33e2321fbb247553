//! Owning a unix socket path: one daemon per path, never another program's
//! socket taken over, stale files replaced safely, the socket file removed
//! when the daemon stops.
//!
//! The directory is opened and checked first (`socket_dir`); everything
//! below goes through it. A lock file beside the socket (`<path>.lock`) is
//! `flock`ed for the listener's lifetime, so a second busd is refused. A
//! socket file already at the path is replaced only if connecting to it is
//! refused (nobody listens: its daemon died) while we hold the lock; if
//! anything answers, it is left alone, lock or no lock, since another program
//! may serve there without knowing of busd's lock. The lock file itself is
//! never removed: unlinking it while another process is about to lock it
//! would let two daemons each lock a different file. The kernel drops the
//! lock when its holder exits, however it exits.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, FlockOperation, Stat};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
use tracing::{debug, info, warn};

use crate::error::{SocketPathError, TransportError};
use crate::socket_dir::{SocketDir, with_suffix};

/// Mode of the socket: the owner and its group may connect.
const SOCKET_MODE: u32 = 0o660;
/// Mode of the lock file.
const LOCK_MODE: u32 = 0o600;
/// The longest path a socket address holds (`sun_path` is 108 bytes with
/// its NUL). Clients connect by the full path, so it must fit.
const MAX_SOCKET_PATH: usize = 107;

/// The claim on a socket path, held as long as the listener lives.
#[derive(Debug)]
pub(crate) struct SocketFile {
    /// The absolute socket path, as clients name it.
    path: PathBuf,
    /// The checked directory holding it.
    dir: SocketDir,
    /// The socket's name in `dir`.
    name: OsString,
    /// Holds the exclusive `flock`; closing it (on drop) releases the lock.
    _lock: File,
    /// The socket we bound, so that on drop we only remove our own socket,
    /// never a file someone put there since.
    bound: Option<Stat>,
}

impl SocketFile {
    /// Claims `path`: creates its directory if missing, checks it, takes the
    /// lock and removes a stale socket file. The path is then free to bind
    /// (through [`SocketFile::bind_path`]).
    pub(crate) fn claim(path: &Path) -> Result<Self, TransportError> {
        let path = std::path::absolute(path).map_err(|err| {
            TransportError::io(format!("invalid socket path {}", path.display()), err)
        })?;
        let invalid = |why: String| {
            let err = io::Error::new(io::ErrorKind::InvalidInput, why);
            TransportError::io(format!("cannot listen on unix://{}", path.display()), err)
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(invalid("not a file path".into()));
        };
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            let why = format!("a socket path holds at most {MAX_SOCKET_PATH} bytes");
            return Err(invalid(why));
        }
        let dir = SocketDir::open(parent)?;
        if dir.entry_path(name).as_os_str().len() > MAX_SOCKET_PATH {
            let why = "the file name is too long to bind through /proc/self/fd".into();
            return Err(invalid(why));
        }
        let name = name.to_owned();
        let lock = lock(&dir, &path, &name)?;
        remove_stale(&dir, &path, &name)?;
        Ok(Self {
            path,
            dir,
            name,
            _lock: lock,
            bound: None,
        })
    }

    /// The absolute socket path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The path to bind: the socket's name in the checked directory, reached
    /// through its fd, so a rename of the directory cannot redirect it.
    pub(crate) fn bind_path(&self) -> PathBuf {
        self.dir.entry_path(&self.name)
    }

    /// Records the socket just bound at the path (so drop removes it) and
    /// sets its mode.
    pub(crate) fn mark_bound(&mut self) -> Result<(), TransportError> {
        let stat = self
            .dir
            .stat(&self.name)
            .map_err(|err| self.io("cannot stat", err))?;
        self.bound = Some(stat);
        self.dir
            .chmod(&self.name, SOCKET_MODE)
            .map_err(|err| self.io("cannot set the mode of", err))
    }

    fn io(&self, what: &str, err: io::Error) -> TransportError {
        TransportError::io(format!("{what} socket {}", self.path.display()), err)
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let Some(bound) = &self.bound else {
            return;
        };
        // Runs before the lock is released (fields drop after this body).
        let path = self.path.display();
        match self.dir.stat(&self.name) {
            Ok(now)
                if is_socket(&now) && now.st_dev == bound.st_dev && now.st_ino == bound.st_ino =>
            {
                match self.dir.unlink(&self.name) {
                    Ok(()) => debug!(%path, "socket removed"),
                    Err(err) => warn!(%path, cause = %err, "cannot remove socket"),
                }
            }
            Ok(_) => warn!(%path, "socket path now holds another file; leaving it in place"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                debug!(%path, "socket already removed");
            }
            Err(err) => warn!(%path, cause = %err, "cannot stat socket"),
        }
    }
}

fn is_socket(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::Socket
}

/// Opens (creating it if needed) and exclusively locks `<name>.lock` in
/// `dir`, without waiting.
fn lock(dir: &SocketDir, path: &Path, name: &OsStr) -> Result<File, TransportError> {
    let file = dir.open_lock_file(&with_suffix(name, ".lock"), LOCK_MODE)?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(TransportError::AlreadyRunning(path.to_owned())),
        Err(err) => Err(TransportError::io(
            format!("cannot lock {}.lock", path.display()),
            err.into(),
        )),
    }
}

/// Removes a socket file left at `name` by a daemon that died: only a
/// socket, and only one that refuses connections. Call only while holding
/// the lock.
fn remove_stale(dir: &SocketDir, path: &Path, name: &OsStr) -> Result<(), TransportError> {
    let stat = match dir.stat(name) {
        Ok(stat) => stat,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(TransportError::io(
                format!("cannot inspect socket path {}", path.display()),
                err,
            ));
        }
    };
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Socket => {}
        FileType::Symlink => return Err(SocketPathError::Symlink(path.to_owned()).into()),
        _ => return Err(TransportError::NotASocket(path.to_owned())),
    }
    let answered = answers(&dir.entry_path(name)).map_err(|err| {
        TransportError::io(
            format!("cannot probe the socket at {}", path.display()),
            err,
        )
    })?;
    if answered {
        return Err(SocketPathError::Served(path.to_owned()).into());
    }
    info!(path = %path.display(), "removing stale socket (nobody listens on it)");
    dir.unlink(name).map_err(|err| {
        TransportError::io(
            format!("cannot remove stale socket {}", path.display()),
            err,
        )
    })
}

/// Whether a live process listens on the socket at `path`: a connection
/// refused (ECONNREFUSED) says nobody does; one accepted, or a full backlog
/// (EAGAIN), says someone does. Anything else is an error, so the socket
/// is never replaced on a guess. Does not wait.
fn answers(path: &Path) -> io::Result<bool> {
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let socket = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
    match rustix::net::connect(&socket, &SocketAddrUnix::new(path)?) {
        Ok(()) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INPROGRESS) => Ok(true),
        Err(rustix::io::Errno::CONNREFUSED) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_socket_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busd.sock");
        let sut = SocketFile::claim(&path).unwrap();
        assert_eq!(sut.path(), path);
        let lock_mode = fs::metadata(dir.path().join("busd.sock.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(lock_mode & 0o777 & !LOCK_MODE, 0, "{lock_mode:o}");
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
        assert!(dir.path().join("busd.sock.lock").exists());
    }

    #[test]
    fn the_bind_path_goes_through_the_directory_fd() {
        let dir = tempfile::tempdir().unwrap();
        let sut = SocketFile::claim(&dir.path().join("busd.sock")).unwrap();
        let bind = sut.bind_path();
        assert!(bind.starts_with("/proc/self/fd/"), "{}", bind.display());
        assert!(bind.ends_with("busd.sock"), "{}", bind.display());
    }
}
