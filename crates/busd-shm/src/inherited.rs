//! Taking ownership of a file descriptor a process inherited at exec,
//! announced in an environment variable (as systemd announces
//! `LISTEN_FDS`): busd hands an activated service its connection this way.
//! Here because turning a raw number into an `OwnedFd` is `unsafe`, and
//! this crate is where busd keeps its `unsafe`, each use audited.

use std::collections::HashSet;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

/// The descriptors taken so far: each can be owned once per process.
static TAKEN: Mutex<Option<HashSet<RawFd>>> = Mutex::new(None);

/// Takes ownership of descriptor `fd`, inherited at exec: it is closed
/// when the returned `OwnedFd` drops, and marked close-on-exec so that the
/// process's own children do not inherit it.
///
/// Only numbers above the standard streams are accepted, each at most once
/// in a process's life.
///
/// # Errors
/// `InvalidInput` for 0, 1, 2 or a negative number, `AlreadyExists` for a
/// descriptor taken before, `NotFound` for one that is not open.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd <= 2 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "descriptor {fd} is not an inherited one (0, 1 and 2 are the standard streams)"
            ),
        ));
    }
    let mut taken = TAKEN.lock().unwrap_or_else(PoisonError::into_inner);
    let taken = taken.get_or_insert_with(HashSet::new);
    if taken.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("inherited descriptor {fd} was taken already"),
        ));
    }
    // Whether it is open, asked without touching the number itself.
    if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("descriptor {fd} was announced as inherited but is not open"),
        ));
    }
    // SAFETY: `fd` is open (just checked) and nothing else in this process
    // owns it (see below), so nothing closes it during this one fcntl.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)?;
    taken.insert(fd);
    // SAFETY: the descriptor is open (checked above), and no other
    // owner exists in this process: it was inherited at exec, where the
    // parent's announcement says it is for this use, and this function
    // hands it out once (`TAKEN`), under the lock, for the process's life.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
