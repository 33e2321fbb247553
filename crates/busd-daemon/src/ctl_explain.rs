//! `busd ctl explain`: one question about the rules in force, answered
//! in `Policy::decide`'s words (the decision the router makes), with live
//! clients named by their id.

use busd_policy::{Answer, Identity, Party, Question};
use busd_proto::ExplainQuery;
use serde::Serialize;

use crate::shared::Shared;
use crate::sync::lock;

/// The answer as `busd ctl explain --json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct ExplainDoc {
    /// Whether the message or request passes.
    allowed: bool,
    /// The sentence that says why, naming the rule and its line.
    explanation: String,
}

/// Answers `q` under the rules in force.
///
/// # Errors
/// A party that cannot be read, a client id not connected, or no
/// receiver named.
pub(crate) fn explain(shared: &Shared, q: &ExplainQuery) -> Result<ExplainDoc, String> {
    let from = identity(shared, &q.from)?;
    let to = q.to.as_deref().map(|to| identity(shared, to)).transpose()?;
    let policy = lock(&shared.router).policy().clone();
    let Answer { allowed, text } = policy.explain(Question {
        from: &from,
        to: to.as_ref(),
        subject: q.subject.as_deref(),
        service: q.service.as_deref(),
    })?;
    Ok(ExplainDoc {
        allowed,
        explanation: text,
    })
}

/// The identity `party` names: a live client's as the daemon proved it.
pub(crate) fn identity(shared: &Shared, party: &str) -> Result<Identity, String> {
    match Party::parse(party)? {
        Party::Identity(who) => Ok(who),
        Party::Client(id) => lock(&shared.router)
            .connection(id)
            .map(|(who, _)| who.clone())
            .ok_or_else(|| format!("no client {id} is connected")),
    }
}
