//! The tokio runtime a client owns, and SDK handles that must be dropped
//! inside it.
//!
//! Each `busd_client` builds one runtime: a single I/O worker thread runs the
//! SDK's connection tasks, and blocking C calls `block_on` it from the
//! caller's own thread. Subscriptions, services and calls share it through an
//! `Arc`, so it lives until the last of them is freed, in any order.

use std::io;
use std::sync::Arc;
use std::time::Duration;

/// How long freeing the last handle waits for the runtime's threads.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A client's runtime, shut down (its threads joined) when the last handle
/// of the client lets go.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// Always `Some` until `drop`, which needs it by value.
    inner: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// One worker thread: the connection's reader and writer tasks need
    /// little, and every C caller drives its own calls with `block_on`.
    pub(crate) fn new() -> io::Result<Arc<Self>> {
        let inner = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("busd-io")
            .enable_all()
            .build()?;
        Ok(Arc::new(Self { inner: Some(inner) }))
    }

    fn get(&self) -> &tokio::runtime::Runtime {
        self.inner.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `future` to completion on the calling thread. Only from threads
    /// outside the runtime: C callers' threads and the callback workers.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.get().block_on(future)
    }

    /// Enters the runtime's context, for code that may spawn or needs timers.
    pub(crate) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.get().enter()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Bounded, unlike the runtime's own drop: a stuck task must not
        // hang the C program's free call forever.
        if let Some(inner) = self.inner.take() {
            inner.shutdown_timeout(SHUTDOWN_GRACE);
        }
    }
}

/// An SDK handle (a `Subscriber`, a `Service`) dropped inside its runtime's
/// context: its `Drop` sends an unsubscribe and, when the command queue is
/// full, falls back to spawning the send, which needs a runtime at hand.
#[derive(Debug)]
pub(crate) struct InRuntime<T> {
    /// Always `Some` until `drop`.
    value: Option<T>,
    runtime: Arc<Runtime>,
}

impl<T> InRuntime<T> {
    pub(crate) fn new(value: T, runtime: Arc<Runtime>) -> Self {
        Self {
            value: Some(value),
            runtime,
        }
    }

    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The handle and the runtime, to drive it.
    pub(crate) fn parts(&mut self) -> (&mut T, &Runtime) {
        let value = self.value.as_mut().expect("the value lives until drop");
        (value, &self.runtime)
    }
}

impl<T> Drop for InRuntime<T> {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        self.value.take();
    }
}
