//! The routing state of one client, owned by its connection task alone.
//!
//! Handlers here never wait: an incoming frame or a command changes the state
//! and appends to the outgoing buffer. The only thing that can wait, a full
//! delivery channel, is parked in [`State::blocked`] for the task's loop.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;

use busd_proto::{Frame, Op, Ref, encode_head};
use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot};

use crate::command::{Command, IncomingCall, Registration, Target};
use crate::{Error, Message, Response};

/// A delivery that found its channel full; the task waits for room.
pub(crate) struct Blocked {
    pub(crate) sid: u64,
    pub(crate) item: Pending,
}

/// What waits in [`Blocked`].
pub(crate) enum Pending {
    Msg(Message),
    Call(IncomingCall),
}

/// Someone waiting for the daemon's next `Pong`.
enum PongWaiter {
    Flush(oneshot::Sender<Result<(), Error>>),
    /// Confirms the registration `sid`, unless an error about it came first.
    Confirm {
        sid: u64,
        done: oneshot::Sender<Result<(), Error>>,
    },
}

/// A request waiting for its `Resp`.
struct PendingRequest {
    target: Target,
    reply: oneshot::Sender<Result<Response, Error>>,
}

/// Everything the connection task routes by.
#[derive(Default)]
pub(crate) struct State {
    /// Live subscriptions and services; kept across reconnects.
    pub(crate) registry: BTreeMap<u64, Registration>,
    /// A delivery waiting for room; kept across reconnects.
    pub(crate) blocked: Option<Blocked>,
    /// Bytes to write next.
    pub(crate) out: BytesMut,
    /// The current (or last) connection's number (see `Shared::epoch`).
    pub(crate) epoch: u64,
    /// Why the daemon said it closes the connection, if it did.
    pub(crate) close_reason: Option<String>,
    requests: HashMap<u64, PendingRequest>,
    /// Waiters in the order their Pings were written; Pongs come in that order.
    pongs: VecDeque<PongWaiter>,
    /// Registrations awaiting their Pong, with the error that came first.
    unconfirmed: HashMap<u64, Option<Error>>,
}

impl State {
    /// Starts a session on connection `epoch`: registers everything again.
    pub(crate) fn begin(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.close_reason = None;
        let ops: Vec<Op> = self.registry.iter().map(|(sid, r)| r.op(*sid)).collect();
        for op in &ops {
            self.write(op);
        }
    }

    /// Fails everything in flight on a lost connection.
    pub(crate) fn fail_in_flight(&mut self, why: &str) {
        for (_, pending) in self.requests.drain() {
            let _ = pending.reply.send(Err(Error::disconnected(why)));
        }
        for waiter in self.pongs.drain(..) {
            let done = match waiter {
                PongWaiter::Flush(done) | PongWaiter::Confirm { done, .. } => done,
            };
            let _ = done.send(Err(Error::disconnected(why)));
        }
        // Their callers got an error and hold no handle, so nothing to restore.
        for (sid, _) in self.unconfirmed.drain() {
            self.registry.remove(&sid);
        }
        self.out.clear();
    }

