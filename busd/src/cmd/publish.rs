//! `busd pub SUBJECT PAYLOAD`.

use std::process::ExitCode;

use super::client_args::{ClientArgs, fail};
use super::payload::PayloadArgs;

/// Publish one message.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    payload: PayloadArgs,
    /// Subject to publish to, e.g. weather.today.paris
    subject: String,
    /// The payload; `-` reads it from stdin.
    data: String,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let (payload, client) = match args
        .client
        .payload_and_connect(&args.payload, &args.data, "pub")
        .await
    {
        Ok(pc) => pc,
        Err(code) => return code,
    };
    if let Err(e) = client.publish(args.subject.as_str(), payload).await {
        return fail(&e);
    }
    // Returns once the daemon has routed it, so a script may go on.
    match client.flush().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
