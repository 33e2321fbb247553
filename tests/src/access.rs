//! Access-control scenarios: `[[package]]` tables written from code,
//! clients that prove a package, and bounded waits that prove delivery or
//! non-delivery without racing.
//!
//! Non-delivery is never shown by waiting. Either a marker that the rules
//! allow is published after the denied message (same subject, same
//! subscriber) and must be the next message seen, or, where nothing may
//! reach the receiver at all, [`assert_nothing_delivered`] uses the
//! receiver's own flush: the daemon answers its `Ping` after everything
//! queued for it before, and the SDK hands out frames in order, so once the
//! flush returns any earlier delivery is already in the subscriber's
//! channel.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use busd_client::{Client, ClientBuilder, Error, Message, Request, Service, Subscriber};
use futures::{FutureExt, StreamExt};

use crate::{TestDaemon, Transport};

/// How long any single awaited event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// One `[[package]]` table, built in code.
#[derive(Debug, Clone)]
pub struct Package {
    /// The package family name.
    pub pfn: &'static str,
    /// The `privateNetworkClientServer` capability.
    pub loopback: bool,
    /// Whether it has a `token_file` ([`Package::token_rel`]).
    pub token: bool,
    /// Peer-credential proof: accepted uids.
    pub uids: Vec<u32>,
    /// With `uids`: accepted executables.
    pub exe: Vec<PathBuf>,
    /// `in`: packages it accepts messages from.
    pub accept_from: Vec<&'static str>,
    /// `out`: packages it may send to.
    pub send_to: Vec<&'static str>,
    /// May receive from unpackaged clients.
    pub exempt_in: bool,
    /// May send to unpackaged clients.
    pub exempt_out: bool,
    /// Custom capabilities.
    pub capabilities: Vec<&'static str>,
}

impl Package {
    /// A package with `loopback = true`, a token and no rules.
    pub fn new(pfn: &'static str) -> Self {
        Self {
            pfn,
            loopback: true,
            token: true,
            uids: Vec::new(),
            exe: Vec::new(),
            accept_from: Vec::new(),
            send_to: Vec::new(),
            exempt_in: false,
            exempt_out: false,
            capabilities: Vec::new(),
        }
    }

