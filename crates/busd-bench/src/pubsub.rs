//! The pub/sub roles: publishers that number their messages and
//! subscribers that check every publisher's sequence arrives whole and in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::Conn;
use crate::error::chain;
use crate::spec::{RoleResult, unix_ns};

/// How long a publisher waits for the server to confirm its window.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Bits of the sequence word that hold the sequence; the publisher's
/// number sits above them.
const SEQ_BITS: u32 = 48;
/// The sequence that marks a timed run's last message, which carries the
/// number of messages sent before it (counts stay below it: see
/// [`MAX_COUNT`](crate::spec::MAX_COUNT)).
const END_SEQ: u64 = (1 << SEQ_BITS) - 1;
/// A timed publisher reads the clock once per this many messages.
const CLOCK_EVERY: u64 = 64;

/// The first 8 payload bytes (little endian): publisher number and sequence.
pub(crate) fn seq_word(publisher: u16, seq: u64) -> u64 {
    (u64::from(publisher) << SEQ_BITS) | seq
}

/// What one publisher sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Its number, stamped in each payload.
    pub(crate) index: u16,
    /// Messages to send, at most.
    pub(crate) count: u64,
    /// Send until this has passed, then send the end marker.
    pub(crate) duration: Option<Duration>,
    /// Payload size.
    pub(crate) size: usize,
    /// Unconfirmed messages allowed in flight (`None`: no window).
    pub(crate) window: Option<u64>,
}

/// Sends `plan.count` numbered messages of `plan.size` bytes (or as many as
/// `plan.duration` allows, followed by a message saying how many), keeping
/// at most about `window` of them unconfirmed by the server: every
/// `window / 2` messages it waits for the previous confirmation and asks
/// for the next. Without a window only the last message is confirmed, and
/// the server's back-pressure is all that paces the publisher.
pub(crate) async fn publish<C: Conn>(conn: C, subject: C::Subject, plan: Plan) -> RoleResult {
    let Plan {
        index,
        count,
        duration,
        size,
        window,
    } = plan;
    let mut result = RoleResult::default();
    let step = window.map(|w| (w / 2).max(1));
    let mut pending: Option<JoinHandle<Result<(), C::Error>>> = None;
    let deadline = duration.map(|d| Instant::now() + d);
    for seq in 0..count {
        if seq % CLOCK_EVERY == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // Written where the bus sends from: the sequence word, then filler.
        let fill = |buf: &mut [u8]| {
            buf[..8].copy_from_slice(&seq_word(index, seq).to_le_bytes());
            buf[8..].fill(0x5a);
        };
        if let Err(e) = conn.publish_filled(&subject, size.max(8), fill).await {
            result.disconnected = true;
            result.error = Some(format!(
                "publish failed after {seq} messages: {}",
                chain(&e)
            ));
            return result;
        }
        result.sent += 1;
        if step.is_some_and(|step| (seq + 1) % step == 0) {
            if let Err(e) = confirm(pending.take()).await {
                result.error = Some(e);
                return result;
            }
            let c = conn.clone();
            pending = Some(tokio::spawn(async move { c.flush().await }));
        }
    }
    if deadline.is_some() {
        let sent = result.sent;
        let end = |buf: &mut [u8]| {
            buf[..8].copy_from_slice(&seq_word(index, END_SEQ).to_le_bytes());
            buf[8..].copy_from_slice(&sent.to_le_bytes());
        };
        if let Err(e) = conn.publish_filled(&subject, 16, end).await {
            result.disconnected = true;
            result.error = Some(format!(
                "the end marker failed after {sent} messages: {}",
                chain(&e)
            ));
            return result;
        }
    }
    let last = async {
        confirm(pending.take()).await?;
        confirm(Some(tokio::spawn(async move { conn.flush().await }))).await
    };
    if let Err(e) = last.await {
        result.error = Some(e);
    }
    result.last_ns = Some(unix_ns());
    result
}

