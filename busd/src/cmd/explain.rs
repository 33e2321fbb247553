//! `--explain`: why a message from one party may or may not reach another,
//! in the words of `Policy::decide`, the decision the router makes.
//!
//! A party is a package family name, `unpackaged:UID`, or `unpackaged`
//! (a client of unknown uid).

use std::fmt::Write as _;

use busd_policy::{Identity, Policy};
use busd_proto::{Pfn, Subject};

/// What to explain: between whom, and for what.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Query {
    /// Explain whether a message from --from reaches --to (a request, with
    /// --service), instead of summing the rules up; exit code 0 when
    /// allowed, 3 when denied.
    #[arg(long, requires = "from")]
    pub(crate) explain: bool,
    /// The sender (or caller): a package family name, `unpackaged:UID` or
    /// `unpackaged`.
    #[arg(long, value_parser = parse_party, requires = "explain")]
    pub(crate) from: Option<Identity>,
    /// The receiver (or responder), as --from; with --service, its owner
    /// by default.
    #[arg(long, value_parser = parse_party, requires = "explain")]
    pub(crate) to: Option<Identity>,
    /// The subject of the message (any subject: the rules are between
    /// packages, so it is named in the answer only).
    #[arg(long, conflicts_with = "service", requires = "explain")]
    pub(crate) subject: Option<String>,
    /// A service called: the capability it requires is checked first.
    #[arg(long, requires = "explain")]
    pub(crate) service: Option<String>,
}

/// A party as the command line names it.
fn parse_party(s: &str) -> Result<Identity, String> {
    match s.strip_prefix("unpackaged") {
        Some("") => Ok(Identity::unpackaged(None)),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|uid| uid.parse().ok())
            .map(|uid| Identity::unpackaged(Some(uid)))
            .ok_or_else(|| format!("{s}: not `unpackaged` or `unpackaged:UID`")),
        None => Pfn::parse(s)
            .map(|pfn| Identity::package(pfn, None))
            .map_err(|e| format!("{s}: {e}")),
    }
}

/// The answer to `query` under `policy`, and whether it is allowed.
///
/// # Errors
/// A service that is not a valid name, or a request with no receiver: no
/// `--to`, and a service that no package owns.
pub(crate) fn explain(policy: &Policy, query: &Query) -> Result<(String, bool), String> {
    let Some(from) = &query.from else {
        return Err("--explain needs --from".into());
    };
    let mut out = String::new();
    let (allowed, text) = match &query.service {
        Some(name) => {
            let service = Subject::parse(name).map_err(|e| format!("--service {name}: {e}"))?;
            let rule = policy.service(&service);
            let owner = rule.map(|r| Identity::package(r.owner.clone(), None));
            let Some(to) = query.to.as_ref().or(owner.as_ref()) else {
                return Err(format!(
                    "--service {name} is owned by no package: name the responder with --to"
                ));
            };
            let capability = rule.and_then(|r| r.require_capability.as_deref());
            let decision = policy.decide_request(from, to, &service, capability);
            let _ = write!(
                out,
                "request {service} from {} to {}: ",
                party(from),
                party(to)
            );
            (decision.allowed, decision.to_string())
        }
        None => {
            let Some(to) = &query.to else {
                return Err("--explain needs --to (or --service)".into());
            };
            let decision = policy.decide(from, to);
            let _ = write!(out, "message");
            if let Some(subject) = &query.subject {
                let _ = write!(out, " on {subject}");
            }
            let _ = write!(out, " from {} to {}: ", party(from), party(to));
            (decision.allowed, decision.to_string())
        }
    };
    out.push_str(&text);
    out.push('\n');
    Ok((out, allowed))
}

/// A party as the answer names it.
fn party(who: &Identity) -> String {
    match (&who.pfn, who.uid) {
        (Some(pfn), _) => pfn.to_string(),
        (None, Some(uid)) => format!("unpackaged:{uid}"),
        (None, None) => "unpackaged".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_are_packages_or_unpackaged_clients() {
        let pfn = "Contoso.Weather_8wekyb3d8bbwe";
        assert_eq!(parse_party(pfn).unwrap().pfn.unwrap().as_str(), pfn);
        assert_eq!(parse_party("unpackaged:1000").unwrap().uid, Some(1000));
        assert_eq!(parse_party("unpackaged").unwrap().uid, None);
        assert!(parse_party("unpackaged:me").is_err());
        assert!(parse_party("not a pfn").is_err());
    }
}
