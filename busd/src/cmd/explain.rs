//! `--explain`: why a message from one party may or may not reach another,
//! in the words of `Policy::decide`, the decision the router makes.
//!
//! A party is a package family name, `unpackaged:UID` or `unpackaged` (a
//! client of unknown uid); `busd ctl explain` also takes a live client's
//! id.

/// What to explain: between whom, and for what.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Query {
    /// Explain whether a message from --from reaches --to (a request, with
    /// --service), instead of summing the rules up; exit code 0 when
    /// allowed, 3 when denied.
    #[arg(long, requires = "from")]
    pub(crate) explain: bool,
    #[command(flatten)]
    pub(crate) parties: Parties,
}

/// Who and what a question is about.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Parties {
    /// The sender (or caller): a package family name, `unpackaged:UID`,
    /// `unpackaged`, or (`busd ctl explain`) a live client's id.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// The receiver (or responder), as --from; with --service, its owner
    /// by default.
    #[arg(long)]
    pub(crate) to: Option<String>,
    /// The subject of the message (any subject: the rules are between
    /// packages, so it is named in the answer only).
    #[arg(long, conflicts_with = "service")]
    pub(crate) subject: Option<String>,
    /// A service called: the capability it requires is checked first.
    #[arg(long)]
    pub(crate) service: Option<String>,
}

impl Parties {
    /// Whether any of them was given (they go only with some commands).
    pub(crate) fn any(&self) -> bool {
        [&self.from, &self.to, &self.subject, &self.service]
            .iter()
            .any(|a| a.is_some())
    }
}
