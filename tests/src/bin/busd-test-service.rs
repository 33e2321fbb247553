//! A service for the activation tests: what `[[package.service]] exec`
//! starts. It connects as a started service does (`Client::connect_default`,
//! which takes the connection the daemon handed it), serves the name in
//! `BUSD_SERVICE`, and answers each call with who it is: its package as
//! the daemon welcomed it, and its pid. It has no token and no other way
//! to be its package.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use busd_client::Client;
use futures::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Ok(service) = std::env::var("BUSD_SERVICE") else {
        eprintln!("busd-test-service: BUSD_SERVICE is not set: run me from busd");
        return ExitCode::from(2);
    };
    let client = match Client::connect_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("busd-test-service: cannot connect: {e}");
            return ExitCode::FAILURE;
        }
    };
    let me = client
        .pfn()
        .map_or_else(|| "unpackaged".to_owned(), |p| p.to_string());
    let mut calls = match client.serve(service.as_str()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("busd-test-service: cannot serve {service}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("serving {service} as {me}");
    let answer = format!("{me} {}", std::process::id());
    while let Some(call) = calls.next().await {
        if call.respond(answer.as_bytes()).await.is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}
