//! The runner: plans the workers of a workload, starts them (tasks or
//! processes), starts the clock once all are ready, and collects results,
//! with a progress bar and a watchdog so that no wait is unbounded.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bus::Bus;
use crate::error::{BenchError, ensure};
use crate::spec::{CommonArgs, Role, RoleResult, WorkerSpec, Workload, unix_ns};
use crate::worker::{Control, WorkerCommand, WorkerHandle, launch_process, launch_task};

/// How long workers may take to connect and register.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace after the stop signal before a silent worker is given up on.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the workers run.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Tasks of this process.
    Tasks,
    /// One process per worker, started with this command.
    Procs(WorkerCommand),
}

/// What a run produced: each worker's role and result (or why it has none).
#[derive(Debug)]
pub struct Outcome {
    /// When the workers were told to go (Unix ns).
    pub start_ns: u64,
    /// One entry per worker.
    pub workers: Vec<(Role, Result<RoleResult, String>)>,
}

/// The workers a workload needs, subscribers and responders first.
fn plan<B: Bus>(bus: &B, args: &CommonArgs, url: &str) -> Vec<WorkerSpec<B>> {
    // Unique subjects, so that runs sharing a daemon never see each other's traffic.
    let run = format!("bench.{}.{}", std::process::id(), unix_ns() % 1_000_000_007);
    let spec = |name: String, role| WorkerSpec {
        bus: bus.clone(),
        url: url.to_string(),
        name,
        role,
    };
    let count = args.count();
    let idle_timeout_ms = u64::try_from(args.idle_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut specs = Vec::new();
    match args.workload {
        Workload::Pubsub | Workload::Fanout => {
            let subject = format!("{run}.data");
            for i in 0..args.subs() {
                let role = Role::Subscriber {
                    subject: subject.clone(),
                    pubs: args.pubs(),
                    count: args.duration.is_none().then_some(count),
                    idle_timeout_ms,
                };
                specs.push(spec(format!("bench-sub-{i}"), role));
            }
            for index in 0..args.pubs() {
                let role = Role::Publisher {
                    subject: subject.clone(),
                    index,
                    count,
                    duration_ms: args.duration_ms(),
                    size: args.size,
                    window: args.window(),
                };
                specs.push(spec(format!("bench-pub-{index}"), role));
            }
        }
        Workload::Reqrep => {
            let service = format!("{run}.echo");
            for i in 0..args.responders {
                specs.push(spec(
                    format!("bench-responder-{i}"),
                    Role::Responder {
                        service: service.clone(),
                    },
                ));
            }
            for i in 0..args.requesters {
                let role = Role::Requester {
                    service: service.clone(),
                    count,
                    duration_ms: args.duration_ms(),
                    size: args.size,
                    timeout_ms: idle_timeout_ms,
                };
                specs.push(spec(format!("bench-requester-{i}"), role));
            }
        }
        // Its connections have no start or end to coordinate: see `idle`.
        Workload::Idle => {}
    }
    specs
}

/// Runs `args.workload` against `url` with the driver `bus`.
///
/// # Errors
/// When a worker cannot be started or does not get ready in time; a run
/// that starts always yields an [`Outcome`], losses and failures included.
pub async fn execute<B: Bus>(
    bus: &B,
    args: &CommonArgs,
    url: &str,
    mode: &Mode,
) -> Result<Outcome, BenchError> {
    args.validate()?;
    ensure(args.workload != Workload::Idle, || {
        "the idle workload is run by bench::idle, not by the worker runner".into()
    })?;
    let specs = plan(bus, args, url);
    let roles: Vec<Role> = specs.iter().map(|s| s.role.clone()).collect();
    let mut handles = Vec::with_capacity(specs.len());
    // Passive workers first, and ready, so that nothing is sent before they listen.
    let (passive, active): (Vec<_>, Vec<_>) = specs.into_iter().partition(|s| s.role.is_passive());
    for group in [passive, active] {
        let first = handles.len();
        for spec in group {
            handles.push(match mode {
                Mode::Tasks => launch_task(spec),
                Mode::Procs(command) => launch_process(&spec, command)?,
            });
        }
        wait_ready(&mut handles[first..]).await?;
    }
    let counted: Vec<bool> = roles
        .iter()
        .map(|r| matches!(r, Role::Subscriber { .. } | Role::Requester { .. }))
        .collect();
    // A timed run's total is known only at its end.
    let total = match args.workload {
        _ if args.duration.is_some() => None,
        Workload::Reqrep => Some(u64::from(args.requesters).saturating_mul(args.count())),
        _ => Some((u64::from(args.pubs()) * u64::from(args.subs())).saturating_mul(args.count())),
    };
    let bar = progress_bar(total, args.json);
    let start_ns = unix_ns();
    for h in &handles {
        h.send(Control::Go);
    }
    let stall = args.idle_timeout + Duration::from_secs(40);
    let mut results: Vec<Option<Result<RoleResult, String>>> = vec![None; handles.len()];
    // Everyone but the responders finishes by itself; responders are then stopped.
    let (finishing, serving): (Vec<usize>, Vec<usize>) =
        (0..handles.len()).partition(|&i| !matches!(roles[i], Role::Responder { .. }));
    collect(
        &mut handles,
        &finishing,
        &counted,
        &bar,
        stall,
        &mut results,
    )
    .await;
    for &i in &serving {
        handles[i].send(Control::Stop);
    }
    collect(
        &mut handles,
        &serving,
        &counted,
        &bar,
        STOP_GRACE,
        &mut results,
    )
    .await;
    bar.finish_and_clear();
    let workers = roles
        .into_iter()
        .zip(results)
        .map(|(role, r)| (role, r.unwrap_or_else(|| Err("no result in time".into()))))
        .collect();
    Ok(Outcome { start_ns, workers })
}

async fn wait_ready(handles: &mut [WorkerHandle]) -> Result<(), BenchError> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    for h in handles {
        let Some(ready) = h.ready.take() else {
            continue;
        };
        match tokio::time::timeout_at(deadline, ready).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(BenchError::Worker(e)),
            Ok(Err(_)) => {
                return Err(BenchError::Worker(
                    "a worker ended before it was ready".into(),
                ));
            }
            Err(_) => {
                return Err(BenchError::Worker(format!(
                    "workers not ready within {READY_TIMEOUT:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Waits for the results of the workers `which`, updating the bar. If the
/// counted progress stands still for `stall`, every worker is told to stop
/// and, after [`STOP_GRACE`], those still silent are given up on.
async fn collect(
    handles: &mut [WorkerHandle],
    which: &[usize],
    counted: &[bool],
    bar: &ProgressBar,
    stall: Duration,
    results: &mut [Option<Result<RoleResult, String>>],
) {
    let counters: Vec<Arc<AtomicU64>> = handles
        .iter()
        .zip(counted)
        .filter(|(_, c)| **c)
        .map(|(h, _)| Arc::clone(&h.progress))
        .collect();
    let progress = || {
        counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut pending: FuturesUnordered<_> = which
        .iter()
        .filter_map(|&i| {
            handles[i]
                .done
                .take()
                .map(|rx| async move { (i, rx.await) })
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let (mut last, mut since, mut stopping) = (progress(), Instant::now(), false);
    while !pending.is_empty() {
        tokio::select! {
            Some((i, r)) = pending.next() => {
                results[i] = Some(r.unwrap_or_else(|_| Err("the worker vanished".into())));
            }
            _ = tick.tick() => {
                let now = progress();
                bar.set_position(now);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if !stopping && since.elapsed() > stall {
                    handles.iter().for_each(|h| h.send(Control::Stop));
                    (stopping, since) = (true, Instant::now());
                } else if stopping && since.elapsed() > STOP_GRACE {
                    break;
                }
            }
        }
    }
}

/// A bar on a terminal, or a spinner with a count when the `total` is not
/// known in advance; hidden for `--json` or when stdout is not a terminal.
pub(super) fn progress_bar(total: Option<u64>, json: bool) -> ProgressBar {
    if json || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::new(total),
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{spinner} [{elapsed_precise}] {pos} ({per_sec})",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
