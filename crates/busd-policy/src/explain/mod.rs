//! Why a message may or may not pass, naming the rule lines behind it.
//!
//! [`Policy::decide`] is the one decision the router makes:
//! [`Policy::allows`] is `decide(..).allowed`, so an explanation can never
//! disagree with a delivery. A [`Decision`] only borrows from the policy
//! and the identities, so deciding costs the router no allocation; the
//! words are made only when it is displayed.

use std::fmt;

use busd_proto::{Pfn, Subject};

use crate::grant::Grant;
use crate::identity::Identity;
use crate::policy::{Policy, UnpackagedMode};

/// A decision and the reason for it, displayed as `allowed: …` or
/// `denied: …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Whether the message may pass.
    pub allowed: bool,
    /// Why.
    pub reason: Reason<'a>,
    /// The file the rules came from, as line references name it.
    source: &'a str,
}

/// The rule that decided; lines are 1-based lines of the policy's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// Both unpackaged, under `[daemon] unpackaged = "open"`.
    UnpackagedOpen,
    /// Both unpackaged and of this uid, under `unpackaged = "same-uid"`.
    UnpackagedSameUid(u32),
    /// Both unpackaged, of different (or unknown) uids, under `same-uid`.
    UnpackagedOtherUid(Option<u32>, Option<u32>),
    /// Both unpackaged, under `unpackaged = "deny"`.
    UnpackagedDeny,
    /// A package the rules do not configure (removed by a reload, say).
    NotConfigured(&'a Pfn),
    /// A package without `loopback = true`: it sends and receives nothing.
    NoLoopback(&'a Pfn, usize),
    /// Sender and receiver are the same package.
    SamePackage,
    /// The sender's `out` lists the receiver, whose `in` lists the sender.
    Mutual {
        /// The sender.
        from: &'a Pfn,
        /// The line of its `out`.
        out_line: usize,
        /// The receiver.
        to: &'a Pfn,
        /// The line of its `in`.
        in_line: usize,
    },
    /// The sender's `out` (at this line, or its package's when it has
    /// none) does not list the receiver.
    NotInOut(&'a Pfn, usize, &'a Pfn),
    /// The receiver's `in` (at this line, or its package's) does not list
    /// the sender.
    NotInIn(&'a Pfn, usize, &'a Pfn),
    /// A packaged sender with `exempt_out` (its line) reaches an unpackaged
    /// receiver.
    ExemptOut(&'a Pfn, usize),
    /// A packaged sender without `exempt_out` (its package's line).
    NoExemptOut(&'a Pfn, usize),
    /// A packaged receiver with `exempt_in` (its line) hears an unpackaged
    /// sender.
    ExemptIn(&'a Pfn, usize),
    /// A packaged receiver without `exempt_in` (its package's line).
    NoExemptIn(&'a Pfn, usize),
    /// The file's rules deny it, and this grant lets it through.
    Granted(&'a Grant),
    /// The service requires a capability the caller (a package at this
    /// line, or unpackaged) lacks.
    LacksCapability {
        /// The service called.
        service: &'a Subject,
        /// The capability it requires.
        capability: &'a str,
        /// The caller's package and the line of its `capabilities` (or of
        /// its package), if it is packaged.
        caller: Option<(&'a Pfn, usize)>,
    },
}

impl Policy {
    /// Whether a message from `from` may reach `to`, and why. A package
    /// the policy does not know (removed by a reload) is denied everything.
    pub fn decide<'a>(&'a self, from: &'a Identity, to: &'a Identity) -> Decision<'a> {
        let (allowed, reason) = self.judge(from, to);
        Decision {
            allowed,
            reason,
            source: &self.source,
        }
    }

    /// Whether `asker` may call `service`, served by `responder`: the
    /// capability the service requires (`require_capability`), then the
    /// rules between the two, as for a message.
    pub fn decide_request<'a>(
        &'a self,
        asker: &'a Identity,
        responder: &'a Identity,
        service: &'a Subject,
        capability: Option<&'a str>,
    ) -> Decision<'a> {
        if let Some(capability) = capability.filter(|c| !self.has_capability(asker, c)) {
            let caller = asker.pfn.as_ref().map(|pfn| {
                let lines = self.packages.get(pfn).map(|r| r.lines);
                let line = lines.map_or(0, |l| l.capabilities.unwrap_or(l.package));
                (pfn, line)
            });
            let reason = Reason::LacksCapability {
                service,
                capability,
                caller,
            };
            return Decision {
                allowed: false,
                reason,
                source: &self.source,
            };
        }
        self.decide(asker, responder)
    }

    /// The decision alone (its reason borrowed), for [`allows`](Policy::allows):
    /// the file's rules, then the grants on top of them.
    pub(crate) fn judge<'a>(&'a self, from: &'a Identity, to: &'a Identity) -> (bool, Reason<'a>) {
        let (allowed, reason) = self.judge_file(from, to);
        if allowed || self.grants.is_empty() {
            return (allowed, reason);
        }
        match self.grants.iter().find(|g| g.covers(from, to)) {
            Some(grant) => {
                if grant.first_use() {
                    tracing::info!(target: "busd::audit", grant = grant.id, %from, %to, "grant used");
                }
                (true, Reason::Granted(grant))
            }
            None => (false, reason),
        }
    }

    /// The file's rules alone.
    fn judge_file<'a>(&'a self, from: &'a Identity, to: &'a Identity) -> (bool, Reason<'a>) {
        match (&from.pfn, &to.pfn) {
            (None, None) => match self.unpackaged {
                UnpackagedMode::Open => (true, Reason::UnpackagedOpen),
                UnpackagedMode::SameUid => match (from.uid, to.uid) {
                    (Some(a), Some(b)) if a == b => (true, Reason::UnpackagedSameUid(a)),
                    (a, b) => (false, Reason::UnpackagedOtherUid(a, b)),
                },
                UnpackagedMode::Deny => (false, Reason::UnpackagedDeny),
            },
            (Some(a), Some(b)) => {
                let Some(ra) = self.packages.get(a) else {
                    return (false, Reason::NotConfigured(a));
                };
                let Some(rb) = self.packages.get(b) else {
                    return (false, Reason::NotConfigured(b));
                };
                if !ra.loopback {
                    return (false, Reason::NoLoopback(a, ra.lines.package));
                }
                if !rb.loopback {
                    return (false, Reason::NoLoopback(b, rb.lines.package));
                }
                if a == b {
                    return (true, Reason::SamePackage);
                }
                let out_line = ra.lines.send_to.unwrap_or(ra.lines.package);
                let in_line = rb.lines.accept_from.unwrap_or(rb.lines.package);
                if !ra.send_to.contains(b) {
                    return (false, Reason::NotInOut(a, out_line, b));
                }
                if !rb.accept_from.contains(a) {
                    return (false, Reason::NotInIn(b, in_line, a));
                }
                let reason = Reason::Mutual {
                    from: a,
                    out_line,
                    to: b,
                    in_line,
                };
                (true, reason)
            }
            (Some(a), None) => match self.packages.get(a) {
                None => (false, Reason::NotConfigured(a)),
                Some(r) if !r.loopback => (false, Reason::NoLoopback(a, r.lines.package)),
                Some(r) if r.exempt_out => {
                    let line = r.lines.exempt_out.unwrap_or(r.lines.package);
                    (true, Reason::ExemptOut(a, line))
                }
                Some(r) => (false, Reason::NoExemptOut(a, r.lines.package)),
            },
            (None, Some(b)) => match self.packages.get(b) {
                None => (false, Reason::NotConfigured(b)),
                Some(r) if !r.loopback => (false, Reason::NoLoopback(b, r.lines.package)),
                Some(r) if r.exempt_in => {
                    let line = r.lines.exempt_in.unwrap_or(r.lines.package);
                    (true, Reason::ExemptIn(b, line))
                }
                Some(r) => (false, Reason::NoExemptIn(b, r.lines.package)),
            },
        }
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        let at = |line: usize| At(self.source, line);
        let uid = |u: Option<u32>| u.map_or_else(|| "unknown".to_owned(), |u| u.to_string());
        write!(f, "{verdict}: ")?;
        match self.reason {
            Reason::UnpackagedOpen => {
                write!(f, "both unpackaged, and [daemon] unpackaged = \"open\"")
            }
            Reason::UnpackagedSameUid(u) => write!(
                f,
                "both unpackaged, of the same uid {u} ([daemon] unpackaged = \"same-uid\")"
            ),
            Reason::UnpackagedOtherUid(a, b) => write!(
                f,
                "both unpackaged, of uids {} and {}, and [daemon] unpackaged = \"same-uid\"",
                uid(a),
                uid(b)
            ),
            Reason::UnpackagedDeny => {
                write!(f, "both unpackaged, and [daemon] unpackaged = \"deny\"")
            }
            Reason::NotConfigured(p) => write!(f, "{p} is not a configured package"),
            Reason::NoLoopback(p, l) => {
                write!(f, "{p} ({}) does not have loopback = true", at(l))
            }
            Reason::SamePackage => write!(f, "same package"),
            Reason::Mutual {
                from,
                out_line,
                to,
                in_line,
            } => write!(
                f,
                "{from}'s `out` ({}) lists {to}, and {to}'s `in` ({}) lists {from}",
                at(out_line),
                at(in_line)
            ),
            Reason::NotInOut(from, l, to) => {
                write!(f, "{from}'s `out` ({}) does not list {to}", at(l))
            }
            Reason::NotInIn(to, l, from) => {
                write!(f, "{to}'s `in` ({}) does not list {from}", at(l))
            }
            Reason::ExemptOut(p, l) => write!(f, "exempt_out on {p} ({})", at(l)),
            Reason::NoExemptOut(p, l) => write!(
                f,
                "the receiver is unpackaged, and {p} ({}) has no exempt_out",
                at(l)
            ),
            Reason::ExemptIn(p, l) => write!(f, "exempt_in on {p} ({})", at(l)),
            Reason::NoExemptIn(p, l) => write!(
                f,
                "the sender is unpackaged, and {p} ({}) has no exempt_in",
                at(l)
            ),
            Reason::Granted(g) => {
                let until = humantime_serde::re::humantime::format_rfc3339_seconds(g.until);
                write!(f, "grant {} (busd ctl grant) until {until}", g.id)?;
                match &g.reason {
                    Some(why) => write!(f, ": {why}"),
                    None => Ok(()),
                }
            }
            Reason::LacksCapability {
                service,
                capability,
                caller,
            } => match caller {
                Some((p, l)) => write!(
                    f,
                    "service {service} requires capability {capability}, which {p} ({}) lacks",
                    at(l)
                ),
                None => write!(
                    f,
                    "service {service} requires capability {capability}, which an unpackaged client lacks"
                ),
            },
        }
    }
}

/// `FILE:LINE`, or the file alone for a policy built in code (line 0).
struct At<'a>(&'a str, usize);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            0 => write!(
                f,
                "{}",
                if self.0.is_empty() {
                    "built in"
                } else {
                    self.0
                }
            ),
            line => write!(f, "{}:{line}", self.0),
        }
    }
}

mod query;
#[cfg(test)]
mod tests;

pub use query::{Answer, Party, Question};
