//! Subcommands of the `busd` binary; `main` dispatches to them.

mod attach;
mod bench;
mod check_config;
mod client_args;
mod ctl;
mod ctl_dry_run;
mod ctl_table;
mod docs;
mod explain;
mod monitor;
mod monitor_line;
mod payload;
mod pfn;
mod publish;
mod reply;
mod reply_exec;
mod request;
mod run;
mod service_manager;
mod subscribe;
mod token;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// busd: a local message bus with package access rules.
#[derive(Debug, Parser)]
#[command(name = "busd", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format: of the daemon's log (`busd run`), and of the warnings and
    /// errors other commands log.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon.
    Run(run::Args),
    /// Publish a message.
    Pub(publish::Args),
    /// Print messages on a subject, one line each.
    Sub(subscribe::Args),
    /// Send a request and print the response.
    Req(request::Args),
    /// Answer requests to a service.
    Reply(reply::Args),
    /// Measure throughput and latency (pubsub, fanout, reqrep) or held connections (idle).
    Bench(busd_bench::Args),
    /// One worker of `busd bench --procs` (internal).
    #[command(hide = true)]
    BenchWorker(busd_bench::WorkerArgs),
    /// Show the daemon's live state or reload its config (admin only).
    Ctl(ctl::Args),
    /// Show every message on the bus as it is routed (admin only).
    Monitor(monitor::Args),
    /// Validate a configuration file and explain its access rules.
    CheckConfig(check_config::Args),
    /// Print the package family name of a package name and publisher.
    Pfn(pfn::Args),
    /// Make a package's token file.
    Token(token::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionArgs),
    /// Print the man page, busd(1), as roff.
    Man,
}

/// Runs the parsed command line; the process exits with the code returned.
pub fn main(cli: Cli) -> ExitCode {
    // The daemon logs its life at info; client commands only what goes wrong.
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(cli.log_format, default_level);
    match cli.command {
        // The daemon sizes its runtime from its configuration.
        Command::Run(args) => run::main(args),
        Command::Pub(args) => on_runtime(publish::run(args)),
        Command::Sub(args) => on_runtime(subscribe::run(args)),
        Command::Req(args) => on_runtime(request::run(args)),
        Command::Reply(args) => on_runtime(reply::run(args)),
        Command::Bench(args) => on_runtime_as_is(bench::run(args)),
        Command::BenchWorker(args) => on_runtime_as_is(bench::worker(args)),
        Command::Ctl(args) => on_runtime(ctl::run(args)),
        Command::Monitor(args) => on_runtime(monitor::run(args)),
        Command::CheckConfig(args) => check_config::run(&args),
        Command::Pfn(args) => pfn::run(&args),
        Command::Token(args) => token::run(&args),
        Command::Completions(args) => docs::completions(&args),
        Command::Man => docs::man(),
    }
}

/// Writes `text` to stdout. A reader that has gone (`busd ctl | head`)
/// ends the command quietly, with success, as it would any filter's.
pub(crate) fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("busd: cannot write the answer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command on a multi-threaded runtime, ending it with the
/// exit code a signal's default action gives (128 + the signal) on
/// SIGTERM, SIGINT or SIGHUP: as PID 1 of a container a process has no
/// default actions, and `docker stop` would wait out its grace for one.
fn on_runtime(command: impl Future<Output = ExitCode>) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let stopped = async {
        let kinds = [
            (SignalKind::terminate(), 15),
            (SignalKind::interrupt(), 2),
            (SignalKind::hangup(), 1),
        ];
        let mut waits = Vec::new();
        for (kind, number) in kinds {
            if let Ok(mut s) = signal(kind) {
                waits.push(Box::pin(async move {
                    s.recv().await;
                    number
                }));
            }
        }
        if waits.is_empty() {
            return std::future::pending().await;
        }
        futures::future::select_all(waits).await.0
    };
    let stoppable = async {
        tokio::select! {
            code = command => code,
            number = stopped => ExitCode::from(128 + number),
        }
    };
    on_runtime_as_is(stoppable)
}

/// Runs a command on a multi-threaded runtime, leaving signals to it
/// (`busd bench` prints its results on Ctrl-C).
fn on_runtime_as_is(command: impl Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(command),
        Err(e) => {
            eprintln!("busd: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colours only on a terminal: a log file or journald gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
