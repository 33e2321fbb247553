//! The daemon's audit log (`busd::audit`), captured in a test.
//!
//! The daemon runs in the test's process and, under `#[tokio::test]`'s
//! current-thread runtime, on the test's own thread: a subscriber set as
//! that thread's default sees every record its sessions write, and the
//! tests running beside it on other threads see none of them.
//!
//! tracing caches, per callsite, whether any subscriber wants it, and while
//! only one subscriber is registered it asks the current thread's alone: a
//! record first written on another test's thread, where nobody listens,
//! would be cached as unwanted and never reach the capture. So the first
//! capture also registers a global subscriber that takes nothing, and
//! tracing then asks every registered subscriber.

use std::io;
use std::sync::{Arc, Mutex, Once, PoisonError};

use tracing::subscriber::{DefaultGuard, NoSubscriber};
use tracing_subscriber::fmt::MakeWriter;

/// The audit records written on this thread while it lives.
pub struct AuditLog {
    text: Arc<Mutex<Vec<u8>>>,
    _guard: DefaultGuard,
}

impl AuditLog {
    /// Starts capturing this thread's `busd::audit` records.
    pub fn capture() -> Self {
        static NOBODY: Once = Once::new();
        NOBODY.call_once(|| {
            // Fails only if a global subscriber exists, which does as well.
            let _ = tracing::subscriber::set_global_default(NoSubscriber::default());
        });
        let text = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("busd::audit=info")
            .with_ansi(false)
            .with_target(true)
            .without_time()
            .with_writer(Sink(Arc::clone(&text)))
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        Self {
            text,
            _guard: guard,
        }
    }

    /// Every record so far, one line each (`busd::audit: message field=value …`).
    pub fn lines(&self) -> Vec<String> {
        let text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&text)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The records that contain every one of `parts`.
    pub fn matching(&self, parts: &[&str]) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .collect()
    }
}

/// Where the subscriber writes: the shared buffer.
#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = Sink;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
