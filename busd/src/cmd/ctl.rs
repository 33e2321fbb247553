//! `busd ctl stats|clients|subs|reload`: the daemon's live state, and a
//! config reload, for an admin identity.

use std::process::ExitCode;

use busd_client::CtlCommand;

use super::client_args::{ClientArgs, report};
use super::ctl_table::render;

/// Show the daemon's live state or reload its config; prints the answer
/// as a table (`--json`: as JSON). On failure prints the error code name
/// to stderr and exits 1.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    client: ClientArgs,
    /// Print the daemon's JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// What to show or do.
    #[arg(value_enum)]
    command: Action,
}

/// The commands `busd ctl` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Action {
    /// Router and connection counters.
    Stats,
    /// The connected clients and their identities.
    Clients,
    /// The subscriptions and services.
    Subs,
    /// Re-read the config and apply its access rules (atomically).
    Reload,
    /// Services: configured and live, owner, responders, activation state,
    /// starts.
    Services,
}

impl From<Action> for CtlCommand {
    fn from(action: Action) -> Self {
        match action {
            Action::Stats => CtlCommand::Stats,
            Action::Clients => CtlCommand::Clients,
            Action::Subs => CtlCommand::Subs,
            Action::Reload => CtlCommand::Reload,
            Action::Services => CtlCommand::Services,
        }
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let client = match args.client.connect("ctl").await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.ctl(args.command.into()).await {
        Ok(document) if !args.json => super::print_out(&render(&document)),
        Ok(document) => match serde_json::to_string_pretty(&document) {
            Ok(text) => super::print_out(&format!("{text}\n")),
            Err(e) => {
                eprintln!("busd: cannot print the answer: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => report(&e),
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn each_action_is_its_protocol_command() {
        let names: Vec<_> = Action::value_variants()
            .iter()
            .map(|a| {
                (
                    a.to_possible_value().map(|v| v.get_name().to_owned()),
                    CtlCommand::from(*a),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                (Some("stats".to_owned()), CtlCommand::Stats),
                (Some("clients".to_owned()), CtlCommand::Clients),
                (Some("subs".to_owned()), CtlCommand::Subs),
                (Some("reload".to_owned()), CtlCommand::Reload),
                (Some("services".to_owned()), CtlCommand::Services),
            ]
        );
    }
}
