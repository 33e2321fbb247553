//! Open files attached to a message, a request or a reply: [`Fds`].
//!
//! The fds travel beside the byte stream (`SCM_RIGHTS` on a unix socket),
//! never in it; a frame announces how many it carries (see `layout`), so a
//! receiver takes exactly those and refuses any other. The daemon hands one
//! set to every receiver the rules allow by sharing it, as it shares a
//! payload: the files close when the last delivery holding them is written
//! or dropped.

use std::any::Any;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// The most fds one frame may announce: what the kernel passes in one
/// message (`SCM_MAX_FD`). The daemon's own limit
/// (`limits.max_fds_per_message`) is lower.
pub const MAX_FDS_PER_FRAME: usize = 253;

/// The fds attached to one frame, shared by every copy of it: cloning
/// shares the same open files, dropping the last clone closes them.
#[derive(Clone, Default)]
pub struct Fds(Option<Arc<Held>>);

/// The files, and what lives as long as they do.
struct Held {
    fds: Vec<OwnedFd>,
    /// Dropped with the files: e.g. the daemon's charge for holding them.
    _guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fds {
    /// Attaches `fds` (none: an empty set, as a frame without fds has).
    pub fn new(fds: Vec<OwnedFd>) -> Self {
        if fds.is_empty() {
            return Self(None);
        }
        Self(Some(Arc::new(Held { fds, _guard: None })))
    }

    /// The same files, holding `guard` until the last clone is dropped.
    /// On a set already shared, the guard is dropped at once instead.
    #[must_use]
    pub fn with_guard(mut self, guard: Box<dyn Any + Send + Sync>) -> Self {
        if let Some(held) = self.0.as_mut().and_then(Arc::get_mut) {
            held._guard = Some(guard);
        }
        self
    }

    /// How many fds are attached.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |h| h.fds.len())
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The fds, borrowed (to pass them on).
    pub fn borrowed(&self) -> Vec<BorrowedFd<'_>> {
        self.0
            .as_ref()
            .map_or_else(Vec::new, |h| h.fds.iter().map(AsFd::as_fd).collect())
    }

    /// The fds, owned: moved out when this is the only copy (what a client
    /// receives), else duplicated (`dup`, close-on-exec), leaving the other
    /// copies theirs.
    ///
    /// # Errors
    /// The error of `dup` (out of fds); the fds duplicated so far are closed.
    pub fn into_owned(self) -> io::Result<Vec<OwnedFd>> {
        let Some(held) = self.0 else {
            return Ok(Vec::new());
        };
        match Arc::try_unwrap(held) {
            Ok(held) => Ok(held.fds),
            Err(shared) => shared.fds.iter().map(OwnedFd::try_clone).collect(),
        }
    }
}

impl fmt::Debug for Fds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(held) => f.debug_list().entries(&held.fds).finish(),
            None => f.write_str("[]"),
        }
    }
}

impl PartialEq for Fds {
    /// The same shared files (not merely equal numbers), or both empty.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_null() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn the_only_copy_moves_out_and_a_shared_one_is_duplicated() {
        let fds = Fds::new(vec![dev_null(), dev_null()]);
        assert_eq!(fds.len(), 2);
        let copy = fds.clone();
        assert_eq!(copy, fds);
        let numbers: Vec<_> = fds.borrowed().iter().map(|b| format!("{b:?}")).collect();
        let dups = copy.into_owned().unwrap();
        assert_eq!(dups.len(), 2);
        let dup_numbers: Vec<_> = dups.iter().map(|f| format!("{:?}", f.as_fd())).collect();
        assert_ne!(numbers, dup_numbers, "a shared set is duplicated");
        let moved = fds.into_owned().unwrap();
        let moved_numbers: Vec<_> = moved.iter().map(|f| format!("{:?}", f.as_fd())).collect();
        assert_eq!(numbers, moved_numbers, "the last copy is moved");
        assert!(Fds::new(Vec::new()).is_empty());
    }

    #[test]
    fn the_guard_lives_as_long_as_the_last_copy() {
        let guard = Arc::new(());
        let fds = Fds::new(vec![dev_null()]).with_guard(Box::new(Arc::clone(&guard)));
        let copy = fds.clone();
        drop(fds);
        assert_eq!(Arc::strong_count(&guard), 2);
        drop(copy);
        assert_eq!(Arc::strong_count(&guard), 1);
    }
}
