//! Soak: the real `busd` daemon under a minute of churn, then checked for
//! anything it lost, leaked or broke.
//!
//! Many client processes (this test binary again, see `worker`) come and
//! go over tcp, unix and shm, as packages the access rules allow or deny
//! and unpackaged, with mixed pub/sub (every overflow policy, queue
//! groups, slow readers) and request/reply (late, failed and unanswered
//! calls); some leave gracefully, some are SIGKILLed mid-traffic, some
//! are frozen for a while; the configuration is reloaded between two rule
//! sets all along (SIGHUP or `busd ctl reload`). Afterwards, with every
//! client gone, the daemon must still serve, hold only the soak's own
//! connection, balance its counters (`delivered` and `requests`, see
//! README "Live state"), hold no more open fds than at its baseline, and
//! be back within [`probe::RSS_SLACK`] of its baseline resident memory.
//!
//! Not part of `cargo test`: it runs for a minute, and `.ci/run` runs it
//! after the other tests:
//!
//! ```text
//! cargo test -p busd-e2e --test soak -- --ignored --exact soak --nocapture
//! ```
//!
//! `BUSD_SOAK_SECS` (default 60) sets how long traffic runs,
//! `BUSD_SOAK_SEED` replays a run's printed seed, `BUSD_SOAK_WORKERS`
//! (default 24) how many clients run at once, `BUSD_SOAK_KEEP_LOG=FILE`
//! keeps the daemon's log (warnings and errors), and `BUSD_SOAK_BIN` which
//! `busd` to soak (default: the debug build beside this test, whose
//! overflow checks and debug assertions are worth more here than speed; a
//! release binary takes `cargo build --release -p busd` and
//! `BUSD_SOAK_BIN=target/release/busd`, relative to the workspace).

#![forbid(unsafe_code)]

mod fleet;
mod probe;
mod rng;
mod rules;
mod summary;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use busd_client::{Client, CtlCommand};
use busd_e2e::{DaemonProcess, busd_bin};
use rustix::process::Signal;

use crate::fleet::Fleet;
use crate::probe::{RSS_SLACK, SETTLE, eventually, n};
use crate::rng::Rng;
use crate::rules::Rules;
use crate::summary::{Footprint, Reloads};
use crate::worker::Spec;

/// How long before a reload that removes Retired no worker is started as
/// Retired (see `Fleet::spawn`): workers connect within a second or so.
const RETIRED_LEAD: Duration = Duration::from_millis(1500);
/// How long after a reload (SIGHUP is asynchronous) that brings Retired
/// back workers may be Retired again.
const RETIRED_LAG: Duration = Duration::from_millis(300);

#[test]
#[ignore = "a minute long: run by .ci/run (cargo test -p busd-e2e --test soak -- --ignored)"]
fn soak() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(Settings::from_env()));
}

#[test]
#[ignore = "a worker process of `soak`, started by it"]
fn worker() {
    if let Ok(spec) = std::env::var(worker::SPEC_VAR) {
        worker::run(&Spec::decode(&spec));
    }
}

/// What the environment asks of this run.
#[derive(Debug)]
struct Settings {
    secs: u64,
    seed: u64,
    workers: usize,
    bin: PathBuf,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).ok().map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
            })
        };
        Self {
            secs: var("BUSD_SOAK_SECS").unwrap_or(60),
            seed: var("BUSD_SOAK_SEED").unwrap_or_else(rng::fresh_seed),
            workers: var("BUSD_SOAK_WORKERS").map_or(24, |w| w as usize),
            // Relative to the workspace, not to this package's directory,
            // where cargo runs the test.
            bin: std::env::var_os("BUSD_SOAK_BIN").map_or_else(busd_bin, |bin| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(bin)
            }),
        }
    }
}

/// The daemon under soak, and what the soak keeps beside it.
struct Soak {
    settings: Settings,
    daemon: DaemonProcess,
    pid: u32,
    /// The soak's own connection, for `ctl stats` and `ctl reload`.
    admin: Client,
    /// tcp, unix and shm.
    urls: Vec<String>,
    /// The config and tokens; `reports` the workers' reports.
    dir: tempfile::TempDir,
    reports: PathBuf,
}

