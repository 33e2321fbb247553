//! Reading a connection's frames: decode what is buffered, poll briefly
//! for more after a request or a reply, then sleep until the socket is
//! readable, the connection is killed, or the daemon stops. Each frame
//! goes to `dispatch`, but a publish (checked in place by
//! `busd_core::Session::on_publish`) straight to `fanout`.

use std::pin::Pin;
use std::time::Duration;

use busd_proto::{ErrorCode, Frame, Op};
use busd_transport::{BoxReader, FrameReader};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::link::Link;
use crate::audit;
use crate::payload::Payload;

/// Frames a session handles before it lets the other tasks of its thread
/// run. Decoding frames already read costs tokio's cooperative budget
/// nothing, so a busy publisher's session would otherwise route thousands
/// of messages before the writers it filled (and its own `Pong`) get to
/// write any: the receivers would idle, then get it all at once.
const YIELD_EVERY: u32 = 128;

/// Since when the frame being read has been incomplete. A peer that
/// starts a frame must finish it within `frame_timeout`: one that stalls
/// (a byte short of a large frame, or a byte a second) is closed, so a
/// partly read frame holds memory for a bounded time. Noted only when the
/// reader is about to wait with part of a frame read, so a connection whose
/// frames arrive whole reads no clock for it, and nothing is counted per
/// frame: the reader's count of bytes decoded tells whether it is still the
/// same frame.
#[derive(Debug, Default)]
struct Stall {
    /// Bytes decoded when the wait for this frame began, and when.
    since: Option<(u64, Instant)>,
}

impl Stall {
    /// When the wait for the rest of the frame runs out, if a frame has
    /// started (`buffered` bytes of it are read, after `consumed` bytes of
    /// whole frames).
    fn deadline(&mut self, buffered: usize, consumed: u64, limit: Duration) -> Option<Instant> {
        if buffered == 0 {
            self.since = None;
            return None;
        }
        let since = match self.since {
            Some((at, since)) if at == consumed => since,
            _ => {
                let now = Instant::now();
                self.since = Some((consumed, now));
                now
            }
        };
        Some(since + limit)
    }
}

/// Sleeps until `due`, or forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// What a wait for more bytes also watches.
struct Waits<'a> {
    killed: Pin<&'a mut WaitForCancellationFutureOwned>,
    shutdown: Pin<&'a mut WaitForCancellationFutureOwned>,
    stall: &'a mut Stall,
}

impl Link {
    /// Reads more bytes: after a request or a reply polled for a while
    /// first, then waited for. `None` when the connection is to close
    /// instead: killed, the daemon stopping (the client is told after
    /// what is queued), or a frame stalled past `frame_timeout`.
    async fn fill(
        &mut self,
        frames: &mut FrameReader<BoxReader>,
        waits: Waits<'_>,
    ) -> Option<std::io::Result<bool>> {
        // After a request or a reply, the answer or the next request is
        // likely to come soon: polled for without letting the thread sleep,
        // it is picked up without the wake-up of an idle core (tens of µs
        // on a VM).
        let busy_poll = if self.protocol.is_exchanging() {
            self.shared.config.busy_poll
        } else {
            Duration::ZERO
        };
        // The frame being read is charged to its sender before the read
        // that may grow it (by at most one read's room).
        if !self.inbound.cover(frames.held()) {
            let owner = self.inbound.owner();
            tracing::warn!(target: "busd::audit", conn = self.id, %owner, "memory budget exceeded by a frame it sends, disconnecting");
            let why = "no memory budget left for the frame this client is sending: its package or uid holds too much already";
            self.handle.close_after(ErrorCode::LimitExceeded, why);
            return None;
        }
        self.inbound.settle(frames.held());
        if let Some(filled) = frames.fill_within(busy_poll).await {
            return Some(filled);
        }
        let frame_timeout = self.shared.config.limits.frame_timeout;
        let due = waits
            .stall
            .deadline(frames.buffered(), frames.consumed(), frame_timeout);
        tokio::select! {
            biased;
            filled = frames.fill() => Some(filled),
            () = waits.killed => None,
            () = waits.shutdown => {
                // What is queued is still delivered, within the grace.
                self.handle.close_after(ErrorCode::ShuttingDown, "the daemon is shutting down");
                None
            }
            () = sleep_until(due) => {
                let waited = humantime_serde::re::humantime::format_duration(frame_timeout);
                tracing::info!("closing: a frame stalled for {waited}");
                let why = format!("a frame was started and not completed within {waited}");
                self.handle.close_after(ErrorCode::ProtocolViolation, &why);
                None
            }
        }
    }

    /// Handles every frame the client sends until it leaves, breaks the
    /// protocol, is killed, or the daemon stops.
    pub(super) async fn read_loop(&mut self, frames: &mut FrameReader<BoxReader>) {
        // Made once and kept registered: polled only when no frame is ready
        // (biased), so a busy connection pays nothing per frame for them.
        let killed = self.handle.killed().clone().cancelled_owned();
        let shutdown = self.shared.shutdown.clone().cancelled_owned();
        tokio::pin!(killed, shutdown);
        let mut since_yield = 0;
        let mut stall = Stall::default();
        loop {
            let next = match frames.decode() {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) if frames.at_eof() => return,
                Ok(None) => {
                    // Every frame read so far is handled: count them before
                    // waiting for more.
                    self.route.settle(&self.epoch);
                    let consumed = frames.consumed();
                    self.handle.traffic.settle(&mut self.counts, consumed);
                    let waits = Waits {
                        killed: killed.as_mut(),
                        shutdown: shutdown.as_mut(),
                        stall: &mut stall,
                    };
                    match self.fill(frames, waits).await {
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => Err(e.into()),
                        None => return,
                    }
                }
                Err(e) => Err(e),
            };
            since_yield += 1;
            self.counts.frames_in += 1;
            if since_yield == YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            let go_on = match next {
                // The hot path: checked in place, straight to the fan-out.
                Ok(Frame {
                    op: Op::Pub { subject, headers },
                    payload,
                    segment,
                    fds,
                    lease,
                }) => {
                    let payload = Payload::new(payload, segment, lease);
                    match self.protocol.on_publish(&subject) {
                        Ok(()) => {
                            match self.admit_fds(fds) {
                                Ok(fds) => {
                                    let headers = self.vouched(headers);
                                    self.publish(subject, headers, payload, fds).await;
                                }
                                Err(why) => {
                                    let code = busd_proto::ErrorCode::LimitExceeded;
                                    self.handle.send_error(code, why, None);
                                }
                            }
                            true
                        }
                        Err(e) => self.refused(&e),
                    }
                }
                Ok(frame) => self.on_frame(frame),
                Err(e) => {
                    if e.code() == ErrorCode::FrameTooLarge {
                        audit::limit_reached(self.who(), "limits.max_frame", &e);
                    }
                    tracing::info!(cause = %e, "closing on a bad frame");
                    // Stop reading; what is owed to the peer goes first.
                    self.handle.close_after(e.code(), &e.to_string());
                    false
                }
            };
            if !go_on {
                return;
            }
        }
    }
}
