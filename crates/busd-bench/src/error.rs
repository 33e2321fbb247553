//! Why a bench could not run, and how the bus it drives reports failure.

use std::error::Error as StdError;
use std::fmt::Write as _;

/// Any system's error, behind the [`Bus`](crate::Bus) traits.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why a bench could not run at all (a run that lost messages is not an
/// error: its summary says so).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The options do not describe a run.
    #[error("{0}")]
    Options(String),
    /// The bus refused what the bench asked of it.
    #[error("{what}")]
    Bus {
        /// What the bench was doing.
        what: String,
        /// The system's own error.
        #[source]
        source: BoxError,
    },
    /// The bench's own daemon could not start.
    #[error("cannot start the bench's daemon")]
    Daemon(#[source] BoxError),
    /// The operating system refused (temp dirs, worker processes).
    #[error("{what}")]
    Io {
        /// What the bench was doing.
        what: String,
        /// The system call's error.
        #[source]
        source: std::io::Error,
    },
    /// A worker failed before the run started.
    #[error("{0}")]
    Worker(String),
}

impl BenchError {
    /// A failure of the bus while the bench was doing `what`.
    pub fn bus(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Bus {
            what: what.into(),
            source: source.into(),
        }
    }

    /// A failure of the operating system while the bench was doing `what`.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// `e` and every cause below it, `outer: inner: innermost`: workers report
/// errors as text, and the cause is usually the useful part. A cause whose
/// text the message already ends with (the SDK's errors spell out their
/// cause) is not repeated.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        cause = c.source();
    }
    out
}

/// `Ok` if `ok`, else [`BenchError::Options`] saying `why`.
pub(crate) fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), BenchError> {
    if ok {
        Ok(())
    } else {
        Err(BenchError::Options(why()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_names_each_cause_once() {
        let io = std::io::Error::other("connection refused");
        let e = BenchError::io("cannot start a worker", io);
        assert_eq!(chain(&e), "cannot start a worker: connection refused");
        // A message that already ends with its cause's text.
        let io = std::io::Error::other("no such file");
        let e = BenchError::io("cannot read spec: no such file", io);
        assert_eq!(chain(&e), "cannot read spec: no such file");
    }
}
