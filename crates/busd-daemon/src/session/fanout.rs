//! A publish's fan-out: its route (reused while nothing changed), then
//! each receiver's frame, copied or shared, and the receiver's overflow
//! policy when its queue is full.
//!
//! Small payloads that came in the stream are copied into each receiver's
//! queue, with the head encoded here (and reused): no reference to share,
//! no head to allocate. Others keep their payload as a reference and have
//! their heads split off one shared block, refilled when low (and
//! reclaimed in place once the writers have sent the last ones): one
//! allocation per many deliveries, none for an idle client.
//!
//! A publish's attached fds go, shared, to every receiver that takes fds
//! (unix and shm); a tcp receiver gets the message without them and a
//! header saying how many were withheld (see `withheld`). Denied receivers
//! get nothing, so never an fd.

use std::sync::Arc;
use std::time::Duration;

use busd_core::{OutFrame, Outgoing, Target};
use busd_proto::{
    Body, ErrorCode, Fds, Headers, Overflow, SegmentFd, Subject, announce_fds, encode_msg_head,
};
use bytes::Bytes;
use tokio::time::Instant;

use super::link::Link;
use crate::outbox::{COPY_BELOW, ConnHandle, Wait};
use crate::payload::Payload;
use crate::sync::lock;
use crate::withheld;

/// Delivery heads are encoded into blocks of this many bytes…
const HEAD_BLOCK: usize = 8192;
/// …and a new block is reserved when less than this is left.
const HEAD_LOW: usize = 512;

impl Link {
    /// Delivers a publish to `subject` to every receiver the router allows.
    /// Denied receivers are the router's to count; a `block` receiver that
    /// makes no room within `block_timeout` is cut off, and the publisher
    /// told.
    pub(super) async fn publish(
        &mut self,
        subject: Subject,
        headers: Option<Headers>,
        mut payload: Payload,
        fds: Fds,
    ) {
        let mut route = std::mem::take(&mut self.route);
        if self.shared.monitors.active() {
            self.route_watched(&subject, headers.as_ref(), &mut payload, &mut route);
        } else if !route.reuse(&subject, &self.epoch) {
            lock(&self.shared.router).route(self.id, &subject, &mut route);
        }
        self.counts.published += 1;
        self.counts.denied += route.denied();
        // One deadline for the waits of this publish under each bound.
        let (mut own, mut foreign) = (None, None);
        // Taken before the last receiver is handed the bytes themselves.
        let len = payload.len();
        let small = len < COPY_BELOW && payload.inline().is_some() && fds.is_empty();
        // For receivers that cannot take the fds, made once if there are any.
        let mut noted = None;
        let mut unmapped = 0;
        let count = route.targets().len();
        // One copy for all the shm receivers of a large payload that share
        // a set pool.
        let set = if small {
            None
        } else {
            let deadlines = (&mut own, &mut foreign);
            self.lend_to_set(route.targets(), &mut payload, len, deadlines)
                .await
        };
        for (i, t) in route.targets().iter().enumerate() {
            // Drop-oldest deliveries stay whole frames, each droppable alone.
            let copy = small && t.overflow != Overflow::DropOldest;
            let in_set = set.as_ref().filter(|s| s.to[i]);
            // The set's block to a receiver that shares it; a block of its
            // own pool to an shm receiver that has one (drop-oldest
            // deliveries aside: a dropped frame would keep its block); else
            // the same fd to every shm receiver, the bytes to the others.
            let pooled = if let Some(set) = in_set {
                Some(set.body)
            } else if copy || t.overflow == Overflow::DropOldest {
                None
            } else if t.overflow == Overflow::Block {
                let link = &*self;
                let deadlines = (&mut own, &mut foreign);
                let wait = move || link.block_wait(t, deadlines);
                match t.handle.lend_blocking(&mut payload, len, wait).await {
                    Ok(pooled) => pooled,
                    Err(waited) => {
                        t.handle.lose(1);
                        self.cut_off(t, waited);
                        continue;
                    }
                }
            } else {
                t.handle.lend(&mut payload, len)
            };
            let body = if copy || pooled.is_some() {
                (None, Bytes::new())
            } else {
                match payload.for_receiver(t.handle.passes_fds, i + 1 == count) {
                    Ok(body) => body,
                    Err(e) => {
                        tracing::warn!(cause = %e, conn = t.conn, "cannot map a segment for a receiver without fd passing");
                        self.shared.tally.failed(1);
                        unmapped += 1;
                        continue;
                    }
                }
            };
            let passes = !fds.is_empty() && t.handle.takes_fds;
            let their_headers = if fds.is_empty() || passes {
                headers.as_ref()
            } else {
                Some(&*noted.get_or_insert_with(|| withheld::headers(headers.as_ref(), fds.len())))
            };
            let announced = if passes { fds.len() } else { 0 };
            let body_kind = pooled.unwrap_or(Body::of(len, body.0.is_some()));
            if !self.encode_head(t, &subject, their_headers, body_kind, announced) {
                self.shared.tally.failed(1);
                continue;
            }
            // Built here, not returned from a helper: moving the frame out
            // of a call cost a tenth of a small message.
            let frame = match payload.inline() {
                Some(inline) if copy => Outgoing::Copy {
                    head: &self.head,
                    payload: inline,
                },
                _ => {
                    let mut frame = self.shared_frame(t, len, body);
                    if passes {
                        frame = frame.with_fds(fds.clone());
                    }
                    if let Some(set) = in_set {
                        frame = frame.with_set_pool(set.pool.clone());
                    }
                    Outgoing::Frame(frame)
                }
            };
            let queued = if t.overflow != Overflow::Block {
                t.handle.push(frame);
                Ok(())
            } else {
                let link = &*self;
                let deadlines = (&mut own, &mut foreign);
                let wait = move || link.block_wait(t, deadlines);
                t.handle.push_blocking(frame, wait).await
            };
            self.head.clear(); // a copied head, now in the queue
            if let Err(waited) = queued {
                self.cut_off(t, waited);
            }
        }
        route.release();
        self.route = route;
        if unmapped > 0 {
            let msg = format!(
                "the daemon could not map this segment: not delivered to {unmapped} receivers without fd passing"
            );
            self.handle.send_error(ErrorCode::LimitExceeded, msg, None);
        }
    }

