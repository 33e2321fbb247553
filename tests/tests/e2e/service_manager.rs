//! `busd run` under a service manager, as systemd drives it: listening
//! sockets handed over through `LISTEN_FDS`, state told through
//! `NOTIFY_SOCKET` (READY, RELOADING, STOPPING, STATUS).

use std::io::Read;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use busd_client::Client;
use busd_e2e::{DaemonProcess, busd_bin};
use command_fds::{CommandFdExt, FdMapping};
use futures::StreamExt;
use rustix::process::Signal;

/// Starts `busd run` with `sockets` as fds 3, 4, … and `LISTEN_FDS` naming
/// them, as a service manager does. A shell sets `LISTEN_PID` to its own
/// pid and execs the daemon, which keeps that pid: the daemon's check that
/// the sockets are meant for it is exercised too.
fn spawn_activated(dir: &Path, sockets: Vec<OwnedFd>) -> Child {
    let log = std::fs::File::create(dir.join("busd.log")).expect("log file");
    let count = sockets.len();
    let mappings = sockets
        .into_iter()
        .enumerate()
        .map(|(i, fd)| FdMapping {
            parent_fd: fd,
            child_fd: 3 + i as i32,
        })
        .collect();
    Command::new("sh")
        .args(["-c", r#"LISTEN_PID=$$ exec "$0" "$@""#])
        .arg(busd_bin())
        .arg("run")
        .env("LISTEN_FDS", count.to_string())
        .env("RUST_LOG", "info")
        .fd_mappings(mappings)
        .expect("distinct fds")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn busd")
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, Signal::TERM).expect("kill");
    child.wait().expect("wait")
}

#[tokio::test]
async fn a_daemon_serves_on_the_sockets_the_service_manager_hands_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("activated.sock");
    let unix = UnixListener::bind(&path).expect("bind unix");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let tcp_url = format!("tcp://{}", tcp.local_addr().expect("addr"));
    let unix_url = format!("unix://{}", path.display());
    let child = spawn_activated(dir.path(), vec![unix.into(), tcp.into()]);

    // The sockets listen already: connecting waits for the daemon, no polling.
    let receiver = Client::connect(&unix_url)
        .await
        .expect("over the unix socket");
    let sender = Client::connect(&tcp_url).await.expect("over tcp");
    let mut sub = receiver.subscribe("activated.>").await.expect("subscribe");
    sender
        .publish("activated.hello", "hi")
        .await
        .expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("in time")
        .expect("a message");
    assert_eq!(&msg.payload[..], b"hi");
    drop((sub, receiver, sender));

    let status = stop(child);
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(dir.path().join("busd.log")).expect("log");
    assert!(
        log.contains(&format!(
            "ready: serving {tcp_url}, {unix_url} (sockets from the service manager)"
        )),
        "one ready line names both listeners:\n{log}"
    );
    // The manager owns the file: the daemon leaves it for the next start.
    assert!(path.exists(), "the handed-over socket file stays");
}

#[test]
fn a_handed_over_tcp_socket_beyond_loopback_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tcp = TcpListener::bind("0.0.0.0:0").expect("bind tcp");
    let port = tcp.local_addr().expect("addr").port();
    let mut child = spawn_activated(dir.path(), vec![tcp.into()]);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{status}");
    let log = std::fs::read_to_string(dir.path().join("busd.log")).expect("log");
    assert!(
        log.contains(&format!(
            "refusing to listen on 0.0.0.0:{port}: busd binds loopback addresses only"
        )),
        "{log}"
    );
}

/// The next notification, as one string of `KEY=value` lines.
fn next_notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8(buf[..len].to_vec()).expect("utf-8")
}

#[test]
fn a_daemon_tells_the_service_manager_ready_reloading_and_stopping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("notify socket");
    // Bounds each wait below; a daemon that never notifies fails the test.
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let notify_env = notify_path.to_str().expect("utf-8 path");
    let mut daemon = DaemonProcess::spawn_with_env(&[], &[("NOTIFY_SOCKET", notify_env)]);

    let ready = next_notification(&notify);
    let sock = daemon.unix_url.clone();
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains(&format!(
            "STATUS=ready: serving {sock}; config the embedded default"
        )),
        "{ready:?}"
    );

    daemon.signal(Signal::HUP);
    let reloading = next_notification(&notify);
    assert!(reloading.starts_with("RELOADING=1\n"), "{reloading:?}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    let reloaded = next_notification(&notify);
    assert!(reloaded.starts_with("READY=1\n"), "{reloaded:?}");
    assert!(reloaded.contains("; reloaded"), "{reloaded:?}");

    daemon.signal(Signal::TERM);
    let stopping = next_notification(&notify);
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    let status = daemon.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(status.success(), "{status}");
    let mut log = String::new();
    std::fs::File::open(daemon.log_path())
        .and_then(|mut f| f.read_to_string(&mut log))
        .expect("log");
    assert!(log.contains("ready: serving"), "{log}");
}
