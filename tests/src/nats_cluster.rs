//! A real nats-server cluster, one node per host of a [`Lab`], for tests
//! of daemons that talk to NATS across a network that can fail.

mod monitor;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::netlab::{Host, Lab, LabProcess};

/// The port each node takes clients on, at its host's address.
pub const CLIENT_PORT: u16 = 4222;
/// The port each node takes routes from the other nodes on.
pub const ROUTE_PORT: u16 = 6222;
/// The port of each node's HTTP monitoring (`/varz`, `/routez`, …).
pub const MONITOR_PORT: u16 = 8222;
/// The cluster's name (`cluster { name }`).
pub const CLUSTER_NAME: &str = "busd-lab";

/// The bound on every readiness wait: long enough for a loaded CI machine,
/// short enough that a cluster that will never form fails the test soon.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// What every node's config holds besides its addresses, before the
/// caller's extra lines. The server's defaults (a ping every 2 minutes,
/// two unanswered allowed) leave a cut peer or client connected for about
/// 6 minutes (by that arithmetic; not measured); pinging every second
/// notices one in about 4 seconds (measured).
const BASE_CONFIG: &str = "logtime: true\nping_interval: \"1s\"\nping_max: 3\n";

/// `nodes` nats-server processes, on hosts `nats-1`… of a lab, routed to
/// each other. Nodes are numbered from 1, like their hosts: `url(1)` is
/// `nats-1`'s. Dropping it kills them (dropping the lab would too).
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    server: PathBuf,
    /// Declared last: the configs and logs go only once the nodes are dead.
    dir: TempDir,
}

#[derive(Debug)]
struct Node {
    host: Host,
    config: PathBuf,
    log: PathBuf,
    stderr: PathBuf,
    process: Option<LabProcess>,
}

impl NatsCluster {
    /// Starts `nodes` nodes on new hosts `nats-1`… of `lab` and waits until
    /// each accepts clients and has a route to every other.
    ///
    /// # Panics
    /// If nats-server is not installed, or the cluster is not ready within
    /// 20 seconds (with every node's log).
    pub fn start(lab: &Lab, nodes: usize) -> NatsCluster {
        NatsCluster::start_with(lab, nodes, "")
    }

    /// As [`NatsCluster::start`], with `extra_config` appended to every
    /// node's config file: where a key is given twice, nats-server keeps the
    /// last, so this also overrides the harness's `ping_interval: "1s"` and
    /// `ping_max: 3`.
    pub fn start_with(lab: &Lab, nodes: usize, extra_config: &str) -> NatsCluster {
        assert!(nodes > 0, "a cluster of no node");
        let server = nats_server();
        let dir = tempfile::tempdir().expect("temp dir");
        let hosts: Vec<Host> = (1..=nodes)
            .map(|i| lab.host(&format!("nats-{i}")))
            .collect();
        let nodes = hosts
            .iter()
            .map(|host| {
                let name = host.name();
                let node = Node {
                    host: host.clone(),
                    config: dir.path().join(format!("{name}.conf")),
                    log: dir.path().join(format!("{name}.log")),
                    stderr: dir.path().join(format!("{name}.stderr")),
                    process: None,
                };
                let config = node_config(host, &hosts, &node.log, extra_config);
                std::fs::write(&node.config, config).expect("write a node's config");
                node
            })
            .collect();
        let mut cluster = NatsCluster { nodes, server, dir };
        for i in 1..=cluster.nodes.len() {
            cluster.spawn(i);
        }
        let all: Vec<usize> = (1..=cluster.nodes.len()).collect();
        cluster.wait_ready(&all);
        cluster
    }

    /// How many nodes it has.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL (`nats://IP:4222`), node 1's first.
    pub fn urls(&self) -> Vec<String> {
        (1..=self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// Node `i`'s client URL, `nats://IP:4222`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://{}:{CLIENT_PORT}", self.host(i).ip())
    }

    /// The host node `i` runs on (`nats-i`).
    pub fn host(&self, i: usize) -> &Host {
        &self.node(i).host
    }

    /// Node `i`'s pid, `None` once killed.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.node(i).process.as_ref().map(LabProcess::id)
    }

    /// SIGKILLs node `i` (and reaps it); nothing if it is not running.
    pub fn kill(&mut self, i: usize) {
        self.node_mut(i).process = None;
    }