    /// Encodes `t`'s head into the head block, for a payload sent as
    /// `body` and `fds` attached fds; `false` (and nothing encoded) if it
    /// cannot be, which the publish frame's own limits rule out.
    #[inline]
    fn encode_head(
        &mut self,
        t: &Target<Arc<ConnHandle>>,
        subject: &Subject,
        headers: Option<&Headers>,
        body: Body,
        fds: usize,
    ) -> bool {
        if self.head.capacity() - self.head.len() < HEAD_LOW {
            self.head.reserve(HEAD_BLOCK);
        }
        let start = self.head.len();
        let encoded = encode_msg_head(t.sid, subject, &self.sender, headers, body, &mut self.head)
            .and_then(|()| announce_fds(&mut self.head, start, fds));
        if encoded.is_err() {
            self.head.clear();
        }
        encoded.is_ok()
    }

    /// `t`'s frame with its payload shared: the head split off the block,
    /// the bytes (or the segment's fd) by reference.
    fn shared_frame(
        &mut self,
        t: &Target<Arc<ConnHandle>>,
        len: usize,
        (segment, bytes): (Option<SegmentFd>, Bytes),
    ) -> OutFrame {
        let head = self.head.split().freeze();
        let frame = OutFrame::message(head, bytes, t.sid, t.overflow);
        match segment {
            Some(fd) => frame.with_segment(fd, len),
            None => frame,
        }
    }

    /// How long this publisher may wait for `t`, a `block` subscriber with
    /// no room: `block_timeout` when `t` is of the same owner (a package or
    /// uid holding itself up) or the publisher's package sets
    /// `accept_block`; otherwise only `foreign_block_timeout`, so another
    /// owner cannot stall it for long. Asked only when there is no room.
    pub(super) fn block_wait<'d>(
        &self,
        t: &Target<Arc<ConnHandle>>,
        (own, foreign): (&'d mut Option<Instant>, &'d mut Option<Instant>),
    ) -> Wait<'d> {
        let limits = &self.shared.config.limits;
        let accepts = || {
            let router = lock(&self.shared.router);
            let rules = self
                .identity
                .pfn
                .as_ref()
                .and_then(|p| router.policy().package(p));
            rules.is_some_and(|r| r.accept_block)
        };
        if t.handle.charged_with(&self.inbound) || accepts() {
            Wait {
                timeout: limits.block_timeout,
                deadline: own,
            }
        } else {
            Wait {
                timeout: limits.foreign_block_timeout,
                deadline: foreign,
            }
        }
    }

    /// Lossless means waiting, but not forever: the stuck subscriber is
    /// cut off and both sides are told.
    fn cut_off(&self, t: &Target<Arc<ConnHandle>>, waited: Duration) {
        let waited = humantime_serde::re::humantime::format_duration(waited);
        t.handle.cut_off_slow(&format!(
            "blocking subscription {} made no room within {waited}",
            t.sid
        ));
        let msg = format!(
            "subscriber {} made no room within {waited}; it was disconnected",
            t.conn
        );
        self.handle.send_error(ErrorCode::SlowConsumer, msg, None);
    }
}
