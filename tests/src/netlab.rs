//! Several "hosts" on one machine: Linux network namespaces on a private
//! L2 segment, for tests where daemons must each have their own address
//! and can be cut off the network.
//!
//! A [`Lab`] is a "switch" namespace holding a bridge, a /24 of its own
//! (from 198.18.0.0/15, the range RFC 2544 reserves for test networks: a
//! 10/8 address may well be the machine's real LAN or a cluster's pods),
//! and a veth from the test process's own namespace at `.254`, so the test
//! reaches every host directly. [`Lab::host`] adds a namespace at the next
//! address. Dropping the lab kills every process left in its namespaces,
//! wherever it was started from, then deletes them.
//!
//! Needs root and iproute2 (`ip netns`): the tests using it are `#[ignore]`d
//! and run by `.ci/run`.

mod ip;
mod process;
mod subnet;

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

pub use process::LabProcess;

use ip::{ip, ip_output, ip_quiet};
use subnet::Subnet;

/// Labs made by this process so far: the second half of each lab's prefix.
static LABS: AtomicU32 = AtomicU32::new(0);

/// Held while namespaces are added: concurrent first uses of `ip netns add`
/// race to make `/run/netns` a shared mount and can stack mounts on it.
static SETUP: Mutex<()> = Mutex::new(());

/// Linux's limit on an interface name (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;

/// A private network segment: a bridge in a namespace of its own, the test
/// process joined to it at `.254`, and the hosts made by [`Lab::host`].
/// Dropping it kills the processes in its hosts and deletes its namespaces
/// and the test process's veth.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    switch_ns: String,
    root_if: String,
    hosts: Mutex<Hosts>,
    /// Released as a field, after `Drop::drop` removed the root veth: the
    /// one thing using the subnet in a namespace other labs share.
    subnet: Subnet,
}

/// The hosts a lab made.
#[derive(Debug, Default)]
struct Hosts {
    /// Their namespaces, to delete.
    namespaces: Vec<String>,
    /// Their names, unique; host `k` of this list is at `.k+1`.
    names: Vec<String>,
}

impl Lab {
    /// A new segment with no host yet.
    ///
    /// # Panics
    /// If not run as root or `ip netns` does not work, and on any failure
    /// to set the segment up (what was made is torn down first).
    pub fn new() -> Lab {
        preflight();
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_stale);

        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("bt{pid}x{n}");
        let root_if = format!("{prefix}r");
        assert!(
            root_if.len() <= IFNAME_MAX,
            "netlab: over 9999 labs in one process: {root_if} is too long an interface name"
        );
        let lab = Lab {
            switch_ns: format!("{prefix}-sw"),
            root_if,
            hosts: Mutex::default(),
            subnet: Subnet::claim(u64::from(pid) * 31 + u64::from(n)),
            prefix,
        };
        // From here a panic drops `lab`, which removes whatever was made.
        let sw = lab.switch_ns.as_str();
        let root_ip = format!("{}/24", lab.root_ip());
        {
            let _setup = setup_lock();
            ip(&format!("netns add {sw}"));
        }
        let root_if = &lab.root_if;
        ip(&format!("-n {sw} link add br0 type bridge"));
        ip(&format!("-n {sw} link set br0 up"));
        ip(&format!(
            "link add {root_if} type veth peer name root netns {sw}"
        ));
        ip(&format!("-n {sw} link set dev root master br0 up"));
        ip(&format!("addr add {root_ip} dev {root_if}"));
        ip(&format!("link set {root_if} up"));
        lab
    }

    /// A new host named `name` (letters, digits and `-`, unique in the
    /// lab): a namespace with `lo` up and `eth0` up at the next address of
    /// the lab's subnet (`.1`, `.2`, …), on the lab's segment.
    ///
    /// # Panics
    /// On a bad or repeated name, past 253 hosts, or if `ip` fails.
    pub fn host(&self, name: &str) -> Host {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "netlab: host name {name:?}: use letters, digits and '-'"
        );
        let ns = format!("{}-{name}", self.prefix);
        let number = {
            let mut hosts = self.lock_hosts();
            assert!(
                !hosts.names.iter().any(|n| n == name),
                "netlab: a host {name:?} already exists in this lab"
            );
            assert!(hosts.names.len() < 253, "netlab: a lab holds 253 hosts");
            hosts.names.push(name.to_owned());
            // Recorded before it exists, so that a failure below still
            // leaves it to the lab's teardown.
            hosts.namespaces.push(ns.clone());
            hosts.names.len()
        };
        let address = self
            .subnet
            .address(u8::try_from(number).expect("at most 253"));
        {
            let _setup = setup_lock();
            ip(&format!("netns add {ns}"));
        }
        let port = format!("h{number}");
        let sw = &self.switch_ns;
        ip(&format!("-n {ns} link set lo up"));
        ip(&format!(
            "-n {sw} link add {port} type veth peer name eth0 netns {ns}"
        ));
        ip(&format!("-n {sw} link set dev {port} master br0 up"));
        let host = Host {
            name: name.to_owned(),
            ns,
            ip: address,
            subnet: self.subnet.cidr(),
        };
        ip(&format!("-n {} addr add {} dev eth0", host.ns, host.cidr()));
        host.restore();
        host
    }

    /// The prefix of every namespace of this lab (`bt{pid}x{n}`), and of
    /// the test process's veth to it (`bt{pid}x{n}r`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The address of the test process on the lab's segment (`.254`): what
    /// a process in a host connects to, to reach a server in the test.
    pub fn root_ip(&self) -> Ipv4Addr {
        self.subnet.address(254)
    }

    /// The lab's subnet, as `a.b.c.0/24`.
    pub fn subnet(&self) -> String {
        self.subnet.cidr()
    }

    fn lock_hosts(&self) -> MutexGuard<'_, Hosts> {
        self.hosts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut namespaces = std::mem::take(&mut self.lock_hosts().namespaces);
        namespaces.push(self.switch_ns.clone());
        teardown(&namespaces, std::slice::from_ref(&self.root_if));
    }
}

