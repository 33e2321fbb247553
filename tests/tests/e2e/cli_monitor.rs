//! `busd monitor` as an operator runs it: the real binary against a real
//! daemon process, for an admin (the test's own uid, the daemon's) and
//! for another uid.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use busd_e2e::{DaemonProcess, busd_bin};

use crate::cli::{busd, run, wait_registered};

/// The uid a non-admin runs as: `nobody`.
const NOBODY: u32 = 65534;

#[test]
fn busd_monitor_json_prints_one_object_per_event() {
    let d = DaemonProcess::spawn(&[]);
    let mut monitor = busd(&d, &["monitor", "--json", "--count", "2", "weather.>"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn busd monitor");
    wait_registered(&d, "weather.>", 1);
    for (subject, payload) in [("traffic.paris", "jam"), ("weather.today", "sunny")] {
        assert!(run(&d, &["pub", subject, payload]).status.success());
    }
    assert!(run(&d, &["pub", "weather.week", "rain"]).status.success());
    let status = monitor.wait().expect("busd monitor exits after --count");
    assert!(status.success());
    let lines: Vec<serde_json::Value> = BufReader::new(monitor.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["kind"], "pub");
    assert_eq!(
        lines[0]["subject"], "weather.today",
        "traffic.paris filtered out"
    );
    assert_eq!(lines[0]["size"], 5);
    assert_eq!(lines[0]["to"], serde_json::json!([]), "nobody subscribes");
    assert!(lines[0]["from"]["client_id"].is_u64());
    assert!(
        lines[0].get("payload").is_none(),
        "no --payload, no payload"
    );
    assert_eq!(lines[1]["subject"], "weather.week");
}

#[test]
fn busd_monitor_refuses_a_non_admin_and_the_daemon_audits_it() {
    assert_eq!(
        rustix::process::getuid().as_raw(),
        0,
        "this test runs a client as uid {NOBODY}, which takes root"
    );
    let d = DaemonProcess::spawn_with_tcp(&busd_bin(), &[], &[]);
    let url = d.tcp_url.clone().expect("a tcp listener");
    // Over loopback TCP the daemon reads the peer's uid from the kernel.
    let out = Command::new(busd_bin())
        .args(["monitor", "--server", &url])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("run busd monitor as nobody");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admins only"),
        "a sentence saying why: {stderr}"
    );
    assert!(out.stdout.is_empty());
    d.wait_for_log("monitor refused: not an admin");
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    let line = log.lines().find(|l| l.contains("monitor refused")).unwrap();
    assert!(
        line.contains("busd::audit") && line.contains(&format!("uid={NOBODY}")),
        "{line}"
    );
}

#[test]
fn ctl_grant_explain_and_dry_run_refuse_a_non_admin() {
    assert_eq!(
        rustix::process::getuid().as_raw(),
        0,
        "this test runs a client as uid {NOBODY}, which takes root"
    );
    let d = DaemonProcess::spawn_with_tcp(&busd_bin(), &[], &[]);
    let url = d.tcp_url.clone().expect("a tcp listener");
    let asks: [&[&str]; 4] = [
        &[
            "grant",
            "--from",
            "unpackaged",
            "--to",
            "unpackaged:0",
            "--for",
            "1h",
        ],
        &["explain", "--from", "unpackaged:0", "--to", "unpackaged:1"],
        &["reload", "--dry-run"],
        &["grants"],
    ];
    for ask in asks {
        let out = Command::new(busd_bin())
            .args(["ctl", "--server", &url])
            .args(ask)
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .output()
            .expect("run busd ctl as nobody");
        assert_eq!(out.status.code(), Some(1), "{ask:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("NotAuthorized"), "{ask:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{ask:?}");
    }
    // And nothing was granted.
    let out = Command::new(busd_bin())
        .args(["ctl", "--json", "--server", &url, "grants"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{out:?}");
}
