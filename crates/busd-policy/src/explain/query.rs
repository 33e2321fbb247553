//! One question about the rules, as `busd check-config --explain` and
//! `busd ctl explain` ask it: parties named on a command line, a subject
//! or a service, and the answer in words.

use std::fmt::Write as _;

use busd_proto::{Pfn, Subject};

use crate::identity::Identity;
use crate::policy::Policy;

/// A party as a command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Party {
    /// A package family name, `unpackaged:UID` or `unpackaged` (a client
    /// of unknown uid).
    Identity(Identity),
    /// A live client, by the id `busd ctl clients` shows (a number): only
    /// the daemon knows who it is.
    Client(u64),
}

impl Party {
    /// Reads `s`: a number is a live client's id, `unpackaged[:UID]` an
    /// unpackaged client, anything else a package family name.
    ///
    /// # Errors
    /// What is wrong with `s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Ok(id) = s.parse() {
            return Ok(Self::Client(id));
        }
        match s.strip_prefix("unpackaged") {
            Some("") => Ok(Self::Identity(Identity::unpackaged(None))),
            Some(rest) => rest
                .strip_prefix(':')
                .and_then(|uid| uid.parse().ok())
                .map(|uid| Self::Identity(Identity::unpackaged(Some(uid))))
                .ok_or_else(|| format!("{s}: not `unpackaged` or `unpackaged:UID`")),
            None => Pfn::parse(s)
                .map(|pfn| Self::Identity(Identity::package(pfn, None)))
                .map_err(|e| format!("{s}: {e}")),
        }
    }
}

/// What is explained: a message from `from` to `to` (on `subject`, named
/// only: the rules are between parties), or a request from `from` to
/// `service`, served by `to` or by default its owner.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    /// The sender or caller.
    pub from: &'a Identity,
    /// The receiver or responder.
    pub to: Option<&'a Identity>,
    /// The message's subject.
    pub subject: Option<&'a str>,
    /// The service called.
    pub service: Option<&'a str>,
}

/// An answer: whether it is allowed, and the sentence that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Whether the message or request passes.
    pub allowed: bool,
    /// `message on S from A to B: allowed: …` or `request S from A to B: denied: …`.
    pub text: String,
}

impl Policy {
    /// Answers `q` in [`Policy::decide`]'s words.
    ///
    /// # Errors
    /// A service that is not a valid name, or no receiver: no `to`, and
    /// no service owned by a package.
    pub fn explain(&self, q: Question<'_>) -> Result<Answer, String> {
        let mut text = String::new();
        let decision = match q.service {
            Some(name) => {
                let service = Subject::parse(name).map_err(|e| format!("service {name}: {e}"))?;
                let rule = self.service(&service);
                let owner = rule.map(|r| Identity::package(r.owner.clone(), None));
                let Some(to) = q.to.or(owner.as_ref()) else {
                    return Err(format!(
                        "service {name} is owned by no package: name the responder"
                    ));
                };
                let capability = rule.and_then(|r| r.require_capability.as_deref());
                let decision = self.decide_request(q.from, to, &service, capability);
                let _ = write!(
                    text,
                    "request {service} from {} to {}: ",
                    q.from.party(),
                    to.party()
                );
                (decision.allowed, decision.to_string())
            }
            None => {
                let Some(to) = q.to else {
                    return Err("no receiver named".into());
                };
                let decision = self.decide(q.from, to);
                text.push_str("message");
                if let Some(subject) = q.subject {
                    let _ = write!(text, " on {subject}");
                }
                let _ = write!(text, " from {} to {}: ", q.from.party(), to.party());
                (decision.allowed, decision.to_string())
            }
        };
        text.push_str(&decision.1);
        Ok(Answer {
            allowed: decision.0,
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_are_clients_packages_or_unpackaged_clients() {
        let pfn = "Contoso.Weather_8wekyb3d8bbwe";
        let Ok(Party::Identity(p)) = Party::parse(pfn) else {
            panic!("a package")
        };
        assert_eq!(p.pfn.unwrap().as_str(), pfn);
        assert_eq!(
            Party::parse("unpackaged:1000"),
            Ok(Party::Identity(Identity::unpackaged(Some(1000))))
        );
        assert_eq!(
            Party::parse("unpackaged"),
            Ok(Party::Identity(Identity::unpackaged(None)))
        );
        assert_eq!(Party::parse("42"), Ok(Party::Client(42)));
        assert!(Party::parse("unpackaged:me").is_err());
        assert!(Party::parse("not a pfn").is_err());
    }
}
