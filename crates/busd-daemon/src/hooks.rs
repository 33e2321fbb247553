//! Fault injection for tests: code an embedding test runs inside the
//! daemon at chosen points, e.g. to panic in one connection's task and
//! check that only that connection closes. `busd run` sets none.

use std::fmt;
use std::sync::Arc;

use busd_proto::Op;

/// Called with a connection's id and each operation it sends after
/// `Welcome`, before the daemon acts on it (publishes excepted: they stay
/// on the hot path untouched).
pub type OpHook = Arc<dyn Fn(u64, &Op) + Send + Sync>;

/// The hooks a daemon runs; none by default.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Hooks {
    /// See [`OpHook`].
    pub on_op: Option<OpHook>,
}

impl Hooks {
    /// Hooks that call `hook` on each operation (see [`OpHook`]).
    pub fn on_op(hook: impl Fn(u64, &Op) + Send + Sync + 'static) -> Self {
        Self {
            on_op: Some(Arc::new(hook)),
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_op", &self.on_op.is_some())
            .finish()
    }
}
