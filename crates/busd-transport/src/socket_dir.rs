//! The directory that holds a unix socket: opened once without following
//! links, checked, and used only through that open directory from then on.
//!
//! A client trusts whatever answers at the socket path with its `Hello`.
//! Whoever may rename entries in the socket's directory could move busd's
//! socket aside, bind their own and receive the next client; whoever controls
//! a symbolic link on the path chooses where it leads. So the directory must
//! not be a link, must belong to the daemon's user (or root, who can do
//! anything anyway), and must not be writable by group or others unless it
//! is sticky (as `/tmp` is: there only a file's owner may rename or remove
//! it). The lock file must not be a link either, and must be the daemon's
//! user's (or root's).
//!
//! The checks are made on the open directory, and every later step (the lock
//! file, the probe of an old socket, the bind, the removal) goes through it:
//! the `*at` system calls, or `/proc/self/fd/N/NAME` where only a path will
//! do (`bind`, `connect`). A rename after the checks cannot redirect them.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use crate::error::{SocketPathError, TransportError};

/// Mode of a socket directory busd creates (an existing one keeps its own):
/// the group may reach the socket (mode 0660) through it, others may not.
const DIR_MODE: u32 = 0o750;

/// An open, checked socket directory.
#[derive(Debug)]
pub(crate) struct SocketDir {
    /// The directory, opened `O_DIRECTORY | O_NOFOLLOW`.
    fd: OwnedFd,
    /// Its path, for messages only.
    path: PathBuf,
}

impl SocketDir {
    /// Opens the directory at `path`, creating it (mode 0750, with any
    /// missing parents) if it does not exist, and checks that it is safe to
    /// hold the socket.
    pub(crate) fn open(path: &Path) -> Result<Self, TransportError> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(SocketPathError::Symlink(path.to_owned()).into());
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(path)
                    .map_err(|err| io_error("cannot create socket directory", path, err))?;
            }
            Err(err) => return Err(io_error("cannot inspect socket directory", path, err)),
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|err| {
            // A link put there since the lstat above: O_NOFOLLOW refuses it
            // (ENOTDIR with O_DIRECTORY), and we say why.
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                SocketPathError::Symlink(path.to_owned()).into()
            } else {
                io_error("cannot open socket directory", path, err.into())
            }
        })?;
        let stat = rustix::fs::fstat(&fd)
            .map_err(|err| io_error("cannot inspect socket directory", path, err.into()))?;
        check_owner(path, &stat)?;
        let mode = Mode::from_raw_mode(stat.st_mode);
        if mode.intersects(Mode::WGRP | Mode::WOTH) && !mode.contains(Mode::SVTX) {
            return Err(SocketPathError::WritableDirectory {
                dir: path.to_owned(),
                mode: mode.bits() & 0o7777,
            }
            .into());
        }
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// `/proc/self/fd/N/NAME`: the entry `name` of this very directory, for
    /// the calls that take only a path (`bind`, `connect`).
    pub(crate) fn entry_path(&self, name: &OsStr) -> PathBuf {
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        path.push(name);
        path
    }

    /// `lstat` of the entry `name`.
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<Stat> {
        Ok(rustix::fs::statat(
            &self.fd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Removes the entry `name` (not a directory).
    pub(crate) fn unlink(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Sets the mode of the entry `name`.
    pub(crate) fn chmod(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        Ok(rustix::fs::chmodat(
            &self.fd,
            name,
            Mode::from_raw_mode(mode),
            AtFlags::empty(),
        )?)
    }

    /// Opens (creating it with `mode` if needed) the lock file `name`,
    /// read-only (enough for `flock`), refusing a link or another user's file.
    pub(crate) fn open_lock_file(&self, name: &OsStr, mode: u32) -> Result<File, TransportError> {
        let path = self.path.join(name);
        // O_NOFOLLOW: never follow a link planted in place of the file. An
        // existing file is opened without O_CREAT, which the kernel's
        // `fs.protected_regular` refuses for another user's file in a
        // sticky directory before we could say whose it is.
        let open = |extra: OFlags| {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra;
            rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
        };
        let mut opened = open(OFlags::empty());
        if matches!(opened, Err(Errno::NOENT)) {
            opened = open(OFlags::CREATE | OFlags::EXCL);
            if matches!(opened, Err(Errno::EXIST)) {
                // Created by someone else meanwhile: judge theirs.
                opened = open(OFlags::empty());
            }
        }
        let file = match opened {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => return Err(SocketPathError::Symlink(path).into()),
            Err(err) => {
                // Another user's file we may not read: say whose it is.
                if err == Errno::ACCESS {
                    if let Ok(stat) = self.stat(name) {
                        check_owner(&path, &stat)?;
                    }
                }
                return Err(io_error("cannot open", &path, err.into()));
            }
        };
        let stat = rustix::fs::fstat(&file)
            .map_err(|err| io_error("cannot inspect", &path, err.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            let err = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
            return Err(io_error("cannot use", &path, err));
        }
        check_owner(&path, &stat)?;
        Ok(file)
    }
}

/// `name` with `suffix` appended: `busd.sock` → `busd.sock.lock`.
pub(crate) fn with_suffix(name: &OsStr, suffix: &str) -> OsString {
    let mut out = name.to_owned();
    out.push(suffix);
    out
}

/// The file must belong to the daemon's effective uid or to root.
fn check_owner(path: &Path, stat: &Stat) -> Result<(), SocketPathError> {
    let uid = rustix::process::geteuid().as_raw();
    if stat.st_uid == uid || stat.st_uid == 0 {
        return Ok(());
    }
    Err(SocketPathError::ForeignOwner {
        path: path.to_owned(),
        owner: stat.st_uid,
        uid,
    })
}

fn io_error(what: &str, path: &Path, err: io::Error) -> TransportError {
    TransportError::io(format!("{what} {}", path.display()), err)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_missing_directories_with_mode_0750() {
        let dir = tempfile::tempdir().unwrap();
        let _sut = SocketDir::open(&dir.path().join("a/b")).unwrap();
        let mode = fs::metadata(dir.path().join("a/b"))
            .unwrap()
            .permissions()
            .mode();
        // The process umask may only remove bits.
        assert_eq!(mode & !DIR_MODE & 0o7777, 0, "{mode:o}");
    }

    #[test]
    fn leaves_an_existing_directory_mode_alone() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let _sut = SocketDir::open(dir.path()).unwrap();
        let mode = fs::metadata(dir.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn entries_are_reached_through_the_open_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sut = SocketDir::open(dir.path()).unwrap();
        fs::write(dir.path().join("f"), b"x").unwrap();
        // Renaming the directory does not move what the fd names.
        let moved = dir.path().with_extension("moved");
        fs::rename(dir.path(), &moved).unwrap();
        assert_eq!(fs::read(sut.entry_path(OsStr::new("f"))).unwrap(), b"x");
        sut.unlink(OsStr::new("f")).unwrap();
        assert!(!moved.join("f").exists());
        fs::rename(&moved, dir.path()).unwrap();
    }
}
