//! `busd pub SUBJECT PAYLOAD`, `--count N` times, or `--lines`: one
//! message per line of stdin (as `nats pub --count` and a shell loop would,
//! over one connection).

use std::process::ExitCode;

use busd_client::Client;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::attach::AttachArgs;
use super::client_args::{ClientArgs, fail};
use super::payload::PayloadArgs;

/// Publish a message, or many.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    payload: PayloadArgs,
    #[command(flatten)]
    attach: AttachArgs,
    /// Publish the payload this many times.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Publish each line of stdin as a message of its own (without its
    /// newline), until stdin ends.
    #[arg(long, conflicts_with_all = ["data", "count"])]
    lines: bool,
    /// Subject to publish to, e.g. weather.today.paris
    subject: String,
    /// The payload; `-` reads it from stdin.
    #[arg(required_unless_present = "lines")]
    data: Option<String>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let client = match &args.data {
        Some(data) => {
            let (payload, client) = match args
                .client
                .payload_and_connect(&args.payload, data, "pub")
                .await
            {
                Ok(pc) => pc,
                Err(code) => return code,
            };
            for _ in 0..args.count {
                if let Err(code) = publish(&client, &args, payload.clone()).await {
                    return code;
                }
            }
            client
        }
        None => match publish_lines(&args).await {
            Ok(client) => client,
            Err(code) => return code,
        },
    };
    // Returns once the daemon has routed them, so a script may go on.
    match client.flush().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Publishes each line of stdin; the client, to flush.
async fn publish_lines(args: &Args) -> Result<Client, ExitCode> {
    let client = args.client.connect("pub").await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(client),
            Err(e) => {
                eprintln!("busd: cannot read a line from stdin: {e}");
                return Err(ExitCode::FAILURE);
            }
        };
        let payload = args.payload.encode(line.into_bytes())?;
        publish(&client, args, payload).await?;
    }
}

/// Publishes one message, with the `--attach` files opened afresh.
async fn publish(client: &Client, args: &Args, payload: bytes::Bytes) -> Result<(), ExitCode> {
    let fds = args.attach.open()?;
    let subject = args.subject.as_str();
    client
        .publish_with_fds(subject, payload, fds)
        .await
        .map_err(|e| fail(&e))
}
