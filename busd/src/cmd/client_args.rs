//! Options every client command takes, and connecting with them.

use std::process::ExitCode;

use busd_client::{Client, Error};
use busd_transport::Endpoint;

/// Where the daemon is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClientArgs {
    /// Daemon URL: tcp://127.0.0.1:PORT or unix:///path/busd.sock
    /// [default: the default unix socket]
    #[arg(long, short, env = "BUSD_URL", global = true)]
    server: Option<String>,
}

impl ClientArgs {
    /// The URL to use.
    pub(crate) fn url(&self) -> String {
        self.server
            .clone()
            .unwrap_or_else(|| Endpoint::default().to_string())
    }

    /// Connects, naming the client after the command for the daemon's logs.
    pub(crate) async fn connect(&self, command: &str) -> Result<Client, ExitCode> {
        let url = self.url();
        Client::builder(&url)
            .name(format!("busd {command}"))
            .connect()
            .await
            .map_err(|e| fail(&e))
    }
}

/// Prints a client error as `busd: <Kind>: <message>`; exit code 1.
pub(crate) fn fail(e: &Error) -> ExitCode {
    eprintln!("busd: {e}");
    ExitCode::FAILURE
}
