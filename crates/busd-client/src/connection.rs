//! The connection task: the one owner of a client's socket session and
//! routing state, and the place where reconnecting happens.
//!
//! Its loop serves four sources at once, never waiting on one while another
//! could make progress: buffers coming back from the writer task, room in a
//! full delivery channel, frames from the reader task and commands from the
//! handles. Commands are taken in batches (one `recv`, then whatever
//! `try_recv` has ready) into one buffer, which the writer task writes with a
//! single `write_all` while the next batch builds up.

use std::mem;
use std::sync::Arc;
use std::time::Duration;

use busd_transport::Endpoint;
use bytes::BytesMut;
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::time::Instant;

use crate::Message;
use crate::command::{Command, IncomingCall, Registration, Shared};
use crate::handshake::{self, HelloOptions, Session};
use crate::session::{self, Backoff, Pipes};
use crate::state::State;

/// Past this many buffered bytes, while a write is in flight, no more commands
/// are taken: publishers wait on the command channel instead.
const HIGH_WATER: usize = 1024 * 1024;

/// Most commands or frames handled in one batch, so neither side starves.
const BATCH: usize = 1024;

/// A written buffer larger than this is not kept for reuse.
const MAX_SPARE: usize = 8 * 1024 * 1024;

/// A session that lived at least this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(2);

/// How long a closing client waits for its last bytes to be written.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Room reserved in a full delivery channel.
pub(crate) enum Permit {
    Msg(OwnedPermit<Message>),
    Call(OwnedPermit<IncomingCall>),
}

/// How a session ended.
enum End {
    /// Every handle is gone: the client is done.
    HandlesGone,
    /// The connection broke, or the daemon closed it.
    Lost(String),
}

/// The connection task of one client.
pub(crate) struct ConnectionTask {
    pub(crate) endpoint: Endpoint,
    pub(crate) hello: HelloOptions,
    pub(crate) reconnect: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) state: State,
}

impl ConnectionTask {
    /// Runs sessions, starting with `first`, until every handle is gone (or
    /// the connection is lost with reconnect off).
    pub(crate) async fn run(mut self, first: Session) {
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
                End::Lost(why) => {
                    self.shared.disconnected();
                    self.state.fail_in_flight(&why);
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
        let (mut pipes, welcome) = session::spawn(session);
        let epoch = self.state.epoch + 1;
        self.shared.welcome(epoch, &welcome);
        self.state.begin(epoch);
        let mut spare = BytesMut::new();
        let mut writing = false;
        let end = loop {
            if !writing && !self.state.out.is_empty() {
                let buf = mem::replace(&mut self.state.out, mem::take(&mut spare));
                if pipes.to_writer.try_send(buf).is_err() {
                    break End::Lost("write to busd failed".into());
                }
                writing = true;
            }
            let room = self.room();
            let take_commands = !(writing && self.state.out.len() >= HIGH_WATER);
            // Unbiased: a flood of frames must not starve commands, nor the reverse.
            tokio::select! {
                buf = pipes.written.recv(), if writing => match buf {
                    Some(buf) => {
                        writing = false;
                        if buf.capacity() <= MAX_SPARE {
                            spare = buf;
                        }
                    }
                    None => break End::Lost("write to busd failed".into()),
                },
                permit = wait_room(room), if self.state.blocked.is_some() => {
                    self.state.deliver_blocked(permit);
                }
                frame = pipes.frames.recv(), if self.state.blocked.is_none() => {
                    if let Some(end) = self.handle_frames(frame, &mut pipes) {
                        break end;
                    }
                }
                command = self.commands.recv(), if take_commands => match command {
                    Some(command) => self.handle_commands(command),
                    None => break End::HandlesGone,
                },
            }
        };
        if matches!(end, End::HandlesGone) {
            self.close(pipes, writing).await;
        } else {
            pipes.reader_task.abort();
            pipes.writer_task.abort();
        }
        end
    }

    /// Handles `first` and then whatever frames are ready, up to a batch.
    fn handle_frames(
        &mut self,
        first: Option<Result<busd_proto::Frame, busd_proto::CodecError>>,
        pipes: &mut Pipes,
    ) -> Option<End> {
        let mut next = first;
        for _ in 0..BATCH {
            match next {
                Some(Ok(frame)) => self.state.handle_frame(frame),
                Some(Err(err)) => return Some(End::Lost(format!("bad frame from busd: {err}"))),
                None => {
                    let why = self.state.close_reason.take();
                    return Some(End::Lost(
                        why.unwrap_or_else(|| "busd closed the connection".into()),
                    ));
                }
            }
            if self.state.blocked.is_some() {
                return None;
            }
            next = match pipes.frames.try_recv() {
                Ok(item) => Some(item),
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        None
    }

    /// Handles `first` and then whatever commands are ready, up to a batch
    /// or until the buffer is past the high-water mark.
    fn handle_commands(&mut self, first: Command) {
        self.state.handle_command(first);
        for _ in 1..BATCH {
            if self.state.out.len() >= HIGH_WATER {
                return;
            }
            match self.commands.try_recv() {
                Ok(command) => self.state.handle_command(command),
                Err(_) => return,
            }
        }
    }

    /// The channel the parked delivery waits on, if any.
    fn room(&self) -> Option<Room> {
        let blocked = self.state.blocked.as_ref()?;
        match self.state.registry.get(&blocked.sid)? {
            Registration::Sub { messages, .. } => Some(Room::Msg(messages.clone())),
            Registration::Serve { calls, .. } => Some(Room::Call(calls.clone())),
        }
    }

    /// Writes what is still buffered, then closes the socket gracefully:
    /// shuts down the sending side and reads until busd closes its side, so
    /// the last bytes are not lost to a reset.
    async fn close(&mut self, pipes: Pipes, mut writing: bool) {
        let Pipes {
            mut frames,
            to_writer,
            mut written,
            reader_task,
            writer_task,
        } = pipes;
        let out = &mut self.state.out;
        let graceful = async move {
            loop {
                if writing && written.recv().await.is_none() {
                    return;
                }
                if out.is_empty() {
                    break;
                }
                if to_writer.send(mem::take(out)).await.is_err() {
                    return;
                }
                writing = true;
            }
            // The writer shuts the socket's sending side down once its
            // channel closes; busd answers with EOF.
            drop(to_writer);
            while frames.recv().await.is_some() {}
        };
        if tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, graceful)
            .await
            .is_err()
        {
            tracing::debug!("busd did not close the connection in time");
        }
        reader_task.abort();
        writer_task.abort();
    }
}

/// A sender to wait on for room.
enum Room {
    Msg(mpsc::Sender<Message>),
    Call(mpsc::Sender<IncomingCall>),
}

/// Waits for room in `room`; `None` when its receiver is gone (or `room`
/// itself is `None`, meaning the registration is gone already).
async fn wait_room(room: Option<Room>) -> Option<Permit> {
    match room? {
        Room::Msg(tx) => tx.reserve_owned().await.ok().map(Permit::Msg),
        Room::Call(tx) => tx.reserve_owned().await.ok().map(Permit::Call),
    }
}
