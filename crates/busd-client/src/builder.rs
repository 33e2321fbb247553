//! [`ClientBuilder`]: options for a [`Client`], then [`connect`](ClientBuilder::connect).

use std::sync::Arc;
use std::time::Duration;

use busd_transport::Endpoint;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::command::{COMMAND_CAPACITY, Shared};
use crate::connection::ConnectionTask;
use crate::session::{self, HelloOptions};
use crate::state::State;
use crate::{Client, Error, ErrorKind};

/// The request timeout when none is set.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for a [`Client`]; made by [`Client::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// # async fn demo() -> Result<(), busd_client::Error> {
/// let client = busd_client::Client::builder("unix:///run/busd/busd.sock")
///     .name("weather-app")
///     .request_timeout(Duration::from_secs(2))
///     .reconnect(true)
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct ClientBuilder {
    url: String,
    name: Option<String>,
    request_timeout: Duration,
    reconnect: bool,
    // Token auth comes with the Challenge/Auth protocol: `pfn(..)` and
    // `token_file(..)` setters will add fields here, carried into
    // `HelloOptions` for the handshake.
}

impl ClientBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            name: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reconnect: true,
        }
    }

    /// The name the daemon shows for this client in logs and `busd ctl
    /// clients`; by default the program's file name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// How long [`Client::request`] waits for an answer (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Whether to reconnect, with backoff and forever, when the connection is
    /// lost (default `true`). Off, a lost connection closes the client:
    /// every later call fails with [`ErrorKind::Closed`].
    pub fn reconnect(mut self, reconnect: bool) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Connects and performs the handshake, then starts the connection task
    /// on the current tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] if the URL is invalid or the connection or its
    /// handshake fails (this first failure is not retried); the daemon's
    /// refusal keeps its kind, e.g. [`ErrorKind::AuthFailed`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::builder("tcp://127.0.0.1:4223").connect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self) -> Result<Client, Error> {
        let endpoint: Endpoint = self
            .url
            .parse()
            .map_err(|e: busd_transport::EndpointError| {
                Error::new(ErrorKind::Connect, e.to_string())
            })?;
        let hello = HelloOptions {
            name: self.name.unwrap_or_else(default_name),
        };
        let session = session::open(&endpoint, &hello).await?;
        let shared = Arc::new(Shared::new(
            session.welcome.client_id,
            session.welcome.limits,
            self.request_timeout,
        ));
        let (commands, rx) = mpsc::channel(COMMAND_CAPACITY);
        let span = tracing::info_span!("busd_client", endpoint = %endpoint);
        let task = ConnectionTask {
            endpoint,
            hello,
            reconnect: self.reconnect,
            shared: Arc::clone(&shared),
            commands: rx,
            state: State::default(),
        };
        tokio::spawn(task.run(session).instrument(span));
        Ok(Client::new(commands, shared))
    }
}

/// The program's file name, or `busd-client`.
fn default_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "busd-client".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn invalid_urls_fail_with_connect() {
        for url in [
            "",
            "http://127.0.0.1:1",
            "unix://relative.sock",
            "tcp://127.0.0.1",
        ] {
            let err = Client::connect(url).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Connect, "{url}: {err}");
            assert!(err.to_string().contains("invalid"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn nobody_listening_fails_with_connect() {
        let dir = std::env::temp_dir().join(format!("busd-client-test-{}", std::process::id()));
        let url = format!("unix://{}/none.sock", dir.display());
        let err = Client::connect(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert!(err.to_string().contains("none.sock"), "{err}");
    }

    #[test]
    fn defaults() {
        let builder = Client::builder("tcp://127.0.0.1:4223");
        assert_eq!(builder.request_timeout, Duration::from_secs(5));
        assert!(builder.reconnect);
        assert!(!default_name().is_empty());
    }
}
