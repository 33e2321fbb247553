//! Reading a connection's frames: decode what is buffered, poll briefly
//! for more after a request or a reply, then sleep until the socket is
//! readable, the connection is killed, or the daemon stops. Each frame
//! goes to `dispatch`, but a publish (checked in place by
//! `busd_core::Session::on_publish`) straight to `fanout`.

use std::time::Duration;

use busd_proto::{ErrorCode, Frame, Op};
use busd_transport::{BoxReader, FrameReader};

use super::link::Link;
use crate::payload::Payload;

/// Frames a session handles before it lets the other tasks of its thread
/// run. Decoding frames already read costs tokio's cooperative budget
/// nothing, so a busy publisher's session would otherwise route thousands
/// of messages before the writers it filled (and its own `Pong`) get to
/// write any: the receivers would idle, then get it all at once.
const YIELD_EVERY: u32 = 128;

impl Link {
    /// Handles every frame the client sends until it leaves, breaks the
    /// protocol, is killed, or the daemon stops.
    pub(super) async fn read_loop(&mut self, frames: &mut FrameReader<BoxReader>) {
        // Made once and kept registered: polled only when no frame is ready
        // (biased), so a busy connection pays nothing per frame for them.
        let killed = self.handle.killed().clone().cancelled_owned();
        let shutdown = self.shared.shutdown.clone().cancelled_owned();
        tokio::pin!(killed, shutdown);
        let mut since_yield = 0;
        loop {
            let next = match frames.decode() {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) if frames.at_eof() => return,
                Ok(None) => {
                    // Every frame read so far is handled: count them before
                    // waiting for more.
                    self.route.settle(&self.epoch);
                    // After a request or a reply, the answer or the next
                    // request is likely to come soon: polled for without
                    // letting the thread sleep, it is picked up without
                    // the wake-up of an idle core (tens of µs on a VM).
                    let busy_poll = if self.protocol.is_exchanging() {
                        self.shared.config.busy_poll
                    } else {
                        Duration::ZERO
                    };
                    let filled = match frames.fill_within(busy_poll).await {
                        Some(filled) => filled,
                        None => tokio::select! {
                            biased;
                            filled = frames.fill() => filled,
                            () = &mut killed => return,
                            () = &mut shutdown => {
                                // What is queued is still delivered, within the grace.
                                self.handle.close_after(ErrorCode::ShuttingDown, "the daemon is shutting down");
                                return;
                            }
                        },
                    };
                    match filled {
                        Ok(_) => continue,
                        Err(e) => Err(e.into()),
                    }
                }
                Err(e) => Err(e),
            };
            since_yield += 1;
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
                }) => match self.protocol.on_publish(&subject) {
                    Ok(()) => {
                        let payload = Payload::new(payload, segment);
                        self.publish(subject, headers, payload).await;
                        true
                    }
                    Err(e) => self.refused(&e),
                },
                Ok(frame) => self.on_frame(frame),
                Err(e) => {
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
