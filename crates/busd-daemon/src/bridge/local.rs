//! The bridge's connection to this daemon: one end of a socket pair whose
//! other end the daemon serves as a session granted the bridge's package,
//! made again at each reconnect. No token or secret is involved: the
//! daemon made both ends, so the identity is its own act.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use busd_client::{Client, PairDialer};
use busd_transport::{Connection, PeerInfo};

use crate::config::BridgeConfig;
use crate::shared::Shared;

/// The bridge's client of the local bus.
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    config: &BridgeConfig,
) -> Result<Client, busd_client::Error> {
    let (daemon, name, pfn) = (Arc::clone(shared), config.name.clone(), config.pfn.clone());
    let dial: PairDialer = Arc::new(move || {
        let (ours, theirs) = UnixStream::pair()?;
        let peer = PeerInfo {
            uid: Some(rustix::process::getuid().as_raw()),
            gid: Some(rustix::process::getgid().as_raw()),
            pid: Some(std::process::id()),
            exe: None,
            addr: format!("bridge:{name}"),
            granted: Some(pfn.clone()),
            bridge: true,
        };
        let connection = Connection::over_socket_pair(ours, peer)?;
        let session = crate::session::run(Arc::clone(&daemon), connection);
        daemon.tracker.spawn(session);
        Ok(theirs)
    });
    Client::builder_over_pair(format!("bridge:{}", config.name), dial)
        .name(format!("bridge {}", config.name))
        .connect()
        .await
}
