//! `[[bridge]]`: what a bridge needs, and every mistake named with its line.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use super::*;

const BRIDGE_PFN: &str = "Busd.Bridge.Fleet_0000000000000";

/// A file with the bridge's package (no proof: the daemon grants it) and
/// one `[[bridge]]` made of `keys`.
fn with_bridge(keys: &str) -> String {
    format!(
        "[[package]]\npfn = \"{BRIDGE_PFN}\"\nloopback = true\nexempt_in = true\n\n\
         [[bridge]]\n{keys}\n"
    )
}

const GOOD: &str = "name = \"fleet\"\nnats = [\"nats://nats-1.fleet:4222\", \"tls://10.0.0.2:4222\"]\n\
    pfn = \"Busd.Bridge.Fleet_0000000000000\"\nexport = [\"telemetry.>\"]\nimport = [\"fleet.alerts.>\"]\n\
    prefix = \"host.{hostname}\"";

fn errors(keys: &str) -> String {
    let text = with_bridge(keys);
    Config::parse("x.toml", &text, &[]).unwrap_err().to_string()
}

#[test]
fn a_bridge_loads_with_its_defaults_and_its_package_needs_no_proof() {
    let c = Config::parse("x.toml", &with_bridge(GOOD), &[]).unwrap();
    let b = &c.bridges[0];
    assert_eq!(b.name, "fleet");
    assert_eq!(b.pfn.as_str(), BRIDGE_PFN);
    assert_eq!(b.nats.len(), 2);
    assert_eq!(b.buffer, 10_000);
    assert_eq!(b.request_timeout, Duration::from_secs(5));
    assert_eq!(
        b.prefix_for("web-1.example.com").as_deref(),
        Some("host.web-1_example_com")
    );
}

#[test]
fn every_mistake_is_named_with_its_line() {
    // Each: what GOOD has, what it is changed to, what the error says.
    let url = "nats://nats-1.fleet:4222";
    let cases = [
        (url, "http://x:1", "invalid scheme"),
        (url, "ws://x:1", "scheme ws is not nats or tls"),
        (url, "nats://u:p@x:1", "user and password belong"),
        ("telemetry.>", "telemetry..x", "export subject"),
        ("fleet.alerts.>", "a b", "import subject"),
        ("{hostname}", "{user}", "{hostname} is the only placeholder"),
        ("host.{hostname}", "host.*", "may not hold wildcards"),
        ("\"fleet\"", "\"a b\"", "name must be letters"),
        (
            "prefix",
            "ping_interval = \"1ms\"\nprefix",
            "ping_interval must be between",
        ),
        ("prefix", "buffer = 0\nprefix", "buffer must be at least 1"),
    ]
    .map(|(from, to, expected)| (GOOD.replace(from, to), expected));
    for (keys, expected) in cases {
        let e = errors(&keys);
        assert!(e.contains(expected), "{expected:?} not in {e}");
        assert!(e.starts_with("x.toml:6:"), "the [[bridge]] line: {e}");
    }
    // A package the file does not have (the file's own needs its proof then).
    let stranger = with_bridge(&GOOD.replace(BRIDGE_PFN, "Other.App_0000000000000"))
        .replace("exempt_in = true", "uids = [4242]");
    let e = Config::parse("x.toml", &stranger, &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pfn Other.App_0000000000000 is not a [[package]] of this file"),
        "{e}"
    );
    let none = GOOD
        .replace("export = [\"telemetry.>\"]", "")
        .replace("import = [\"fleet.alerts.>\"]", "");
    assert!(errors(&none).contains("nothing to bridge"));
    let twice = format!("{}\n[[bridge]]\n{GOOD}\n", with_bridge(GOOD));
    let e = Config::parse("x.toml", &twice, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("another bridge has this name"), "{e}");
}

#[test]
fn a_credentials_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("fleet.creds");
    std::fs::write(&creds, "s3cret-token\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = with_bridge(&format!("{GOOD}\ncredentials = \"fleet.creds\""));
    let e = Config::parse_at("x.toml", &text, dir.path(), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("mode 0644 lets others read it; chmod 600 it"),
        "{e}"
    );
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::parse_at("x.toml", &text, dir.path(), &[]).unwrap();
    assert_eq!(c.bridges[0].credentials.as_deref(), Some(creds.as_path()));
    let missing = with_bridge(&format!("{GOOD}\ncredentials = \"nope.creds\""));
    let e = Config::parse_at("x.toml", &missing, dir.path(), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.creds"), "{e}");
}

#[test]
fn a_changed_bridge_waits_for_a_restart() {
    let old = Config::parse("x.toml", &with_bridge(GOOD), &[]).unwrap();
    let changed = with_bridge(&GOOD.replace("telemetry.>", "metrics.>"));
    let new = Config::parse("x.toml", &changed, &[]).unwrap();
    assert_eq!(crate::reload::needs_restart(&old, &new), vec!["bridge"]);
    assert!(crate::reload::needs_restart(&old, &old).is_empty());
}
