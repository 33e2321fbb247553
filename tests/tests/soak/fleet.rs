//! The soak's client processes: started to keep a number of them alive,
//! each leaving on its own when its life is over (a graceful disconnect),
//! unless the soak SIGKILLs it first, or freezes it (SIGSTOP) for a while
//! and then lets it go on or kills it frozen.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::rng::Rng;
use crate::rules::{IDENTITIES, RETIRED};
use crate::worker::{SPEC_VAR, Spec};

/// How long after its planned end a worker may take to exit before it
/// counts as hung (its own shutdown is bounded by a few seconds).
const HUNG_AFTER: Duration = Duration::from_secs(20);

/// One running worker.
struct Live {
    id: u64,
    child: Child,
    /// When it must have exited by.
    due: Instant,
    /// Frozen until then (SIGSTOP), if it is.
    frozen: Option<Instant>,
    /// The soak killed it (SIGKILL): no report, no exit code to check.
    killed: bool,
}

/// What happened to the fleet, for the soak's report.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) spawned: u64,
    pub(crate) exited: u64,
    pub(crate) killed: u64,
    pub(crate) frozen: u64,
    pub(crate) killed_frozen: u64,
    /// Workers that exited with a failure (a panic): id and status.
    pub(crate) failed: Vec<(u64, String)>,
    /// Workers still running long after their end, killed.
    pub(crate) hung: Vec<u64>,
}

/// The running workers and how to make more.
pub(crate) struct Fleet {
    live: Vec<Live>,
    next_id: u64,
    template: Spec,
    pub(crate) tally: Tally,
}

impl Fleet {
    /// Workers made from `template` (its id, seed, life and report are
    /// set per worker), reporting into `dir`.
    pub(crate) fn new(template: Spec) -> Self {
        Self {
            live: Vec::new(),
            next_id: 0,
            template,
            tally: Tally::default(),
        }
    }

    /// Workers running now.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Starts one worker with an identity, a seed and a life of 0.5 to
    /// 10 s from `rng`; as Retired only if `retired_ok`. A claim of a
    /// package the rules do not have fails its proof, and after a failed
    /// proof the daemon judges every package claim of the uid (the whole
    /// soak's) a delay apart, for a minute: so Retired workers are started
    /// only while the rules have it, and not shortly before they will not.
    pub(crate) fn spawn(&mut self, rng: &mut Rng, retired_ok: bool) {
        self.next_id += 1;
        let id = self.next_id;
        let life = Duration::from_millis(rng.range(500, 10_000));
        let identity = loop {
            let i = rng.range(0, IDENTITIES.len() as u64) as usize;
            if retired_ok || IDENTITIES[i].1 != Some(RETIRED) {
                break i;
            }
        };
        let spec = Spec {
            id,
            seed: rng.next_u64(),
            identity,
            life,
            report: report_path(&self.template.report, id),
            ..self.template.clone()
        };
        let stderr = std::fs::File::create(spec.report.with_extension("stderr"))
            .expect("a worker's stderr file");
        let child = Command::new(std::env::current_exe().expect("this test binary"))
            .args([
                "--ignored",
                "--exact",
                "worker",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SPEC_VAR, spec.encode())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // A group of its own: were the soak's group orphaned (the shell
            // that started it gone), the kernel would SIGHUP every member
            // while one of them is frozen, workers included.
            .process_group(0)
            .spawn()
            .expect("spawn a worker");
        self.live.push(Live {
            id,
            child,
            due: Instant::now() + life + HUNG_AFTER,
            frozen: None,
            killed: false,
        });
        self.tally.spawned += 1;
    }

    /// SIGKILLs a worker `rng` picks, mid-traffic.
    pub(crate) fn kill_one(&mut self, rng: &mut Rng) {
        let Some(i) = self.pick(rng) else { return };
        signal(&self.live[i].child, Signal::KILL);
        self.live[i].killed = true;
        self.tally.killed += 1;
    }

    /// Freezes a worker `rng` picks for 0.3 to 3 s: its sockets fill up
    /// and its requests and calls wait, as a stuck process's would.
    pub(crate) fn freeze_one(&mut self, rng: &mut Rng) {
        let Some(i) = self.pick(rng) else { return };
        let w = &mut self.live[i];
        if w.frozen.is_some() {
            return;
        }
        signal(&w.child, Signal::STOP);
        let thaw = Instant::now() + Duration::from_millis(rng.range(300, 3000));
        w.frozen = Some(thaw);
        // Its deadline moves with the time it cannot run.
        w.due = w.due.max(thaw + HUNG_AFTER);
        self.tally.frozen += 1;
    }

    /// Thaws the frozen workers whose time is up: three in ten are killed
    /// instead, frozen; with `all`, every frozen worker goes on.
    pub(crate) fn thaw(&mut self, rng: &mut Rng, all: bool) {
        let now = Instant::now();
        for w in &mut self.live {
            let Some(until) = w.frozen else { continue };
            if !all && until > now {
                continue;
            }
            w.frozen = None;
            if !all && rng.chance(30) {
                signal(&w.child, Signal::KILL);
                w.killed = true;
                self.tally.killed_frozen += 1;
            }
            signal(&w.child, Signal::CONT);
        }
    }

    /// Collects the workers that exited; kills those long overdue.
    pub(crate) fn reap(&mut self) {
        let now = Instant::now();
        let tally = &mut self.tally;
        self.live.retain_mut(|w| {
            match w.child.try_wait() {
                Ok(Some(status)) => {
                    if !w.killed {
                        tally.exited += 1;
                        if !status.success() {
                            tally.failed.push((w.id, status.to_string()));
                        }
                    }
                    return false;
                }
                Ok(None) => {}
                Err(e) => panic!("wait for worker {}: {e}", w.id),
            }
            if w.due < now && !w.killed {
                signal(&w.child, Signal::KILL);
                w.killed = true;
                tally.hung.push(w.id);
            }
            true
        });
    }

    /// Waits (reaping) until every worker has exited, at most `limit`.
    pub(crate) async fn drain(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while !self.live.is_empty() && Instant::now() < until {
            self.reap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for w in &mut self.live {
            signal(&w.child, Signal::KILL);
            self.tally.hung.push(w.id);
            let _ = w.child.wait();
        }
        self.live.clear();
    }

    /// A live worker not yet killed, if any.
    fn pick(&self, rng: &mut Rng) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.live.len())
            .filter(|&i| !self.live[i].killed)
            .collect();
        (!candidates.is_empty()).then(|| *rng.pick(&candidates))
    }
}

impl Drop for Fleet {
    /// A failing soak leaves no worker behind.
    fn drop(&mut self) {
        for w in &mut self.live {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

fn signal(child: &Child, signal: Signal) {
    if let Some(pid) = Pid::from_raw(child.id() as i32) {
        // It may have exited already: nothing to do then.
        let _ = kill_process(pid, signal);
    }
}

/// Worker `id`'s report, beside `template`.
fn report_path(template: &Path, id: u64) -> PathBuf {
    template.with_file_name(format!("worker-{id}.json"))
}

/// The reports of the workers that exited on their own, as JSON.
pub(crate) fn reports(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("the reports' dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("a report");
            out.push(serde_json::from_str(&text).expect("a report's JSON"));
        }
    }
    out
}
