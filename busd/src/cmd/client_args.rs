//! Options every client command takes (where the daemon is, which package
//! to claim and how to prove it), and connecting with them.

use std::path::PathBuf;
use std::process::ExitCode;

use busd_client::{Client, Error, ErrorKind, Pfn};
use bytes::Bytes;

use super::payload::PayloadArgs;

/// Where the daemon is, and who this client is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ClientArgs {
    /// Daemon URL: tcp://127.0.0.1:PORT, unix:///path/busd.sock or
    /// shm:///path/busd.sock (shared memory, set up over that socket)
    /// [default: the default unix socket]
    #[arg(long, short, env = "BUSD_URL", global = true)]
    server: Option<String>,
    /// Connect as this package (Name_PublisherId), proven by this process's
    /// uid (and executable) unless --token-file is given [default: unpackaged]
    #[arg(long, env = "BUSD_PFN", global = true, value_name = "PFN")]
    pfn: Option<Pfn>,
    /// Prove --pfn with the package's token from FILE (an HMAC challenge;
    /// the token itself is never sent)
    #[arg(
        long,
        env = "BUSD_TOKEN_FILE",
        global = true,
        value_name = "FILE",
        requires = "pfn"
    )]
    token_file: Option<PathBuf>,
}

impl ClientArgs {
    /// The URL to use.
    pub(crate) fn url(&self) -> String {
        // clap has read BUSD_URL into `server` already. A command the
        // daemon started as a service uses the connection it was handed.
        self.server
            .clone()
            .or_else(Client::inherited_url)
            .unwrap_or_else(Client::default_url)
    }

    /// Connects, naming the client after the command for the daemon's logs.
    /// Unusable options (an unreadable token file) exit 2, as a usage error
    /// does; any other failure exits 1.
    pub(crate) async fn connect(&self, command: &str) -> Result<Client, ExitCode> {
        let url = self.url();
        // Commands ask for fd passing: `--attach` sends files, `sub` names
        // the ones that come, and a command's reads are few enough that
        // `recvmsg` costs nothing worth saving.
        let mut builder = Client::builder(&url)
            .name(format!("busd {command}"))
            .pass_fds(true);
        if url.starts_with("fd://") {
            // Handed over once: it cannot be made again.
            builder = builder.reconnect(false);
        }
        if let Some(pfn) = &self.pfn {
            builder = builder.pfn(pfn);
        }
        if let Some(path) = &self.token_file {
            builder = builder.token_file(path);
        }
        builder.connect().await.map_err(|e| match e.kind() {
            ErrorKind::Config => {
                eprintln!("busd: {e}");
                ExitCode::from(2)
            }
            _ => fail(&e),
        })
    }

    /// Reads the payload argument `data`, then connects: what the commands
    /// that send a payload do first (a bad payload fails before connecting).
    pub(crate) async fn payload_and_connect(
        &self,
        payload: &PayloadArgs,
        data: &str,
        command: &str,
    ) -> Result<(Bytes, Client), ExitCode> {
        let bytes = payload.read(data)?;
        Ok((bytes, self.connect(command).await?))
    }
}

/// Prints a client error as `busd: <message>`; exit code 1.
pub(crate) fn fail(e: &Error) -> ExitCode {
    eprintln!("busd: {e}");
    ExitCode::FAILURE
}

/// Prints a client error for scripts, as `<Kind>: <message>` (the kind's
/// name first, once), e.g. `NotAuthorized: …`; exit code 1.
pub(crate) fn report(e: &Error) -> ExitCode {
    eprintln!("{}", report_line(e));
    ExitCode::FAILURE
}

fn report_line(e: &Error) -> String {
    let kind = format!("{:?}", e.kind());
    // A daemon error's message starts with its code name already.
    let message = e
        .message()
        .strip_prefix(kind.as_str())
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(e.message());
    format!("{kind}: {message}")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cmd::Cli;

    const PFN: &str = "Contoso.Weather_8wekyb3d8bbwe";

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("busd").chain(args.iter().copied()))
    }

    #[test]
    fn every_client_command_takes_a_package_and_a_token() {
        for command in [
            &["pub", "a.b", "x"][..],
            &["sub", "a.>"],
            &["req", "svc.a", "x"],
            &["reply", "svc.a", "--echo"],
            &["ctl", "stats"],
        ] {
            let mut args = command.to_vec();
            args.extend(["--pfn", PFN, "--token-file", "weather.key"]);
            assert!(parse(&args).is_ok(), "{args:?}");
        }
    }

    #[tokio::test]
    async fn reports_name_the_kind_once() {
        let err = busd_client::Client::builder("tcp://127.0.0.1:1")
            .token_file("weather.key")
            .connect()
            .await
            .unwrap_err();
        let line = super::report_line(&err);
        assert!(line.starts_with("Config: token file weather.key"), "{line}");
    }

    #[test]
    fn a_token_needs_a_package() {
        let err = parse(&["pub", "--token-file", "weather.key", "a.b", "x"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn a_malformed_package_is_a_usage_error() {
        let err = parse(&["sub", "--pfn", "Contoso.Weather", "a.b"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("Name_PublisherId"), "{err}");
    }
}