async fn run(settings: Settings) {
    eprintln!(
        "soak: {} s, {} workers, seed {} (BUSD_SOAK_SEED={} replays it), busd {}",
        settings.secs,
        settings.workers,
        settings.seed,
        settings.seed,
        settings.bin.display()
    );
    let soak = Soak::start(settings).await;
    let mut footprint = soak.baseline().await;
    let mut rng = Rng::new(soak.settings.seed);
    let mut fleet = Fleet::new(soak.worker_template());
    let reloads = soak.churn(&mut rng, &mut fleet, &mut footprint).await;
    fleet.thaw(&mut rng, true);
    fleet.drain(Duration::from_secs(40)).await;

    let mut problems = Vec::new();
    soak.settle(&mut footprint, &mut problems).await;
    let warnings = soak.check_log(&mut problems);
    let stats = probe::stats(&soak.admin).await;
    let seen = summary::Seen::of(&fleet::reports(&soak.reports));
    seen.check(&stats, &mut problems);
    summary::print(&stats, &seen, &fleet.tally, &reloads, &footprint);
    for (kind, count) in &warnings {
        eprintln!("soak: daemon warned {count}x: {kind}");
    }
    problems.extend(reloads.problems.iter().cloned());
    for (id, status) in &fleet.tally.failed {
        let stderr = soak.reports.join(format!("worker-{id}.stderr"));
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        problems.push(format!("worker {id} failed ({status}):\n{text}"));
    }
    if !fleet.tally.hung.is_empty() {
        problems.push(format!("workers hung: {:?}", fleet.tally.hung));
    }
    assert!(
        problems.is_empty(),
        "soak (seed {}) found:\n- {}",
        soak.settings.seed,
        problems.join("\n- ")
    );
}

