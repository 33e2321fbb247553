//! Workers and the parent talk in lines: a worker prints `ready` once its
//! ports exist and waits for `go` on stdin; at the end it prints its
//! [`RoleResult`] as one JSON line. The end of stdin tells the publisher
//! to drop its ports and leave (and a worker still waiting for `go` that
//! its parent went away).

use std::io::{BufRead as _, Write as _};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// The line a worker prints once it is ready.
pub(crate) const READY: &str = "ready";
/// The line the parent sends to start the run.
pub(crate) const GO: &str = "go";

/// What one worker reports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RoleResult {
    /// Messages sent (the publisher).
    pub(crate) sent: u64,
    /// Messages received (a subscriber).
    pub(crate) received: u64,
    /// Payload bytes received.
    pub(crate) bytes: u64,
    /// Messages of the sequence that never came.
    pub(crate) lost: u64,
    /// Messages that came after a later one.
    pub(crate) out_of_order: u64,
    /// Unix time (ns) of the last send or receipt.
    pub(crate) last_ns: u64,
    /// Why the worker stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// A worker's side of the conversation.
#[derive(Debug)]
pub(crate) struct Control(());

impl Control {
    /// Says the worker is ready and waits for the parent's `go`.
    ///
    /// # Errors
    /// When stdout is gone or stdin ends first (the parent went away).
    pub(crate) fn ready(&self) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY}")
            .and_then(|()| out.flush())
            .context("cannot tell the parent")?;
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot hear the parent")?;
        if line.trim() != GO {
            bail!("the parent went away before the start");
        }
        Ok(())
    }

    /// Prints the worker's result.
    ///
    /// # Errors
    /// When stdout is gone.
    pub(crate) fn report(&self, result: &RoleResult) -> anyhow::Result<()> {
        let line = serde_json::to_string(result)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .context("cannot report to the parent")
    }

    /// Waits until the parent lets the worker go (the end of stdin).
    pub(crate) fn linger(&self) {
        let mut sink = String::new();
        let mut stdin = std::io::stdin().lock();
        while stdin.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    }
}

/// Runs a worker's role; its errors are printed by `main`.
pub(crate) fn serve(role: impl FnOnce(&Control) -> anyhow::Result<()>) -> anyhow::Result<bool> {
    role(&Control(()))?;
    Ok(true)
}
