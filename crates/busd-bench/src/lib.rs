//! busd's benchmark harness: `busd bench`, throughput and latency of a
//! daemon in the manner of `nats bench`, and the workloads `natsbench`
//! runs against NATS.
//!
//! ```text
//! busd bench pubsub|fanout|reqrep [--server URL | --transport tcp|unix|shm]
//!     [--size BYTES] [--count N | --duration TIME] [--pubs N] [--subs M] [--requesters K]
//!     [--responders R] [--window W|off] [--overflow POLICY]
//!     [--segment-threshold BYTES|off] [--procs] [--json]
//! busd bench idle [--server URL | --transport tcp|unix|shm] [--conns N] [--subjects K]
//!     [--hold TIME] [--json]
//! ```
//!
//! Without `--server` it starts its own daemon in this process (embedded
//! config, `127.0.0.1:0`, a temp socket). Workers run as tasks, or with
//! `--procs` as processes re-executing the running binary with the
//! worker's spec (`busd bench-worker SPEC`; see [`worker_main`]).
//! Pub/sub runs check that every subscriber got every message of every
//! publisher, in order; losses are reported, never hidden. Exit code 0 for
//! a clean run, 3 for a run that completed with losses or failed workers,
//! 1 when it could not run.
//!
//! `idle` opens N connections, each with K subscriptions, and holds them
//! (see [`idle()`]), for measuring what connections cost a daemon.
//!
//! The workload code is generic over [`Bus`], so `bench/natsbench` runs the
//! very same workloads against NATS with `async-nats`, outside busd.

#![forbid(unsafe_code)]

mod bus;
mod error;
mod idle;
mod pubsub;
mod report;
mod reqrep;
mod roles;
mod runner;
mod spec;
mod target;
mod worker;

pub use bus::{Bus, BusdBus, BusdConn, BusdError, Call, Conn};
pub use error::{BenchError, BoxError, chain};
pub use idle::{IdleSummary, idle};
pub use report::{Summary, print_json, print_table};
pub use runner::{Mode, Outcome, execute};
pub use spec::{CommonArgs, Role, RoleResult, Window, WorkerSpec, Workload};
pub use target::TransportArg;
pub use worker::{WorkerCommand, worker_main};

use busd_client::Overflow;

/// Exit code of a run that completed but lost messages or workers.
pub const EXIT_NOT_CLEAN: u8 = 3;

/// Options of `busd bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Daemon URL (tcp://127.0.0.1:PORT, unix:///path, shm:///path); without it the
    /// bench starts its own daemon in this process.
    #[arg(long, short)]
    server: Option<String>,
    /// Which endpoint of the bench's own daemon to use (not with --server).
    #[arg(long, value_enum, default_value_t = TransportArg::Unix, conflicts_with = "server")]
    transport: TransportArg,
    /// What the daemon does with a subscriber that falls behind.
    #[arg(long, value_enum, default_value_t = OverflowArg::Disconnect)]
    overflow: OverflowArg,
    /// Over shm, payloads of at least this many bytes go through the payload
    /// pools (sealed memfds from 64 KiB when a pool has no room)
    /// ("off": always through the rings), to compare the two paths.
    #[arg(long, default_value_t = busd_client::DEFAULT_SEGMENT_THRESHOLD, value_parser = parse_threshold)]
    segment_threshold: usize,
    /// Publishers write each payload of at least --segment-threshold bytes
    /// straight into a payload buffer in shared memory
    /// (`Client::payload_buffer`/`publish_buffer`) instead of building it
    /// and then publishing it (one copy fewer; over shm only).
    #[arg(long)]
    in_place: bool,
}

/// A byte count, or "off" (never).
fn parse_threshold(text: &str) -> Result<usize, String> {
    match text {
        "off" => Ok(usize::MAX),
        n => n
            .parse()
            .map_err(|e| format!("{text:?} is neither a byte count nor \"off\": {e}")),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OverflowArg {
    Disconnect,
    DropOldest,
    Block,
}

impl OverflowArg {
    fn policy(self) -> Overflow {
        match self {
            Self::Disconnect => Overflow::Disconnect,
            Self::DropOldest => Overflow::DropOldest,
            Self::Block => Overflow::Block,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disconnect => "disconnect",
            Self::DropOldest => "drop-oldest",
            Self::Block => "block",
        }
    }
}

/// Options of the hidden `busd bench-worker` subcommand.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The worker's spec, as JSON.
    pub spec: String,
}

/// Runs `busd bench`; whether the run was clean (every message arrived,
/// every worker finished).
///
/// # Errors
/// When the bench could not run: invalid options, no daemon, a worker
/// that could not start.
pub async fn run(mut args: Args) -> Result<bool, BenchError> {
    args.common.validate()?;
    // Lossless back-pressure already bounds what a publisher has in
    // flight (its SDK's queue, then the daemon's wait for room), so a
    // window of confirmations on top would only add round trips.
    if matches!(args.overflow, OverflowArg::Block) && args.common.window.is_none() {
        args.common.window = Some(Window::Off);
    }
    // Every connection is an fd here (six over shm), and an in-process
    // daemon's end is one more.
    if let Err(e) = busd_daemon::raise_nofile_limit() {
        eprintln!("busd bench: cannot raise the open-files limit: {e}");
    }
    let target = target::Target::resolve(args.server, args.transport).await?;
    let bus = BusdBus {
        overflow: args.overflow.policy(),
        segment_threshold: args.segment_threshold,
        in_place: args.in_place,
    };
    if args.common.workload == Workload::Idle {
        let outcome = idle(&bus, &args.common, target.url(), target.transport()).await;
        target.stop().await;
        let summary = outcome?;
        summary.print(args.common.json);
        return Ok(summary.is_clean());
    }
    let mode = if args.common.procs {
        Mode::Procs(WorkerCommand {
            program: std::env::current_exe()
                .map_err(|e| BenchError::io("cannot find the running binary", e))?,
            args: vec!["bench-worker".into()],
        })
    } else {
        Mode::Tasks
    };
    let transport = target.transport();
    let outcome = execute(&bus, &args.common, target.url(), &mode).await;
    target.stop().await;
    let mut summary = Summary::new(bus.system(), transport, &args.common, &outcome?);
    if args.common.workload != Workload::Reqrep {
        summary.overflow = Some(args.overflow.name().into());
        summary.in_place =
            args.in_place && transport == "shm" && args.common.size >= args.segment_threshold;
    }
    if args.common.json {
        print_json(std::slice::from_ref(&summary));
    } else {
        print_table(std::slice::from_ref(&summary));
    }
    Ok(summary.is_clean())
}
