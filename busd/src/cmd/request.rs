//! `busd req [--timeout 2s] SERVICE PAYLOAD`: print the response.

use std::process::ExitCode;
use std::time::Duration;

use busd_client::{RequestOptions, Status};

use super::attach::AttachArgs;
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
    #[command(flatten)]
    attach: AttachArgs,
    /// How long the daemon waits for an answer: `500ms`, `2s`, `1m`; a bare
    /// number is milliseconds.
    #[arg(long, short, default_value = "5s", value_parser = parse_timeout)]
    timeout: Duration,
    /// The service name.
    service: String,
    /// The request payload; `-` reads it from stdin.
    data: String,
}

/// A duration as `busd bench --duration` takes it (`500ms`, `2s`), or a
/// bare number of milliseconds, as `--timeout` took before.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime_serde::re::humantime::parse_duration(text)
        .map_err(|e| format!("{e}: give a duration such as 500ms or 2s"))
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
        timeout: Some(args.timeout),
        ..RequestOptions::default()
    };
    let fds = match args.attach.open() {
        Ok(fds) => fds,
        Err(code) => return code,
    };
    match client
        .request_with_fds(args.service.as_str(), payload, options, fds)
        .await
    {
        Ok(resp) if resp.status == Status::Success => {
            super::print_out(&format!("{}\n", render(&resp.payload)))
        }
        Ok(resp) => {
            eprintln!("{}: {}", resp.status, render(&resp.payload));
            ExitCode::FAILURE
        }
        Err(e) => report(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_a_duration_or_a_bare_number_of_milliseconds() {
        assert_eq!(parse_timeout("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_timeout("soon").unwrap_err().contains("500ms or 2s"));
    }
}
