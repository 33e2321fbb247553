//! [`ClientBuilder`]: options for a [`Client`], then [`connect`](ClientBuilder::connect).
//!
//! [`Client::connect`] and [`Client::builder`] are defined here too: making
//! a client (parsing the URL, the handshake, starting the connection task)
//! sits above the handle it returns, which never needs to name the builder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use busd_proto::Pfn;
use busd_transport::ConnectOptions;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::client::Client;
use crate::command::COMMAND_CAPACITY;
use crate::connection::ConnectionTask;
use crate::dial::{Dial, PairDialer};
use crate::error::{Error, ErrorKind};
use crate::handshake::{self, HelloOptions};
use crate::identity::{Identity, IntoPfn};
use crate::shared::Shared;

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
    /// Set by [`Client::builder_over_pair`]: dialed instead of `url`.
    pair: Option<Dial>,
    name: Option<String>,
    request_timeout: Duration,
    reconnect: bool,
    /// The claimed package, or why the given name is not one (reported by
    /// `connect`, so setters stay infallible).
    pfn: Option<Result<Pfn, Error>>,
    token_file: Option<PathBuf>,
    segment_threshold: usize,
    shm_ring_bytes: u64,
    shm_pool_bytes: u64,
    pass_fds: bool,
}

/// Payloads at least this long travel outside the rings over shm: in a
/// block of the connection's payload pool (below it, the rings move bytes
/// as fast as a block that is a whole page or more).
pub const DEFAULT_SEGMENT_THRESHOLD: usize = 16 * 1024;

/// Without a pool (or room in it), payloads at least this long (and at
/// least the threshold) travel as sealed memfds: below it, a fresh memfd's
/// page faults and unmapping cost more than the rings.
pub const SEGMENTS_FROM: usize = 64 * 1024;