/// Waits for a confirmation in flight, bounded by [`FLUSH_TIMEOUT`].
async fn confirm<E: std::error::Error + 'static>(
    pending: Option<JoinHandle<Result<(), E>>>,
) -> Result<(), String> {
    let Some(handle) = pending else {
        return Ok(());
    };
    match tokio::time::timeout(FLUSH_TIMEOUT, handle).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(format!("flush failed: {}", chain(&e))),
        Ok(Err(e)) => Err(format!("flush task failed: {e}")),
        Err(_) => Err(format!(
            "the server did not confirm within {FLUSH_TIMEOUT:?}"
        )),
    }
}

/// Per-publisher sequence check.
#[derive(Debug)]
struct SeqCheck {
    /// The next sequence expected from each publisher.
    next: Vec<u64>,
    /// How many each publisher sends: the count, or in a timed run what
    /// its end marker said (unknown until it came).
    ends: Vec<Option<u64>>,
    lost: u64,
    out_of_order: u64,
    foreign: u64,
    /// Publishers whose last message arrived.
    complete: usize,
}

impl SeqCheck {
    fn new(pubs: u16, count: Option<u64>) -> Self {
        Self {
            next: vec![0; usize::from(pubs)],
            ends: vec![count; usize::from(pubs)],
            lost: 0,
            out_of_order: 0,
            foreign: 0,
            complete: 0,
        }
    }

    /// Checks one payload; false if it was a timed run's end marker
    /// rather than a message.
    fn record(&mut self, mut payload: &[u8]) -> bool {
        if payload.len() < 8 {
            self.foreign += 1;
            return true;
        }
        let word = payload.get_u64_le();
        let seq = word & END_SEQ;
        let p = usize::try_from(word >> SEQ_BITS).unwrap_or(usize::MAX);
        let (Some(next), Some(end)) = (self.next.get_mut(p), self.ends.get_mut(p)) else {
            self.foreign += 1;
            return true;
        };
        if seq == END_SEQ {
            // After everything its publisher sent (per-publisher order):
            // what has not come by now never will, and what comes later
            // is out of order.
            match (*end, payload.len() >= 8) {
                (None, true) => {
                    let sent = payload.get_u64_le();
                    self.lost += sent.saturating_sub(*next);
                    *next = sent;
                    *end = Some(sent);
                    self.complete += 1;
                }
                _ => self.foreign += 1, // a second one, or not from a timed run
            }
            return false;
        }
        if seq < *next || end.is_some_and(|end| seq >= end) {
            self.out_of_order += 1;
            return true;
        }
        self.lost += seq - *next; // a gap: those never came before this one
        *next = seq + 1;
        if *end == Some(*next) {
            self.complete += 1;
        }
        true
    }

    fn done(&self) -> bool {
        self.complete == self.next.len()
    }

    /// Losses, counting what never came at the end of each sequence (of
    /// those whose end is known).
    fn total_lost(&self) -> u64 {
        let tails = self.next.iter().zip(&self.ends);
        self.lost
            + tails
                .map(|(next, end)| end.map_or(0, |end| end.saturating_sub(*next)))
                .sum::<u64>()
    }
}

