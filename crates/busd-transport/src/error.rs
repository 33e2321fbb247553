//! Errors of this crate: [`TransportError`] for binding a listener (worded for
//! whoever is starting the daemon), with [`SocketPathError`] for a unix
//! socket path that is not safe to serve on, and [`EndpointError`] for
//! parsing an [`Endpoint`](crate::Endpoint); and how `busd-shm`'s errors
//! become the `io::Error`s that connections report.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use busd_shm::ShmError;
use thiserror::Error;

/// Why a listener could not be set up.
///
/// Each message says what was refused and why, so the daemon can print it
/// as-is at start-up.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The TCP address is not a loopback address; busd is a local bus and
    /// never listens on a network interface.
    #[error("refusing to listen on {0}: busd binds loopback addresses only (127.0.0.1 or ::1)")]
    NotLoopback(SocketAddr),

    /// Another process holds the lock file beside this socket path.
    #[error(
        "another busd is already listening on {} (its lock file {}.lock is held)",
        .0.display(),
        .0.display()
    )]
    AlreadyRunning(PathBuf),

    /// Something that is not a socket (a regular file, directory, symlink…)
    /// already sits at the socket path; it is left untouched.
    #[error(
        "{} exists and is not a socket; refusing to replace it (remove it or choose another socket path)",
        .0.display()
    )]
    NotASocket(PathBuf),

    /// The unix socket path is not safe to serve on: someone else could
    /// take the clients' connections, or already serves there.
    #[error(transparent)]
    SocketPath(#[from] SocketPathError),

    /// A system call failed; `context` says what busd was doing.
    #[error("{context}")]
    Io {
        /// What was being attempted, e.g. "cannot listen on tcp://127.0.0.1:4223".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// Wraps an I/O error with what was being attempted.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a unix socket path was refused before anything was bound there.
///
/// A client trusts whatever answers at the socket path with its `Hello`
/// (and, over shm, its memory). These are the ways someone other than the
/// daemon could answer instead, each refused at start-up. The directory,
/// once checked, is held open and the socket bound through it, so it cannot
/// be swapped between the check and the bind.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SocketPathError {
    /// The socket's directory, the socket path or its lock file is a
    /// symbolic link (left untouched).
    #[error(
        "{} is a symbolic link: busd does not follow links on its socket path, since whoever can change the link chooses where clients connect (name the real path instead)",
        .0.display()
    )]
    Symlink(PathBuf),

    /// The socket's directory or lock file belongs to a user other than the
    /// daemon's (or root).
    #[error(
        "{} belongs to uid {owner}, but busd runs as uid {uid} and trusts only its own files and root's: uid {owner} could take the socket path over and receive the next client's Hello",
        path.display()
    )]
    ForeignOwner {
        /// The directory or lock file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The daemon's effective uid.
        uid: u32,
    },

    /// The socket's directory may be written by group or others and has no
    /// sticky bit, so they may rename or remove the daemon's socket.
    #[error(
        "{} is writable by group or others without the sticky bit (mode {mode:04o}): anyone who can write there could rename the socket, bind their own and receive the next client's Hello (chmod go-w, or use a directory of busd's own)",
        dir.display()
    )]
    WritableDirectory {
        /// The socket's directory.
        dir: PathBuf,
        /// Its permission bits (with the sticky bit, never set here).
        mode: u32,
    },

    /// A live process answers on the socket path; its socket is left alone,
    /// whether or not the lock file is held.
    #[error(
        "another program is serving {}: refusing to take its socket over (stop it, or choose another socket path)",
        .0.display()
    )]
    Served(PathBuf),
}

/// Why a string is not a valid [`Endpoint`](crate::Endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The scheme is missing or unknown.
    #[error(
        "invalid endpoint {input:?}: expected tcp://IP:PORT (e.g. tcp://127.0.0.1:4223 or tcp://[::1]:4223), tcp://localhost:PORT, unix:///ABSOLUTE/PATH or shm:///ABSOLUTE/PATH"
    )]
    UnknownScheme {
        /// The rejected input.
        input: String,
    },

    /// A `tcp://` endpoint whose address could not be read.
    #[error(
        "invalid tcp endpoint {input:?}: {reason}; expected tcp://IP:PORT (e.g. tcp://127.0.0.1:4223 or tcp://[::1]:4223) or tcp://localhost:PORT"
    )]
    InvalidTcp {
        /// The rejected input.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A `unix://` endpoint whose path is empty or not absolute.
    #[error(
        "invalid unix endpoint {input:?}: the socket path must be absolute, e.g. unix:///run/user/1000/busd/busd.sock"
    )]
    RelativeUnixPath {
        /// The rejected input.
        input: String,
    },

    /// A `shm://` endpoint whose socket path is empty or not absolute.
    #[error(
        "invalid shm endpoint {input:?}: the daemon's socket path must be absolute, e.g. shm:///run/user/1000/busd/busd.sock"
    )]
    RelativeShmPath {
        /// The rejected input.
        input: String,
    },
}

/// A `busd-shm` error as the `io::Error` that shm connections and fd
/// passing report: a failed system call keeps its kind, anything else (a
/// ring or segment that fails its checks: the peer's doing) is
/// `InvalidData`.
pub(crate) fn shm_error(err: ShmError) -> io::Error {
    match &err {
        ShmError::Sys { source, .. } => io::Error::new(source.kind(), err),
        _ => io::Error::new(io::ErrorKind::InvalidData, err),
    }
}
