//! `busd monitor [SUBJECT]`: every publish, request and reply on the bus,
//! live, one line each (admin only), as `dbus-monitor` shows a bus.

use std::io::Write;
use std::process::ExitCode;

use busd_client::{MonitorOptions, Observed};
use futures::StreamExt;

use super::client_args::{ClientArgs, fail};
use super::monitor_line::{json_line, text_line};

/// Show every message the daemon routes, as it routes it: time (UTC),
/// kind, subject or service, sender, receivers, receivers the access rules
/// denied (marked DENIED), size. Admin only: the daemon's uid or one in
/// `[daemon] admin_uids`. It never slows or changes delivery: a monitor
/// that falls behind misses events, and says how many.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// One JSON object per line (events, and `{"dropped": N}` notices).
    #[arg(long)]
    json: bool,
    /// Also show each message's headers and payload (else its size only).
    #[arg(long)]
    payload: bool,
    /// Exit after this many events.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// What to watch, wildcards allowed: `*` one token, `>` the rest.
    #[arg(default_value = ">")]
    subject: String,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let client = match args.client.connect("monitor").await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = MonitorOptions {
        contents: args.payload,
    };
    let mut monitor = match client.monitor_with(args.subject.as_str(), options).await {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(observed) = monitor.next().await else {
            eprintln!("busd: the monitor ended: the connection to the daemon is gone");
            return ExitCode::FAILURE;
        };
        if matches!(observed, Observed::Event(..)) {
            seen += 1;
        }
        let line = if args.json {
            json_line(&observed)
        } else {
            text_line(&observed, args.payload)
        };
        let mut out = std::io::stdout().lock();
        // Flushed per line, so a script reading a pipe sees each event.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS; // stdout closed: the reader is done
        }
    }
    ExitCode::SUCCESS
}
