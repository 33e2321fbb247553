//! `busd sub [--count N] SUBJECT`: one line per message.

use std::io::Write;
use std::process::ExitCode;

use busd_client::{Message, Overflow, Sender, SubscribeOptions};
use futures::StreamExt;

use super::attach::describe;
use super::client_args::{ClientArgs, fail};
use super::payload::render;

/// Print messages as they arrive: subject, sender, payload, tab-separated.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// Join this queue group: each message goes to one member.
    #[arg(long, short)]
    queue: Option<String>,
    /// What the daemon does when this subscriber falls behind: close it
    /// (`SlowConsumer`), drop its oldest messages (counted), or make
    /// publishers wait (`block`, within limits.block_timeout).
    #[arg(long, value_enum, default_value_t = OverflowArg::Disconnect)]
    overflow: OverflowArg,
    /// Subject, wildcards allowed: `*` one token, `>` the rest.
    subject: String,
}

/// `--overflow`, as the subscription's [`Overflow`] policy.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OverflowArg {
    Disconnect,
    DropOldest,
    Block,
}

impl From<OverflowArg> for Overflow {
    fn from(arg: OverflowArg) -> Self {
        match arg {
            OverflowArg::Disconnect => Self::Disconnect,
            OverflowArg::DropOldest => Self::DropOldest,
            OverflowArg::Block => Self::Block,
        }
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let client = match args.client.connect("sub").await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = SubscribeOptions {
        queue: args.queue,
        overflow: args.overflow.into(),
    };
    let mut sub = match client.subscribe_with(args.subject.as_str(), options).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut seen = 0;
    while args.count.is_none_or(|n| seen < n) {
        let Some(mut msg) = sub.next().await else {
            eprintln!("busd: subscription ended");
            return ExitCode::FAILURE;
        };
        seen += 1;
        let mut out = std::io::stdout().lock();
        // Flushed per line, so a script reading a pipe sees each message.
        if writeln!(out, "{}", line(&mut msg))
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::SUCCESS; // stdout closed: the reader is done
        }
    }
    ExitCode::SUCCESS
}

/// The message's line; the files it carried are named, then closed.
fn line(msg: &mut Message) -> String {
    let mut from = sender(&msg.from);
    if let Some(remote) = msg.relayed_for() {
        from = format!("{from} for {remote}");
    }
    let mut line = format!("{}\t{from}\t{}", msg.subject, render(&msg.payload));
    let files = match msg.take_fds() {
        Ok(fds) => describe(fds),
        Err(e) => format!("[fds not readable: {e}]"),
    };
    if !files.is_empty() {
        line.push('\t');
        line.push_str(&files);
    }
    line
}

/// `Contoso.Weather_8wekyb3d8bbwe#12` or `unpackaged#12`.
pub(crate) fn sender(from: &Sender) -> String {
    match &from.pfn {
        Some(pfn) => format!("{pfn}#{}", from.client_id),
        None => format!("unpackaged#{}", from.client_id),
    }
}
