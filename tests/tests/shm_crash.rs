//! A real client process over shm, killed with SIGKILL while it holds a
//! request: nothing of it stays in the daemon.
//!
//! A test binary of its own: it checks the daemon's fds by counting this
//! process's, so no other test may open or close any meanwhile.

use std::process::Stdio;
use std::time::Duration;

use busd_client::{Client, CtlCommand, ErrorKind, RequestOptions};
use busd_e2e::{TestDaemon, Transport, busd_bin};
use rustix::process::{Pid, Signal, kill_process};

/// Open fds of this process, where the test daemon runs.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

async fn stat(admin: &Client, key: &str) -> u64 {
    let stats = admin.ctl(CtlCommand::Stats).await.expect("ctl stats");
    stats[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {stats}"))
}

/// Polls `check` every 20 ms for up to 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shm_responder_leaves_nothing_behind() {
    let d = TestDaemon::start().await;
    let admin = Client::connect(&d.url(Transport::Unix)).await.unwrap();
    let connections = stat(&admin, "connections").await;
    let fds = open_fds();

    // Killed on drop as well, so a failing assertion leaves no responder behind.
    let mut child = tokio::process::Command::new(busd_bin())
        .args([
            "reply",
            "--server",
            &d.url(Transport::Shm),
            "crash.svc",
            "pong",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn busd reply");
    let pid = child
        .id()
        .and_then(|id| Pid::from_raw(id as i32))
        .expect("pid");
    eventually("the shm responder serves", async || {
        admin.request("crash.svc", "ping").await.is_ok()
    })
    .await;
    assert!(
        open_fds() > fds,
        "the shm connection holds fds in the daemon"
    );

    // Frozen with our request in hand, then killed.
    kill_process(pid, Signal::STOP).unwrap();
    let requester = admin.clone();
    let pending = tokio::spawn(async move {
        let options = RequestOptions {
            timeout: Some(Duration::from_secs(600)),
            headers: None,
        };
        requester
            .request_with("crash.svc", "never answered", options)
            .await
    });
    eventually("the request reaches the frozen responder", async || {
        stat(&admin, "pending_requests").await == 1
    })
    .await;
    kill_process(pid, Signal::KILL).unwrap();
    let _ = child.wait().await;

    let answer = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("answered at once, not at the 600 s timeout")
        .unwrap();
    assert_eq!(
        answer.expect_err("nobody answered").kind(),
        ErrorKind::ResponderGone
    );
    // Its connection and service are gone, and so are its rings' fds.
    eventually("the connection is dropped", async || {
        stat(&admin, "connections").await == connections
    })
    .await;
    eventually("every fd of the connection is closed", async || {
        open_fds() == fds
    })
    .await;
    let err = admin.request("crash.svc", "anyone?").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NoResponders);
}
