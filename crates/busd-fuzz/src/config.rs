//! `busd_daemon::Config::parse_at` on any text: no environment
//! overrides, token files looked up under a directory that does not exist.
//!
//! Input: UTF-8 text, the file.
//!
//! Checks: no panic, only `Ok` or a `ConfigError`; an error names the
//! file, says why, and any line (and column) it names lies in the text; a
//! configuration accepted keeps every rule the loader enforces (loopback
//! TCP, an absolute socket path, something to listen on, limits within
//! their bounds).

use std::path::Path;
use std::time::Duration;

use busd_daemon::{Config, ConfigError};

/// The name the text is loaded under.
pub const NAME: &str = "fuzz.toml";

/// A configuration the loader accepted keeps its rules.
fn assert_valid(c: &Config) {
    assert_eq!(c.source, NAME);
    assert!(c.tcp.is_some() || c.unix.is_some(), "nothing to listen on");
    assert!(c.tcp.is_none_or(|a| a.ip().is_loopback()));
    assert!(c.unix.as_ref().is_none_or(|p| p.is_absolute()));
    assert!(c.threads <= 1024);
    assert!(c.busy_poll <= Duration::from_millis(10));
    assert!(c.shutdown_grace <= Duration::from_secs(300));
    let l = &c.limits;
    assert!(l.max_frame >= 1024);
    assert!((1024..=l.max_frame).contains(&l.max_preauth_frame));
    assert!(l.max_pending_msgs > 0 && l.max_pending_bytes >= u64::from(l.max_frame));
    assert!(l.max_connections > 0 && l.max_subscriptions > 0 && l.max_pending_requests > 0);
    for timeout in [
        l.auth_timeout,
        l.block_timeout,
        l.foreign_block_timeout,
        l.frame_timeout,
        l.write_timeout,
    ] {
        assert!(!timeout.is_zero());
    }
    assert!(l.foreign_block_timeout <= l.block_timeout);
    assert!(l.max_memory_per_identity >= l.max_pending_bytes + u64::from(l.max_frame));
    let rings = busd_transport::MIN_SHM_RING..=busd_transport::MAX_SHM_RING;
    assert!(l.shm_ring_bytes.is_power_of_two() && rings.contains(&l.shm_ring_bytes));
}

/// An error says where and why, within the text.
///
/// # Panics
/// If it does not.
pub fn assert_explained(e: &ConfigError, text: &str) {
    let lines = text.matches('\n').count() + 1;
    assert!(!e.to_string().is_empty());
    let errors = e.errors();
    assert!(!errors.is_empty(), "an error without a reason: {e:?}");
    for d in errors {
        assert_eq!(d.file, NAME);
        assert!(!d.message.is_empty(), "{e:?}");
        assert!(d.line.is_none_or(|l| (1..=lines).contains(&l)), "{d:?}");
    }
    if let ConfigError::Invalid {
        line: Some(line),
        column: Some(column),
        ..
    } = e
    {
        let width = text.split('\n').nth(line - 1).map_or(0, str::len);
        assert!((1..=width + 1).contains(column), "{e:?}");
    }
}

/// Checks one input (see the module's documentation).
///
/// # Panics
/// On any broken invariant.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
}

/// Loads `text` as the configuration file [`NAME`].
///
/// # Panics
/// On any broken invariant.
pub fn check_text(text: &str) {
    match parse(text) {
        Ok(config) => assert_valid(&config),
        Err(e) => assert_explained(&e, text),
    }
}

/// `text` loaded as the file [`NAME`], as `busd run` loads a file.
///
/// # Errors
/// The loader's.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_at(NAME, text, Path::new("/nonexistent/busd-fuzz"), &[])
}
