//! `busd req [--timeout MS] SERVICE PAYLOAD`: print the response.

use std::process::ExitCode;
use std::time::Duration;

use busd_client::{RequestOptions, Status};

use super::client_args::{ClientArgs, report};
use super::payload::{PayloadArgs, render};

/// Send one request and print the response; on failure print the error
/// code name to stderr and exit 1.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    payload: PayloadArgs,
    /// How long the daemon waits for an answer, in milliseconds.
    #[arg(long, short, default_value_t = 5000)]
    timeout: u64,
    /// The service name.
    service: String,
    /// The request payload; `-` reads it from stdin.
    data: String,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let (payload, client) = match args
        .client
        .payload_and_connect(&args.payload, &args.data, "req")
        .await
    {
        Ok(pc) => pc,
        Err(code) => return code,
    };
    let options = RequestOptions {
        timeout: Some(Duration::from_millis(args.timeout)),
        ..RequestOptions::default()
    };
    match client
        .request_with(args.service.as_str(), payload, options)
        .await
    {
        Ok(resp) if resp.status == Status::Success => {
            println!("{}", render(&resp.payload));
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            eprintln!("{}: {}", resp.status, render(&resp.payload));
            ExitCode::FAILURE
        }
        Err(e) => report(&e),
    }
}
