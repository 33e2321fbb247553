//! busd's daemon, as a library: what `busd run` runs, and what tests and
//! `busd bench` start in their own process.
//!
//! [`Daemon`] binds loopback TCP and a unix socket and routes between the
//! clients that connect; [`run`] runs one until a shutdown token is
//! cancelled, so tests stop the daemon deterministically. The routing
//! rules themselves live in `busd-core`, sans-IO; this crate moves bytes,
//! keeps time and owns the sockets.
//!
//! Modules, from the bottom up: [`config`], `hooks`, `sync`, `audit` and
//! `tally` (where deliveries ended); `budget` (memory charged to each
//! package or uid before it is spent); `payload` and `outbox` (one
//! connection's bounded queue and its writer); `monitor` (`busd monitor`'s
//! watches and their forwarders); `shared` (what every task
//! shares); `writer` (the task that drains a connection's queue into its
//! socket); `reload`, `handshake` and `admin`; `session` (one client
//! connection); `daemon` (listeners, the request timer, shutdown).
//! Each imports only from modules below it.

#![forbid(unsafe_code)]

mod activation;
mod admin;
mod audit;
mod bridge;
mod budget;
pub mod config;
mod ctl_explain;
mod daemon;
mod dry_run;
mod grants;
mod grants_file;
mod handshake;
mod hooks;
mod metrics;
mod monitor;
mod nofile;
mod origin;
mod outbox;
mod payload;
mod pooled;
mod reload;
mod session;
mod set_pools;
mod shared;
mod sync;
mod tally;
mod traffic;
mod withheld;
mod writer;

pub use config::{Config, ConfigError, DEFAULT_CONFIG, Limits};
pub use daemon::{Daemon, Inherited, Reloader, StartError, Stopped};
pub use hooks::{Hooks, OpHook};
pub use nofile::{Raised, raise_nofile_limit};
pub use reload::{ReloadError, ReloadReport};
pub use tally::Deliveries;

use tokio_util::sync::CancellationToken;

/// Runs the daemon with `config` until `shutdown` is cancelled, then drains
/// every connection (within `[daemon] shutdown_grace`) and returns how
/// that went.
///
/// # Errors
/// [`StartError`] when a listener cannot be opened.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Stopped, StartError> {
    let daemon = Daemon::start_with(config, shutdown).await?;
    Ok(daemon.wait().await)
}
