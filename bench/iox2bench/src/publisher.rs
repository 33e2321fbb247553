//! The publisher: loans each sample from its pool, writes it in place and
//! sends it, then wakes the subscribers through the event service.

use anyhow::{Context as _, ensure};
use iceoryx2::prelude::*;

use crate::service::{self, Names};
use crate::worker::{Control, RoleResult};

/// The filler after the sequence number, as busd bench writes it.
const FILL: u8 = 0x5a;

/// Sends `names.count` samples of `names.size` bytes to the run's subscribers.
///
/// # Errors
/// When its ports cannot be made or the parent goes away before the start;
/// a failure during the run is reported in the result instead.
pub(crate) fn run(names: &Names, control: &Control) -> anyhow::Result<()> {
    ensure!(
        names.size >= 8,
        "the payload must hold the 8-byte sequence number"
    );
    let node = service::node()?;
    let data = service::open_data(&node, names)?;
    // A subscriber with a full buffer makes `send` retry until it has
    // room (iceoryx2 yields, then sleeps, between tries): back-pressure,
    // where the other strategy would skip that subscriber.
    let publisher = data
        .publisher_builder()
        .initial_max_slice_len(names.size)
        .max_loaned_samples(1)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .context("cannot create the publisher")?;
    let notifier = service::notifier(&node, names)?;
    let subs = data.dynamic_config().number_of_subscribers();
    ensure!(
        subs == names.subs as usize,
        "{subs} subscribers on the service, not {}",
        names.subs
    );
    control.ready()?;
    let result = publish(&publisher, &notifier, names);
    control.report(&result)?;
    // The subscribers may still be draining their buffers.
    control.linger();
    Ok(())
}

/// The send loop; its result says how far it got.
fn publish(
    publisher: &iceoryx2::port::publisher::Publisher<service::Ipc, [u8], ()>,
    notifier: &iceoryx2::port::notifier::Notifier<service::Ipc>,
    names: &Names,
) -> RoleResult {
    let mut result = RoleResult::default();
    let fail = |result: &mut RoleResult, what: String| {
        result.error = Some(format!("{what} after {} messages", result.sent));
        result.last_ns = service::unix_ns();
    };
    for seq in 0..names.count {
        let sample = match publisher.loan_slice_uninit(names.size) {
            Ok(sample) => sample,
            Err(e) => {
                fail(&mut result, format!("loan failed: {e:?}"));
                return result;
            }
        };
        // The filler first (a memset into the loaned sample), then the
        // sequence number over its first 8 bytes.
        let mut sample = sample.write_from_fn(|_| FILL);
        sample.payload_mut()[..8].copy_from_slice(&seq.to_le_bytes());
        match sample.send() {
            Ok(reached) if reached < names.subs as usize && result.error.is_none() => {
                result.error = Some(format!(
                    "message {seq} reached {reached} of {} subscribers",
                    names.subs
                ));
            }
            Ok(_) => {}
            Err(e) => {
                fail(&mut result, format!("send failed: {e:?}"));
                return result;
            }
        }
        result.sent += 1;
        if let Err(e) = notifier.notify() {
            fail(&mut result, format!("notify failed: {e:?}"));
            return result;
        }
    }
    result.last_ns = service::unix_ns();
    result
}