/// One host of a [`Lab`]: a network namespace whose `eth0` is on the lab's
/// segment. A plain handle (cloning it makes no host); the namespace lives
/// as long as the lab.
#[derive(Debug, Clone)]
pub struct Host {
    name: String,
    ns: String,
    ip: Ipv4Addr,
    subnet: String,
}

impl Host {
    /// The name given to [`Lab::host`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address on the lab's segment.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Its network namespace, for `ip netns exec` / `ip -n`.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// `program` run inside this host (`ip netns exec NS program`, which
    /// execs it: the child's pid is the program's). Whatever it starts is
    /// killed when the lab drops, however it was spawned; wrap the child
    /// in a [`LabProcess`] to have it killed and reaped when that drops.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }

    /// Takes the host off the network: `eth0` down inside it. Nothing gets
    /// in or out; established TCP connections are not reset but blackholed,
    /// and resume if [`Host::restore`] comes before they time out.
    pub fn cut(&self) {
        ip(&format!("-n {} link set eth0 down", self.ns));
    }

    /// Puts a cut host back: `eth0` up, with its address and the route to
    /// the segment checked (the kernel restores both; they are re-added if
    /// not), and the link up before it returns.
    pub fn restore(&self) {
        let (ns, cidr, subnet) = (&self.ns, self.cidr(), &self.subnet);
        ip(&format!("-n {ns} link set eth0 up"));
        let addrs = ip_output(&format!("-n {ns} -4 -o addr show dev eth0"));
        if !addrs.contains(&format!("inet {cidr} ")) {
            ip(&format!("-n {ns} addr replace {cidr} dev eth0"));
        }
        let routes = ip_output(&format!("-n {ns} -4 route show dev eth0"));
        if !routes.lines().any(|l| l.starts_with(subnet.as_str())) {
            ip(&format!(
                "-n {ns} route replace {subnet} dev eth0 src {}",
                self.ip
            ));
        }
        // Bounded readiness poll, not a timing assertion: a veth's operstate
        // follows its peer's at once, so this rarely loops.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let link = ip_output(&format!("-n {} -o link show dev eth0", self.ns));
            if link.contains("state UP") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "netlab: {}'s eth0 is not up: {link}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the host is cut ([`Host::cut`]): its `eth0` is down.
    pub fn is_cut(&self) -> bool {
        let link = ip_output(&format!("-n {} -o link show dev eth0", self.ns));
        let flags = link.split(['<', '>']).nth(1).unwrap_or("");
        !flags.split(',').any(|f| f == "UP")
    }

    fn cidr(&self) -> String {
        format!("{}/24", self.ip)
    }
}

/// Panics unless this process can make namespaces.
fn preflight() {
    assert!(
        rustix::process::geteuid().is_root(),
        "netlab needs root (network namespaces, veths, a bridge): these tests are \
         #[ignore]d and run as root by .ci/run"
    );
    if let Err(e) = ip::try_ip("netns list") {
        panic!("netlab needs iproute2's `ip netns`, which failed: {e}");
    }
}

fn setup_lock() -> MutexGuard<'static, ()> {
    SETUP.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kills every process in `namespaces`, then deletes them and the root
/// namespace's `links`. Never panics: it runs in `Drop`, maybe unwinding.
fn teardown(namespaces: &[String], links: &[String]) {
    // SIGKILL, then a bounded wait for the namespaces to empty: a namespace
    // deleted with a process still in it lives on, unnamed, as long as it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<i32> = namespaces
            .iter()
            .filter_map(|ns| ip_quiet(&format!("netns pids {ns}")))
            .flat_map(|out| {
                out.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // The veth first: deleting one end deletes its peer, and with it the
    // route to the subnet in the root namespace.
    for link in links {
        let _ = ip_quiet(&format!("link del {link}"));
    }
    for ns in namespaces {
        let _ = ip_quiet(&format!("netns del {ns}"));
    }
}

/// Removes what labs of test processes that no longer run left behind (a
/// test killed by SIGKILL or a timeout runs no `Drop`).
fn sweep_stale() {
    let dead = |name: &str| owner_pid(name).is_some_and(|pid| !pid_alive(pid));
    let namespaces: Vec<String> = ip_quiet("netns list")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| dead(ns))
        .map(str::to_owned)
        .collect();
    let links: Vec<String> = ip_quiet("-o link show")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name))
        .filter(|name| dead(name))
        .map(str::to_owned)
        .collect();
    teardown(&namespaces, &links);
}

/// The pid in a lab's name (`bt{pid}x{n}` followed by `-…` or `r`).
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("bt")?;
    let (pid, rest) = rest.split_once('x')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let tail = &rest[digits..];
    let well_formed = digits > 0 && (tail == "r" || tail.starts_with('-'));
    well_formed.then(|| pid.parse().ok()).flatten()
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::owner_pid;

    #[test]
    fn owner_pid_reads_only_lab_names() {
        assert_eq!(owner_pid("bt123x0-sw"), Some(123));
        assert_eq!(owner_pid("bt123x45r"), Some(123));
        assert_eq!(owner_pid("bt123x45-nats-1"), Some(123));
        assert_eq!(owner_pid("bt123x"), None);
        assert_eq!(owner_pid("bt123x4"), None);
        assert_eq!(owner_pid("btrfs"), None);
        assert_eq!(owner_pid("eth0"), None);
    }
}
