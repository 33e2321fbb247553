//! A monitor's forwarder: the task that moves its events from its backlog
//! into its connection's outbound queue.
//!
//! It waits for room in that queue, so a monitor that reads slowly is
//! never cut off as a slow consumer; its backlog fills meanwhile and
//! drops what comes next (counted), which the monitor is told with a
//! `Dropped` notice after the events it did get.

use std::sync::Arc;

use busd_proto::Op;
use bytes::Bytes;

use super::Watch;
use crate::outbox::ConnHandle;

/// Forwards `watch`'s events to `handle`, its connection, until the
/// monitor ends or the connection closes.
pub(crate) async fn forward(watch: Arc<Watch>, handle: Arc<ConnHandle>) {
    let mut batch = Vec::new();
    loop {
        let dropped = watch.take(&mut batch);
        for (event, payload) in batch.drain(..) {
            let op = Op::Event {
                sid: watch.sid,
                event,
            };
            if !send(&watch, &handle, &op, payload).await {
                return;
            }
        }
        if dropped > 0 {
            let op = Op::Dropped {
                sid: watch.sid,
                count: dropped,
            };
            if !send(&watch, &handle, &op, Bytes::new()).await {
                return;
            }
        }
        tokio::select! {
            () = watch.offered() => {}
            () = watch.stopped().cancelled() => return,
        }
    }
}

/// Queues `op` once there is room; `false` if the monitor ended or its
/// connection closed first.
async fn send(watch: &Watch, handle: &ConnHandle, op: &Op, payload: Bytes) -> bool {
    tokio::select! {
        queued = handle.send_in_turn(op, payload) => queued,
        () = watch.stopped().cancelled() => false,
    }
}
