//! `busd bench` runs each workload once, tiny, in-process and with
//! `--procs` (`idle` over each transport): it must finish, lose nothing
//! and print valid JSON. This is how CI proves the bench works; speeds
//! are never asserted.

use std::process::{Command, Stdio};
use std::time::Duration;

use busd_client::{Client, CtlCommand};
use busd_e2e::{DaemonProcess, TestDaemon, Transport, busd_bin};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The keys every result line carries, and those of reqrep.
const KEYS: &[&str] = &[
    "workload",
    "transport",
    "size",
    "sent",
    "received",
    "msgs_per_s",
    "mb_per_s",
    "lost",
    "procs",
    "pubs",
    "subs",
];
const LATENCY_KEYS: &[&str] = &["p50_us", "p90_us", "p99_us", "p999_us"];

/// Runs `busd bench ARGS --count 200 --json` and returns its one result.
fn bench(args: &[&str]) -> Value {
    run(args, &["--count", "200"])
}

/// Runs `busd bench ARGS --duration 300ms --json` and returns its one result.
fn timed(args: &[&str]) -> Value {
    run(args, &["--duration", "300ms"])
}

/// Runs `busd bench ARGS AMOUNT --json`: it must lose nothing and print
/// one result line with the keys every result carries.
fn run(args: &[&str], amount: &[&str]) -> Value {
    let out = Command::new(busd_bin())
        .arg("bench")
        .args(args)
        .args(amount)
        .args(["--json", "--idle-timeout", "20"])
        .stdin(Stdio::null())
        .output()
        .expect("run busd bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "busd bench {args:?}: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line per result: {stdout}");
    let result: Value = serde_json::from_str(lines[0]).expect("valid JSON");
    for key in KEYS {
        assert!(result.get(key).is_some(), "{key} missing in {result}");
    }
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["out_of_order"], 0, "{result}");
    assert_eq!(result["received"], result["expected"], "{result}");
    assert!(
        result["msgs_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{result}"
    );
    result
}

#[test]
fn pubsub_in_process_and_in_processes() {
    let r = bench(&["pubsub", "--pubs", "2", "--subs", "2", "--size", "16"]);
    assert_eq!(
        (r["workload"].as_str(), r["transport"].as_str()),
        (Some("pubsub"), Some("unix"))
    );
    assert_eq!(r["received"], 2 * 2 * 200);
    assert_eq!(r["window"], 1024, "4 MiB of 128 B messages, capped");
    let r = bench(&["pubsub", "--procs", "--transport", "tcp", "--window", "16"]);
    assert_eq!(
        (r["procs"].as_bool(), r["transport"].as_str()),
        (Some(true), Some("tcp"))
    );
    assert_eq!(r["window"], 16);
}

#[test]
fn a_timed_run_checks_every_message_it_sent() {
    // Publishers stop when the time is up and tell the subscribers how
    // many they sent; each subscriber must have had every one of them.
    for procs in [&[][..], &["--procs"]] {
        let args = [
            &["pubsub", "--pubs", "2", "--subs", "2", "--size", "16"],
            procs,
        ]
        .concat();
        let r = timed(&[&args[..], &["--overflow", "block"]].concat());
        assert_eq!(r["duration_s"], 0.3, "{r}");
        let sent = r["sent"].as_u64().expect("sent");
        assert!(sent >= 2, "{r}");
        assert_eq!(r["expected"], 2 * sent, "two subscribers: {r}");
        assert_eq!(r["count"], sent / 2, "per publisher: {r}");
    }
    let r = timed(&["reqrep", "--requesters", "2", "--procs"]);
    assert_eq!(r["expected"], r["sent"], "{r}");
    for key in LATENCY_KEYS {
        assert!(r.get(key).is_some(), "{key} missing in {r}");
    }
}

#[test]
fn a_count_and_a_duration_do_not_go_together() {
    let out = Command::new(busd_bin())
        .args(["bench", "pubsub", "--count", "5", "--duration", "1s"])
        .stdin(Stdio::null())
        .output()
        .expect("run busd bench");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--duration"), "{stderr}");
    let out = Command::new(busd_bin())
        .args(["bench", "pubsub", "--duration", "soon"])
        .stdin(Stdio::null())
        .output()
        .expect("run busd bench");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn lossless_publishers_are_paced_by_the_daemon_alone() {
    // The `block` policy's back-pressure bounds a publisher, so by default
    // it runs without a window of confirmations; one can still be asked for.
    let r = bench(&["pubsub", "--procs", "--overflow", "block", "--size", "16"]);
    assert_eq!(r["overflow"], "block");
    assert!(r.get("window").is_none(), "no window: {r}");
    let r = bench(&["fanout", "--overflow", "block", "--window", "32"]);
    assert_eq!(r["window"], 32);
    let r = bench(&["pubsub", "--window", "off"]);
    assert!(r.get("window").is_none(), "no window: {r}");
}

#[test]
fn fanout_in_process_and_in_processes() {
    let r = bench(&["fanout", "--subs", "3", "--transport", "tcp"]);
    assert_eq!(r["received"], 3 * 200);
    let r = bench(&["fanout", "--subs", "3", "--procs", "--size", "65536"]);
    assert_eq!(r["received"], 3 * 200);
    // Over shm, through sealed segments (built, or written in place) and
    // through the rings.
    for extra in [
        &["--segment-threshold", "4096"][..],
        &["--segment-threshold", "4096", "--in-place"],
        &["--segment-threshold", "off"],
    ] {
        let args = [
            "fanout",
            "--subs",
            "2",
            "--procs",
            "--transport",
            "shm",
            "--size",
            "8192",
        ];
        let r = bench(&[&args[..], extra].concat());
        assert_eq!(r["received"], 2 * 200, "{extra:?}");
        // Said only of runs that wrote in place, for compare.sh's tables.
        let in_place = extra.contains(&"--in-place");
        assert_eq!(
            r.get("in_place"),
            in_place.then_some(&Value::Bool(true)),
            "{r}"
        );
    }
}

#[test]
fn reqrep_in_process_and_in_processes() {
    for extra in [
        &["--requesters", "2"][..],
        &["--procs", "--responders", "2"][..],
    ] {
        let args: Vec<&str> = ["reqrep"].iter().chain(extra).copied().collect();
        let r = bench(&args);
        for key in LATENCY_KEYS {
            assert!(r[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {r}");
        }
    }
}

#[test]
fn against_a_running_daemon() {
    let daemon = DaemonProcess::spawn(&[]);
    let r = bench(&["pubsub", "--server", &daemon.unix_url, "--procs"]);
    assert_eq!(r["system"], "busd");
    let r = bench(&["reqrep", "--server", &daemon.unix_url]);
    assert_eq!(r["workload"], "reqrep");
}

/// Runs `busd bench idle --conns 20 --hold 0 --json ARGS` and returns its
/// one result, checked: every connection established and still there.
fn idle(args: &[&str]) -> Value {
    let out = Command::new(busd_bin())
        .args(["bench", "idle", "--conns", "20", "--hold", "0", "--json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run busd bench idle");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "busd bench idle {args:?}: {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stderr.lines().any(|l| l == "ready: 20 connections"),
        "{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line per result: {stdout}");
    let result: Value = serde_json::from_str(lines[0]).expect("valid JSON");
    assert_eq!(result["workload"], "idle", "{result}");
    assert_eq!(result["established"], 20, "{result}");
    assert_eq!(result["failed"], 0, "{result}");
    assert_eq!(result["dropped"], 0, "{result}");
    result
}

#[test]
fn idle_holds_connections_over_every_transport() {
    for transport in ["tcp", "unix", "shm"] {
        let r = idle(&["--transport", transport]);
        assert_eq!(r["transport"], transport);
    }
    let daemon = DaemonProcess::spawn(&[]);
    let shm_url = daemon.unix_url.replacen("unix://", "shm://", 1);
    let r = idle(&["--server", &shm_url]);
    assert_eq!(r["transport"], "shm");
}

#[tokio::test]
async fn idle_connections_hold_as_many_subscriptions_as_asked() {
    // What `bench/scale.sh` holds beside a pub/sub run to measure the
    // publish cost against unrelated subscriptions.
    let d = TestDaemon::start().await;
    let admin = Client::connect(&d.url(Transport::Unix)).await.unwrap();
    let mut bench = tokio::process::Command::new(busd_bin())
        .args(["bench", "idle", "--conns", "2", "--subjects", "500"])
        .args([
            "--hold",
            "600",
            "--json",
            "--server",
            &d.url(Transport::Unix),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run busd bench idle");
    let mut stderr = BufReader::new(bench.stderr.take().expect("stderr")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.expect("read stderr") {
            if line.starts_with("ready:") {
                return line;
            }
        }
        panic!("the bench ended before it was ready");
    })
    .await
    .expect("ready within 60 s");
    assert_eq!(ready, "ready: 2 connections");
    let stats = admin.ctl(CtlCommand::Stats).await.expect("ctl stats");
    assert_eq!(stats["subscriptions"], 2 * 500, "{stats}");

    drop(bench.stdin.take()); // the end of stdin ends the hold
    let out = bench.wait_with_output().await.expect("bench output");
    assert!(out.status.success(), "{:?}", out.status);
    let r: Value = serde_json::from_slice(&out.stdout).expect("one JSON result");
    assert_eq!(
        (r["subjects"].as_u64(), r["dropped"].as_u64()),
        (Some(500), Some(0)),
        "{r}"
    );
    // Gone with their connections, once the daemon has seen them close.
    for _ in 0..500 {
        let stats = admin.ctl(CtlCommand::Stats).await.expect("ctl stats");
        if stats["subscriptions"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the held subscriptions outlived their connections by 10 s");
}

#[test]
fn nonsense_is_refused_before_anything_runs() {
    let out = Command::new(busd_bin())
        .args(["bench", "pubsub", "--size", "4"])
        .output()
        .expect("run busd bench");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--size"));
}
