//! The network lab itself (`busd_e2e::netlab`, `busd_e2e::nats_cluster`):
//! hosts that reach each other and the test until cut, a nats-server
//! cluster that routes across them and survives losing nodes, and nothing
//! left behind when a test fails.
//!
//! As root only, with nats-server installed: `#[ignore]`d, run by `.ci/run`.
//! The harness blocks (std::process, polling), so the async tests run on a
//! multi-threaded runtime: the NATS clients' tasks keep answering the
//! servers' pings on the other worker meanwhile.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use busd_e2e::nats_cluster::NatsCluster;
use busd_e2e::netlab::{Host, Lab, LabProcess};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn three_nodes_form_a_cluster_and_route_across_it() {
    let lab = Lab::new();
    let cluster = NatsCluster::start(&lab, 3);
    for i in 1..=3 {
        assert_eq!(cluster.routes(i), Some(2), "nats-{i}'s routes");
    }
    let node1 = client(&cluster.url(1)).await;
    let node3 = client(&cluster.url(3)).await;
    assert_routed(&node1, &node3, "from nats-3 to nats-1").await;
    assert_routed(&node3, &node1, "from nats-1 to nats-3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
async fn the_cluster_routes_around_a_cut_node_and_a_dead_one_and_takes_the_cut_one_back() {
    let lab = Lab::new();
    let mut cluster = NatsCluster::start(&lab, 3);
    let node2 = client(&cluster.url(2)).await;
    let node3 = client(&cluster.url(3)).await;

    cluster.cut(1);
    assert_routed(&node3, &node2, "nats-1 cut: 2 to 3").await;
    // How long the others take to notice: the servers' pings (every
    // second, three unanswered allowed) are all that can tell them.
    let cut_at = Instant::now();
    cluster.wait_routes(2, 1);
    cluster.wait_routes(3, 1);
    eprintln!(
        "a cut peer's route was dropped after {:?}",
        cut_at.elapsed()
    );

    cluster.kill(2);
    drop(node2);
    cluster.wait_routes(3, 0);
    assert_routed(&node3, &node3, "nats-3 alone").await;

    cluster.restore(1);
    let restored_at = Instant::now();
    cluster.wait_routes(1, 1);
    cluster.wait_routes(3, 1);
    eprintln!("nats-1 rejoined {:?} after restore", restored_at.elapsed());
    let node1 = client(&cluster.url(1)).await;
    assert_routed(&node1, &node3, "nats-1 back: 3 to 1").await;
    assert_routed(&node3, &node1, "nats-1 back: 1 to 3").await;

    cluster.restart(2);
    for i in 1..=3 {
        assert_eq!(
            cluster.routes(i),
            Some(2),
            "nats-{i}'s routes after the restart"
        );
    }
    let node2 = client(&cluster.url(2)).await;
    assert_routed(&node2, &node1, "nats-2 restarted: 1 to 2").await;
    assert!(
        cluster.log(2).matches("Starting nats-server").count() == 2,
        "nats-2's log spans both its runs:\n{}",
        cluster.log(2)
    );
}

#[test]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
fn a_cut_host_is_unreachable_until_restored_and_its_connections_blackholed() {
    let lab = Lab::new();
    let a = lab.host("a");
    let b = lab.host("b");
    assert_ne!(a.ip(), b.ip());
    let _server = LabProcess::spawn(
        a.command("python3")
            .args(["-m", "http.server", "--bind", &a.ip().to_string(), "8000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Bounded readiness poll, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http_ok(a.ip()) {
        assert!(
            Instant::now() < deadline,
            "python3 -m http.server did not start in a"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(connects_from(&b, a.ip()), "b reaches a");
    let mut held = TcpStream::connect((a.ip(), 8000)).expect("a connection to a");

    a.cut();
    assert!(a.is_cut() && !b.is_cut());
    assert!(!http_ok(a.ip()), "the test reaches a cut host");
    assert!(!connects_from(&b, a.ip()), "b reaches a cut host");
    // Not reset: the request is sent, and nothing comes back.
    held.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .expect("a write is only buffered");
    held.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let err = held
        .read(&mut [0; 64])
        .expect_err("an answer from a cut host");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "a cut connection is not blackholed: {err}"
    );

    a.restore();
    assert!(!a.is_cut());
    assert!(http_ok(a.ip()), "the test reaches a restored host");
    assert!(connects_from(&b, a.ip()), "b reaches a restored host");
    // The retransmitted request gets its answer: a cut shorter than TCP's
    // timeouts loses no connection.
    held.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = String::new();
    held.read_to_string(&mut answer)
        .expect("the held connection's answer");
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
}

#[test]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
fn a_failing_test_leaves_no_namespace_link_or_process_behind() {
    struct Left {
        prefix: String,
        servers: Vec<u32>,
        stray: Child,
    }
    let left: Mutex<Option<Left>> = Mutex::new(None);
    let failed = std::panic::catch_unwind(|| {
        let lab = Lab::new();
        let cluster = NatsCluster::start(&lab, 2);
        let x = lab.host("x");
        // Spawned bare, never wrapped: only the lab's sweep of its
        // namespaces can kill it.
        let stray = x
            .command("sleep")
            .arg("600")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep in x");
        let servers = (1..=2).filter_map(|i| cluster.pid(i)).collect();
        *left.lock().unwrap() = Some(Left {
            prefix: lab.prefix().to_owned(),
            servers,
            stray,
        });
        panic!("deliberately, as a failing test would");
    });
    assert!(failed.is_err());
    let Left {
        prefix,
        servers,
        mut stray,
    } = left.into_inner().unwrap().expect("the lab was made");

    assert_eq!(servers.len(), 2);
    for pid in servers {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "nats-server {pid} is left running"
        );
    }
    let status = stray
        .try_wait()
        .expect("wait")
        .expect("the stray process is dead");
    assert_eq!(status.signal(), Some(9), "{status}");
    let namespaces = ip(&["netns", "list"]);
    assert!(
        !namespaces
            .lines()
            .any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces of {prefix} left:\n{namespaces}"
    );
    let links = ip(&["-o", "link", "show"]);
    assert!(!links.contains(&prefix), "links of {prefix} left:\n{links}");
}

#[test]
#[ignore = "needs root, ip netns and nats-server; run by .ci/run"]
fn hosts_get_consecutive_addresses_in_the_labs_subnet() {
    let lab = Lab::new();
    let first = lab.host("one");
    let second = lab.host("two");
    let octets = |ip: Ipv4Addr| ip.octets();
    assert_eq!(octets(first.ip())[3], 1);
    assert_eq!(octets(second.ip())[3], 2);
    assert_eq!(octets(lab.root_ip())[3], 254);
    assert_eq!(
        lab.subnet(),
        format!("{}/24", Ipv4Addr::from(u32::from(first.ip()) & !0xff))
    );
    let other = Lab::new();
    assert_ne!(other.subnet(), lab.subnet(), "two labs share a subnet");
    assert!(first.ns().starts_with(lab.prefix()) && first.name() == "one");
}

/// A client of the node at `url` and of it only: it must not move to
/// another node behind the test's back.
async fn client(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .ignore_discovered_servers()
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Subscribes at `subscriber` to a subject of its own and publishes to it
/// at `publisher` until a message arrives.
async fn assert_routed(
    subscriber: &async_nats::Client,
    publisher: &async_nats::Client,
    what: &str,
) {
    static SUBJECTS: AtomicU32 = AtomicU32::new(0);
    let subject = format!("netlab.{}", SUBJECTS.fetch_add(1, Ordering::Relaxed));
    let mut sub = subscriber
        .subscribe(subject.clone())
        .await
        .expect("subscribe");
    subscriber.flush().await.expect("flush the subscription");
    // Bounded poll, not a timing assertion: the subscription's interest
    // reaches the other nodes asynchronously, and until it does they drop
    // what is published there.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        publisher
            .publish(subject.clone(), what.to_owned().into())
            .await
            .expect("publish");
        publisher.flush().await.expect("flush the publication");
        let got = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
        if let Ok(Some(msg)) = got {
            assert_eq!(msg.payload, what.as_bytes(), "{what}");
            return;
        }
        assert!(Instant::now() < deadline, "no message routed {what}");
    }
}

/// Whether the test process gets a 200 from `ip`:8000 within a second.
fn http_ok(ip: Ipv4Addr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&(ip, 8000).into(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = String::new();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.0 200")
}

/// Whether a process in `host` connects to `ip`:8000 within 2 seconds.
fn connects_from(host: &Host, ip: Ipv4Addr) -> bool {
    host.command("timeout")
        .args(["2", "bash", "-c", &format!(": </dev/tcp/{ip}/8000")])
        .stderr(Stdio::null())
        .status()
        .expect("run bash in the host")
        .success()
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
