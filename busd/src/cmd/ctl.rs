//! `busd ctl stats|clients|subs|reload|services|explain`: the daemon's
//! live state, a config reload, and why the rules in force let a message
//! through or not, for an admin identity.

use std::process::ExitCode;

use busd_client::{CtlCommand, ExplainQuery};

use super::client_args::{ClientArgs, report};
use super::ctl_table::render;
use super::explain::Parties;

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
    /// For `explain`: between whom, and for what.
    #[command(flatten)]
    parties: super::explain::Parties,
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
    /// Why a message from --from reaches --to or not (a request, with
    /// --service), under the rules in force: the rule and its line. Exit
    /// code 0 when allowed, 3 when denied.
    Explain,
}

/// The protocol command for `action`; `explain` asks about `parties`.
fn command(action: Action, parties: &Parties) -> Result<CtlCommand, String> {
    let asked = [
        &parties.from,
        &parties.to,
        &parties.subject,
        &parties.service,
    ];
    if action != Action::Explain && asked.iter().any(|a| a.is_some()) {
        return Err("--from, --to, --subject and --service go with `busd ctl explain`".into());
    }
    Ok(match action {
        Action::Stats => CtlCommand::Stats,
        Action::Clients => CtlCommand::Clients,
        Action::Subs => CtlCommand::Subs,
        Action::Reload => CtlCommand::Reload,
        Action::Services => CtlCommand::Services,
        Action::Explain => CtlCommand::Explain(ExplainQuery {
            from: parties
                .from
                .clone()
                .ok_or("busd ctl explain needs --from")?,
            to: parties.to.clone(),
            subject: parties.subject.clone(),
            service: parties.service.clone(),
        }),
    })
}

pub(crate) async fn run(args: Args) -> ExitCode {
    let command = match command(args.command, &args.parties) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("busd ctl: {e}");
            return ExitCode::from(2);
        }
    };
    let client = match args.client.connect("ctl").await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match client.ctl(command).await {
        Ok(document) if args.command == Action::Explain => explained(&document, args.json),
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

/// Prints `busd ctl explain`'s answer (the sentence, or the document);
/// exit code 0 when allowed, 3 when denied.
fn explained(document: &serde_json::Value, json: bool) -> ExitCode {
    let text = if json {
        serde_json::to_string_pretty(document).unwrap_or_default()
    } else {
        let sentence = document.get("explanation").and_then(|e| e.as_str());
        sentence.unwrap_or_default().to_owned()
    };
    let printed = super::print_out(&format!("{text}\n"));
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    match document.get("allowed").and_then(serde_json::Value::as_bool) {
        Some(true) => ExitCode::SUCCESS,
        _ => ExitCode::from(3),
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn each_action_is_its_protocol_command() {
        let parties = Parties {
            from: Some("unpackaged:5".into()),
            to: Some("7".into()),
            subject: None,
            service: None,
        };
        let none = Parties {
            from: None,
            to: None,
            subject: None,
            service: None,
        };
        let names: Vec<_> = Action::value_variants()
            .iter()
            .map(|a| {
                let asked = if *a == Action::Explain {
                    &parties
                } else {
                    &none
                };
                (
                    a.to_possible_value().map(|v| v.get_name().to_owned()),
                    command(*a, asked).unwrap(),
                )
            })
            .collect();
        let explain = CtlCommand::Explain(ExplainQuery {
            from: "unpackaged:5".into(),
            to: Some("7".into()),
            subject: None,
            service: None,
        });
        assert_eq!(
            names,
            [
                (Some("stats".to_owned()), CtlCommand::Stats),
                (Some("clients".to_owned()), CtlCommand::Clients),
                (Some("subs".to_owned()), CtlCommand::Subs),
                (Some("reload".to_owned()), CtlCommand::Reload),
                (Some("services".to_owned()), CtlCommand::Services),
                (Some("explain".to_owned()), explain),
            ]
        );
        assert!(
            command(Action::Stats, &parties).is_err(),
            "--from goes with explain"
        );
        assert!(
            command(Action::Explain, &none).is_err(),
            "explain needs --from"
        );
    }
}
