//! `busd completions SHELL` and `busd man`: shell completions and a man
//! page, generated from the same clap definitions the command parses with,
//! so they cannot fall out of step with it.

use std::io;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Options of `busd completions`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionArgs {
    /// The shell, e.g. `busd completions bash > /etc/bash_completion.d/busd`.
    shell: Shell,
}

/// Prints the completion script for the shell asked for.
pub(crate) fn completions(args: &CompletionArgs) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "busd", &mut io::stdout());
    ExitCode::SUCCESS
}

/// Prints `busd(1)` as roff, e.g. `busd man > /usr/share/man/man1/busd.1`.
pub(crate) fn man() -> ExitCode {
    let page = clap_mangen::Man::new(Cli::command());
    match page.render(&mut io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("busd man: {e}");
            ExitCode::FAILURE
        }
    }
}
