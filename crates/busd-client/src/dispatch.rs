//! Routing what the daemon sends, straight from the reader task: a `Msg` to
//! its subscriber's queue, a `Call` to its service's, an `Event` to its
//! monitor's, a `Resp` to the waiting request, a `Pong` to the oldest Pong
//! waiter.
//!
//! [`State::handle_frame`] runs under the state lock and never waits. A
//! delivery whose queue is full comes back as a [`Stall`], which the reader
//! awaits without the lock: it stops reading until there is room, which
//! pushes back onto the socket and lets the daemon's overflow policy decide.
//! Nothing is ever dropped for lack of room.

use busd_proto::{Frame, Op, Ref};
use tokio_util::sync::CancellationToken;

use crate::command::Registration;
use crate::error::Error;
use crate::inbound::Observed;
use crate::inbound::{IncomingCall, Message, Response};
use crate::inbox::{self, TrySendError};
use crate::shared::Shared;
use crate::state::{Blocked, Pending, State};

/// The queue of a registration, cloned out of the state to wait on.
enum Room {
    Msg(inbox::Sender<Message>),
    Call(inbox::Sender<IncomingCall>),
    Observed(inbox::Sender<Observed>),
}

/// A delivery to wait for room for, outside the lock.
pub(crate) struct Stall {
    sid: u64,
    room: Room,
    item: Pending,
}

/// What the reader does after a frame.
pub(crate) enum Dispatch {
    /// Routed (or dropped as stale news); read on.
    Done,
    /// This session is no longer the live one: stop reading.
    Stale,
    /// The daemon announced that it closes the connection, and why.
    Closing(Error),
    /// Wait for room for a delivery, then read on.
    Full(Stall),
}

