//! busd: the daemon (`busd run`) and the command-line client.
//!
//! [`Daemon`] binds loopback TCP and a unix socket and routes between the
//! clients that connect; [`run`] is what `busd run` calls, with shutdown
//! as a parameter so tests stop the daemon deterministically.

mod admin;
pub mod cmd;
mod config;
mod conn;
mod handshake;
mod payload;
mod server;
mod session;

pub use config::{Config, ConfigError, DEFAULT_CONFIG, Limits};
pub use server::{Daemon, Reloader, StartError};

use tokio_util::sync::CancellationToken;

/// Runs the daemon with `config` until `shutdown` is cancelled, then drains
/// every connection and returns.
///
/// # Errors
/// [`StartError`] when a listener cannot be opened.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), StartError> {
    let daemon = Daemon::start_with(config, shutdown).await?;
    daemon.wait().await;
    Ok(())
}
