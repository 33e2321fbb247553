//! `natsbench`: the workloads of `busd bench`, run against NATS with the
//! `async-nats` client, for `bench/compare.sh`.
//!
//! It reuses busd's bench runner, checks and report through the
//! [`Bus`](busd_bench::Bus) traits and only supplies a NATS driver
//! ([`nats::NatsBus`]), so both systems run the very same workload code
//! and print the same JSON. It is a separate binary so that `async-nats`
//! never ships in `busd`.
//!
//! ```text
//! natsbench bench pubsub|fanout|reqrep|idle --server nats://127.0.0.1:4222 [the options of busd bench]
//! natsbench table bench/results/FILE.jsonl
//! ```

#![forbid(unsafe_code)]

mod nats;
mod table;

use std::process::ExitCode;

use busd_bench::{
    BenchError, Bus, CommonArgs, EXIT_NOT_CLEAN, Mode, Summary, WorkerCommand, Workload, execute,
    idle, print_json, print_table, worker_main,
};
use clap::Parser;

use crate::nats::NatsBus;

/// The command line of `natsbench`.
#[derive(Debug, Parser)]
#[command(
    name = "natsbench",
    version,
    about = "busd bench's workloads, against NATS"
)]
enum Cli {
    /// Run a workload against a NATS server.
    Bench {
        #[command(flatten)]
        common: CommonArgs,
        /// The NATS server.
        #[arg(long, short, default_value = "nats://127.0.0.1:4222")]
        server: String,
    },
    /// Print the busd/NATS ratio table of a `bench/compare.sh` results file.
    Table {
        /// The JSON-lines results file.
        file: String,
    },
    /// One worker of a `--procs` run (internal).
    #[command(hide = true)]
    Worker {
        /// The worker's spec, as JSON.
        spec: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("natsbench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match cli {
            Cli::Bench { common, server } => match bench(&common, &server).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(EXIT_NOT_CLEAN),
                Err(e) => {
                    eprintln!("natsbench: {}", busd_bench::chain(&e));
                    ExitCode::FAILURE
                }
            },
            Cli::Table { file } => match table::render(&file) {
                Ok(table) => {
                    print!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("natsbench: {e:#}");
                    ExitCode::FAILURE
                }
            },
            Cli::Worker { spec } => worker_main::<NatsBus>(&spec).await,
        }
    })
}

/// Runs the bench; whether it was clean.
async fn bench(common: &CommonArgs, server: &str) -> Result<bool, BenchError> {
    let bus = NatsBus;
    if common.workload == Workload::Idle {
        let summary = idle(&bus, common, server, "tcp").await?;
        summary.print(common.json);
        return Ok(summary.is_clean());
    }
    let mode = if common.procs {
        Mode::Procs(WorkerCommand {
            program: std::env::current_exe()
                .map_err(|e| BenchError::Worker(format!("cannot find the running binary: {e}")))?,
            args: vec!["worker".into()],
        })
    } else {
        Mode::Tasks
    };
    let outcome = execute(&bus, common, server, &mode).await?;
    let summary = Summary::new(bus.system(), "tcp", common, &outcome);
    if common.json {
        print_json(std::slice::from_ref(&summary));
    } else {
        print_table(std::slice::from_ref(&summary));
    }
    Ok(summary.is_clean())
}
