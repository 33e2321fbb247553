//! Local publishes to NATS. The bridge subscribes to each `export`
//! pattern and moves what arrives into a bounded buffer at once, so its
//! local queue never backs up onto local publishers; a sender takes from
//! the buffer only while NATS is connected. While NATS is away the buffer
//! holds up to `buffer` messages, and past that each message is dropped,
//! counted and (sparingly) logged.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use async_nats::HeaderMap;
use busd_client::SubscribeOptions;
use busd_proto::{Overflow, Subject};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::Notify;

use super::headers::to_nats;
use super::{Ends, SENDER_HEADER};
use crate::sync::lock;

/// Drops are logged at the first and then every this many.
const LOG_EVERY: u64 = 10_000;
/// Messages the sender takes from the buffer at once.
const BATCH: usize = 256;

/// A message on its way to NATS.
struct Outgoing {
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
}

/// The bounded buffer between the local subscriptions and NATS. What the
/// sender took and has not handed to NATS yet still counts against the
/// bound, so no more than `capacity` messages are ever held.
struct Buffer {
    held: Mutex<Held>,
    capacity: usize,
    ready: Notify,
}

#[derive(Default)]
struct Held {
    queue: VecDeque<Outgoing>,
    /// Taken by the sender, not yet handed to NATS.
    taken: usize,
}

impl Buffer {
    /// Holds `msg`, or gives it back when full; how many are held.
    fn push(&self, msg: Outgoing) -> Result<usize, Outgoing> {
        let mut held = lock(&self.held);
        if held.queue.len() + held.taken >= self.capacity {
            return Err(msg);
        }
        held.queue.push_back(msg);
        let len = held.queue.len() + held.taken;
        drop(held);
        self.ready.notify_one();
        Ok(len)
    }

    /// Up to [`BATCH`] messages, waiting for one.
    async fn take(&self, into: &mut Vec<Outgoing>) {
        loop {
            {
                let mut held = lock(&self.held);
                let n = held.queue.len().min(BATCH);
                into.extend(held.queue.drain(..n));
                held.taken = n;
            }
            if !into.is_empty() {
                return;
            }
            self.ready.notified().await;
        }
    }

    /// Puts back what the sender took, first in line: NATS went away
    /// while it waited for messages.
    fn put_back(&self, batch: &mut Vec<Outgoing>) {
        let mut held = lock(&self.held);
        for msg in batch.drain(..).rev() {
            held.queue.push_front(msg);
        }
        held.taken = 0;
    }

    /// The sender handed what it took to NATS; how many are held now.
    fn sent(&self) -> usize {
        let mut held = lock(&self.held);
        held.taken = 0;
        held.queue.len()
    }
}

/// Runs the bridge's export side until the daemon stops.
pub(super) async fn run(ends: &Ends) {
    let buffer = Buffer {
        held: Mutex::new(Held::default()),
        capacity: ends.config.buffer,
        ready: Notify::new(),
    };
    let takers = ends.config.export.iter().map(|p| take(ends, p, &buffer));
    tokio::join!(futures::future::join_all(takers), send(ends, &buffer));
}

/// Moves what the local subscription to `pattern` gets into `buffer`.
async fn take(ends: &Ends, pattern: &Subject, buffer: &Buffer) {
    let options = SubscribeOptions {
        queue: None,
        // The buffer drains the queue as fast as it fills; should it
        // still fall behind, the oldest go, counted by the daemon, and
        // publishers are never held up nor the bridge cut off.
        overflow: Overflow::DropOldest,
    };
    let mut sub = match ends.local.subscribe_with(pattern.clone(), options).await {
        Ok(sub) => sub,
        Err(e) => {
            tracing::error!(bridge = %ends.config.name, %pattern, cause = %e, "cannot export: the local subscription was refused");
            return;
        }
    };
    let stats = &ends.stats;
    let mut seen_dropped = 0;
    while let Some(msg) = sub.next().await {
        // What the daemon dropped before the bridge could take it (its
        // queue full: the bridge's tasks starved of CPU) is lost on the
        // way out too.
        let dropped = sub.dropped();
        if dropped > seen_dropped {
            stats
                .dropped_out
                .fetch_add(dropped - seen_dropped, Ordering::Relaxed);
            tracing::warn!(bridge = %ends.config.name, %pattern, dropped = dropped - seen_dropped, "the bridge fell behind its local subscription: messages dropped");
            seen_dropped = dropped;
        }
        // What the bridge brought in itself goes no further.
        if msg.from.pfn.as_ref() == Some(&ends.config.pfn) {
            continue;
        }
        let sender = ends.sender_of(&msg.from);
        let out = Outgoing {
            subject: ends.exported(msg.subject.as_str()),
            headers: to_nats(msg.headers.as_ref(), &[(SENDER_HEADER, &sender)]),
            payload: msg.payload,
        };
        match buffer.push(out) {
            Ok(len) => stats.buffered.store(len as u64, Ordering::Relaxed),
            Err(lost) => {
                let dropped = stats.dropped_out.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 || dropped % LOG_EVERY == 0 {
                    tracing::warn!(bridge = %ends.config.name, subject = %lost.subject, dropped, capacity = buffer.capacity, "the buffer for NATS is full: message dropped");
                }
            }
        }
    }
}

/// Sends what `buffer` holds to NATS, while connected.
async fn send(ends: &Ends, buffer: &Buffer) {
    let mut connected = ends.nats.connected.clone();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if connected.wait_for(|up| *up).await.is_err() {
            return;
        }
        buffer.take(&mut batch).await;
        if !*connected.borrow() {
            buffer.put_back(&mut batch);
            continue;
        }
        for msg in batch.drain(..) {
            let len = msg.payload.len();
            let sent = (ends.nats.client)
                .publish_with_headers(msg.subject, msg.headers, msg.payload)
                .await;
            match sent {
                Ok(()) => ends.stats.out.add(len),
                Err(e) => {
                    ends.stats.dropped_out.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(bridge = %ends.config.name, cause = %e, "NATS refused a message: dropped");
                }
            }
        }
        let left = buffer.sent();
        ends.stats.buffered.store(left as u64, Ordering::Relaxed);
    }
}
