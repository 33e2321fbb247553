//! The connection task: the owner of a client's sessions, and the place
//! where reconnecting happens.
//!
//! It starts each session's reader and writer tasks, applies the rare
//! [`Command`]s (registering, unregistering), notices when a session ends
//! or every handle is gone, and reconnects with backoff. It is not on any
//! hot path: callers append their frames to the shared outgoing buffer
//! themselves, and the reader task routes what arrives.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::command::Command;
use crate::dial::Dial;
use crate::handshake::{self, HelloOptions, Session};
use crate::session::{self, Backoff, Ended, Pipes};
use crate::shared::Shared;

/// A session that lived at least this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(2);

/// How long a closing client waits for its last bytes to be written.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stopped reader may take to end (it parks a delivery waiting
/// for room, or notices it is stale at its next frame).
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// How a session ended.
enum End {
    /// Every handle is gone: the client is done.
    HandlesGone,
    /// The connection broke, or the daemon closed it.
    Lost(Ended),
}

/// The connection task of one client.
pub(crate) struct ConnectionTask {
    pub(crate) endpoint: Dial,
    pub(crate) hello: HelloOptions,
    pub(crate) reconnect: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::Receiver<Command>,
    /// The number of the latest connection (see `State::epoch`).
    pub(crate) epoch: u64,
}

impl ConnectionTask {
    /// Runs sessions, starting with `first`, until every handle is gone (or
    /// the connection is lost with reconnect off).
    pub(crate) async fn run(mut self, first: Session) {
        self.run_sessions(first).await;
        self.shared.with(crate::state::State::shut);
    }

    async fn run_sessions(&mut self, first: Session) {
        let mut next = Some(first);
        let mut backoff = Backoff::new();
        loop {
            let session = match next.take() {
                Some(session) => session,
                None => match self.reconnect(&mut backoff).await {
                    Some(session) => session,
                    None => return,
                },
            };
            let started = Instant::now();
            match self.run_session(session).await {
                End::HandlesGone => return,
                End::Lost(Ended { why, .. }) => {
                    if !self.reconnect {
                        tracing::warn!(endpoint = %self.endpoint, cause = %why, "connection to busd lost; reconnect is off");
                        return;
                    }
                    tracing::warn!(endpoint = %self.endpoint, cause = %why, "connection to busd lost; reconnecting");
                    if started.elapsed() >= STABLE_SESSION {
                        backoff = Backoff::new();
                    }
                }
            }
        }
    }

    /// Connects again with backoff, forever while any handle is alive.
    async fn reconnect(&mut self, backoff: &mut Backoff) -> Option<Session> {
        loop {
            tokio::time::sleep(backoff.next_delay()).await;
            if self.commands.is_closed() {
                return None;
            }
            match handshake::open(&self.endpoint, &self.hello).await {
                Ok(session) => {
                    tracing::info!(endpoint = %self.endpoint, attempts = backoff.attempts(), "reconnected to busd");
                    return Some(session);
                }
                Err(err) if backoff.attempts() == 1 => {
                    tracing::warn!(endpoint = %self.endpoint, cause = %err, "cannot reconnect to busd yet; retrying");
                }
                Err(err) => tracing::debug!(cause = %err, "reconnect attempt failed"),
            }
        }
    }

    async fn run_session(&mut self, session: Session) -> End {
        let Session {
            reader,
            writer,
            welcome,
            fds,
        } = session;
        self.epoch += 1;
        let epoch = self.epoch;
        self.shared.welcome(&welcome);
        let pool = fds.as_ref().and_then(|f| f.pool().cloned());
        self.shared.set_pool(pool.clone());
        let set_pools = fds.as_ref().and_then(|f| f.set_pools().cloned());
        self.shared.with(|s| s.begin(epoch, pool, set_pools));
        let mut pipes = session::spawn(reader, writer, fds, &self.shared, epoch);
        let mut reader_done = false;
        let mut writer_done = false;
        let end = loop {
            tokio::select! {
                ended = &mut pipes.reader_task => {
                    reader_done = true;
                    break End::Lost(ended.unwrap_or_else(|e| Ended::caused(format!("reader task failed: {e}"), e)));
                }
                written = &mut pipes.writer_task => {
                    writer_done = true;
                    const WHY: &str = "write to busd failed";
                    break End::Lost(match written {
                        Ok(Err(err)) => Ended::caused(WHY, err),
                        _ => Ended::plain(WHY),
                    });
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.shared.with(|s| s.handle_command(command)),
                    None => break End::HandlesGone,
                },
            }
        };
        match &end {
            End::HandlesGone => close(pipes, reader_done, writer_done).await,
            End::Lost(ended) => {
                let lost = ended.error();
                // Its pool gets no block back any more: nobody waits on it.
                self.shared.set_pool(None);
                self.shared.with(|s| s.fail_in_flight(&lost));
                pipes.writer_task.abort();
                pipes.stop.cancel();
                // A reader waiting for room parks its delivery for the next
                // session and ends; it must end before the next one starts.
                if !reader_done
                    && tokio::time::timeout(STOP_TIMEOUT, &mut pipes.reader_task)
                        .await
                        .is_err()
                {
                    pipes.reader_task.abort();
                }
            }
        }
        end
    }
}

/// Writes what is still buffered, then closes the socket gracefully: shuts
/// down the sending side and reads until busd closes its side, so the last
/// bytes are not lost to a reset.
async fn close(mut pipes: Pipes, reader_done: bool, writer_done: bool) {
    pipes.finish.cancel();
    let graceful = async {
        // The writer shuts the socket's sending side down once it has
        // written everything; busd answers with EOF.
        if !writer_done && !matches!((&mut pipes.writer_task).await, Ok(Ok(()))) {
            return;
        }
        if !reader_done {
            let _ = (&mut pipes.reader_task).await;
        }
    };
    if tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, graceful)
        .await
        .is_err()
    {
        tracing::debug!("busd did not close the connection in time");
    }
    pipes.reader_task.abort();
    pipes.writer_task.abort();
}