impl Soak {
    /// Writes the config, starts the daemon and connects the admin.
    async fn start(settings: Settings) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = Rules::setup(dir.path());
        let reports = dir.path().join("reports");
        std::fs::create_dir(&reports).expect("the reports' dir");
        // Warnings (slow consumers cut off, ...) and panics; not the audit
        // log's line per denied delivery.
        let daemon = DaemonProcess::spawn_with_tcp(
            &settings.bin,
            &["--config", config.to_str().expect("a UTF-8 path")],
            &[("RUST_LOG", "warn,busd_daemon::daemon=info")],
        );
        let admin = Client::builder(&daemon.unix_url)
            .name("soak-admin")
            .reconnect(false)
            .connect()
            .await
            .expect("the soak's admin connection");
        let shm = daemon.unix_url.replacen("unix://", "shm://", 1);
        let tcp = daemon.tcp_url.clone().expect("a tcp listener");
        let urls = vec![tcp, daemon.unix_url.clone(), shm];
        Self {
            settings,
            pid: daemon.child.id(),
            daemon,
            admin,
            urls,
            dir,
            reports,
        }
    }

    /// The baseline: after a round trip on every transport has set up what
    /// the daemon keeps for good, with only the admin connection left.
    async fn baseline(&self) -> Footprint {
        for url in &self.urls {
            probe::round_trip(url)
                .await
                .expect("served before the soak");
        }
        let quiet = async || n(&probe::stats(&self.admin).await, "connections") == 1;
        assert!(eventually(SETTLE, quiet).await, "the warm-up clients left");
        // A closed connection's socket lingers a second after it leaves the
        // router: the baseline is a count that holds for longer than that.
        let mut last = probe::open_fds(self.pid);
        let steady = async || {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let now = probe::open_fds(self.pid);
            std::mem::replace(&mut last, now) == now
        };
        assert!(eventually(SETTLE, steady).await, "the daemon's fds settle");
        Footprint {
            fds_before: probe::open_fds(self.pid),
            fd_kinds_before: probe::fd_kinds(self.pid),
            rss_before: busd_e2e::resident_memory(self.pid).0,
            ..Footprint::default()
        }
    }

    /// What every worker shares.
    fn worker_template(&self) -> Spec {
        Spec {
            id: 0,
            seed: 0,
            identity: 0,
            life: Duration::ZERO,
            tcp_url: self.urls[0].clone(),
            unix_path: self.daemon.dir.path().join("busd.sock"),
            config_dir: self.dir.path().to_owned(),
            report: self.reports.join("template.json"),
        }
    }

    /// Runs the traffic for `settings.secs`: keeps `settings.workers`
    /// workers alive, kills one every 0.2 to 1.2 s, freezes one every 0.5
    /// to 2 s, and reloads the other rule set every 2 to 5 s (by SIGHUP or
    /// `ctl reload`, half each). Notes the daemon's peak of open fds.
    async fn churn(&self, rng: &mut Rng, fleet: &mut Fleet, footprint: &mut Footprint) -> Reloads {
        let start = Instant::now();
        let later = |rng: &mut Rng, lo: u64, hi: u64| {
            Instant::now() + Duration::from_millis(rng.range(lo, hi))
        };
        let mut next_kill = later(rng, 200, 1200);
        let mut next_freeze = later(rng, 500, 2000);
        let mut next_reload = later(rng, 2000, 5000);
        let mut last_reload = start;
        let (mut rules, mut reloads) = (Rules::Open, Reloads::default());
        while start.elapsed() < Duration::from_secs(self.settings.secs) {
            fleet.reap();
            fleet.thaw(rng, false);
            let now = Instant::now();
            let retired_ok = rules == Rules::Open
                && now > last_reload + RETIRED_LAG
                && now + RETIRED_LEAD < next_reload;
            while fleet.len() < self.settings.workers {
                fleet.spawn(rng, retired_ok);
            }
            if now >= next_kill {
                fleet.kill_one(rng);
                next_kill = later(rng, 200, 1200);
            }
            if now >= next_freeze {
                fleet.freeze_one(rng);
                next_freeze = later(rng, 500, 2000);
            }
            if now >= next_reload {
                rules = rules.other();
                self.reload(rules, rng, &mut reloads).await;
                next_reload = later(rng, 2000, 5000);
                last_reload = Instant::now();
            }
            footprint.fds_peak = footprint.fds_peak.max(probe::open_fds(self.pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        reloads
    }

    /// Writes `rules` and has the daemon reload them.
    async fn reload(&self, rules: Rules, rng: &mut Rng, reloads: &mut Reloads) {
        rules.write(self.dir.path());
        if rng.chance(50) {
            self.daemon.signal(Signal::HUP);
            reloads.by_sighup += 1;
        } else {
            match self.admin.ctl(CtlCommand::Reload).await {
                // Nothing but the rules changed: nothing needs a restart.
                Ok(report) if report["need_restart"] != serde_json::json!([]) => {
                    reloads.problems.push(format!("reload said {report}"));
                }
                Ok(report) => {
                    reloads.by_ctl += 1;
                    reloads.closed += report["disconnected"].as_u64().unwrap_or(0);
                }
                Err(e) => reloads.problems.push(format!("reload refused: {e}")),
            }
        }
    }

    /// With every worker gone: the daemon serves a fresh client on each
    /// transport, then settles (polled, each within [`SETTLE`]): counters
    /// balanced with only the admin connected, no more fds open than at
    /// the baseline, and resident memory within [`RSS_SLACK`] of it.
    async fn settle(&self, footprint: &mut Footprint, problems: &mut Vec<String>) {
        for url in &self.urls {
            if let Err(e) = probe::round_trip(url).await {
                problems.push(format!("no longer served: {e}"));
            }
        }
        let mut last = Vec::new();
        let balanced = async || {
            last = probe::problems(&probe::stats(&self.admin).await);
            last.is_empty()
        };
        if !eventually(SETTLE, balanced).await {
            problems.extend(last);
        }
        let (pid, before) = (self.pid, footprint.fds_before);
        if !eventually(SETTLE, async || probe::open_fds(pid) <= before).await {
            problems.push(format!(
                "open fds: {before} before, {} after; by kind before {:?}, after {:?}",
                probe::open_fds(pid),
                footprint.fd_kinds_before,
                probe::fd_kinds(pid)
            ));
        }
        footprint.fds_after = probe::open_fds(pid);
        let bound = footprint.rss_before + RSS_SLACK;
        let _ = eventually(SETTLE, async || busd_e2e::resident_memory(pid).0 <= bound).await;
        (footprint.rss_after, footprint.rss_peak) = busd_e2e::resident_memory(pid);
        if footprint.rss_after > bound {
            problems.push(format!(
                "resident memory: {} before, {} after, over the bound of before + {} (probe::RSS_SLACK)",
                probe::mib(footprint.rss_before),
                probe::mib(footprint.rss_after),
                probe::mib(RSS_SLACK)
            ));
        }
    }

    /// The daemon is still running, and logged no panic and no error; what
    /// it warned about, counted by kind.
    fn check_log(&self, problems: &mut Vec<String>) -> BTreeMap<String, usize> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid));
        let state = status.unwrap_or_default();
        if !state
            .lines()
            .any(|l| l.starts_with("State:") && !l.contains("zombie"))
        {
            problems.push("the daemon exited".to_owned());
        }
        let log = std::fs::read_to_string(self.daemon.log_path()).unwrap_or_default();
        if let Ok(keep) = std::env::var("BUSD_SOAK_KEEP_LOG") {
            std::fs::write(keep, &log).expect("keep the log");
        }
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.to_lowercase().contains("panic"))
            .collect();
        if !bad.is_empty() {
            let first: Vec<&str> = bad.iter().take(5).copied().collect();
            problems.push(format!(
                "the daemon logged {} errors or panics, first:\n{}",
                bad.len(),
                first.join("\n")
            ));
        }
        let mut warnings = BTreeMap::new();
        for line in log.lines() {
            if let Some((_, what)) = line.split_once(" WARN ") {
                // Ids, ports and counts vary; the kind of warning does not.
                let kind: String = what.chars().filter(|c| !c.is_ascii_digit()).collect();
                *warnings.entry(kind).or_default() += 1;
            }
        }
        warnings
    }
}
