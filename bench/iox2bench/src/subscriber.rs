//! A subscriber: sleeps on the event service's listener, and when woken
//! takes every sample its buffer holds, checking the sequence numbers.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::service::{self, Names};
use crate::worker::{Control, RoleResult};

/// Receives the run's samples until the last one has come or none came for
/// `names.idle_timeout_ms`.
///
/// # Errors
/// When its ports cannot be made or the parent goes away before the start;
/// a failure during the run is reported in the result instead.
pub(crate) fn run(names: &Names, control: &Control) -> anyhow::Result<()> {
    let node = service::node()?;
    let data = service::open_data(&node, names)?;
    let subscriber = data
        .subscriber_builder()
        .buffer_size(names.buffer)
        .create()
        .context("cannot create the subscriber")?;
    let listener = service::listener(&node, names)?;
    control.ready()?;

    let idle = Duration::from_millis(names.idle_timeout_ms);
    let mut check = SeqCheck::default();
    let mut result = RoleResult::default();
    let mut last = Instant::now();
    while check.next < names.count {
        // Take whatever is buffered first: a notification may have been
        // consumed by the wait before its sample was taken.
        match subscriber.receive() {
            Ok(Some(sample)) => {
                let payload = sample.payload();
                check.record(payload);
                result.received += 1;
                result.bytes += payload.len() as u64;
                last = Instant::now();
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                result.error = Some(format!("receive failed: {e:?}"));
                break;
            }
        }
        let left = idle.saturating_sub(last.elapsed());
        if left.is_zero() {
            result.error = Some(format!("no message for {idle:?}"));
            break;
        }
        if let Err(e) = listener.timed_wait(|_| {}, left) {
            result.error = Some(format!("wait failed: {e:?}"));
            break;
        }
    }
    result.last_ns = service::unix_ns();
    result.lost = check.lost + names.count.saturating_sub(check.next);
    result.out_of_order = check.out_of_order;
    control.report(&result)
}

/// The sequence check of one publisher's messages, as busd bench does it.
#[derive(Debug, Default)]
struct SeqCheck {
    /// The next sequence number expected.
    next: u64,
    /// Numbers skipped over (they never came before a later one).
    lost: u64,
    /// Messages that came after a later one.
    out_of_order: u64,
}

impl SeqCheck {
    fn record(&mut self, payload: &[u8]) {
        let Some(word) = payload.first_chunk::<8>() else {
            self.out_of_order += 1;
            return;
        };
        let seq = u64::from_le_bytes(*word);
        if seq < self.next {
            self.out_of_order += 1;
            return;
        }
        self.lost += seq - self.next;
        self.next = seq + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::SeqCheck;

    #[test]
    fn gaps_are_lost_and_late_ones_out_of_order() {
        let mut sut = SeqCheck::default();
        for seq in [0u64, 1, 3, 2, 4] {
            sut.record(&seq.to_le_bytes());
        }
        assert_eq!((sut.next, sut.lost, sut.out_of_order), (5, 1, 1));
    }
}
