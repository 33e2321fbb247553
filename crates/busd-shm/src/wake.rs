//! Waking a parked peer: eventfds and the spin-then-park protocol.
//!
//! A side that finds nothing to do spins for a while (cheap when traffic
//! flows), then *arms*: it sets its "waiting" flag in the header, issues a
//! SeqCst fence and re-checks the ring. Only if the ring is still empty (or
//! full) does it park on its eventfd. The other side, after every push (or
//! pop), issues a SeqCst fence and reads the flag; when set, it clears it and
//! writes the eventfd. This is Dekker's pattern, store → fence → load on both
//! sides: of the two fences one is first in the single SeqCst order, so either
//! the notifier sees the flag or the waiter sees the new data. An idle peer
//! therefore costs no CPU and no wake-up is lost; a spurious one (a signal
//! left over from a park that was called off) only costs one more check.
//!
//! The eventfds are non-blocking, so the same fd serves a blocking
//! [`EventFd::wait`] (poll with a timeout) and an async runtime's readiness
//! loop (register [`EventFd::as_fd`], then [`EventFd::drain`]).
//!
//! Two eventfds serve one ring: `readable` (the producer wakes the consumer)
//! and `writable` (the consumer wakes a producer waiting for space).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::fs::OFlags;
use rustix::io::Errno;

use crate::error::ShmError;

/// Spins before a blocking wait parks, by default. Each spin re-checks the
/// ring (one cache-line load), so this is some microseconds of polling.
pub const DEFAULT_SPIN: u32 = 2_000;

/// What an `arm` (prepare to park) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Readiness {
    /// The ring changed meanwhile: go on without waiting.
    Ready,
    /// The flag is set: wait for the eventfd to become readable, then
    /// [`EventFd::drain`] it and try again.
    Armed,
}

/// A non-blocking, close-on-exec eventfd used as a wake-up counter.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd with a count of 0.
    ///
    /// # Errors
    /// [`ShmError::Sys`] when `eventfd` fails.
    pub fn new() -> Result<Self, ShmError> {
        rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map(Self)
            .map_err(ShmError::sys("eventfd"))
    }

    /// Adopts a received fd after checking that it really is an eventfd (a
    /// pipe or socket in its place could block a read forever) and making it
    /// non-blocking.
    ///
    /// # Errors
    /// [`ShmError::NotAnEventFd`], or [`ShmError::Sys`] when it cannot be
    /// inspected.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ShmError> {
        let link =
            std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|source| {
                ShmError::Sys {
                    op: "readlink /proc/self/fd",
                    source,
                }
            })?;
        if link.as_os_str() != "anon_inode:[eventfd]" {
            return Err(ShmError::NotAnEventFd);
        }
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(ShmError::sys("F_GETFL"))?;
        rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK).map_err(ShmError::sys("F_SETFL"))?;
        Ok(Self(fd))
    }

    /// Another fd for the same eventfd (to send to the peer).
    ///
    /// # Errors
    /// [`ShmError::Sys`] when `fcntl(F_DUPFD_CLOEXEC)` fails.
    pub fn try_clone(&self) -> Result<Self, ShmError> {
        rustix::io::fcntl_dupfd_cloexec(&self.0, 0)
            .map(Self)
            .map_err(ShmError::sys("F_DUPFD_CLOEXEC"))
    }

    /// Adds 1 to the count, waking a waiter. A saturated count (`EAGAIN`,
    /// possible only if the peer wrote it up) is already readable: success.
    ///
    /// # Errors
    /// The OS error of `write` otherwise.
    pub fn signal(&self) -> io::Result<()> {
        loop {
            match rustix::io::write(&self.0, &1u64.to_ne_bytes()) {
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Resets the count to 0; returns whether it was non-zero.
    ///
    /// # Errors
    /// The OS error of `read`, other than `EAGAIN`.
    pub fn drain(&self) -> io::Result<bool> {
        let mut buf = [0u8; 8];
        loop {
            match rustix::io::read(&self.0, &mut buf) {
                Ok(_) => return Ok(true),
                Err(Errno::AGAIN) => return Ok(false),
                Err(Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }

    /// Blocks until the count is non-zero or `timeout` passes (`None`: no
    /// limit). Does not reset the count. May return early (a signal): callers
    /// re-check their condition in a loop.
    ///
    /// # Errors
    /// The OS error of `poll`, other than `EINTR`.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        // A timeout too long for a timespec is as good as none.
        let timeout = timeout.and_then(|t| Timespec::try_from(t).ok());
        let mut fds = [PollFd::new(&self.0, PollFlags::IN)];
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<EventFd> for OwnedFd {
    fn from(fd: EventFd) -> Self {
        fd.0
    }
}

/// The two eventfds of one ring. Both sides hold both: each waits on one and
/// signals the other.
#[derive(Debug)]
pub struct Events {
    /// Signalled by the producer when data arrives; the consumer waits on it.
    pub readable: EventFd,
    /// Signalled by the consumer when space frees up; the producer waits on it.
    pub writable: EventFd,
}

impl Events {
    /// Two fresh eventfds.
    ///
    /// # Errors
    /// [`ShmError::Sys`] when `eventfd` fails.
    pub fn new() -> Result<Self, ShmError> {
        Ok(Self {
            readable: EventFd::new()?,
            writable: EventFd::new()?,
        })
    }

    /// Duplicates both fds (for the other side of the ring).
    ///
    /// # Errors
    /// [`ShmError::Sys`] when `dup` fails.
    pub fn try_clone(&self) -> Result<Self, ShmError> {
        Ok(Self {
            readable: self.readable.try_clone()?,
            writable: self.writable.try_clone()?,
        })
    }
}
