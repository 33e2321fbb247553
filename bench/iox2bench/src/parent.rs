//! The parent of a run: creates the services, starts the subscribers and
//! then the publisher as processes (this binary again), starts the clock
//! once all are ready, collects their results and what they cost, and
//! prints the summary.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

use crate::RunArgs;
use crate::report::{Cost, Summary};
use crate::service::{self, Names};
use crate::worker::{GO, READY, RoleResult};

/// How long workers may take to make their ports.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the publisher may take to report and leave once every
/// subscriber has, and how long any worker then may take to exit.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Runs `workload` as `args` say; whether the run was clean.
///
/// # Errors
/// When the run could not start: bad options, services or workers that
/// could not be made. A run that starts always prints a summary.
pub(crate) fn run(
    workload: &'static str,
    args: RunArgs,
    default_subs: u32,
) -> anyhow::Result<bool> {
    let subs = args.subs.unwrap_or(default_subs);
    ensure!(
        args.size >= 8,
        "--size must be at least 8, for the sequence number"
    );
    ensure!(
        args.count >= 1 && subs >= 1,
        "--count and --subs must be at least 1"
    );
    ensure!(args.buffer >= 1, "--buffer must be at least 1");
    let names = Names::unique(&args, subs);
    let node = service::node()?;
    // Services of runs that were killed are removed with their dead nodes.
    node.try_cleanup_dead_nodes();
    let services = service::create(&node, &names)?;

    let mut workers = Workers::new();
    for _ in 0..subs {
        workers.spawn("subscriber", &names)?;
    }
    workers.wait_ready()?;
    workers.spawn("publisher", &names)?;
    workers.wait_ready()?;
    let start_ns = service::unix_ns();
    workers.go()?;
    let mut results = workers.collect(subs as usize);
    workers.wait_all();
    let cost = Cost::of_children()?;
    drop(services); // the node, dropped last, removes them

    let mut summary = Summary {
        system: "iceoryx2",
        workload,
        transport: "shm",
        size: args.size,
        count: args.count,
        procs: true,
        pubs: 1,
        subs,
        buffer: args.buffer,
        ..Summary::default()
    };
    let publisher = results.pop().unwrap_or_else(|| Err("never started".into()));
    summary.add(publisher, results, start_ns);
    summary.set_cost(cost);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        summary.print_text();
    }
    Ok(summary.is_clean())
}

/// A line from worker `.0`, or `None` at the end of its output.
type Line = (usize, Option<String>);

/// The worker processes of a run, in the order they were started.
struct Workers {
    children: Vec<Child>,
    /// Their stdins; closing one tells the worker to leave.
    stdins: Vec<Option<ChildStdin>>,
    /// Which have been waited for.
    reaped: Vec<bool>,
    lines: Receiver<Line>,
    sender: Sender<Line>,
    /// Workers told `go` or waited for already.
    ready: usize,
}

impl Workers {
    fn new() -> Self {
        let (sender, lines) = channel();
        Self {
            children: Vec::new(),
            stdins: Vec::new(),
            reaped: Vec::new(),
            lines,
            sender,
            ready: 0,
        }
    }

    /// Starts a worker playing `role`; a thread forwards its output lines.
    fn spawn(&mut self, role: &str, names: &Names) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("cannot find the running binary")?;
        let mut child = Command::new(exe)
            .arg(role)
            .args(names.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the {role}"))?;
        let index = self.children.len();
        let stdout = child.stdout.take().context("no stdout")?;
        self.stdins.push(child.stdin.take());
        self.children.push(child);
        self.reaped.push(false);
        let sender = self.sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send((index, Some(line))).is_err() {
                    return;
                }
            }
            let _ = sender.send((index, None));
        });
        Ok(())
    }

    /// Waits until every worker started since the last call says it is ready.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while self.ready < self.children.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((_, Some(line))) if line == READY => self.ready += 1,
                Ok((i, Some(line))) => bail!("worker {i} said {line:?} before it was ready"),
                Ok((i, None)) => bail!("worker {i} ended before it was ready"),
                Err(_) => bail!("workers not ready within {READY_TIMEOUT:?}"),
            }
        }
        Ok(())
    }

    /// Tells every worker to start.
    fn go(&mut self) -> anyhow::Result<()> {
        for stdin in self.stdins.iter_mut().flatten() {
            writeln!(stdin, "{GO}")
                .and_then(|()| stdin.flush())
                .context("cannot start a worker")?;
        }
        Ok(())
    }

    /// Each worker's result, in start order: the `subs` subscribers (each
    /// bounded by its own idle timeout), then the publisher, which is let
    /// go once they all have reported and given [`EXIT_GRACE`] to report.
    fn collect(&mut self, subs: usize) -> Vec<Result<RoleResult, String>> {
        let mut results: Vec<Option<Result<RoleResult, String>>> = vec![None; self.children.len()];
        let mut deadline = None;
        while results.iter().any(Option::is_none) {
            if deadline.is_none() && results[..subs].iter().all(Option::is_some) {
                self.stdins.iter_mut().for_each(|s| drop(s.take()));
                deadline = Some(Instant::now() + EXIT_GRACE);
            }
            let line = match deadline {
                None => self.lines.recv().ok(),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    self.lines.recv_timeout(left).ok()
                }
            };
            match line {
                Some((i, Some(line))) => {
                    let r = serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"));
                    results[i].get_or_insert(r);
                }
                Some((i, None)) => {
                    results[i].get_or_insert(Err("ended without a result".into()));
                }
                None => break,
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(format!("no result within {EXIT_GRACE:?}"))))
            .collect()
    }

    /// Waits for every worker to exit, killing those that do not within
    /// [`EXIT_GRACE`], so that their usage is counted and none is left.
    fn wait_all(&mut self) {
        self.stdins.iter_mut().for_each(|s| drop(s.take()));
        let deadline = Instant::now() + EXIT_GRACE;
        for (child, reaped) in self.children.iter_mut().zip(&mut self.reaped) {
            while !*reaped {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => *reaped = true,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!("iox2bench: worker {} did not exit; killing it", child.id());
                        let _ = child.kill();
                        let _ = child.wait();
                        *reaped = true;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }
}

impl Drop for Workers {
    /// Kills the workers of a run that could not start.
    fn drop(&mut self) {
        for (child, reaped) in self.children.iter_mut().zip(&self.reaped) {
            if !reaped {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
