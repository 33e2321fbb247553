//! `[[bridge]]`: a bridge to a NATS cluster, checked before the daemon
//! starts: its URLs, its credentials file's mode, its subjects, and a
//! package the access rules know to speak as.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use busd_policy::{Diagnostic, Policy, SourceFile};
use busd_proto::{Pfn, Subject};
use serde::Deserialize;
use toml::Spanned;

/// Messages a bridge holds for NATS while it cannot send them, by default.
const DEFAULT_BUFFER: usize = 10_000;
/// The timeout of a request from NATS that does not say its own.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the bridge pings its NATS server: a server cut off without a
/// word (a link down, no FIN) is noticed after three unanswered pings.
const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(10);

/// A `[[bridge]]` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBridge {
    name: String,
    nats: Vec<String>,
    #[serde(default)]
    credentials: Option<PathBuf>,
    pfn: String,
    #[serde(default)]
    export: Vec<String>,
    #[serde(default)]
    import: Vec<String>,
    #[serde(default)]
    export_services: Option<Vec<String>>,
    #[serde(default)]
    import_services: Option<Vec<String>>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    buffer: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    request_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    ping_interval: Option<Duration>,
}

impl RawBridge {
    /// The package it speaks as, as written.
    pub(super) fn pfn(&self) -> &str {
        &self.pfn
    }
}

/// A bridge between the local bus and a NATS cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// Its name, for `busd ctl bridges`, metrics and logs.
    pub name: String,
    /// The cluster's seed URLs (`nats://` or `tls://`); the bridge talks to
    /// these only, never to servers the cluster announces.
    pub nats: Vec<String>,
    /// A NATS credentials (`.creds`), nkey seed or token file, mode 0600
    /// or tighter.
    pub credentials: Option<PathBuf>,
    /// The package the bridge is on the local bus: the access rules decide
    /// what it may take out and bring in.
    pub pfn: Pfn,
    /// Local subjects whose publishes go to NATS.
    pub export: Vec<Subject>,
    /// NATS subjects whose publishes come to the local bus.
    pub import: Vec<Subject>,
    /// Local services callable from NATS (`export_services`, else `export`).
    pub export_services: Vec<Subject>,
    /// NATS services callable here (`import_services`, else `import`).
    /// A NATS subject the bridge subscribes to (an `import`) counts as a
    /// responder on NATS, so a request to it with no real service times
    /// out rather than failing `NoResponders`: services listed apart from
    /// `import` keep that answer exact.
    pub import_services: Vec<Subject>,
    /// Put before every exported subject on NATS, `{hostname}` replaced
    /// (e.g. `host.{hostname}`); `None`: subjects are not mapped.
    pub prefix: Option<String>,
    /// The name this host goes by in `{hostname}` and in `Busd-Sender`
    /// (default: the machine's hostname).
    pub host: Option<String>,
    /// Messages held for NATS while it is away; more are dropped (counted).
    pub buffer: usize,
    /// The timeout of a request from NATS that does not say its own.
    pub request_timeout: Duration,
    /// How often the NATS server is pinged.
    pub ping_interval: Duration,
}

impl BridgeConfig {
    /// The subject prefix with `{hostname}` replaced by `host`.
    pub fn prefix_for(&self, host: &str) -> Option<String> {
        let token = subject_token(host);
        self.prefix
            .as_ref()
            .map(|p| p.replace("{hostname}", &token))
    }
}

/// `host` as one subject token: dots, spaces and wildcards become `_`.
pub fn subject_token(host: &str) -> String {
    host.chars()
        .map(|c| match c {
            '.' | '*' | '>' | ' ' | '\t' => '_',
            c => c,
        })
        .collect()
}

/// Checks every `[[bridge]]` against the file's `policy`; every error found.
pub(super) fn check(
    file: &SourceFile<'_>,
    policy: &Policy,
    raw: Vec<Spanned<RawBridge>>,
) -> Result<Vec<BridgeConfig>, Vec<Diagnostic>> {
    let (mut bridges, mut errors, mut names) = (Vec::new(), Vec::new(), HashSet::new());
    for spanned in raw {
        let at = spanned.span().start;
        let raw = spanned.into_inner();
        let mut error = |message: String| {
            errors.push(file.at(at, format!("[[bridge]] {:?}: {message}", raw.name)));
        };
        match one(file, policy, &raw) {
            Ok(bridge) if names.insert(bridge.name.clone()) => bridges.push(bridge),
            Ok(_) => error("another bridge has this name".to_owned()),
            Err(reasons) => reasons.into_iter().for_each(&mut error),
        }
    }
    if errors.is_empty() {
        Ok(bridges)
    } else {
        Err(errors)
    }
}

