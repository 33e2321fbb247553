//! `busd run`: the daemon, until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::service_manager;

use busd_daemon::{Config, Daemon, Inherited, Raised, StartError};
use busd_transport::TransportError;

/// Options of `busd run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Configuration file (default: the embedded config/busd.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Loopback TCP address to listen on, overriding the config ("" disables).
    #[arg(long)]
    tcp: Option<String>,
    /// Unix socket path to listen on, overriding the config ("" disables).
    #[arg(long)]
    unix: Option<String>,
}

/// Loads the configuration, then runs the daemon on a runtime with the
/// worker threads it asks for.
pub(crate) fn main(args: Args) -> ExitCode {
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    // Flags win over the file and the environment.
    if let Some(tcp) = args.tcp {
        env.push(("BUSD_DAEMON__TCP".into(), tcp));
    }
    if let Some(unix) = args.unix {
        env.push(("BUSD_DAEMON__UNIX".into(), unix));
    }
    let config = match Config::load_with_env(args.config.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("busd: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime's threads: taking them clears their variables.
    let inherited = match service_manager::inherited_sockets() {
        Ok(sockets) => sockets,
        Err(e) => {
            eprintln!("busd: {e}");
            return ExitCode::from(2);
        }
    };
    let threads = config.worker_threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(run(config, threads, inherited)),
        Err(e) => {
            eprintln!("busd: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts jemalloc's background thread, which hands back freed memory
/// within about a second (the decay set in `.cargo/config.toml`), so that a
/// daemon idle after a flood returns it too, and its worker threads never
/// purge inline. For the processes that host a daemon (`busd run`, and
/// `busd bench` with its own); short-lived client commands and bench
/// workers do without the extra thread.
pub(super) fn start_background_purge() {
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(cause = %e, "cannot start jemalloc's background thread: freed memory returns only as the daemon allocates");
    }
}

async fn run(config: Config, threads: usize, inherited: Inherited) -> ExitCode {
    tracing::info!(threads, "worker threads");
    start_background_purge();
    let daemon_warnings = config.warnings.clone();
    // Every connection costs fds (six over shm): lift the soft open-files
    // limit to the hard one, as nats-server does, rather than refuse
    // connections at a default of 1024 with memory to spare.
    match busd_daemon::raise_nofile_limit() {
        Ok(Raised::To { from, to }) => tracing::info!(from, to, "raised the open-files limit"),
        Ok(Raised::Already(_)) => {}
        Err(e) => tracing::warn!(cause = %e, "cannot raise the open-files limit"),
    }
    let shutdown = CancellationToken::new();
    let signals = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(int), Ok(hup)) => (term, int, hup),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("busd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_name = match &config.path {
        Some(path) => path.display().to_string(),
        None => "the embedded default".to_owned(),
    };
    let from_manager = !inherited.is_empty();
    let daemon = match Daemon::start_inherited(config, shutdown.clone(), inherited).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("busd: cannot start: {}", error_chain(&e));
            return start_error_code(&e);
        }
    };
    for w in &daemon_warnings {
        tracing::warn!("{w}");
    }
    let status = ready_status(&daemon, &config_name, from_manager);
    tracing::info!("{status}");
    service_manager::ready(&status);
    let (mut term, mut int, mut hup) = signals;
    let reloader = daemon.reloader();
    let ready = status;
    tokio::spawn(async move {
        loop {
            let stop = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    service_manager::reloading();
                    // Errors are logged by the reload itself; the old rules stay.
                    let outcome = match reloader.reload() {
                        Ok(_) => format!("{ready}; reloaded"),
                        Err(e) => format!("{ready}; reload refused, the previous rules stay: {e}"),
                    };
                    service_manager::ready(&outcome);
                    continue;
                }
            };
            if shutdown.is_cancelled() {
                // Whoever asks twice does not want to wait for the grace.
                tracing::warn!("{stop} again: exiting now, without delivering what is queued");
                std::process::exit(0);
            }
            tracing::info!("{stop}: shutting down, delivering what is queued");
            service_manager::stopping("shutting down, delivering what is queued");
            shutdown.cancel();
        }
    });
    // What could not be delivered in the grace is logged by the daemon.
    let _stopped = daemon.wait().await;
    ExitCode::SUCCESS
}

/// The one line that says the daemon serves: where, and with which
/// configuration. Also its status for the service manager.
fn ready_status(daemon: &Daemon, config: &str, from_manager: bool) -> String {
    let endpoints: Vec<String> = daemon.endpoints().iter().map(ToString::to_string).collect();
    let endpoints = if endpoints.is_empty() {
        "no listener".to_owned()
    } else {
        endpoints.join(", ")
    };
    let handed = if from_manager {
        " (sockets from the service manager)"
    } else {
        ""
    };
    let metrics = daemon
        .metrics_addr()
        .map(|addr| format!("; metrics http://{addr}/metrics"))
        .unwrap_or_default();
    format!("ready: serving {endpoints}{handed}{metrics}; config {config}")
}

/// 2 for a socket path refused as unsafe, which only a change of
/// configuration or of the directory can fix (as for an invalid config);
/// 1 for other start errors.
fn start_error_code(e: &StartError) -> ExitCode {
    match e {
        StartError::Transport(TransportError::SocketPath(_)) => ExitCode::from(2),
        StartError::Transport(_) | StartError::Metrics { .. } => ExitCode::FAILURE,
    }
}

/// "outer: inner: innermost", so a transport error shows its OS cause; a
/// cause whose text the message already ends with is not repeated.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}
