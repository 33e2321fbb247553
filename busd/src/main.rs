//! The `busd` command: the daemon and its command-line client.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = busd::cmd::Cli::parse();
    busd::cmd::main(cli)
}
