//! `busd reply SERVICE RESPONSE`: serve a service from the shell, with a
//! fixed answer, the request echoed, or a command run per request
//! (`--exec`, in `reply_exec`).

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use busd_client::{Error, Request, ServeOptions};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::client_args::{ClientArgs, fail};
use super::payload::PayloadArgs;
use super::reply_exec::Exec;

/// Answer every request to SERVICE with RESPONSE, echo it back, or run a
/// command for it (--exec).
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
    /// Run CMD with ARGS (no shell) for each request and answer what it
    /// prints: the payload on its stdin, BUSD_SERVICE, BUSD_CALLER_ID and
    /// BUSD_CALLER_PFN (unset for an unpackaged caller) in its environment.
    /// A non-zero exit answers Failure with the end of its stderr. Every word
    /// after --exec belongs to the command, so it comes last:
    /// `busd reply contoso.upper --exec tr a-z A-Z`. With --json,
    /// a MessagePack request reaches stdin as JSON and stdout is read as
    /// JSON and answered as MessagePack.
    #[arg(
        long,
        value_name = "CMD",
        num_args = 1..,
        allow_hyphen_values = true,
        conflicts_with_all = ["echo", "fail", "response"]
    )]
    exec: Option<Vec<String>>,
    /// With --exec: kill a command still running after this long and
    /// answer Failure saying so (`500ms`, `30s`, `2m`).
    #[arg(
        long,
        default_value = "30s",
        value_name = "DURATION",
        value_parser = humantime_serde::re::humantime::parse_duration
    )]
    exec_timeout: Duration,
    /// With --exec: how many commands may run at once; further requests
    /// wait for one to finish.
    #[arg(long, short = 'j', default_value = "4", value_name = "N")]
    jobs: NonZeroUsize,
    /// The service name, e.g. contoso.weather.forecast
    service: String,
    /// The response; `-` reads it from stdin once.
    #[arg(required_unless_present_any = ["echo", "exec"])]
    response: Option<String>,
}

/// How each request is answered.
enum Answer {
    /// With a fixed payload, or the request's own when `None` (`--echo`);
    /// as a Failure with `--fail`.
    Payload { body: Option<Bytes>, fail: bool },
    /// With what a command prints.
    Exec(Exec),
}

impl Answer {
    async fn to(&self, request: Request) -> Result<(), Error> {
        match self {
            Self::Payload { body, fail } => {
                let body = body.clone().unwrap_or_else(|| request.payload.clone());
                if *fail {
                    request.respond_failure(body).await
                } else {
                    request.respond(body).await
                }
            }
            Self::Exec(exec) => exec.answer(request).await,
        }
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let body = match &args.response {
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
    let (answer, jobs) = match args.exec {
        Some(argv) => {
            let exec = Exec {
                argv,
                timeout: args.exec_timeout,
                json: args.payload.json,
                max_frame: client.server_limits().max_frame as usize,
            };
            (Answer::Exec(exec), args.jobs.get())
        }
        // Answering is immediate: one at a time keeps the answers in order.
        None => (
            Answer::Payload {
                body,
                fail: args.fail,
            },
            1,
        ),
    };
    let limit = args
        .count
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut taken = 0;
    let answered = (&mut service)
        .take(limit)
        .inspect(|_| taken += 1)
        .map(Ok)
        .try_for_each_concurrent(jobs, |request| answer.to(request))
        .await;
    if let Err(e) = answered {
        return fail(&e);
    }
    if taken < limit {
        eprintln!("busd: service registration ended");
        return ExitCode::FAILURE;
    }
    // The last answer must reach the daemon before we exit.
    match client.flush().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