/// Receives until every publisher's last message has come, the
/// subscription ends, `idle` passes without a message, or `stop` fires.
pub(crate) async fn subscribe(
    mut messages: BoxStream<'static, Bytes>,
    pubs: u16,
    count: Option<u64>,
    idle: Duration,
    progress: Arc<AtomicU64>,
    stop: CancellationToken,
) -> RoleResult {
    let mut result = RoleResult::default();
    let mut check = SeqCheck::new(pubs, count);
    let mut last_ns = None;
    while !check.done() {
        // A message already there is taken without arming the idle timer
        // or the stop signal: per message, the loop should cost the bus's
        // receive path, not the harness's timers (both systems run this).
        let next = match messages.next().now_or_never() {
            Some(next) => Ok(next),
            None => tokio::select! {
                () = stop.cancelled() => {
                    result.error = Some("stopped by the runner".into());
                    break;
                }
                next = tokio::time::timeout(idle, messages.next()) => next,
            },
        };
        match next {
            Ok(Some(payload)) => {
                if !check.record(&payload) {
                    continue; // an end marker: not a message of the run
                }
                result.received += 1;
                result.bytes += payload.len() as u64;
                if result.received % 256 == 0 {
                    progress.store(result.received, Ordering::Relaxed);
                    // Messages that keep coming never reach the select.
                    if stop.is_cancelled() {
                        result.error = Some("stopped by the runner".into());
                        break;
                    }
                }
            }
            Ok(None) => {
                result.disconnected = true;
                result.error = Some("the subscription ended (disconnected?)".into());
                last_ns = Some(unix_ns());
                break;
            }
            Err(_) => {
                result.error = Some(format!("no message for {idle:?}"));
                last_ns =
                    Some(unix_ns().saturating_sub(u64::try_from(idle.as_nanos()).unwrap_or(0)));
                break;
            }
        }
    }
    progress.store(result.received, Ordering::Relaxed);
    result.last_ns = last_ns.or_else(|| Some(unix_ns()));
    result.lost = check.total_lost();
    result.out_of_order = check.out_of_order;
    result.errors = check.foreign;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(publisher: u16, seq: u64) -> Vec<u8> {
        seq_word(publisher, seq).to_le_bytes().to_vec()
    }

    #[test]
    fn gaps_and_reorders_are_counted() {
        let mut check = SeqCheck::new(2, Some(4));
        for (p, s) in [(0, 0), (1, 0), (0, 2), (0, 1), (0, 3), (1, 1)] {
            check.record(&payload(p, s));
        }
        check.record(&payload(7, 0));
        assert_eq!(check.out_of_order, 1);
        assert_eq!(check.foreign, 1);
        assert!(!check.done());
        // publisher 0: 1 counted lost at the gap, then out of order when it
        // came late; publisher 1 misses 2 and 3
        assert_eq!(check.total_lost(), 1 + 2);
    }

    #[test]
    fn a_whole_run_is_done_with_nothing_lost() {
        let mut check = SeqCheck::new(1, Some(3));
        for s in 0..3 {
            check.record(&payload(0, s));
        }
        assert!(check.done());
        assert_eq!(check.total_lost(), 0);
    }

    fn end(publisher: u16, sent: u64) -> Vec<u8> {
        let mut p = payload(publisher, END_SEQ);
        p.extend_from_slice(&sent.to_le_bytes());
        p
    }

    #[test]
    fn a_timed_run_ends_with_each_publishers_marker() {
        let mut check = SeqCheck::new(2, None);
        for s in 0..3 {
            assert!(check.record(&payload(0, s)));
        }
        assert!(!check.record(&end(0, 3)), "a marker is not a message");
        assert!(!check.done(), "publisher 1 has not ended");
        assert!(check.record(&payload(1, 0)));
        assert!(!check.record(&end(1, 1)));
        assert!(check.done());
        assert_eq!(check.total_lost(), 0);
    }

    #[test]
    fn a_timed_run_counts_gaps_and_a_lost_tail() {
        let mut check = SeqCheck::new(1, None);
        check.record(&payload(0, 0));
        check.record(&payload(0, 2));
        check.record(&end(0, 5));
        assert!(check.done());
        assert_eq!(
            check.total_lost(),
            1 + 2,
            "1 in the gap, 3 and 4 at the end"
        );
        // Anything after the marker is out of order; a second marker is foreign.
        check.record(&payload(0, 4));
        check.record(&end(0, 5));
        assert_eq!((check.out_of_order, check.foreign), (1, 1));
    }

    #[test]
    fn a_marker_in_a_counted_run_is_foreign() {
        let mut check = SeqCheck::new(1, Some(2));
        assert!(!check.record(&end(0, 1)));
        assert_eq!(check.foreign, 1);
        assert!(!check.done());
    }
}
