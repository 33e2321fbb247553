//! `busd reply SERVICE RESPONSE`: serve a service from the shell.

use std::process::ExitCode;

use busd_client::ServeOptions;
use futures::StreamExt;

use super::client_args::{ClientArgs, fail};
use super::payload::PayloadArgs;

/// Answer every request to SERVICE with RESPONSE (or echo it back).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    payload: PayloadArgs,
    /// Answer with the request's own payload instead of RESPONSE.
    #[arg(long)]
    echo: bool,
    /// Only packages granted this custom capability may call the service.
    #[arg(long, value_name = "CAP")]
    require_capability: Option<String>,
    /// Answer with the service's Failure status (RESPONSE, or the request
    /// with --echo, says why), as a service that cannot do what was asked.
    #[arg(long)]
    fail: bool,
    /// Exit after answering this many requests.
    #[arg(long, short = 'n')]
    count: Option<u64>,
    /// The service name, e.g. contoso.weather.forecast
    service: String,
    /// The response; `-` reads it from stdin once.
    #[arg(required_unless_present = "echo")]
    response: Option<String>,
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let response = match &args.response {
        Some(r) if !args.echo => match args.payload.read(r) {
            Ok(p) => Some(p),
            Err(code) => return code,
        },
        _ => None,
    };
    let client = match args.client.connect("reply").await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = ServeOptions {
        require_capability: args.require_capability.clone(),
    };
    let mut service = match client.serve_with(args.service.as_str(), options).await {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let mut answered = 0;
    while args.count.is_none_or(|n| answered < n) {
        let Some(request) = service.next().await else {
            eprintln!("busd: service registration ended");
            return ExitCode::FAILURE;
        };
        let body = response.clone().unwrap_or_else(|| request.payload.clone());
        let answered_ok = if args.fail {
            request.respond_failure(body).await
        } else {
            request.respond(body).await
        };
        if let Err(e) = answered_ok {
            return fail(&e);
        }
        answered += 1;
    }
    // The last answer must reach the daemon before we exit.
    match client.flush().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
