//! A process started in a lab's host, killed when its handle drops.

use std::process::{Child, Command, ExitStatus};

/// A child process (typically of [`Host::command`](super::Host::command)),
/// SIGKILLed and reaped when this drops, the test panicking or not.
#[derive(Debug)]
pub struct LabProcess {
    child: Child,
    what: String,
}

impl LabProcess {
    /// Spawns `cmd`.
    ///
    /// # Panics
    /// If it cannot be spawned.
    pub fn spawn(cmd: &mut Command) -> LabProcess {
        let what = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("netlab: spawn {what}: {e}"));
        LabProcess { child, what }
    }

    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether it still runs (it is reaped if it exited).
    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// How it ended, if it did (reaping it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILLs it, if still running, and reaps it.
    pub fn kill(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The child, to wait on it or take its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The command it runs, for messages.
    pub fn command_line(&self) -> &str {
        &self.what
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
