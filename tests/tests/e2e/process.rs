//! The real `busd` binary: start-up errors, exit codes and signals.

use std::process::{Command, Stdio};
use std::time::Duration;

use busd_e2e::{DaemonProcess, RawClient, busd_bin};
use busd_proto::{Frame, Op, Overflow, Subject};
use rustix::process::Signal;

fn run_busd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(busd_bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run busd")
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let d = DaemonProcess::spawn(&[]);
    let sock = d.dir.path().join("busd.sock");
    let status = d.signal_and_wait(Signal::TERM);
    assert_eq!(status.code(), Some(0));
    assert!(!sock.exists(), "the socket file is removed on exit");
}

#[test]
fn a_second_sigterm_exits_at_once_without_waiting_for_a_stuck_reader() {
    let mut d = DaemonProcess::spawn_with_env(&[], &[("BUSD_DAEMON__SHUTDOWN_GRACE", "5m")]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // A subscriber that never reads, and a publisher that queues 12 MiB
    // for it: a first SIGTERM waits for it, up to the 5 minute grace.
    let stuck = rt.block_on(async {
        let (mut sub, _) = RawClient::connect_hello(&d.unix_url).await;
        sub.send(Op::Sub {
            sid: 1,
            subject: Subject::from_static("stuck"),
            queue: None,
            overflow: Overflow::Disconnect,
        })
        .await;
        sub.ping().await;
        let (mut publisher, _) = RawClient::connect_hello(&d.unix_url).await;
        for _ in 0..200 {
            let op = Op::Pub {
                subject: Subject::from_static("stuck"),
                headers: None,
            };
            let frame = Frame::with_payload(op, RawClient::payload(64 * 1024));
            publisher.send_frame(frame).await;
        }
        publisher.ping().await;
        sub
    });
    d.signal(Signal::TERM);
    d.wait_for_log("SIGTERM: shutting down");
    assert!(
        d.wait_exit(Duration::from_millis(500)).is_none(),
        "the first SIGTERM waits for the reader"
    );
    d.signal(Signal::TERM);
    let status = d.wait_exit(Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "exits at once");
    drop(stuck);
}

#[test]
fn sigint_exits_zero() {
    let d = DaemonProcess::spawn(&[]);
    assert_eq!(d.signal_and_wait(Signal::INT).code(), Some(0));
}

#[test]
fn invalid_config_exits_2_naming_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busd.toml");
    std::fs::write(&file, "[daemon]\nunpackaged = \"sometimes\"\n").unwrap();
    let out = run_busd(&["run", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busd.toml: line 2"), "{err}");
    assert!(err.contains("unknown variant `sometimes`"), "{err}");
}

#[test]
fn bad_environment_override_exits_2_naming_the_key() {
    let out = run_busd(&["run"], &[("BUSD_LIMITS__MAX_FRAME", "huge")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_frame"), "{err}");
}

#[test]
fn non_loopback_tcp_is_refused_at_start() {
    let out = run_busd(&["run", "--tcp", "0.0.0.0:4271", "--unix", ""], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn second_daemon_on_the_same_socket_refuses_to_start() {
    let first = DaemonProcess::spawn(&[]);
    let sock = first.dir.path().join("busd.sock");
    let out = run_busd(&["run", "--tcp", "", "--unix", sock.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already"), "{err}");
    // The first one is unaffected and still serving.
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_ok());
    assert_eq!(first.signal_and_wait(Signal::TERM).code(), Some(0));
}

#[test]
fn worker_threads_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busd.toml");
    std::fs::write(&file, "[daemon]\nthreads = 3\n").unwrap();
    let sock = dir.path().join("busd.sock");
    let child = Command::new(busd_bin())
        .args(["run", "--config", file.to_str().unwrap(), "--tcp", ""])
        .args(["--unix", sock.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn busd");
    // Polling for readiness, bounded; not a timing assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(std::time::Instant::now() < deadline, "busd did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, Signal::TERM).expect("kill");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("worker threads threads=3"), "{err}");
}

/// `busd run --tcp ... --unix ...` wins over the config file at start, and
/// must still at a reload: the reload used to read the file without them,
/// so each one warned that the listeners had changed and would need a
/// restart (found by the soak, which reloads a daemon started so).
#[test]
fn a_reload_keeps_the_listeners_busd_run_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("busd.toml");
    std::fs::write(&file, "[daemon]\nunpackaged = \"same-uid\"\n").unwrap();
    let d = DaemonProcess::spawn(&["--config", file.to_str().unwrap()]);
    let out = run_busd(&["ctl", "--json", "reload", "--server", &d.unix_url], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["need_restart"], serde_json::json!([]), "{report}");
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    assert!(!log.contains("change only with a restart"), "{log}");
}
