//! `busd reply --exec`: a service made of a command, run per request,
//! against a real daemon process and real child processes.

use std::process::{Child, Output};

use busd_client::Client;
use busd_e2e::DaemonProcess;
use serde::{Deserialize, Serialize};

use super::cli::{busd, run, spawn, wait_registered};

/// Starts `busd reply` with `args` (which end with `--exec …`) serving
/// `service`, and returns once the daemon has the registration.
fn serve(d: &DaemonProcess, service: &str, args: &[&str]) -> Child {
    let argv = [&["reply", service], args].concat();
    let reply = spawn(d, &argv);
    wait_registered(d, service, 1);
    reply
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_command_gets_the_payload_and_the_caller_and_its_stdout_answers() {
    let d = DaemonProcess::spawn(&[]);
    let mut cat = serve(&d, "contoso.cat", &["--count", "1", "--exec", "cat"]);
    let out = run(&d, &["req", "contoso.cat", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
    assert!(cat.wait().unwrap().success(), "exits after --count");

    let script =
        r#"printf '%s|%s|%s|' "$BUSD_SERVICE" "${BUSD_CALLER_PFN-unset}" "$BUSD_CALLER_ID"; cat"#;
    let mut env = serve(
        &d,
        "contoso.env",
        &["--count", "1", "--exec", "sh", "-c", script],
    );
    let out = run(&d, &["req", "contoso.env", "payload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(fields[..2], ["contoso.env", "unset"], "{line}");
    assert!(fields[2].parse::<u64>().is_ok(), "a client id: {line}");
    assert_eq!(fields[3], "payload", "{line}");
    assert!(env.wait().unwrap().success());
}

#[test]
fn a_command_that_fails_answers_failure_with_its_status_and_stderr() {
    let d = DaemonProcess::spawn(&[]);
    let script = "echo 'disk on fire' >&2; exit 3";
    let mut broken = serve(
        &d,
        "contoso.broken",
        &["--count", "1", "--exec", "sh", "-c", script],
    );
    let out = run(&d, &["req", "contoso.broken", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("Failure"), "{err}");
    assert!(
        err.contains("exit status: 3") && err.contains("disk on fire"),
        "{err}"
    );
    assert!(broken.wait().unwrap().success());

    let mut missing = serve(
        &d,
        "contoso.missing",
        &["--count", "1", "--exec", "/nonexistent/busd-test-command"],
    );
    let out = run(&d, &["req", "contoso.missing", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("Failure") && err.contains("cannot run /nonexistent/busd-test-command"),
        "{err}"
    );
    assert!(missing.wait().unwrap().success());
}

#[test]
fn a_command_past_its_timeout_is_killed_and_answers_failure() {
    let d = DaemonProcess::spawn(&[]);
    let mut slow = serve(
        &d,
        "contoso.slow",
        &[
            "--count",
            "1",
            "--exec-timeout",
            "300ms",
            "--exec",
            "sleep",
            "600",
        ],
    );
    let out = run(&d, &["req", "--timeout", "60s", "contoso.slow", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("Failure") && err.contains("did not finish within 300ms"),
        "{err}"
    );
    assert!(slow.wait().unwrap().success());
}

/// Whether process `pid` is gone (or dead, waiting to be reaped by
/// whoever adopted it), waiting up to 10 s for it to go.
fn gone(pid: &str) -> bool {
    // Bounded polling of another process's state, not a timing assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let dead = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if dead || std::time::Instant::now() > deadline {
            return dead;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_command_past_its_timeout_is_killed_with_its_children() {
    let d = DaemonProcess::spawn(&[]);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // A shell whose own child would outlive it if only the shell were killed.
    let script = r#"sleep 600 & echo $! > "$0"; wait"#;
    let mut slow = serve(
        &d,
        "contoso.tree",
        &[
            "--count",
            "1",
            "--exec-timeout",
            "500ms",
            "--exec",
            "sh",
            "-c",
            script,
            pid_file.to_str().unwrap(),
        ],
    );
    let out = run(&d, &["req", "--timeout", "60s", "contoso.tree", "x"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not finish within 500ms"),
        "{}",
        stderr(&out)
    );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(gone(pid.trim()), "the command's child {pid} outlived it");
    assert!(slow.wait().unwrap().success());
}

#[test]
fn commands_run_at_once_up_to_jobs() {
    let d = DaemonProcess::spawn(&[]);
    let meeting = tempfile::tempdir().unwrap();
    let fifo = meeting.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The first run waits on the fifo for the second: both finish only if
    // they run at the same time (else the first is killed at its timeout).
    let script =
        r#"if mkdir "$0/first" 2>/dev/null; then cat "$0/fifo"; else printf met > "$0/fifo"; fi"#;
    let dir = meeting.path().to_str().unwrap();
    let mut pair = serve(
        &d,
        "contoso.pair",
        &[
            "--count",
            "2",
            "--jobs",
            "2",
            "--exec-timeout",
            "60s",
            "--exec",
            "sh",
            "-c",
            script,
            dir,
        ],
    );
    let callers: Vec<Child> = (0..2)
        .map(|_| {
            busd(&d, &["req", "--timeout", "90s", "contoso.pair", "x"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut answers: Vec<String> = callers
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out)
        })
        .collect();
    answers.sort();
    assert_eq!(answers, ["\n", "met\n"]);
    assert!(pair.wait().unwrap().success());
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Ask {
    city: String,
    days: Vec<u8>,
}

#[derive(Debug, PartialEq, Deserialize)]
struct Seen {
    seen: Ask,
}

#[tokio::test]
async fn with_json_a_command_serves_typed_calls() {
    let d = DaemonProcess::spawn(&[]);
    // Wraps the request's JSON in an object: it works only if the request
    // arrives as JSON and the output is read as JSON.
    let script = r#"read -r line; printf '{"seen":%s}' "$line""#;
    let mut wrap = serve(
        &d,
        "contoso.wrap",
        &["--json", "--count", "1", "--exec", "sh", "-c", script],
    );
    let client = Client::connect(&d.unix_url).await.unwrap();
    let ask = Ask {
        city: "Paris".into(),
        days: vec![1, 2],
    };
    let answer: Seen = client.call("contoso.wrap", &ask).await.unwrap();
    assert_eq!(answer, Seen { seen: ask });
    assert!(wrap.wait().unwrap().success());
}