    /// Applies a command from a handle.
    pub(crate) fn handle_command(&mut self, command: Command) {
        match command {
            Command::Publish { head, payload } => {
                self.out.extend_from_slice(&head);
                self.out.extend_from_slice(&payload);
            }
            Command::Respond {
                epoch,
                head,
                payload,
            } => {
                if epoch == self.epoch {
                    self.out.extend_from_slice(&head);
                    self.out.extend_from_slice(&payload);
                } else {
                    tracing::debug!("answer to a call from an earlier connection dropped");
                }
            }
            Command::Register {
                sid,
                registration,
                done,
            } => {
                self.write(&registration.op(sid));
                self.write(&Op::Ping);
                self.registry.insert(sid, registration);
                self.unconfirmed.insert(sid, None);
                self.pongs.push_back(PongWaiter::Confirm { sid, done });
            }
            Command::Unregister { sid, done } => {
                self.unregister(sid);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Request {
                rid,
                target,
                head,
                payload,
                reply,
            } => {
                self.requests.insert(rid, PendingRequest { target, reply });
                self.out.extend_from_slice(&head);
                self.out.extend_from_slice(&payload);
            }
            Command::ForgetRequest { rid } => {
                self.requests.remove(&rid);
            }
            Command::Flush { done } => {
                self.write(&Op::Ping);
                self.pongs.push_back(PongWaiter::Flush(done));
            }
        }
    }

    /// Applies a frame from the daemon.
    pub(crate) fn handle_frame(&mut self, frame: Frame) {
        let Frame { op, payload } = frame;
        match op {
            Op::Msg {
                sid,
                subject,
                from,
                headers,
            } => {
                let message = Message {
                    subject,
                    from,
                    headers,
                    payload,
                };
                self.deliver(sid, Pending::Msg(message));
            }
            Op::Call {
                rid,
                sid,
                service,
                from,
                headers,
            } => {
                let call = IncomingCall {
                    rid,
                    epoch: self.epoch,
                    service,
                    from,
                    headers,
                    payload,
                };
                self.deliver(sid, Pending::Call(call));
            }
            Op::Resp {
                rid,
                status,
                headers,
            } => match self.requests.remove(&rid) {
                Some(pending) => {
                    let result = match pending.target.error_for(status) {
                        Some(err) => Err(err),
                        None => Ok(Response {
                            status,
                            headers,
                            payload,
                        }),
                    };
                    let _ = pending.reply.send(result);
                }
                None => tracing::trace!(rid, "answer to a forgotten request dropped"),
            },
            Op::Pong => self.pong(),
            Op::Ping => self.write(&Op::Pong),
            Op::Error {
                code,
                message,
                refers,
            } => {
                let err = Error::from_daemon(code, &message);
                match refers {
                    Some(Ref::Rid(rid)) => {
                        if let Some(pending) = self.requests.remove(&rid) {
                            let _ = pending.reply.send(Err(err));
                        }
                    }
                    Some(Ref::Sid(sid)) => {
                        self.forget(sid);
                        match self.unconfirmed.get_mut(&sid) {
                            Some(slot) => *slot = Some(err),
                            None => tracing::warn!(sid, cause = %err, "busd ended a subscription"),
                        }
                    }
                    None => {
                        tracing::warn!(cause = %err, "busd is closing the connection");
                        self.close_reason = Some(err.to_string());
                    }
                }
            }
            Op::Dropped { sid, count } => {
                if let Some(Registration::Sub { dropped, .. }) = self.registry.get(&sid) {
                    dropped.fetch_add(count, Ordering::Relaxed);
                }
            }
            other => tracing::warn!(op = other.name(), "unexpected frame from busd ignored"),
        }
    }

    /// Hands `item` to the registration `sid`, or parks it when its channel is full.
    fn deliver(&mut self, sid: u64, item: Pending) {
        let result = match (self.registry.get(&sid), item) {
            (Some(Registration::Sub { messages, .. }), Pending::Msg(m)) => {
                try_send(messages, m).map_err(|full| full.map(Pending::Msg))
            }
            (Some(Registration::Serve { calls, .. }), Pending::Call(c)) => {
                try_send(calls, c).map_err(|full| full.map(Pending::Call))
            }
            _ => {
                tracing::trace!(sid, "delivery for an unknown id dropped");
                return;
            }
        };
        match result {
            Ok(()) => {}
            Err(Some(item)) => self.blocked = Some(Blocked { sid, item }),
            // The handle is gone; its Unsub may still be on the way.
            Err(None) => self.unregister(sid),
        }
    }

    /// Delivers the parked item with `permit`, or unregisters its
    /// registration if the receiving handle is gone (`permit` is `None`).
    pub(crate) fn deliver_blocked(&mut self, permit: Option<crate::connection::Permit>) {
        use crate::connection::Permit;
        let Some(blocked) = self.blocked.take() else {
            return;
        };
        match (permit, blocked.item) {
            (Some(Permit::Msg(p)), Pending::Msg(m)) => {
                p.send(m);
            }
            (Some(Permit::Call(p)), Pending::Call(c)) => {
                p.send(c);
            }
            _ => self.unregister(blocked.sid),
        }
    }

    /// Removes `sid` and tells the daemon, if it is still registered.
    fn unregister(&mut self, sid: u64) {
        if self.forget(sid) {
            self.write(&Op::Unsub { sid });
        }
    }

    /// Removes `sid` locally; returns whether it was registered.
    fn forget(&mut self, sid: u64) -> bool {
        if self.blocked.as_ref().is_some_and(|b| b.sid == sid) {
            self.blocked = None;
        }
        self.registry.remove(&sid).is_some()
    }

    fn pong(&mut self) {
        match self.pongs.pop_front() {
            Some(PongWaiter::Flush(done)) => {
                let _ = done.send(Ok(()));
            }
            Some(PongWaiter::Confirm { sid, done }) => {
                let result = match self.unconfirmed.remove(&sid) {
                    Some(Some(err)) => Err(err),
                    _ => Ok(()),
                };
                if done.send(result).is_err() {
                    // The caller stopped waiting, so no handle will ever unregister it.
                    self.unregister(sid);
                }
            }
            None => tracing::debug!("unexpected Pong from busd ignored"),
        }
    }

    /// Appends a payload-less frame.
    fn write(&mut self, op: &Op) {
        let start = self.out.len();
        if let Err(err) = encode_head(op, 0, &mut self.out) {
            self.out.truncate(start);
            tracing::error!(op = op.name(), cause = %err, "cannot encode frame");
        }
    }
}

/// `try_send` that returns the item when the channel is full, `None` when closed.
fn try_send<T>(tx: &mpsc::Sender<T>, item: T) -> Result<(), Option<T>> {
    tx.try_send(item).map_err(|e| match e {
        mpsc::error::TrySendError::Full(item) => Some(item),
        mpsc::error::TrySendError::Closed(_) => None,
    })
}
