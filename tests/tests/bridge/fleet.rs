//! A fleet for the bridge's tests: a three-node nats-server cluster and
//! busd daemons on hosts of their own (network namespaces), each with a
//! `[[bridge]]` to the cluster, and clients of each daemon (over its unix
//! socket, which the test reaches from the root namespace).
//!
//! Every host has the same packages (`busd_e2e::bridge_rules`).

use std::path::PathBuf;
use std::time::Duration;

use busd_client::{Client, CtlCommand, ErrorKind, Response};
use busd_e2e::access::{WAIT, poll_until, within, write_config_dir};
use busd_e2e::bridge_rules::packages;
pub(crate) use busd_e2e::bridge_rules::{BRIDGE, SENSOR, SPY};
use busd_e2e::busd_bin;
use busd_e2e::nats_cluster::NatsCluster;
use busd_e2e::netlab::{Host, Lab, LabProcess};
use serde_json::Value;

/// The `[[bridge]]` of host `name`, with `extra` keys.
fn bridge_toml(name: &str, urls: &[String], extra: &str) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        "[[bridge]]\nname = \"fleet\"\nnats = [{}]\npfn = \"{BRIDGE}\"\n\
         export = [\"telemetry.>\"]\nexport_services = [\"svc.inventory.>\"]\n\
         import = [\"fleet.alerts.>\", \"host.*.telemetry.>\"]\n\
         import_services = [\"svc.remote.>\", \"host.*.svc.>\"]\n\
         prefix = \"host.{{hostname}}\"\nhost = \"{name}\"\n\
         ping_interval = \"1s\"\nrequest_timeout = \"2s\"\n{extra}\n",
        urls.join(", ")
    )
}

/// A busd daemon on a host of its own.
pub(crate) struct BusdHost {
    pub(crate) name: String,
    pub(crate) host: Host,
    pub(crate) url: String,
    dir: tempfile::TempDir,
    _process: LabProcess,
}

impl BusdHost {
    fn start(lab: &Lab, name: &str, urls: &[String], extra: &str) -> Self {
        let host = lab.host(name);
        let dir = tempfile::tempdir().expect("temp dir");
        let config = write_config_dir(dir.path(), "deny", &packages());
        let mut text = std::fs::read_to_string(&config).expect("config");
        text += &bridge_toml(name, urls, extra);
        std::fs::write(&config, text).expect("config");
        let sock = dir.path().join("busd.sock");
        let log = std::fs::File::create(dir.path().join("busd.log")).expect("log");
        let mut command = host.command(busd_bin());
        command
            .args(["run", "--tcp", "", "--unix"])
            .arg(&sock)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let process = LabProcess::spawn(&mut command);
        // Bounded readiness poll, not a timing assertion.
        let deadline = std::time::Instant::now() + WAIT;
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "busd on {name} did not start; its log:\n{}",
                std::fs::read_to_string(dir.path().join("busd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            name: name.to_owned(),
            host,
            url: format!("unix://{}", sock.display()),
            dir,
            _process: process,
        }
    }

    /// A client of this daemon proven as `pfn`.
    pub(crate) async fn client(&self, pfn: &str) -> Client {
        let token: PathBuf = self.dir.path().join(format!("tokens/{pfn}.key"));
        Client::builder(&self.url)
            .pfn(pfn)
            .token_file(token)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{pfn} on {}: {e}", self.name))
    }

    /// What `busd ctl bridges` says of this host's bridge.
    pub(crate) async fn bridge(&self) -> Value {
        let admin = Client::connect(&self.url).await.expect("admin client");
        let all = admin.ctl(CtlCommand::Bridges).await.expect("ctl bridges");
        all[0].clone()
    }

    /// Waits (bounded) until this host's bridge is in `state`.
    pub(crate) async fn bridge_in(&self, state: &str) -> Value {
        let what = format!("{}'s bridge {state}", self.name);
        poll_until(&what, || self.bridge(), |b| b["state"] == state).await
    }

    /// The daemon's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("busd.log")).unwrap_or_default()
    }
}

/// The cluster and the busd hosts; dropped in this order, the lab last.
pub(crate) struct Fleet {
    pub(crate) cluster: NatsCluster,
    pub(crate) hosts: Vec<BusdHost>,
    _lab: Lab,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        // A failed test shows what each daemon said.
        if std::thread::panicking() {
            for h in &self.hosts {
                eprintln!("--- busd on {} ---\n{}", h.name, h.log());
            }
        }
    }
}

impl Fleet {
    /// A three-node cluster and busd on `names`, each bridge with `extra`
    /// keys; returns once every bridge is connected.
    pub(crate) async fn start(names: &[&str], extra: &str) -> Self {
        Self::start_with(names, extra, "").await
    }

    /// As [`Fleet::start`], each NATS node's config with `cluster_extra`.
    pub(crate) async fn start_with(names: &[&str], extra: &str, cluster_extra: &str) -> Self {
        let fleet = Self::launch(names, extra, cluster_extra);
        for h in &fleet.hosts {
            h.bridge_in("connected").await;
        }
        fleet
    }

    /// As [`Fleet::start_with`], returning before the bridges connect.
    pub(crate) fn launch(names: &[&str], extra: &str, cluster_extra: &str) -> Self {
        let lab = Lab::new();
        let cluster = NatsCluster::start_with(&lab, 3, cluster_extra);
        let urls = cluster.urls();
        let hosts: Vec<BusdHost> = names
            .iter()
            .map(|n| BusdHost::start(&lab, n, &urls, extra))
            .collect();
        Self {
            cluster,
            hosts,
            _lab: lab,
        }
    }

    /// A plain NATS client (the test's own, in the root namespace) on
    /// node `i`.
    pub(crate) async fn nats(&self, i: usize) -> async_nats::Client {
        async_nats::connect(self.cluster.url(i))
            .await
            .expect("NATS client")
    }

    /// The node a host's bridge is connected to now.
    pub(crate) async fn node_of(&self, host: &BusdHost) -> usize {
        let what = format!("{}'s bridge connected, naming its server", host.name);
        let connected = |b: &Value| b["state"] == "connected" && b["server"].is_string();
        let bridge = poll_until(&what, || host.bridge(), connected).await;
        let server = bridge["server"].as_str().expect("a server").to_owned();
        (1..=self.cluster.nodes())
            .find(|&i| self.cluster.url(i).ends_with(&server))
            .unwrap_or_else(|| panic!("{server} is none of {:?}", self.cluster.urls()))
    }
}

/// The first answer of `service` to `client`, once NATS has carried the
/// interest that routes it (`NoResponders` until then); any other error
/// fails the test.
pub(crate) async fn first_answer(client: &Client, service: &str, payload: &[u8]) -> Response {
    within(&format!("the first answer of {service}"), async {
        loop {
            match client.request(service, payload).await {
                Ok(answer) => return answer,
                Err(e) if e.kind() == ErrorKind::NoResponders => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{service}: {e}"),
            }
        }
    })
    .await
}