    /// Adds packages to `in`.
    pub fn accepts(mut self, from: &[&'static str]) -> Self {
        self.accept_from.extend_from_slice(from);
        self
    }

    /// Adds packages to `out`.
    pub fn sends_to(mut self, to: &[&'static str]) -> Self {
        self.send_to.extend_from_slice(to);
        self
    }

    /// Sets `exempt_in = true`.
    pub fn exempt_in(mut self) -> Self {
        self.exempt_in = true;
        self
    }

    /// Sets `exempt_out = true`.
    pub fn exempt_out(mut self) -> Self {
        self.exempt_out = true;
        self
    }

    /// Sets `loopback = false`.
    pub fn no_loopback(mut self) -> Self {
        self.loopback = false;
        self
    }

    /// Grants a custom capability.
    pub fn capability(mut self, cap: &'static str) -> Self {
        self.capabilities.push(cap);
        self
    }

    /// Adds a peer-credential proof for `uids` (and `exe`, if not empty).
    pub fn peer(mut self, uids: &[u32], exe: &[PathBuf]) -> Self {
        self.uids.extend_from_slice(uids);
        self.exe.extend_from_slice(exe);
        self
    }

    /// Drops the token proof.
    pub fn no_token(mut self) -> Self {
        self.token = false;
        self
    }

    /// The token file, relative to the config file.
    pub fn token_rel(&self) -> String {
        format!("tokens/{}.key", self.pfn)
    }

    /// The package's secret.
    pub fn secret(&self) -> String {
        format!("the secret of {} only", self.pfn)
    }

    /// The `[[package]]` table.
    pub fn toml(&self) -> String {
        let list = |items: &[&str]| {
            let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", quoted.join(", "))
        };
        let mut t = format!(
            "[[package]]\npfn = {:?}\nloopback = {}\n",
            self.pfn, self.loopback
        );
        if self.token {
            t += &format!("token_file = {:?}\n", self.token_rel());
        }
        if !self.uids.is_empty() {
            let uids: Vec<String> = self.uids.iter().map(u32::to_string).collect();
            t += &format!("uids = [{}]\n", uids.join(", "));
        }
        if !self.exe.is_empty() {
            let exe: Vec<String> = self
                .exe
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            t += &format!("exe = [{}]\n", exe.join(", "));
        }
        t += &format!("in = {}\n", list(&self.accept_from));
        t += &format!("out = {}\n", list(&self.send_to));
        t += &format!(
            "exempt_in = {}\nexempt_out = {}\n",
            self.exempt_in, self.exempt_out
        );
        t += &format!("capabilities = {}\n", list(&self.capabilities));
        t
    }
}

/// A whole config file: `[daemon] unpackaged` and the packages.
pub fn config_toml(unpackaged: &str, packages: &[Package]) -> String {
    let mut t = format!("[daemon]\nunpackaged = {unpackaged:?}\nadmin_uids = [0]\n\n");
    for p in packages {
        t += &p.toml();
        t.push('\n');
    }
    t
}

/// Writes `<dir>/busd.toml` holding `packages` and their token files (mode
/// 0600), for a daemon process started with `--config`; returns its path.
pub fn write_config_dir(dir: &Path, unpackaged: &str, packages: &[Package]) -> PathBuf {
    for (rel, secret) in tokens_of(packages) {
        crate::daemon::write_secret(&dir.join(rel), &secret);
    }
    let path = dir.join("busd.toml");
    let tmp = dir.join(".busd.toml.new");
    std::fs::write(&tmp, config_toml(unpackaged, packages)).expect("write config");
    std::fs::rename(&tmp, &path).expect("replace config");
    path
}

/// The tokens of `packages`, for [`TestDaemon::start_with_config`].
fn tokens_of(packages: &[Package]) -> Vec<(String, String)> {
    packages
        .iter()
        .filter(|p| p.token)
        .map(|p| (p.token_rel(), p.secret()))
        .collect()
}

impl TestDaemon {
    /// A daemon whose config holds `packages` (their tokens written, mode 0600).
    pub async fn start_with_packages(unpackaged: &str, packages: &[Package]) -> Self {
        Self::start_with_packages_toml(&config_toml(unpackaged, packages), packages).await
    }

    /// A daemon whose config is `toml`, with the tokens of `packages`
    /// written (mode 0600): for a config [`config_toml`] starts and a test
    /// adds to.
    pub async fn start_with_packages_toml(toml: &str, packages: &[Package]) -> Self {
        let tokens = tokens_of(packages);
        let tokens: Vec<(&str, &str)> = tokens
            .iter()
            .map(|(p, s)| (p.as_str(), s.as_str()))
            .collect();
        Self::start_with_config(toml, &tokens).await
    }

    /// Rewrites the config to hold `packages` (writing any new tokens) and
    /// reloads it.
    ///
    /// # Errors
    /// As [`TestDaemon::reload`].
    pub fn reconfigure_packages(
        &self,
        unpackaged: &str,
        packages: &[Package],
    ) -> Result<(), String> {
        for (rel, secret) in tokens_of(packages) {
            self.write_token(&rel, &secret);
        }
        self.reconfigure(&config_toml(unpackaged, packages))
    }

    /// Connects as `pfn`, proving it with the token file `token_rel`.
    ///
    /// # Errors
    /// The SDK's error, e.g. `AuthFailed`.
    pub async fn try_connect_token(
        &self,
        t: Transport,
        pfn: &str,
        token_rel: &str,
    ) -> Result<Client, Error> {
        self.token_builder(t, pfn, token_rel).connect().await
    }

    /// A client of `pfn` over `t` proven by the token at `token_rel`, to
    /// be set up further and connected.
    pub fn token_builder(&self, t: Transport, pfn: &str, token_rel: &str) -> ClientBuilder {
        Client::builder(self.url(t))
            .name(format!("test-{pfn}"))
            .pfn(pfn)
            .token_file(self.token_path(token_rel))
    }

    /// Connects as `package`, proven by its own token; panics on failure.
    pub async fn connect_as(&self, t: Transport, package: &Package) -> Client {
        let c = within(
            &format!("{t:?} connect as {}", package.pfn),
            self.try_connect_token(t, package.pfn, &package.token_rel()),
        )
        .await
        .unwrap_or_else(|e| panic!("{t:?}: connect as {}: {e}", package.pfn));
        assert_eq!(
            c.pfn().map(|p| p.to_string()).as_deref(),
            Some(package.pfn),
            "{t:?}: the daemon proved the claimed package"
        );
        c
    }

    /// As [`connect_as`](Self::connect_as), asking to pass fds.
    pub async fn connect_with_fds(&self, t: Transport, package: &Package) -> Client {
        let builder = self.token_builder(t, package.pfn, &package.token_rel());
        within(
            &format!("{t:?} connect as {} passing fds", package.pfn),
            builder.pass_fds(true).connect(),
        )
        .await
        .unwrap_or_else(|e| panic!("{t:?}: connect as {}: {e}", package.pfn))
    }

    /// Connects as `pfn` by peer credentials (no token).
    ///
    /// # Errors
    /// The SDK's error, e.g. `AuthFailed`.
    pub async fn try_connect_peer(&self, t: Transport, pfn: &str) -> Result<Client, Error> {
        within(
            &format!("{t:?} connect as {pfn} by peer credentials"),
            Client::builder(self.url(t)).pfn(pfn).connect(),
        )
        .await
    }

    /// An unpackaged client.
    pub async fn connect_unpackaged(&self, t: Transport) -> Client {
        within(
            &format!("{t:?} connect unpackaged"),
            Client::connect(&self.url(t)),
        )
        .await
        .unwrap_or_else(|e| panic!("{t:?}: connect unpackaged: {e}"))
    }
}

/// The uid this test runs as (the daemon's own, in-process).
pub fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// `fut`, or a panic naming `what` after [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Probes external state (a ctl answer, a scrape) until `ready` holds
/// for what `probe` returns, bounded by [`WAIT`]; that value.
pub async fn poll_until<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    ready: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = probe().await;
        if ready(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never came: {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next message on `sub`, bounded.
pub async fn next_msg(sub: &mut Subscriber, what: &str) -> Message {
    within(what, sub.next())
        .await
        .unwrap_or_else(|| panic!("subscription ended while waiting for {what}"))
}

/// The next call on `svc`, bounded.
pub async fn next_call(svc: &mut Service, what: &str) -> Request {
    within(what, svc.next())
        .await
        .unwrap_or_else(|| panic!("service ended while waiting for {what}"))
}

/// Proves that nothing was delivered to `sub` (a subscription of
/// `receiver`) by what was handled before this call: flushes `receiver`,
/// after which any earlier delivery would already be in `sub`.
pub async fn assert_nothing_delivered(receiver: &Client, sub: &mut Subscriber, what: &str) {
    within(&format!("flush before checking {what}"), receiver.flush())
        .await
        .unwrap_or_else(|e| panic!("flush for {what}: {e}"));
    if let Some(m) = sub.next().now_or_never() {
        panic!("{what}: expected nothing, got {m:?}");
    }
}

/// Serves `service` on `client` until the `Service` ends, answering each
/// call with [`caller_tag`] of its `from`, prefixed by `prefix`.
pub fn answer_with_caller(mut svc: Service, prefix: &'static str) {
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let body = format!("{prefix}|{}", caller_tag(&req.from));
            // The requester may be gone; nothing to do then.
            let _ = req.respond(body).await;
        }
    });
}

/// "client_id|pfn" of a sender, `-` for unpackaged.
pub fn caller_tag(from: &busd_client::Sender) -> String {
    let pfn = from
        .pfn
        .as_ref()
        .map_or("-".to_owned(), ToString::to_string);
    format!("{}|{pfn}", from.client_id)
}

/// "client_id|pfn" of a connected client, as [`caller_tag`] would show it.
pub fn client_tag(client: &Client) -> String {
    let pfn = client.pfn().map_or("-".to_owned(), |p| p.to_string());
    format!("{}|{pfn}", client.client_id())
}
