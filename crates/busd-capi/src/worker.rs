//! The library threads that call C callbacks, one per callback subscription
//! and per service.
//!
//! A callback never runs on the runtime's worker: there it would stall the
//! connection's reader while it ran, and a call back into the library
//! (`block_on` inside the runtime) would panic. Its own thread waits for the
//! next item with `block_on`, then calls the callback outside the runtime.
//! Freeing the handle stops the thread and joins it, so once a free call
//! returns the callback is never called again and its `user_data` may go.

use std::ffi::c_void;
use std::sync::Arc;
use std::thread::JoinHandle;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::guard::panic_message;
use crate::runtime::{InRuntime, Runtime};

/// The caller's `user_data`, handed to its callback on the worker thread.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UserData(*mut c_void);

impl UserData {
    pub(crate) fn new(ptr: *mut c_void) -> Self {
        Self(ptr)
    }

    /// The pointer. A method, not the field: a closure that named the field
    /// would capture the raw pointer alone, which is not `Send`.
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: the library only passes the pointer back to the caller's callback,
// never reads it; the header makes the caller promise that the callback may
// use it on the library's thread (what it points to is the caller's to
// synchronise).
unsafe impl Send for UserData {}

/// A thread calling a callback for each item of a stream; stopped and
/// joined on drop.
#[derive(Debug)]
pub(crate) struct Worker {
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a thread named `name` that calls `each` for every item of
    /// `stream` until the stream ends or the worker is dropped. The stream
    /// is dropped on that thread, inside the runtime.
    pub(crate) fn spawn<S>(
        name: String,
        mut stream: InRuntime<S>,
        mut each: impl FnMut(S::Item, &Arc<Runtime>) + Send + 'static,
    ) -> std::io::Result<Self>
    where
        S: Stream + Unpin + Send + 'static,
    {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            loop {
                let (items, runtime) = stream.parts();
                let next = runtime.block_on(async {
                    tokio::select! {
                        biased;
                        () = stopped.cancelled() => None,
                        item = items.next() => item,
                    }
                });
                let Some(item) = next else { break };
                let runtime = Arc::clone(stream.runtime());
                // A panic in the library's part (converting the item) loses
                // that one item, not the subscription; the C callback itself
                // cannot unwind into Rust (an `extern "C"` call aborts instead).
                let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    each(item, &runtime);
                }));
                if let Err(payload) = called {
                    eprintln!("busd: {}", panic_message(payload.as_ref()));
                }
                if stopped.is_cancelled() {
                    break;
                }
            }
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.cancel();
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Freed from inside its own callback: joining would wait for
        // ourselves. The thread sees the cancellation once the callback
        // returns, and ends.
        if thread.thread().id() == std::thread::current().id() {
            return;
        }
        // Its body catches panics, so a join error cannot carry one.
        let _ = thread.join();
    }
}
