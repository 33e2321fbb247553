//! `iox2bench`: busd bench's large-payload pub/sub workloads over
//! iceoryx2, the brokerless zero-copy shared-memory IPC library, for
//! `bench/compare.sh`.
//!
//! ```text
//! iox2bench pubsub [--size BYTES] [--count N] [--subs M] [--procs] [--json]
//! iox2bench fanout [--subs M] [--size BYTES] [--count N] [--procs] [--json]
//! ```
//!
//! One publisher and M subscribers run as separate processes (this binary
//! re-executed with a hidden role; `--procs` is accepted for symmetry
//! with `busd bench` and is always on). They use iceoryx2 as its own
//! examples and benchmarks do: the publisher loans a slice sample, writes
//! it in place (the sequence number, then the filler `busd bench` writes)
//! and sends it, then notifies an event service; subscribers sleep on
//! that event's listener and drain their buffer when woken. The service
//! does not overflow and the publisher retries until a full subscriber
//! buffer has room, so a run is lossless by construction and losses are
//! still counted, never hidden. The result is one JSON line in the schema
//! of busd's `Summary` (plus the CPU time and minor faults of the worker
//! processes per message sent). Exit code 0 for a clean run, 3 for a run
//! that lost messages or workers, 1 when it could not run.
//!
//! It is a crate of its own, outside busd's workspace, so that busd's
//! builds and CI never compile iceoryx2.

#![forbid(unsafe_code)]

mod parent;
mod publisher;
mod report;
mod service;
mod subscriber;
mod worker;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};

/// Exit code of a run that completed but lost messages or workers.
const EXIT_NOT_CLEAN: u8 = 3;

/// The command line of `iox2bench`.
#[derive(Debug, Parser)]
#[command(
    name = "iox2bench",
    version,
    about = "busd bench's pub/sub workloads, over iceoryx2"
)]
enum Cli {
    /// One publisher → M subscribers (default 1).
    Pubsub(RunArgs),
    /// One publisher → M subscribers (default 8), reported as fanout.
    Fanout(RunArgs),
    /// The publisher of a run (internal).
    #[command(hide = true)]
    Publisher(service::Names),
    /// A subscriber of a run (internal).
    #[command(hide = true)]
    Subscriber(service::Names),
}

/// The options of a run, as `busd bench` names them.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Payload size in bytes (at least 8, for the sequence number).
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) size: usize,
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) count: u64,
    /// Subscribers [default: 1 for pubsub, 8 for fanout].
    #[arg(long)]
    pub(crate) subs: Option<u32>,
    /// Samples each subscriber's buffer holds before the publisher waits.
    #[arg(long, default_value_t = 16)]
    pub(crate) buffer: usize,
    /// How long a subscriber waits for its next message before it counts
    /// the rest as lost, e.g. `10s` (a bare number is seconds).
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub(crate) idle_timeout: Duration,
    /// Workers run as processes (always; accepted for symmetry with busd bench).
    #[arg(long)]
    pub(crate) procs: bool,
    /// One JSON line instead of a readable summary.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Whole seconds, with or without an `s`.
fn seconds(text: &str) -> Result<Duration, String> {
    text.trim_end_matches('s')
        .parse()
        .map(Duration::from_secs)
        .map_err(|e| format!("{text:?} is not a number of seconds: {e}"))
}

fn main() -> ExitCode {
    // Quiet unless asked (IOX2_LOG_LEVEL): every process would say it runs on
    // the default config.
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
    let result = match Cli::parse() {
        Cli::Pubsub(args) => parent::run("pubsub", args, 1),
        Cli::Fanout(args) => parent::run("fanout", args, 8),
        Cli::Publisher(names) => worker::serve(|c| publisher::run(&names, c)),
        Cli::Subscriber(names) => worker::serve(|c| subscriber::run(&names, c)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_NOT_CLEAN),
        Err(e) => {
            eprintln!("iox2bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
