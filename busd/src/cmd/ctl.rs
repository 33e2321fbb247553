//! `busd ctl stats|clients|subs|reload|services|explain|bridges`: the
//! daemon's live state, a config reload, why the rules in force let a
//! message through or not, and its bridges to NATS, for an admin identity.

use std::process::ExitCode;

use busd_client::{CtlCommand, ExplainQuery, GrantRequest};

use super::client_args::{ClientArgs, report};
use super::ctl_table::{bridges, render};

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
    /// For `reload`: apply nothing; list what reloading FILE (by default
    /// the daemon's own) would change for the connections live now: the
    /// clients it would close, the subscriptions and services that would
    /// stop or start hearing from whom. Exit code 0 when nothing would be
    /// cut, 3 when something would.
    #[arg(long)]
    dry_run: bool,
    /// For `reload --dry-run`: the FILE to rehearse (read by the daemon,
    /// only if you could read it yourself); for `revoke`: the grant's ID.
    operand: Option<String>,
    /// For `grant`: how long it lasts ("1h", "30m", "1s"; at most 30
    /// days).
    #[arg(long = "for", value_parser = humantime_serde::re::humantime::parse_duration)]
    lasts: Option<std::time::Duration>,
    /// For `grant`: why, for the audit log and `busd ctl grants`.
    #[arg(long)]
    reason: Option<String>,
    /// For `grant`: both directions, not only --from to --to.
    #[arg(long)]
    both_ways: bool,
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
    /// Add an expiring grant: messages from --from reach --to (and back,
    /// with --both-ways) for --for, whatever the file says. Admin only;
    /// audited when granted, first used, revoked and expired; kept over a
    /// reload, and over a restart with `[daemon] grants_file`.
    Grant,
    /// The grants in force, with the time they have left.
    Grants,
    /// Remove a grant: `busd ctl revoke ID`.
    Revoke,
    /// The bridges to NATS: state, server, messages and bytes each way,
    /// drops, reconnects.
    Bridges,
    /// Why a message from --from reaches --to or not (a request, with
    /// --service), under the rules in force: the rule and its line. Exit
    /// code 0 when allowed, 3 when denied.
    Explain,
}

