//! [`Origin`]: where a connection came from, as `busd ctl clients` shows
//! it, fixed when the connection was accepted.

use std::path::PathBuf;
use std::time::SystemTime;

use busd_transport::PeerInfo;

/// A connection's transport, peer process and start.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// `tcp`, `unix` or `shm`.
    pub(crate) transport: &'static str,
    /// The peer's address, over tcp.
    pub(crate) addr: Option<String>,
    /// The peer's process and executable, where the transport tells them
    /// (unix and shm).
    pub(crate) pid: Option<u32>,
    pub(crate) exe: Option<PathBuf>,
    /// When the connection was welcomed.
    pub(crate) since: SystemTime,
}

impl Origin {
    /// The origin of a connection from `peer`, starting now.
    pub(crate) fn of(peer: &PeerInfo) -> Self {
        // The transports label their peers `unix`, `shm`, or the tcp address.
        let (transport, addr) = match peer.addr.as_str() {
            "unix" => ("unix", None),
            "shm" => ("shm", None),
            tcp => ("tcp", Some(tcp.to_owned())),
        };
        Self {
            transport,
            addr,
            pid: peer.pid,
            exe: peer.exe.clone(),
            since: SystemTime::now(),
        }
    }
}
