//! The unix socket beside the rings, watched for the peer leaving, and the
//! reactor registration every shm fd goes through.

use std::io;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll, ready};

use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::fd_passing::SharedSocket;

/// Registers `owner`'s fd with the reactor, for `interest`.
///
/// tokio 1.54 deprecates the safe constructors of `AsyncFd` for
/// `register_with_interest`, an `unsafe fn` whose contract is that
/// `as_raw_fd` names the same open fd for the `AsyncFd`'s whole life, and
/// this crate forbids `unsafe`. The contract holds for every type registered
/// here: an `OwnedFd`, or a ring handle owning its eventfd, which it never
/// replaces or closes before it is dropped.
#[allow(deprecated)]
pub(crate) fn register<T: AsRawFd>(owner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    AsyncFd::with_interest(owner, interest)
}

/// The unix socket the rings were set up over, watched for the peer leaving.
pub(super) struct Liveness {
    socket: SharedSocket,
    /// The peer closed its end (sticky).
    pub(super) gone: bool,
}

impl Liveness {
    pub(super) fn new(socket: SharedSocket) -> Self {
        Self {
            socket,
            gone: false,
        }
    }

    /// Ready once the peer has closed the socket; registers the waker until then.
    ///
    /// Bytes on the socket are segment fds (see `fds`) waiting for their
    /// frames to be decoded, not a sign of anything: the hang-up is told by
    /// the reactor (`EPOLLRDHUP`), or by a peek finding the end.
    ///
    /// # Errors
    /// The error of `recv`.
    pub(super) fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut guard = ready!(self.socket.poll_read_ready(cx))?;
            if guard.ready().is_read_closed() {
                self.gone = true;
                return Poll::Ready(Ok(()));
            }
            let mut probe = [0u8; 1];
            match rustix::net::recv(
                guard.get_inner(),
                &mut probe,
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Ok((_, 0)) | Err(Errno::CONNRESET) => {
                    self.gone = true;
                    return Poll::Ready(Ok(()));
                }
                // Segment fds queued for frames still to be read; wait for
                // the next event (more of them, or the hang-up).
                Ok(_) | Err(Errno::AGAIN) => guard.clear_ready(),
                Err(Errno::INTR) => {}
                Err(errno) => return Poll::Ready(Err(errno.into())),
            }
        }
    }
}
