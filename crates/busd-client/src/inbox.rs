//! The queue between the reader task and a [`Subscriber`](crate::Subscriber)
//! or a [`Service`](crate::Service): bounded, filled one item at a time under
//! a short lock, and emptied whole.
//!
//! tokio's bounded mpsc cost every message a permit, a slot in its block
//! list and a move in and a move out, about a quarter of a subscriber's CPU
//! at small messages. Here the reader pushes under a mutex and the receiving
//! side swaps the whole queue for its own empty one, so a burst costs the
//! receiver one lock and no copying.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::lock::lock;

/// A queue holding at most `capacity` items, plus up to as many that the
/// receiver has taken and not yet handed out.
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        queue: Mutex::new(Queue {
            items: VecDeque::new(),
            waker: None,
            senders: 1,
            receiver: true,
        }),
        capacity: capacity.max(1),
        room: Notify::new(),
    });
    let receiver = Receiver {
        inner: Arc::clone(&inner),
        taken: VecDeque::new(),
    };
    (Sender { inner }, receiver)
}

struct Inner<T> {
    queue: Mutex<Queue<T>>,
    capacity: usize,
    /// Wakes senders waiting for room, once the receiver took a full queue
    /// or went away.
    room: Notify,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// The receiver, parked on an empty queue.
    waker: Option<Waker>,
    senders: usize,
    receiver: bool,
}

/// Why [`Sender::try_send`] gave the item back.
pub(crate) enum TrySendError<T> {
    /// The queue is at capacity.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The filling side; the receiver sees the end once every clone is gone.
pub(crate) struct Sender<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Sender<T> {
    /// Queues `item` if there is room, waking a parked receiver.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        let mut q = lock(&self.inner.queue);
        if !q.receiver {
            return Err(TrySendError::Closed(item));
        }
        if q.items.len() >= self.inner.capacity {
            return Err(TrySendError::Full(item));
        }
        q.items.push_back(item);
        let waker = q.waker.take();
        drop(q);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Queues `item` once there is room: `Err(Some(item))` if `stop` fires
    /// first, `Err(None)` if the receiver is gone.
    pub(crate) async fn send(
        &self,
        mut item: T,
        stop: &CancellationToken,
    ) -> Result<(), Option<T>> {
        loop {
            let room = self.inner.room.notified();
            tokio::pin!(room);
            // Registered before the attempt, so room made in between wakes it.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(_)) => return Err(None),
                Err(TrySendError::Full(back)) => item = back,
            }
            tokio::select! {
                biased;
                () = room => {}
                () = stop.cancelled() => return Err(Some(item)),
            }
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        lock(&self.inner.queue).senders += 1;
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut q = lock(&self.inner.queue);
        q.senders -= 1;
        let waker = if q.senders == 0 { q.waker.take() } else { None };
        drop(q);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The emptying side.
pub(crate) struct Receiver<T> {
    inner: Arc<Inner<T>>,
    /// Taken from the queue whole, handed out one at a time.
    taken: VecDeque<T>,
}

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and all is handed out.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.taken.pop_front() {
            return Poll::Ready(Some(item));
        }
        let mut q = lock(&self.inner.queue);
        if q.items.is_empty() {
            if q.senders == 0 {
                return Poll::Ready(None);
            }
            match &mut q.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let was_full = q.items.len() >= self.inner.capacity;
        // `taken` is empty here: the queue gets it, and its allocation, for
        // the next burst.
        std::mem::swap(&mut q.items, &mut self.taken);
        drop(q);
        if was_full {
            self.inner.room.notify_waiters();
        }
        Poll::Ready(self.taken.pop_front())
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut q = lock(&self.inner.queue);
        q.receiver = false;
        let items = std::mem::take(&mut q.items);
        drop(q);
        drop(items);
        self.inner.room.notify_waiters();
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("taken", &self.taken.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;

    use futures::FutureExt;
    use futures::task::noop_waker_ref;
    use tokio_util::sync::CancellationToken;

    use super::{TrySendError, channel};

    fn poll<T>(rx: &mut super::Receiver<T>) -> Poll<Option<T>> {
        rx.poll_recv(&mut std::task::Context::from_waker(noop_waker_ref()))
    }

    #[test]
    fn items_come_out_in_order_and_the_end_after_the_last() {
        let (tx, mut rx) = channel(4);
        assert!(poll(&mut rx).is_pending());
        for i in 0..3 {
            assert!(tx.try_send(i).is_ok());
        }
        let tx2 = tx.clone();
        assert!(tx2.try_send(3).is_ok());
        drop(tx);
        assert_eq!(poll(&mut rx), Poll::Ready(Some(0)));
        assert!(tx2.try_send(4).is_ok(), "room again once taken");
        drop(tx2);
        for i in 1..=4 {
            assert_eq!(poll(&mut rx), Poll::Ready(Some(i)));
        }
        assert_eq!(poll(&mut rx), Poll::Ready(None));
    }

    #[tokio::test]
    async fn a_full_queue_holds_senders_until_it_is_taken() {
        let (tx, mut rx) = channel(2);
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        let never = CancellationToken::new();
        let send = tx.send(3, &never);
        tokio::pin!(send);
        assert!(send.as_mut().now_or_never().is_none());
        assert_eq!(poll(&mut rx), Poll::Ready(Some(1)));
        assert!(send.await.is_ok());
        // Full again: a stopped wait hands the item back.
        assert!(tx.try_send(4).is_ok());
        let stopped = CancellationToken::new();
        stopped.cancel();
        assert_eq!(tx.send(5, &stopped).await.err(), Some(Some(5)));
        for i in 2..=4 {
            assert_eq!(poll(&mut rx), Poll::Ready(Some(i)));
        }
    }

    #[tokio::test]
    async fn a_gone_receiver_refuses_and_frees_waiting_senders() {
        let (tx, rx) = channel(1);
        assert!(tx.try_send(1).is_ok());
        let never = CancellationToken::new();
        let send = tx.send(2, &never);
        tokio::pin!(send);
        assert!(send.as_mut().now_or_never().is_none());
        drop(rx);
        assert_eq!(send.await.err(), Some(None), "nobody to take it");
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
    }
}
