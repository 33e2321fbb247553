//! `busd check-config` and `busd pfn` through the real binary: exit codes,
//! `FILE:LINE: error|warning: reason` lines and the summary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use busd_e2e::busd_bin;

const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
const MAPS: &str = "Fabrikam.Maps_1234567890abc";

fn busd(args: &[&str]) -> Output {
    Command::new(busd_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run busd")
}

/// `busd.toml` holding `body` in a temp dir, with `tokens/w.key` of `mode`.
fn config(body: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    let key = dir.path().join("tokens/w.key");
    std::fs::write(&key, "the secret of weather\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    let path = dir.path().join("busd.toml");
    std::fs::write(&path, body).unwrap();
    (dir, path)
}

fn check(path: &Path) -> (Option<i32>, String, String) {
    let out = busd(&["check-config", path.to_str().unwrap()]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

fn two_packages() -> String {
    format!(
        r#"[daemon]
unpackaged = "deny"

[[package]]
pfn = "{WEATHER}"
loopback = true
token_file = "tokens/w.key"
in = ["{MAPS}"]
out = ["{MAPS}"]
exempt_in = true
capabilities = ["contoso.hsa"]

[[package]]
pfn = "{MAPS}"
loopback = true
uids = [1000]
in = ["{WEATHER}"]
out = ["{WEATHER}"]
"#
    )
}

#[test]
fn a_valid_two_package_file_is_explained() {
    let (dir, path) = config(&two_packages(), 0o600);
    let (code, out, err) = check(&path);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(err.is_empty(), "no warnings: {err}");
    assert!(out.contains("valid: 2 package(s), 0 warning(s)"), "{out}");
    assert!(out.contains("unpackaged clients: deny"), "{out}");
    let weather = out
        .split(&format!("\n{WEATHER}\n"))
        .nth(1)
        .expect("a Weather section");
    assert!(weather.contains(&format!("reaches:       {MAPS}")), "{out}");
    assert!(weather.contains(&format!("reached by:    {MAPS}")), "{out}");
    assert!(
        weather.contains("receives from them (exempt_in); does not send to them"),
        "{out}"
    );
    let key = dir.path().join("tokens/w.key");
    assert!(
        weather.contains(&format!("proofs:        token ({})", key.display())),
        "{out}"
    );
    assert!(weather.contains("capabilities:  contoso.hsa"), "{out}");
    assert!(out.contains("proofs:        uids [1000]"), "{out}");
}

#[test]
fn warnings_keep_the_exit_code_zero() {
    let text = two_packages().replace(&format!("in = [\"{WEATHER}\"]"), "in = []");
    let (_dir, path) = config(&text, 0o600);
    let (code, out, err) = check(&path);
    assert_eq!(code, Some(0), "{out}{err}");
    let expected = format!(
        "{}:9: warning: out: {MAPS} does not list {WEATHER}",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");
    assert!(out.contains("reaches:       no other package"), "{out}");
}

/// Runs check-config on `text` and expects exit 2 with `needle` on `line`.
fn refused(text: &str, mode: u32, line: usize, needle: &str) {
    let (_dir, path) = config(text, mode);
    let (code, out, err) = check(&path);
    assert_eq!(code, Some(2), "{out}{err}");
    let prefix = format!("{}:{line}: error: ", path.display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&prefix) && l.contains(needle)),
        "expected {prefix}…{needle} in\n{err}"
    );
    assert!(out.is_empty(), "no summary for an invalid file: {out}");
}

#[test]
fn each_error_kind_exits_2_with_its_line() {
    let base = two_packages();
    refused(
        &base.replace(WEATHER, "Weather"),
        0o600,
        5,
        "pfn: package family name",
    );
    refused(
        &base.replace(MAPS, WEATHER),
        0o600,
        14,
        "configured twice (first on line 5)",
    );
    refused(
        &base.replace("uids = [1000]", "exe = [\"/bin/sh\"]"),
        0o600,
        16,
        "only valid together with uids",
    );
    refused(
        &base.replace("uids = [1000]\n", ""),
        0o600,
        14,
        "has no proof",
    );
    refused(
        &base.replace("tokens/w.key", "tokens/nope.key"),
        0o600,
        7,
        "does not exist",
    );
    refused(
        &base.replace("exempt_in = true", "exempt_inn = true"),
        0o600,
        10,
        "unknown field `exempt_inn`",
    );
    refused(
        &base.replace("[daemon]", "[daemon]\nlisten = 1"),
        0o600,
        2,
        "unknown field `listen`",
    );
}

#[test]
fn a_token_file_readable_by_others_is_refused() {
    refused(
        &two_packages(),
        0o644,
        7,
        "accessible by group or others (mode 0644)",
    );
}

#[test]
fn busd_run_refuses_an_invalid_policy_with_exit_2() {
    let (_dir, path) = config(&two_packages(), 0o640);
    let out = busd(&[
        "run",
        "--tcp",
        "",
        "--unix",
        "",
        "--config",
        path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:7: token_file", path.display())),
        "{err}"
    );
}

#[test]
fn pfn_prints_the_family_name() {
    let publisher =
        "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";
    let out = busd(&[
        "pfn",
        "--name",
        "Microsoft.WindowsCalculator",
        "--publisher",
        publisher,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Microsoft.WindowsCalculator_8wekyb3d8bbwe\n"
    );
    let out = busd(&["pfn", "--name", "no", "--publisher", publisher]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be 3 to 50 characters"), "{err}");
}

#[test]
fn a_token_from_busd_token_new_is_accepted_and_a_short_one_is_refused_naming_the_fix() {
    let (dir, path) = config(&two_packages(), 0o600);
    let key = dir.path().join("tokens/w.key");
    // A hand-made one-byte token: check-config names the fix.
    std::fs::write(&key, "x\n").unwrap();
    let (code, out, err) = check(&path);
    assert_eq!(code, Some(2), "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("holds 1 bytes") && all.contains("busd token new FILE"),
        "{all}"
    );
    // `busd token new` never overwrites it…
    let new = busd(&["token", "new", key.to_str().unwrap()]);
    assert_eq!(new.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&new.stderr).contains("never overwritten"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "x\n");
    // …and a token it makes is one the config takes.
    std::fs::remove_file(&key).unwrap();
    let new = busd(&["token", "new", key.to_str().unwrap()]);
    assert_eq!(new.status.code(), Some(0), "{new:?}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (code, out, err) = check(&path);
    assert_eq!(code, Some(0), "{out}{err}");
}

/// `busd check-config FILE --explain ARGS…`: exit code and stdout.
fn explain(path: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["check-config", path.to_str().unwrap(), "--explain"];
    all.extend_from_slice(args);
    let out = busd(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_config_explains_one_decision_naming_the_rule_lines() {
    let text = two_packages().replace(
        &format!("in = [\"{WEATHER}\"]\nout = [\"{WEATHER}\"]\n"),
        &format!("in = [\"{WEATHER}\"]\n\n[[package.service]]\nname = \"fabrikam.maps.tiles\"\nrequire_capability = \"contoso.hsa\"\n"),
    );
    let (_dir, path) = config(&text, 0o600);
    let file = path.display().to_string();
    let (code, out) = explain(
        &path,
        &["--from", WEATHER, "--to", MAPS, "--subject", "maps.show"],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out,
        format!(
            "message on maps.show from {WEATHER} to {MAPS}: allowed: {WEATHER}'s `out` ({file}:9) \
             lists {MAPS}, and {MAPS}'s `in` ({file}:17) lists {WEATHER}\n"
        )
    );
    let (code, out) = explain(&path, &["--from", MAPS, "--to", WEATHER]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.ends_with(&format!(
            "denied: {MAPS}'s `out` ({file}:14) does not list {WEATHER}\n"
        )),
        "{out}"
    );
    let (code, out) = explain(&path, &["--from", "unpackaged:1000", "--to", WEATHER]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.ends_with(&format!("allowed: exempt_in on {WEATHER} ({file}:10)\n")),
        "{out}"
    );
    // A service: its owner by default, and the capability it requires first.
    let (code, out) = explain(
        &path,
        &["--from", WEATHER, "--service", "fabrikam.maps.tiles"],
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = explain(
        &path,
        &["--from", "unpackaged:7", "--service", "fabrikam.maps.tiles"],
    );
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.ends_with(
            "denied: service fabrikam.maps.tiles requires capability contoso.hsa, which an \
             unpackaged client lacks\n"
        ),
        "{out}"
    );
    // No receiver named: a usage error.
    let (code, _) = explain(&path, &["--from", WEATHER]);
    assert_eq!(code, Some(2));
}

/// A file with one `[[bridge]]` to NATS (and its package) after `body`.
fn with_bridge(body: &str, credentials: &str) -> String {
    format!(
        "{body}\n[[package]]\npfn = \"Busd.Bridge.Fleet_0000000000000\"\nloopback = true\n\
         in = [\"{WEATHER}\"]\nout = [\"{WEATHER}\"]\n\n\
         [[bridge]]\nname = \"fleet\"\nnats = [\"nats://nats-1.fleet:4222\"]\n{credentials}\
         pfn = \"Busd.Bridge.Fleet_0000000000000\"\nexport = [\"telemetry.>\"]\n\
         import = [\"fleet.alerts.>\"]\nprefix = \"host.{{hostname}}\"\n"
    )
}

#[test]
fn bridges_are_checked_and_summarised() {
    let (dir, path) = config(&with_bridge(&two_packages(), ""), 0o600);
    let (code, stdout, stderr) = check(&path);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("bridge fleet (to NATS, as Busd.Bridge.Fleet_0000000000000)"),
        "{stdout}"
    );
    assert!(stdout.contains("  export:        telemetry.>"), "{stdout}");
    assert!(
        stdout.contains("proofs:        none (the daemon's bridge is it)"),
        "{stdout}"
    );
    // A credentials file others may read is refused, on the bridge's line.
    let creds = dir.path().join("fleet.creds");
    std::fs::write(&creds, "a-token\n").unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o640)).unwrap();
    let keys = format!("credentials = {:?}\n", creds.display().to_string());
    let text = with_bridge(&two_packages(), &keys);
    let line = text.lines().position(|l| l == "[[bridge]]").unwrap() + 1;
    refused(
        &text,
        0o600,
        line,
        "mode 0640 lets others read it; chmod 600 it",
    );
    // So is a URL that is not NATS's.
    let text = with_bridge(&two_packages(), "").replace("nats://nats-1", "https://nats-1");
    refused(&text, 0o600, line, "invalid scheme");
}
