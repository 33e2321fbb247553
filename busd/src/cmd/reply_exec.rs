//! `busd reply SERVICE --exec CMD [ARGS...]`: a service made of a command,
//! run once per request, as inetd made servers of filters.
//!
//! The command runs without a shell (its words as given), the request's
//! payload on its stdin and who calls in its environment; its stdout is the
//! `Success` answer. Everything else answers `Failure` with a sentence, so
//! a caller never waits for its timeout on something it can be told: a
//! command that cannot start, exits non-zero (its stderr is the reason),
//! outlives `--exec-timeout` (it is killed) or prints more than a frame holds.

use std::io::Write;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use busd_client::{Error, Request};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::payload::{msgpack_as_json, to_msgpack};

/// How much of a failed command's stderr its `Failure` answer carries: the
/// end, where the error usually is, and short enough for any frame.
const STDERR_TAIL: usize = 4096;

/// Room left in a frame for the answer's header, which holds a request id
/// and a status, far less than this.
const HEADER_ROOM: usize = 1024;

/// The command, and how it is run.
#[derive(Debug, Clone)]
pub(crate) struct Exec {
    /// The program and its arguments; never empty (clap asks for one).
    pub(crate) argv: Vec<String>,
    /// How long one run may take before it is killed.
    pub(crate) timeout: Duration,
    /// Whether MessagePack requests go to stdin as JSON, and stdout is JSON
    /// to answer as MessagePack (`--json`).
    pub(crate) json: bool,
    /// The daemon's `max_frame`, which an answer must fit in.
    pub(crate) max_frame: usize,
}

impl Exec {
    /// Answers `request` with one run of the command.
    ///
    /// # Errors
    /// The client's error when the answer cannot be sent (the caller then
    /// gets `ResponderGone` or `Timeout` from the daemon).
    pub(crate) async fn answer(&self, request: Request) -> Result<(), Error> {
        let input = match (self.json, msgpack_as_json(&request.payload)) {
            (true, Some(json)) => Bytes::from(json + "\n"),
            _ => request.payload.clone(),
        };
        match self
            .run(&request, input)
            .await
            .and_then(|out| self.encode(out))
        {
            Ok(answer) => request.respond(answer).await,
            Err(reason) => request.respond_failure(reason).await,
        }
    }

    /// Runs the command once with `input` on its stdin; its stdout, or why
    /// there is none.
    async fn run(&self, request: &Request, input: Bytes) -> Result<Vec<u8>, String> {
        let program = &self.argv[0];
        let mut command = tokio::process::Command::new(program);
        command
            .args(&self.argv[1..])
            .env("BUSD_SERVICE", request.service.as_str())
            .env("BUSD_CALLER_ID", request.from.client_id.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a run past its timeout is
            // killed whole: a shell script's children too, not only the
            // shell (which `kill_on_drop` alone would kill).
            .process_group(0)
            .kill_on_drop(true);
        match &request.from.pfn {
            Some(pfn) => command.env("BUSD_CALLER_PFN", pfn.as_str()),
            // Unpackaged: no variable, not one inherited from this process.
            None => command.env_remove("BUSD_CALLER_PFN"),
        };
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let group = child.id();
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Written while the output is read, so neither pipe fills up and
        // stalls the other; a command that does not read its stdin is fine.
        let feed = async move {
            let _ = stdin.write_all(&input).await;
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        let output = match tokio::time::timeout(self.timeout, run).await {
            Err(_) => {
                kill_group(group);
                let limit = humantime_serde::re::humantime::format_duration(self.timeout);
                return Err(format!(
                    "{program} did not finish within {limit} (--exec-timeout) and was killed"
                ));
            }
            Ok(Err(e)) => return Err(format!("cannot read what {program} wrote: {e}")),
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            // Its diagnostics are still worth seeing, beside this process's own.
            let _ = std::io::stderr().write_all(&output.stderr);
            Ok(output.stdout)
        } else {
            Err(failed(program, output.status, &output.stderr))
        }
    }

    /// The answer for the command's `stdout`: as it is, or JSON as
    /// MessagePack with `--json`; refused when it cannot fit in a frame.
    fn encode(&self, stdout: Vec<u8>) -> Result<Bytes, String> {
        let program = &self.argv[0];
        let answer = if self.json {
            let value = serde_json::from_slice(&stdout)
                .map_err(|e| format!("{program} printed something that is not JSON: {e}"))?;
            to_msgpack(&value)?
        } else {
            Bytes::from(stdout)
        };
        if answer.len() + HEADER_ROOM > self.max_frame {
            return Err(format!(
                "{program} printed {} bytes, more than an answer may hold (the daemon's max_frame is {})",
                answer.len(),
                self.max_frame
            ));
        }
        Ok(answer)
    }
}

/// Kills the process group `group` led by a command that ran too long (its
/// leader is killed again when dropped, which is harmless).
fn kill_group(group: Option<u32>) {
    let leader = group
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(leader) = leader {
        // Gone already (ESRCH) is what a kill after exiting meets.
        let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
    }
}

/// The `Failure` reason for a command that ended with `status`: the status,
/// and the end of what it wrote to stderr.
fn failed(program: &str, status: ExitStatus, stderr: &[u8]) -> String {
    let tail = &stderr[stderr.len().saturating_sub(STDERR_TAIL)..];
    let text = String::from_utf8_lossy(tail);
    let text = text.trim();
    if text.is_empty() {
        format!("{program} failed ({status})")
    } else {
        format!("{program} failed ({status}): {text}")
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn a_failure_gives_the_status_and_the_end_of_stderr() {
        let exit3 = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            failed("sh", exit3, b"broken\n"),
            "sh failed (exit status: 3): broken"
        );
        assert_eq!(failed("sh", exit3, b""), "sh failed (exit status: 3)");
        let long = [b"x".repeat(STDERR_TAIL), b"the end".to_vec()].concat();
        let reason = failed("sh", exit3, &long);
        assert!(reason.ends_with("the end"), "{reason}");
        assert!(reason.len() < STDERR_TAIL + 40, "{}", reason.len());
    }
}