impl ClientBuilder {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            pair: None,
            name: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            reconnect: true,
            pfn: None,
            token_file: None,
            segment_threshold: DEFAULT_SEGMENT_THRESHOLD,
            shm_ring_bytes: busd_transport::DEFAULT_SHM_RING,
            shm_pool_bytes: busd_transport::DEFAULT_SHM_POOL,
            pass_fds: false,
        }
    }

    /// Asks the daemon to pass open files on this connection (default
    /// `false`), as D-Bus clients negotiate `UNIX_FD` passing: over
    /// `unix://` and `shm://` the client may then attach fds
    /// ([`Client::publish_with_fds`] and the like) and receives the fds
    /// others attach to what it gets ([`Message::take_fds`]). Without it,
    /// attaching fails with [`ErrorKind::Unsupported`] and the daemon
    /// delivers messages without their fds, marked with the
    /// `busd-fds-withheld` header. Over tcp no fds pass either way.
    ///
    /// It costs a little on every read (`recvmsg` instead of `read`), so
    /// it is off unless asked for.
    ///
    /// [`Message::take_fds`]: crate::Message::take_fds
    pub fn pass_fds(mut self, pass: bool) -> Self {
        self.pass_fds = pass;
        self
    }

    /// Over `shm://`, the size of each of the two rings (default 4 MiB): a
    /// power of two from 4 KiB up to the daemon's `limits.shm_ring_bytes`.
    /// Larger rings let more bytes be in flight before a writer waits. A
    /// size the daemon refuses makes `connect` fail with
    /// [`ErrorKind::Connect`]. Other transports ignore it.
    pub fn shm_ring_bytes(mut self, bytes: u64) -> Self {
        self.shm_ring_bytes = bytes;
        self
    }

    /// Over `shm://`, the size of the payload pool this client writes its
    /// large payloads into (default 16 MiB): mapped once, read in place by
    /// the daemon, its blocks reused as the daemon hands them back, so a
    /// steady stream of large payloads costs no page faults. A power of
    /// two from 64 KiB up to the daemon's `limits.shm_pool_bytes`; 0, or a
    /// size the daemon does not take, sends them as sealed memfds instead.
    /// The daemon's pool for this client (the other way) is its own.
    pub fn shm_pool_bytes(mut self, bytes: u64) -> Self {
        self.shm_pool_bytes = bytes;
        self
    }

    /// Over `shm://`, payloads of at least `bytes` (default
    /// [`DEFAULT_SEGMENT_THRESHOLD`]) travel outside the rings: written once
    /// into a block of the connection's payload pool (see
    /// [`shm_pool_bytes`](Self::shm_pool_bytes)), or when it has none or no
    /// room, into a fresh sealed memfd if they are at least
    /// [`SEGMENTS_FROM`] long (else through the rings). The daemon passes them on to every
    /// allowed shm receiver, whose `payload` is a read-only view (no copy).
    /// Receivers over tcp or unix get the bytes as usual. `usize::MAX`
    /// turns this off; other transports ignore it.
    pub fn segment_threshold(mut self, bytes: usize) -> Self {
        self.segment_threshold = bytes.max(1);
        self
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

    /// Claims the package `pfn` (`Name_PublisherId`). The daemon checks the
    /// claim against the proofs its config lists for the package: the
    /// socket's peer credentials (uid, and executable if configured), or,
    /// when [`token_file`](ClientBuilder::token_file) is set, the package's
    /// token. Without a claim the client is unpackaged.
    ///
    /// A malformed name makes [`connect`](ClientBuilder::connect) fail with
    /// [`ErrorKind::Config`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::builder("unix:///run/busd/busd.sock")
    ///     .pfn("Contoso.Weather_8wekyb3d8bbwe")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn pfn(mut self, pfn: impl IntoPfn) -> Self {
        self.pfn = Some(pfn.into_pfn());
        self
    }

    /// Proves the [`pfn`](ClientBuilder::pfn) claim with the package's token,
    /// read from `path`: the daemon sends a nonce and the client answers
    /// with an HMAC-SHA256 of it under the token, so the token itself never
    /// travels. The file is read at every handshake, so a reconnect picks up
    /// a rotated token; a final newline is ignored.
    ///
    /// Without [`pfn`](ClientBuilder::pfn), or with a file that cannot be
    /// read, [`connect`](ClientBuilder::connect) fails with
    /// [`ErrorKind::Config`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::builder("tcp://127.0.0.1:4223")
    ///     .pfn("Contoso.Weather_8wekyb3d8bbwe")
    ///     .token_file("/etc/busd/tokens/weather.key")
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// Connects and performs the handshake, then starts the connection task
    /// on the current tokio runtime. Reconnects repeat the same claim and
    /// proof.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a malformed package name, a token file
    /// without a package, or a token file that cannot be read (nothing is
    /// sent); [`ErrorKind::Connect`] if the URL is invalid or the connection
    /// or its handshake fails (this first failure is not retried); the
    /// daemon's refusal keeps its kind, e.g. [`ErrorKind::AuthFailed`] for a
    /// claim that fails its proof.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::builder("tcp://127.0.0.1:4223").connect().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(self) -> Result<Client, Error> {
        let endpoint = match self.pair {
            Some(pair) => pair,
            None => Dial::Endpoint(self.url.parse().map_err(
                |e: busd_transport::EndpointError| {
                    Error::new(ErrorKind::Connect, e.to_string()).with_source(e)
                },
            )?),
        };
        let hello = HelloOptions {
            name: self.name.unwrap_or_else(default_name),
            identity: Identity::new(self.pfn, self.token_file)?,
            connect: ConnectOptions::default()
                .shm_ring_bytes(self.shm_ring_bytes)
                .shm_pool_bytes(self.shm_pool_bytes),
            fds: self.pass_fds,
        };
        let session = handshake::open(&endpoint, &hello).await?;
        let threshold = if endpoint.is_shm() {
            self.segment_threshold
        } else {
            usize::MAX
        };
        let shared = Arc::new(Shared::new(
            &session.welcome,
            self.request_timeout,
            threshold,
        ));
        let (commands, rx) = mpsc::channel(COMMAND_CAPACITY);
        let span = tracing::info_span!("busd_client", endpoint = %endpoint);
        let task = ConnectionTask {
            endpoint,
            hello,
            reconnect: self.reconnect,
            shared: Arc::clone(&shared),
            commands: rx,
            epoch: 0,
        };
        tokio::spawn(task.run(session).instrument(span));
        Ok(Client::new(commands, shared))
    }
}