fn one(
    file: &SourceFile<'_>,
    policy: &Policy,
    raw: &RawBridge,
) -> Result<BridgeConfig, Vec<String>> {
    let mut why = Vec::new();
    let name_ok = !raw.name.is_empty()
        && raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        why.push("name must be letters, digits, '-' or '_'".to_owned());
    }
    if raw.nats.is_empty() {
        why.push("nats must list at least one server URL".to_owned());
    }
    for url in &raw.nats {
        if let Err(e) = check_url(url) {
            why.push(format!("nats URL {url:?}: {e}"));
        }
    }
    let credentials = raw.credentials.as_ref().map(|p| file.resolve(p));
    if let Some(path) = &credentials {
        if let Err(e) = check_credentials(path) {
            why.push(format!("credentials {}: {e}", path.display()));
        }
    }
    let pfn = match Pfn::parse(raw.pfn.clone()) {
        Ok(pfn) if policy.package(&pfn).is_some() => Some(pfn),
        Ok(pfn) => {
            why.push(format!("pfn {pfn} is not a [[package]] of this file"));
            None
        }
        Err(e) => {
            why.push(format!("pfn {:?}: {e}", raw.pfn));
            None
        }
    };
    let mut subjects = |list: &[String], key: &str| -> Vec<Subject> {
        let mut out = Vec::new();
        for s in list {
            match Subject::parse(s.clone()) {
                Ok(subject) => out.push(subject),
                Err(e) => why.push(format!("{key} subject {s:?}: {e}")),
            }
        }
        out
    };
    let export = subjects(&raw.export, "export");
    let import = subjects(&raw.import, "import");
    let export_services = match &raw.export_services {
        Some(list) => subjects(list, "export_services"),
        None => export.clone(),
    };
    let import_services = match &raw.import_services {
        Some(list) => subjects(list, "import_services"),
        None => import.clone(),
    };
    if export.is_empty()
        && import.is_empty()
        && export_services.is_empty()
        && import_services.is_empty()
    {
        why.push("nothing to bridge: export and import are both empty".to_owned());
    }
    if let Some(prefix) = &raw.prefix {
        if let Err(e) = check_prefix(prefix) {
            why.push(format!("prefix {prefix:?}: {e}"));
        }
    }
    if raw
        .host
        .as_ref()
        .is_some_and(|h| h.is_empty() || h.contains('/'))
    {
        why.push("host must be a non-empty name without '/'".to_owned());
    }
    if raw.buffer == Some(0) {
        why.push("buffer must be at least 1 message".to_owned());
    }
    for (key, value) in [
        ("request_timeout", raw.request_timeout),
        ("ping_interval", raw.ping_interval),
    ] {
        if value.is_some_and(|d| d < Duration::from_millis(100) || d > Duration::from_secs(3600)) {
            why.push(format!("{key} must be between 100ms and 1h"));
        }
    }
    match pfn {
        Some(pfn) if why.is_empty() => Ok(BridgeConfig {
            name: raw.name.clone(),
            nats: raw.nats.clone(),
            credentials,
            pfn,
            export,
            import,
            export_services,
            import_services,
            prefix: raw.prefix.clone(),
            host: raw.host.clone(),
            buffer: raw.buffer.unwrap_or(DEFAULT_BUFFER),
            request_timeout: raw.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            ping_interval: raw.ping_interval.unwrap_or(DEFAULT_PING_INTERVAL),
        }),
        _ => Err(why),
    }
}

/// A NATS server URL the bridge can use: `nats://` or `tls://`, a host and
/// no user or password in it (they belong in the credentials file, not in
/// a file many may read).
fn check_url(url: &str) -> Result<(), String> {
    let addr = async_nats::ServerAddr::from_str(url).map_err(|e| e.to_string())?;
    if !matches!(addr.scheme(), "nats" | "tls") {
        return Err(format!("scheme {} is not nats or tls", addr.scheme()));
    }
    if addr.host().is_empty() {
        return Err("no host".to_owned());
    }
    if addr.has_user_pass() {
        return Err("user and password belong in the credentials file".to_owned());
    }
    Ok(())
}

/// A credentials file: a regular file nobody but its owner may read.
fn check_credentials(path: &std::path::Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("mode {mode:04o} lets others read it; chmod 600 it"));
    }
    Ok(())
}

/// A prefix: literal subject tokens, `{hostname}` the only placeholder.
fn check_prefix(prefix: &str) -> Result<(), String> {
    let filled = prefix.replace("{hostname}", "h");
    if filled.contains(['{', '}']) {
        return Err("{hostname} is the only placeholder".to_owned());
    }
    let subject = Subject::parse(filled).map_err(|e| e.to_string())?;
    if subject.has_wildcards() {
        return Err("may not hold wildcards".to_owned());
    }
    Ok(())
}
