//! `busd check-config FILE`: validates a configuration and explains its
//! access rules.
//!
//! Every error and warning is printed as `FILE:LINE: error|warning: reason`
//! (on stderr); a valid file is then summed up on stdout: for each package,
//! whom it can reach and who can reach it under the mutual in/out rule, its
//! exemptions and its proofs. Exit code 0 when valid (warnings allowed),
//! 2 on any error. Environment overrides are not applied: the file alone
//! is checked. `--explain --from A --to B` instead answers one question
//! (see `explain`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use busd_policy::{
    Answer, Diagnostic, Identity, PackageRules, Party, Policy, Question, UnpackagedMode,
};
use busd_proto::Pfn;

use busd_daemon::Config;

use super::explain;

/// Options of `busd check-config`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The configuration file to check.
    file: PathBuf,
    #[command(flatten)]
    query: explain::Query,
}

/// Checks the file; exit code 0 if valid, 2 on error (with `--explain`, 0
/// when allowed and 3 when denied).
pub(crate) fn run(args: &Args) -> ExitCode {
    match Config::load_checked(&args.file, &[]) {
        Ok((config, warnings)) => {
            for w in &warnings {
                eprintln!("{}", tagged(w, "warning"));
            }
            if !args.query.explain && args.query.parties.any() {
                eprintln!(
                    "busd check-config: --from, --to, --subject and --service go with --explain"
                );
                return ExitCode::from(2);
            }
            if args.query.explain {
                return match offline(&config.policy, &args.query.parties) {
                    Ok(answer) => {
                        println!("{}", answer.text);
                        ExitCode::from(if answer.allowed { 0 } else { 3 })
                    }
                    Err(e) => {
                        eprintln!("busd check-config: {e}");
                        ExitCode::from(2)
                    }
                };
            }
            print!("{}", summary(&config, warnings.len()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            let errors = e.errors();
            let mut all: Vec<(&Diagnostic, &str)> = errors.iter().map(|d| (d, "error")).collect();
            all.extend(e.warnings().iter().map(|d| (d, "warning")));
            all.sort_by_key(|(d, _)| d.line);
            for (d, kind) in all {
                eprintln!("{}", tagged(d, kind));
            }
            eprintln!(
                "{}: invalid: {} error(s), {} warning(s)",
                args.file.display(),
                errors.len(),
                e.warnings().len()
            );
            ExitCode::from(2)
        }
    }
}

/// The answer to `--explain` from the file alone: no live client ids.
fn offline(policy: &Policy, parties: &explain::Parties) -> Result<Answer, String> {
    let identity = |flag: &str, s: &str| match Party::parse(s)? {
        Party::Identity(who) => Ok(who),
        Party::Client(id) => Err(format!(
            "{flag} {id}: a live client's id needs the daemon: busd ctl explain"
        )),
    };
    let from = identity("--from", parties.from.as_deref().unwrap_or_default())?;
    let to = parties
        .to
        .as_deref()
        .map(|s| identity("--to", s))
        .transpose()?;
    policy.explain(Question {
        from: &from,
        to: to.as_ref(),
        subject: parties.subject.as_deref(),
        service: parties.service.as_deref(),
    })
}

/// `FILE:LINE: kind: reason`, or `FILE: kind: reason` without a line.
fn tagged(d: &Diagnostic, kind: &str) -> String {
    match d.line {
        Some(line) => format!("{}:{line}: {kind}: {}", d.file, d.message),
        None => format!("{}: {kind}: {}", d.file, d.message),
    }
}

/// What the rules of a valid configuration let through.
fn summary(config: &Config, warnings: usize) -> String {
    let policy = &config.policy;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: valid: {} package(s), {warnings} warning(s)",
        config.source,
        policy.packages.len()
    );
    let unpackaged = match policy.unpackaged {
        UnpackagedMode::Deny => "deny: they never reach each other",
        UnpackagedMode::SameUid => "same-uid: they reach clients of the same uid",
        UnpackagedMode::Open => "open: they reach each other",
    };
    let _ = writeln!(out, "unpackaged clients: {unpackaged}");
    let mut pfns: Vec<&Pfn> = policy.packages.keys().collect();
    pfns.sort();
    let bridges: Vec<&Pfn> = config.bridges.iter().map(|b| &b.pfn).collect();
    for pfn in &pfns {
        if let Some(rules) = policy.package(pfn) {
            out.push('\n');
            package(&mut out, (policy, &bridges), &pfns, pfn, rules);
        }
    }
    for b in &config.bridges {
        out.push('\n');
        bridge(&mut out, b);
    }
    out
}

/// A `[[bridge]]`: where it goes, as whom, and what crosses each way.
fn bridge(out: &mut String, b: &busd_daemon::config::BridgeConfig) {
    let list = |subjects: &[busd_proto::Subject]| {
        let names: Vec<&str> = subjects.iter().map(|s| s.as_str()).collect();
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    };
    let _ = writeln!(out, "bridge {} (to NATS, as {})", b.name, b.pfn);
    let _ = writeln!(out, "  servers:       {}", b.nats.join(", "));
    let credentials = b.credentials.as_ref().map(|p| p.display().to_string());
    let _ = writeln!(
        out,
        "  credentials:   {}",
        credentials.as_deref().unwrap_or("none")
    );
    let _ = writeln!(
        out,
        "  prefix:        {}",
        b.prefix.as_deref().unwrap_or("none")
    );
    let _ = writeln!(out, "  export:        {}", list(&b.export));
    let _ = writeln!(out, "  import:        {}", list(&b.import));
    let _ = writeln!(out, "  services out:  {}", list(&b.export_services));
    let _ = writeln!(out, "  services in:   {}", list(&b.import_services));
    let _ = writeln!(
        out,
        "  buffer:        {} messages while NATS is away",
        b.buffer
    );
}

fn package(
    out: &mut String,
    (policy, bridges): (&Policy, &[&Pfn]),
    pfns: &[&Pfn],
    pfn: &Pfn,
    rules: &PackageRules,
) {
    let me = Identity::package(pfn.clone(), None);
    let others = |allowed: &dyn Fn(&Identity) -> bool| -> String {
        let names: Vec<&str> = pfns
            .iter()
            .filter(|p| **p != pfn && allowed(&Identity::package((**p).clone(), None)))
            .map(|p| p.as_str())
            .collect();
        if names.is_empty() {
            "no other package".to_owned()
        } else {
            names.join(", ")
        }
    };
    let _ = writeln!(out, "{pfn}");
    let loopback = if rules.loopback {
        "yes"
    } else {
        "no: it sends and receives nothing"
    };
    let _ = writeln!(out, "  loopback:      {loopback}");
    let _ = writeln!(
        out,
        "  reaches:       {}",
        others(&|to| policy.allows(&me, to))
    );
    let _ = writeln!(
        out,
        "  reached by:    {}",
        others(&|from| policy.allows(from, &me))
    );
    let anon = Identity::unpackaged(None);
    let from_anon = if policy.allows(&anon, &me) {
        "receives from them (exempt_in)"
    } else {
        "does not receive from them"
    };
    let to_anon = if policy.allows(&me, &anon) {
        "sends to them (exempt_out)"
    } else {
        "does not send to them"
    };
    let _ = writeln!(out, "  unpackaged:    {from_anon}; {to_anon}");
    let proofs = match rules.proofs.describe() {
        none if none == "none" && bridges.contains(&pfn) => {
            "none (the daemon's bridge is it)".to_owned()
        }
        other => other,
    };
    let _ = writeln!(out, "  proofs:        {proofs}");
    if !rules.capabilities.is_empty() {
        let mut caps: Vec<&str> = rules.capabilities.iter().map(String::as_str).collect();
        caps.sort_unstable();
        let _ = writeln!(out, "  capabilities:  {}", caps.join(", "));
    }
    let mut services: Vec<_> = policy
        .services
        .values()
        .filter(|s| s.owner == *pfn)
        .collect();
    services.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    for s in services {
        let mut how = match &s.exec {
            Some(argv) => format!("started on demand: {}", argv.join(" ")),
            None => "served by the package's own clients".to_owned(),
        };
        if let Some(cap) = &s.require_capability {
            how.push_str(&format!("; callers need {cap}"));
        }
        if let Some(idle) = s.idle_exit {
            how.push_str(&format!("; stopped after {idle:?} idle"));
        }
        let _ = writeln!(out, "  service:       {} ({how})", s.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_are_tagged_with_their_kind() {
        let d = Diagnostic {
            file: "b.toml".into(),
            line: Some(4),
            message: "no".into(),
        };
        assert_eq!(tagged(&d, "error"), "b.toml:4: error: no");
        let d = Diagnostic { line: None, ..d };
        assert_eq!(tagged(&d, "warning"), "b.toml: warning: no");
    }

    #[test]
    fn the_default_config_has_no_packages() {
        let config = Config::parse("default", busd_daemon::DEFAULT_CONFIG, &[]).unwrap();
        let text = summary(&config, 0);
        assert!(
            text.starts_with("default: valid: 0 package(s), 0 warning(s)\n"),
            "{text}"
        );
        assert!(text.contains("unpackaged clients: same-uid"), "{text}");
    }
}