    /// Starts node `i` again with the same config (killing it first if it
    /// still runs), and waits until it accepts clients and has a route to
    /// every other node that runs and is not cut; a cut node is only
    /// started, as nothing can reach it.
    ///
    /// # Panics
    /// If it is not ready within 20 seconds (with every node's log).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        if !self.host(i).is_cut() {
            self.wait_ready(&[i]);
        }
    }

    /// Cuts node `i`'s host off the network ([`Host::cut`]); it keeps
    /// running, its connections blackholed.
    pub fn cut(&self, i: usize) {
        self.host(i).cut();
    }

    /// Puts node `i`'s host back on the network ([`Host::restore`]). Its
    /// routes come back on their own (the node and its peers retry
    /// configured routes every second); [`NatsCluster::wait_routes`] waits.
    pub fn restore(&self, i: usize) {
        self.host(i).restore();
    }

    /// The temp dir holding the nodes' configs (`nats-i.conf`) and logs
    /// (`nats-i.log`), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `i`'s log (and anything it wrote to stderr), across restarts.
    pub fn log(&self, i: usize) -> String {
        let node = self.node(i);
        let mut log = std::fs::read_to_string(&node.log).unwrap_or_default();
        let stderr = std::fs::read_to_string(&node.stderr).unwrap_or_default();
        if !stderr.trim().is_empty() {
            let _ = write!(log, "--- stderr ---\n{stderr}");
        }
        log
    }

    /// How many other nodes node `i` has a route to now, from its
    /// `/routez`; `None` if it does not answer (killed, cut).
    pub fn routes(&self, i: usize) -> Option<usize> {
        monitor::remote_routes(self.host(i).ip())
    }

    /// Waits until node `i` has routes to exactly `peers` other nodes.
    ///
    /// # Panics
    /// If that takes over 20 seconds (with every node's log).
    pub fn wait_routes(&self, i: usize, peers: usize) {
        // Bounded readiness poll, not a timing assertion.
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let routes = self.routes(i);
            if routes == Some(peers) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "nats-{i} has routes to {routes:?} nodes, not {peers}, after {READY_WITHIN:?}\n{}",
                    self.all_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts node `i`'s process.
    fn spawn(&mut self, i: usize) {
        let server = self.server.clone();
        let node = self.node_mut(i);
        let stderr = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&node.stderr)
            .expect("a node's stderr file");
        let mut cmd = node.host.command(server);
        cmd.arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        node.process = Some(LabProcess::spawn(&mut cmd));
    }

    /// Waits until each of `which` accepts clients and has a route to every
    /// other node that runs and is not cut.
    fn wait_ready(&mut self, which: &[usize]) {
        // Bounded readiness poll, not a timing assertion: nodes dial their
        // routes once a second until the peer listens.
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let mut pending = Vec::new();
            for &i in which {
                if let Some(status) = self
                    .node_mut(i)
                    .process
                    .as_mut()
                    .and_then(|p| p.exit_status())
                {
                    panic!("nats-{i} exited ({status})\n{}", self.all_logs());
                }
                let ip = self.host(i).ip();
                let peers = self.reachable_peers(i);
                if !monitor::accepts_clients(ip) {
                    pending.push(format!("nats-{i} does not accept clients"));
                } else if self.routes(i) != Some(peers) {
                    let routes = self.routes(i);
                    pending.push(format!(
                        "nats-{i} has routes to {routes:?} of {peers} peers"
                    ));
                }
            }
            if pending.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the nats cluster is not ready after {READY_WITHIN:?}: {}\n{}",
                    pending.join("; "),
                    self.all_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The other nodes that run and are not cut: the routes node `i` should
    /// have.
    fn reachable_peers(&self, i: usize) -> usize {
        (1..=self.nodes.len())
            .filter(|&j| j != i && self.pid(j).is_some() && !self.host(j).is_cut())
            .count()
    }

    /// Every node's log, for a panic message.
    fn all_logs(&self) -> String {
        (1..=self.nodes.len())
            .map(|i| format!("--- nats-{i} ({}) ---\n{}", self.host(i).ip(), self.log(i)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn node(&self, i: usize) -> &Node {
        self.check(i);
        &self.nodes[i - 1]
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        self.check(i);
        &mut self.nodes[i - 1]
    }

    fn check(&self, i: usize) {
        let n = self.nodes.len();
        assert!(
            (1..=n).contains(&i),
            "nats node {i}: nodes are numbered 1..={n}, like their hosts nats-1…"
        );
    }
}

/// The config of the node on `host`: clients, routes and monitoring on the
/// host's address, routes to every other of `hosts`, its log in `log`.
fn node_config(host: &Host, hosts: &[Host], log: &Path, extra: &str) -> String {
    let ip = host.ip();
    let routes: String = hosts
        .iter()
        .filter(|h| h.ip() != ip)
        .map(|h| format!("    \"nats-route://{}:{ROUTE_PORT}\"\n", h.ip()))
        .collect();
    format!(
        "server_name: \"{name}\"\n\
         listen: \"{ip}:{CLIENT_PORT}\"\n\
         http: \"{ip}:{MONITOR_PORT}\"\n\
         log_file: \"{log}\"\n\
         {BASE_CONFIG}\
         cluster {{\n  name: \"{CLUSTER_NAME}\"\n  listen: \"{ip}:{ROUTE_PORT}\"\n  routes: [\n{routes}  ]\n}}\n\
         {extra}\n",
        name = host.name(),
        log = log.display(),
    )
}

/// The nats-server binary: on `PATH`, or in `/usr/sbin` where Debian puts
/// it (not on a non-root user's `PATH`).
fn nats_server() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("nats-server not found on PATH or in /usr/sbin: apt-get install nats-server")
        })
}
