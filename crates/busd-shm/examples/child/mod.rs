//! What the examples' parent and child processes share: fds handed to a
//! child by number on its command line.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

pub(crate) type Failure = Box<dyn std::error::Error>;

/// A dup of `fd` that survives exec (dup(2) never sets `FD_CLOEXEC`), for
/// a child to be given by number.
pub(crate) fn dup(fd: impl AsFd) -> Result<OwnedFd, Failure> {
    Ok(rustix::io::dup(fd)?)
}

/// The fds whose numbers the parent passed (as `args`), in order.
pub(crate) fn inherited(args: &[String]) -> impl Iterator<Item = Result<OwnedFd, Failure>> + '_ {
    args.iter().map(|n| -> Result<OwnedFd, Failure> {
        let raw = n.parse()?;
        // SAFETY:
        // 1. The parent passed these numbers for fds it dup'ed without
        //    FD_CLOEXEC just for this child; they are open here.
        // 2. Nothing else in this process knows them, so each is owned once.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    })
}