impl State {
    /// Routes `frame`, read on connection `epoch`.
    pub(crate) fn handle_frame(&mut self, frame: Frame, epoch: u64) -> Dispatch {
        if self.epoch != epoch {
            return Dispatch::Stale;
        }
        // A payload that came as a segment is already a view of its
        // read-only mapping; the fd itself is not needed any more.
        let Frame {
            op, payload, fds, ..
        } = frame;
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
                    fds,
                };
                return self.deliver(sid, Pending::Msg(message));
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
                    epoch,
                    service,
                    from,
                    headers,
                    payload,
                    fds,
                };
                return self.deliver(sid, Pending::Call(call));
            }
            Op::Resp {
                rid,
                status,
                headers,
            } => self.answer(
                rid,
                Response {
                    status,
                    headers,
                    payload,
                    fds,
                },
            ),
            Op::Pong => self.pong(),
            Op::Ping => self.write(&Op::Pong),
            Op::Error {
                code,
                message,
                refers,
            } => return self.daemon_error(Error::from_daemon(code, &message), refers),
            Op::Dropped { sid, count } => match self.registry.get(&sid) {
                Some(Registration::Sub { dropped, .. }) => {
                    dropped.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                }
                // A monitor is told in line, where the gap is.
                Some(Registration::Monitor { .. }) => {
                    let dropped = Box::new(Observed::Dropped(count));
                    return self.deliver(sid, Pending::Observed(dropped));
                }
                _ => {}
            },
            Op::Event { sid, event } => {
                let observed = Box::new(Observed::Event(event, payload));
                return self.deliver(sid, Pending::Observed(observed));
            }
            Op::Release { blocks } => {
                let taken = self.pool.as_ref().map(|pool| pool.handed_back(&blocks));
                if let Some(Err(e)) = taken {
                    // The daemon keeps its own books; this side only logs.
                    tracing::warn!(cause = %e, "busd handed back a block it was not lent");
                }
            }
            // Forgotten as it was read (see `session::read_loop`).
            Op::PoolGone { .. } => {}
            other => tracing::warn!(op = other.name(), "unexpected frame from busd ignored"),
        }
        Dispatch::Done
    }

    /// Hands the service's answer to the request `rid`, or the error its
    /// status means for it.
    fn answer(&mut self, rid: u64, response: Response) {
        match self.requests.remove(&rid) {
            Some(pending) => {
                let result = match pending.target.error_for(response.status, &response.payload) {
                    Some(err) => Err(err),
                    None => Ok(response),
                };
                let _ = pending.reply.send(result);
            }
            None => tracing::trace!(rid, "answer to a forgotten request dropped"),
        }
    }

    /// Routes the daemon's `Error` to what it `refers` to: a request, a
    /// registration, or (none) the whole connection, which it is closing.
    fn daemon_error(&mut self, err: Error, refers: Option<Ref>) -> Dispatch {
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
                return Dispatch::Closing(err);
            }
        }
        Dispatch::Done
    }

    /// Hands `item` to the registration `sid`, or returns it to wait for room.
    fn deliver(&mut self, sid: u64, item: Pending) -> Dispatch {
        let full = match (self.registry.get(&sid), item) {
            (Some(Registration::Sub { messages, .. }), Pending::Msg(m)) => {
                match messages.try_send(m) {
                    Ok(()) => return Dispatch::Done,
                    Err(TrySendError::Full(m)) => {
                        Some((Room::Msg(messages.clone()), Pending::Msg(m)))
                    }
                    Err(TrySendError::Closed(_)) => None,
                }
            }
            (Some(Registration::Serve { calls, .. }), Pending::Call(c)) => {
                match calls.try_send(c) {
                    Ok(()) => return Dispatch::Done,
                    Err(TrySendError::Full(c)) => {
                        Some((Room::Call(calls.clone()), Pending::Call(c)))
                    }
                    Err(TrySendError::Closed(_)) => None,
                }
            }
            (Some(Registration::Monitor { events, .. }), Pending::Observed(o)) => {
                match events.try_send(*o) {
                    Ok(()) => return Dispatch::Done,
                    Err(TrySendError::Full(o)) => Some((
                        Room::Observed(events.clone()),
                        Pending::Observed(Box::new(o)),
                    )),
                    Err(TrySendError::Closed(_)) => None,
                }
            }
            _ => {
                tracing::trace!(sid, "delivery for an unknown id dropped");
                return Dispatch::Done;
            }
        };
        match full {
            Some((room, item)) => Dispatch::Full(Stall { sid, room, item }),
            // The handle is gone; its Unsub may still be on the way.
            None => {
                self.unregister(sid);
                Dispatch::Done
            }
        }
    }

    /// The delivery parked by an earlier session, to wait for room again;
    /// `None` if there is none or its registration is gone.
    pub(crate) fn resume_blocked(&mut self) -> Option<Stall> {
        let Blocked { sid, item } = self.blocked.take()?;
        let room = match self.registry.get(&sid)? {
            Registration::Sub { messages, .. } => Room::Msg(messages.clone()),
            Registration::Serve { calls, .. } => Room::Call(calls.clone()),
            Registration::Monitor { events, .. } => Room::Observed(events.clone()),
        };
        Some(Stall { sid, room, item })
    }
}

impl Stall {
    /// Waits for room and delivers. If `stop` fires first, the item is
    /// parked in the state for the next session and `false` is returned; if
    /// the receiving handle is gone, its registration is removed.
    pub(crate) async fn wait(self, shared: &Shared, stop: &CancellationToken) -> bool {
        let Stall { sid, room, item } = self;
        let result = match (room, item) {
            (Room::Msg(tx), Pending::Msg(m)) => {
                tx.send(m, stop).await.map_err(|o| o.map(Pending::Msg))
            }
            (Room::Call(tx), Pending::Call(c)) => {
                tx.send(c, stop).await.map_err(|o| o.map(Pending::Call))
            }
            (Room::Observed(tx), Pending::Observed(o)) => {
                let sent = tx.send(*o, stop).await;
                sent.map_err(|o| o.map(|o| Pending::Observed(Box::new(o))))
            }
            _ => Err(None),
        };
        match result {
            Ok(()) => true,
            Err(Some(item)) => {
                shared.with(|s| s.blocked = Some(Blocked { sid, item }));
                false
            }
            Err(None) => {
                shared.with(|s| s.unregister(sid));
                true
            }
        }
    }
}