/// The protocol command for `args`: `explain` asks about its parties,
/// `reload --dry-run` rehearses its file.
fn command(args: &Args) -> Result<CtlCommand, String> {
    let (action, parties) = (args.command, &args.parties);
    let parties_go = matches!(action, Action::Explain | Action::Grant);
    if !parties_go && parties.any() {
        return Err("--from, --to, --subject and --service go with `busd ctl explain` (--from and --to with `grant`)".into());
    }
    let grant_args = args.lasts.is_some() || args.reason.is_some() || args.both_ways;
    if grant_args && action != Action::Grant {
        return Err("--for, --reason and --both-ways go with `busd ctl grant`".into());
    }
    if args.dry_run && action != Action::Reload {
        return Err("--dry-run goes with `busd ctl reload`".into());
    }
    let operand_goes = (action == Action::Reload && args.dry_run) || action == Action::Revoke;
    if args.operand.is_some() && !operand_goes {
        return Err(
            "a FILE goes with `busd ctl reload --dry-run`, an ID with `busd ctl revoke`".into(),
        );
    }
    if args.dry_run {
        let file = match &args.operand {
            Some(f) => Some(std::path::absolute(f).map_err(|e| format!("{f}: {e}"))?),
            None => None,
        };
        let file = file.map(|f| f.to_string_lossy().into_owned());
        return Ok(CtlCommand::ReloadDryRun(file));
    }
    Ok(match action {
        Action::Stats => CtlCommand::Stats,
        Action::Clients => CtlCommand::Clients,
        Action::Subs => CtlCommand::Subs,
        Action::Reload => CtlCommand::Reload,
        Action::Services => CtlCommand::Services,
        Action::Grant => CtlCommand::Grant(GrantRequest {
            from: parties.from.clone().ok_or("busd ctl grant needs --from")?,
            to: parties.to.clone().ok_or("busd ctl grant needs --to")?,
            both_ways: args.both_ways,
            seconds: args.lasts.ok_or("busd ctl grant needs --for")?.as_secs(),
            reason: args.reason.clone(),
        }),
        Action::Grants => CtlCommand::Grants,
        Action::Revoke => {
            let id = args
                .operand
                .as_deref()
                .ok_or("busd ctl revoke needs the grant's ID")?;
            CtlCommand::Revoke(id.parse().map_err(|_| format!("{id}: not a grant id"))?)
        }
        Action::Bridges => CtlCommand::Bridges,
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
    let command = match command(&args) {
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
        Ok(document) if args.dry_run => rehearsed(&document, args.json),
        Ok(document) if !args.json && args.command == Action::Bridges => {
            super::print_out(&bridges(&document))
        }
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

/// Prints `busd ctl reload --dry-run`'s report (lines, or the document);
/// exit code 0 when nothing would be cut, 3 when something would.
fn rehearsed(document: &serde_json::Value, json: bool) -> ExitCode {
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(document).unwrap_or_default()
        )
    } else {
        super::ctl_dry_run::render(document)
    };
    let printed = super::print_out(&text);
    if printed != ExitCode::SUCCESS {
        return printed;
    }
    match document.get("cuts").and_then(serde_json::Value::as_bool) {
        Some(false) => ExitCode::SUCCESS,
        _ => ExitCode::from(3),
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    /// `busd ctl ARGS…` as the command line reads them.
    fn parsed(args: &[&str]) -> Result<CtlCommand, String> {
        #[derive(clap::Parser)]
        struct Ctl {
            #[command(flatten)]
            args: Args,
        }
        let cli = <Ctl as clap::Parser>::try_parse_from(
            std::iter::once("ctl").chain(args.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        command(&cli.args)
    }

    #[test]
    fn each_action_is_its_protocol_command() {
        let names: Vec<_> = Action::value_variants()
            .iter()
            .filter_map(|a| a.to_possible_value().map(|v| v.get_name().to_owned()))
            .filter(|name| !["explain", "grant", "revoke"].contains(&name.as_str()))
            .map(|name| (name.clone(), parsed(&[&name]).unwrap()))
            .collect();
        let expected = [
            ("stats", CtlCommand::Stats),
            ("clients", CtlCommand::Clients),
            ("subs", CtlCommand::Subs),
            ("reload", CtlCommand::Reload),
            ("services", CtlCommand::Services),
            ("grants", CtlCommand::Grants),
            ("bridges", CtlCommand::Bridges),
        ]
        .map(|(n, c)| (n.to_owned(), c));
        assert_eq!(names, expected);
        let explain = CtlCommand::Explain(ExplainQuery {
            from: "unpackaged:5".into(),
            to: Some("7".into()),
            subject: None,
            service: None,
        });
        assert_eq!(
            parsed(&["explain", "--from", "unpackaged:5", "--to", "7"]),
            Ok(explain)
        );
        assert!(parsed(&["explain"]).is_err(), "explain needs --from");
        assert!(
            parsed(&["stats", "--from", "x"]).is_err(),
            "--from goes with explain"
        );
        let file = std::path::absolute("new.toml").unwrap();
        assert_eq!(
            parsed(&["reload", "--dry-run", "new.toml"]),
            Ok(CtlCommand::ReloadDryRun(Some(
                file.to_string_lossy().into_owned()
            )))
        );
        assert_eq!(
            parsed(&["reload", "--dry-run"]),
            Ok(CtlCommand::ReloadDryRun(None))
        );
        assert!(
            parsed(&["reload", "new.toml"]).is_err(),
            "a FILE needs --dry-run"
        );
        assert!(
            parsed(&["stats", "--dry-run"]).is_err(),
            "--dry-run goes with reload"
        );
        let grant = CtlCommand::Grant(GrantRequest {
            from: "unpackaged:5".into(),
            to: "Contoso.Weather_8wekyb3d8bbwe".into(),
            both_ways: true,
            seconds: 3600,
            reason: Some("incident 7".into()),
        });
        let args = [
            "grant",
            "--from",
            "unpackaged:5",
            "--to",
            "Contoso.Weather_8wekyb3d8bbwe",
        ];
        let more = ["--for", "1h", "--both-ways", "--reason", "incident 7"];
        assert_eq!(parsed(&[&args[..], &more[..]].concat()), Ok(grant));
        assert!(parsed(&args).is_err(), "a grant needs --for");
        assert_eq!(parsed(&["revoke", "3"]), Ok(CtlCommand::Revoke(3)));
        assert!(parsed(&["revoke"]).is_err() && parsed(&["revoke", "x"]).is_err());
        assert!(parsed(&["stats", "--for", "1h"]).is_err());
    }
}
