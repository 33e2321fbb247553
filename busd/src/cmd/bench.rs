//! `busd bench`, and the hidden `busd bench-worker` that `--procs` runs:
//! the harness is the `busd-bench` crate.

use std::process::ExitCode;

use busd_bench::{BusdBus, EXIT_NOT_CLEAN};

use super::run::error_chain;

/// Runs `busd bench`: exit code 0 for a clean run, 3 for one that lost
/// messages or workers, 1 when it could not run.
pub(crate) async fn run(args: busd_bench::Args) -> ExitCode {
    // It may host a daemon of its own.
    super::run::start_background_purge();
    match busd_bench::run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_NOT_CLEAN),
        Err(e) => {
            eprintln!("busd bench: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs `busd bench-worker SPEC`, one worker process of a `--procs` run.
pub(crate) async fn worker(args: busd_bench::WorkerArgs) -> ExitCode {
    busd_bench::worker_main::<BusdBus>(&args.spec).await
}
