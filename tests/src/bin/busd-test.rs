//! The `busd` command, built inside the e2e package: cargo builds a
//! package's binaries before running its integration tests, so tests that
//! need a real `busd` process always find this one, fresh, even on a clean
//! `cargo test --workspace`. Same code as `busd/src/main.rs`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    busd::cmd::main(busd::cmd::Cli::parse())
}