// Client's constructors live beside the builder they use, so the handle
// itself never names how it is made.
impl Client {
    /// Connects to the daemon at `url` (`tcp://127.0.0.1:PORT` or
    /// `unix:///PATH`) with default options.
    ///
    /// # Errors
    /// [`ErrorKind::Connect`] if the URL is invalid or the first connection or
    /// its handshake fails; the daemon's refusal keeps its kind (e.g.
    /// [`ErrorKind::AuthFailed`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::connect("tcp://127.0.0.1:4223").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Client, Error> {
        Self::builder(url).connect().await
    }

    /// Connects to the daemon where the `busd` command would: over the
    /// connection the daemon handed this process if it started it as a
    /// service (see [`Client::inherited_url`]), else `BUSD_URL` if set, else
    /// the default unix socket (see [`Client::default_url`]).
    ///
    /// # Errors
    /// As [`Client::connect`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::connect_default().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_default() -> Result<Client, Error> {
        // A service busd started has its connection made already.
        if let Some(url) = Self::inherited_url() {
            return Self::builder(url).reconnect(false).connect().await;
        }
        Self::connect(&Self::default_url()).await
    }

    /// `fd://N` when this process is a service the daemon started and
    /// handed connection N (`BUSD_FD`): it is its package already, with no
    /// token. Such a connection cannot be made again, so a client on it
    /// does not reconnect: the daemon starts the service again when needed.
    pub fn inherited_url() -> Option<String> {
        let fd = std::env::var("BUSD_FD").ok()?;
        Some(format!("fd://{}", fd.trim()))
    }

    /// The daemon's URL when none is given, as the `busd` command finds
    /// it: `BUSD_URL` if set, else `unix://` and the socket a daemon with
    /// no configured path listens on (`$XDG_RUNTIME_DIR/busd/busd.sock`,
    /// or `/run/busd/busd.sock` without an absolute `XDG_RUNTIME_DIR`).
    pub fn default_url() -> String {
        match std::env::var("BUSD_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => busd_transport::Endpoint::default().to_string(),
        }
    }

    /// A builder for a client of the daemon at `url`, to set options first.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// # async fn demo() -> Result<(), busd_client::Error> {
    /// let client = busd_client::Client::builder("tcp://127.0.0.1:4223")
    ///     .name("weather-app")
    ///     .request_timeout(Duration::from_secs(2))
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url.into())
    }

    /// Options for a client whose connections are sockets `dial` makes, each
    /// one end of a pair whose other end the daemon serves; `label` names it
    /// in logs. It is for a daemon's own clients (its bridges), which are
    /// their package by the daemon's act, so they claim nothing: a package
    /// set with [`ClientBuilder::pfn`] must be the one the daemon gives.
    /// Each reconnect calls `dial` again.
    ///
    /// ```no_run
    /// # async fn demo(dial: busd_client::PairDialer) -> Result<(), busd_client::Error> {
    /// // `dial` makes a socket pair, gives one end to a session of the
    /// // daemon that states who the peer is, and returns the other end.
    /// let client = busd_client::Client::builder_over_pair("bridge:fleet", dial)
    ///     .connect()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder_over_pair(label: impl Into<String>, dial: PairDialer) -> ClientBuilder {
        let label = label.into();
        let mut builder = ClientBuilder::new(format!("pair://{label}"));
        builder.pair = Some(Dial::Pair { label, make: dial });
        builder
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

    #[tokio::test]
    async fn unusable_identity_options_fail_with_config_before_connecting() {
        // Nothing listens on port 1: a Config error shows nothing was tried.
        let url = "tcp://127.0.0.1:1";
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.key");
        let pfn = "Contoso.Weather_8wekyb3d8bbwe";
        let cases = [
            (Client::builder(url).pfn("not a pfn"), "Name_PublisherId"),
            (
                Client::builder(url).token_file(&missing),
                "without a package",
            ),
            (
                Client::builder(url).pfn(pfn).token_file(&missing),
                "missing.key",
            ),
        ];
        for (builder, expected) in cases {
            let err = builder.connect().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    /// The cause of `err`, which must be an `io::Error`.
    fn io_source(err: &Error) -> &std::io::Error {
        std::error::Error::source(err)
            .unwrap_or_else(|| panic!("no source: {err}"))
            .downcast_ref::<std::io::Error>()
            .unwrap_or_else(|| panic!("the source is not an io::Error: {err}"))
    }

    #[tokio::test]
    async fn a_failed_connect_keeps_the_os_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("unix://{}/none.sock", dir.path().display());
        let err = Client::connect(&url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert_eq!(io_source(&err).kind(), std::io::ErrorKind::NotFound);

        // A port that was just free: bound by the OS, then let go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let err = Client::connect(&format!("tcp://127.0.0.1:{port}"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert_eq!(
            io_source(&err).kind(),
            std::io::ErrorKind::ConnectionRefused
        );
    }

    #[tokio::test]
    async fn an_invalid_url_keeps_the_parse_error_as_its_source() {
        let err = Client::connect("unix://relative.sock").await.unwrap_err();
        let source = std::error::Error::source(&err).expect("a source");
        assert!(source.is::<busd_transport::EndpointError>(), "{source:?}");
    }

    #[tokio::test]
    async fn an_unreadable_token_file_keeps_the_io_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let pfn = "Contoso.Weather_8wekyb3d8bbwe";
        let missing = dir.path().join("missing.key");
        // Nothing is tried: a token that cannot be read fails first.
        let cases = [
            (missing, std::io::ErrorKind::NotFound),
            (dir.path().to_owned(), std::io::ErrorKind::IsADirectory),
        ];
        for (path, kind) in cases {
            let err = Client::builder("tcp://127.0.0.1:1")
                .pfn(pfn)
                .token_file(&path)
                .connect()
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            assert_eq!(io_source(&err).kind(), kind, "{err}");
        }
    }

    #[test]
    fn defaults() {
        let builder = Client::builder("tcp://127.0.0.1:4223");
        assert_eq!(builder.request_timeout, Duration::from_secs(5));
        assert!(builder.reconnect);
        assert!(builder.pfn.is_none() && builder.token_file.is_none());
        assert!(!default_name().is_empty());
    }
}
