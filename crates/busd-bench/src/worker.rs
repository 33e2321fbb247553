//! Workers and their handles: a worker runs as a task of this process or
//! as a child process (`--procs`), and the runner drives both the same way
//! through a [`WorkerHandle`].
//!
//! A child gets its [`WorkerSpec`] as one JSON argument, answers with one
//! JSON [`WorkerEvent`] per line on stdout, and reads `go` and `stop` lines
//! on stdin; end of stdin means stop.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::error::BenchError;
use crate::roles::drive;
use crate::spec::{RoleResult, WorkerSpec};

/// How a worker process reports, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum WorkerEvent {
    /// Connected and registered; waiting for `go`.
    Ready,
    /// Messages received (subscribers) or requests made (requesters) so far.
    Progress { n: u64 },
    /// Finished.
    Done { result: RoleResult },
    /// Could not prepare or run.
    Failed { error: String },
}

/// What the runner tells a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    Go,
    Stop,
}

/// How to start a worker process: the program and the arguments before the spec.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The executable, usually the current one.
    pub program: PathBuf,
    /// Arguments naming the hidden worker subcommand.
    pub args: Vec<OsString>,
}

/// The runner's side of one worker, task or process alike.
pub(crate) struct WorkerHandle {
    pub(crate) ready: Option<oneshot::Receiver<Result<(), String>>>,
    pub(crate) done: Option<oneshot::Receiver<Result<RoleResult, String>>>,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// Updated by the worker; read for the progress bar and the stall watchdog.
    pub(crate) progress: Arc<AtomicU64>,
}

impl WorkerHandle {
    pub(crate) fn send(&self, control: Control) {
        // A worker that is gone has its result (or its failure) already.
        let _ = self.control.send(control);
    }
}

/// Starts `spec` as a task of this process.
pub(crate) fn launch_task<B: Bus>(spec: WorkerSpec<B>) -> WorkerHandle {
    let (ready_tx, ready) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let progress = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    tokio::spawn(relay(control_rx, go_tx, stop.clone()));
    let counter = Arc::clone(&progress);
    tokio::spawn(async move {
        let result = drive(spec, ready_tx, go_rx, counter, stop).await;
        let _ = done_tx.send(result);
    });
    WorkerHandle {
        ready: Some(ready),
        done: Some(done),
        control,
        progress,
    }
}

/// Turns control messages into the start signal and the stop token; a
/// closed channel stops the worker.
async fn relay(
    mut rx: mpsc::UnboundedReceiver<Control>,
    go: oneshot::Sender<()>,
    stop: CancellationToken,
) {
    let mut go = Some(go);
    while let Some(c) = rx.recv().await {
        match c {
            Control::Go => {
                if let Some(go) = go.take() {
                    let _ = go.send(());
                }
            }
            Control::Stop => stop.cancel(),
        }
    }
    stop.cancel();
}

/// Starts `spec` as a child process running `command`.
///
/// # Errors
/// When the spec cannot be encoded or the process cannot be started.
pub(crate) fn launch_process<B: Bus>(
    spec: &WorkerSpec<B>,
    command: &WorkerCommand,
) -> Result<WorkerHandle, BenchError> {
    let json = serde_json::to_string(spec)
        .map_err(|e| BenchError::Worker(format!("cannot encode a worker's spec: {e}")))?;
    let mut child = tokio::process::Command::new(&command.program);
    if std::env::var_os("RUST_LOG").is_none() {
        // A worker's connection closing at exit is no news; its failures are in its result.
        child.env("RUST_LOG", "error");
    }
    let mut child = child
        .args(&command.args)
        .arg(json)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::io(format!("cannot start {}", command.program.display()), e))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BenchError::Worker("worker process without pipes".into()));
    };
    let (ready_tx, ready) = oneshot::channel();
    let (done_tx, done) = oneshot::channel();
    let (control, mut control_rx) = mpsc::unbounded_channel();
    let progress = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Some(c) = control_rx.recv().await {
            let line: &[u8] = match c {
                Control::Go => b"go\n",
                Control::Stop => b"stop\n",
            };
            if stdin.write_all(line).await.is_err() || stdin.flush().await.is_err() {
                break;
            }
        }
        // Dropping stdin closes it: the worker stops.
    });
    let counter = Arc::clone(&progress);
    tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        let mut lines = BufReader::new(stdout).lines();
        let mut outcome = Err("the worker exited without a result".to_string());
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<WorkerEvent>(&line) {
                Ok(WorkerEvent::Ready) => {
                    ready_tx.take().map(|tx| tx.send(Ok(())));
                }
                Ok(WorkerEvent::Progress { n }) => counter.store(n, Ordering::Relaxed),
                Ok(WorkerEvent::Done { result }) => outcome = Ok(result),
                Ok(WorkerEvent::Failed { error }) => {
                    ready_tx.take().map(|tx| tx.send(Err(error.clone())));
                    outcome = Err(error);
                }
                Err(_) => eprintln!("busd bench worker: {line}"),
            }
        }
        if let Some(tx) = ready_tx.take() {
            let _ = tx.send(Err(outcome.clone().err().unwrap_or_default()));
        }
        // Its stdout is closed: it is exiting; reap it, bounded.
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        let _ = done_tx.send(outcome);
    });
    Ok(WorkerHandle {
        ready: Some(ready),
        done: Some(done),
        control,
        progress,
    })
}

/// The worker process: runs the spec in `spec_json` and reports on stdout.
pub async fn worker_main<B: Bus>(spec_json: &str) -> ExitCode {
    let spec: WorkerSpec<B> = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => {
            emit(&WorkerEvent::Failed {
                error: format!("invalid worker spec: {e}"),
            });
            return ExitCode::FAILURE;
        }
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let (go_tx, go_rx) = oneshot::channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let progress = Arc::new(AtomicU64::new(0));
    // A plain thread: a blocking stdin read must not hold up the runtime's exit.
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let c = match line.trim() {
                "go" => Control::Go,
                "stop" => Control::Stop,
                _ => continue,
            };
            if control_tx.send(c).is_err() {
                break;
            }
        }
    });
    tokio::spawn(relay(control_rx, go_tx, stop.clone()));
    let mut run = tokio::spawn(drive(spec, ready_tx, go_rx, Arc::clone(&progress), stop));
    match ready_rx.await {
        Ok(Ok(())) => emit(&WorkerEvent::Ready),
        Ok(Err(error)) => emit(&WorkerEvent::Failed { error }),
        Err(_) => {}
    }
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let outcome = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = tick.tick() => emit(&WorkerEvent::Progress { n: progress.load(Ordering::Relaxed) }),
        }
    };
    match outcome {
        Ok(Ok(result)) => {
            emit(&WorkerEvent::Done { result });
            ExitCode::SUCCESS
        }
        Ok(Err(error)) => {
            emit(&WorkerEvent::Failed { error });
            ExitCode::FAILURE
        }
        Err(e) => {
            emit(&WorkerEvent::Failed {
                error: format!("worker task failed: {e}"),
            });
            ExitCode::FAILURE
        }
    }
}

fn emit(event: &WorkerEvent) {
    let Ok(line) = serde_json::to_string(event) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    // The runner reads lines; nothing to do if it is gone.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
