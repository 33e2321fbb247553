//! What a request id was sent to, and what a status that is not an answer
//! means for it.
//!
//! A request to a service and an administrative `Ctl` command share the
//! request id space and the reader task's routing. Both end in an error when
//! the daemon answers with a verdict of its own (`NoResponders`,
//! `NotAuthorized`, …), and the error names what was asked: "request to
//! service a.b", "ctl reload". This lives apart from the request and ctl
//! APIs, which sit on top of the client, so that the routing state below can
//! turn statuses into errors without reaching up to them.

use std::fmt;

use busd_proto::{CtlCommand, Status, Subject};

use crate::error::{Error, ErrorKind};

/// What a request id was sent to: names it in errors.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A `Req` to a service.
    Service(Subject),
    /// A `Ctl` command.
    Ctl(CtlCommand),
}

impl Target {
    /// The error for an answer with `status`, if it is not an answer; a
    /// refusal's `payload` says why, in the daemon's words.
    pub(crate) fn error_for(&self, status: Status, payload: &[u8]) -> Option<Error> {
        match self {
            Self::Service(service) => Error::from_status(status, service.as_str(), payload),
            Self::Ctl(command) => ctl_status_error(status, command),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(service) => write!(f, "request to service {service}"),
            Self::Ctl(command) => write!(f, "ctl command {}", ctl_name(command)),
        }
    }
}

/// The error for a ctl answer with `status`, if it is not an answer.
pub(crate) fn ctl_status_error(status: Status, command: &CtlCommand) -> Option<Error> {
    let code = status.error_code()?;
    let name = ctl_name(command);
    let message = match status {
        Status::NotAuthorized => {
            format!("not authorized to run ctl {name}: it needs an admin identity")
        }
        _ => format!("ctl {name} failed: {status}"),
    };
    Some(Error::new(ErrorKind::from_code(code), message))
}

/// The command's name as `busd ctl` spells it: `stats`, `reload`, ….
pub(crate) fn ctl_name(command: &CtlCommand) -> String {
    match command {
        CtlCommand::Explain(_) => "explain".to_owned(),
        CtlCommand::ReloadDryRun(_) => "reload --dry-run".to_owned(),
        CtlCommand::Grant(_) => "grant".to_owned(),
        CtlCommand::Revoke(_) => "revoke".to_owned(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_authorized_names_the_command() {
        let err = ctl_status_error(Status::NotAuthorized, &CtlCommand::Clients).unwrap();
        assert_eq!(err.kind(), ErrorKind::NotAuthorized);
        assert!(err.to_string().contains("ctl clients"), "{err}");
        assert!(ctl_status_error(Status::Success, &CtlCommand::Clients).is_none());
        assert_eq!(ctl_name(&CtlCommand::Reload), "reload");
        let explain = CtlCommand::Explain(busd_proto::ExplainQuery::default());
        assert_eq!(ctl_name(&explain), "explain");
    }
}
