//! The unix socket beside the rings, watched for the peer leaving, and the
//! reactor registration every shm fd goes through: [`register`], the one
//! `unsafe` call of this crate, behind one function per kind of fd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, ready};

use busd_shm::{Consumer, Producer};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::fd_passing::SharedSocket;

/// Registers the unix socket beside the rings (a dup of it per half) with
/// the reactor, for `interest`.
///
/// # Errors
/// The error of adding the fd to the reactor (`epoll_ctl`).
pub(in crate::shm) fn register_socket(
    socket: OwnedFd,
    interest: Interest,
) -> io::Result<AsyncFd<OwnedFd>> {
    register(socket, interest)
}

/// The consumer, registered with the reactor through its `readable`
/// eventfd, which it owns (in its `Events`) and neither replaces nor closes
/// before it is dropped.
pub(super) struct RxRing(pub(super) Consumer);

impl RxRing {
    /// `consumer`, registered for its peer's wake-ups.
    ///
    /// # Errors
    /// As [`register_socket`].
    pub(super) fn registered(consumer: Consumer) -> io::Result<AsyncFd<Self>> {
        register(Self(consumer), Interest::READABLE)
    }
}

impl AsRawFd for RxRing {
    fn as_raw_fd(&self) -> RawFd {
        self.0.events().readable.as_fd().as_raw_fd()
    }
}

/// The producer, registered with the reactor through its `writable`
/// eventfd, which it owns (in its `Events`) and neither replaces nor closes
/// before it is dropped.
pub(super) struct TxRing(pub(super) Producer);

impl TxRing {
    /// `producer`, registered for its peer's wake-ups (room in the ring).
    ///
    /// # Errors
    /// As [`register_socket`].
    pub(super) fn registered(producer: Producer) -> io::Result<AsyncFd<Self>> {
        register(Self(producer), Interest::READABLE)
    }
}

impl AsRawFd for TxRing {
    fn as_raw_fd(&self) -> RawFd {
        self.0.events().writable.as_fd().as_raw_fd()
    }
}

/// A value that owns the fd its `as_raw_fd` names and keeps it, the same
/// open fd, until it is dropped: what [`register`] needs of what it
/// registers. Private to this file, so the three impls below are all there
/// are, and the functions above are the only way in.
trait OwnsFd: AsRawFd {}

/// An `OwnedFd` closes its fd only on drop and cannot be pointed at another.
impl OwnsFd for OwnedFd {}
/// See [`RxRing`]: its consumer's `readable` eventfd.
impl OwnsFd for RxRing {}
/// See [`TxRing`]: its producer's `writable` eventfd.
impl OwnsFd for TxRing {}

/// Registers `owner`'s fd with the reactor, for `interest`.
///
/// tokio 1.54 deprecates `AsyncFd`'s safe constructors as unsound: they
/// trust any `AsRawFd`, whose fd may be closed or swapped while the reactor
/// watches it. What is left, `register_with_interest`, is an `unsafe fn`
/// whose contract is that `as_raw_fd` names the same open fd for the
/// `AsyncFd`'s whole life. `T: OwnsFd` makes that a type bound: the trait
/// is private to this file, and each of its three impls keeps the contract.
///
/// # Errors
/// The error of adding the fd to the reactor (`epoll_ctl`).
#[allow(unsafe_code)]
fn register<T: OwnsFd>(owner: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: `register_with_interest` requires `owner.as_raw_fd()` to be an
    // open fd that stays open, names the same open file description and is
    // what every call returns, for as long as the `AsyncFd` owns `owner`.
    // 1. `T: OwnsFd`, a trait private to this file and implemented only for
    //    `OwnedFd`, `RxRing` and `TxRing`: each names an fd it owns (its
    //    own, or its ring's eventfd, owned by the handle's
    //    `busd_shm::Events`), so the fd is open now and stays open until
    //    `owner` is dropped.
    // 2. None of them replaces its fd: an `OwnedFd` has no setter, and a
    //    ring handle hands its `Events` out only by shared reference
    //    (`events()`); `EventFd` has no setter either.
    // 3. The `AsyncFd` owns `owner` from here on. `AsyncFd::into_inner`
    //    (the shm reader's pause) deregisters the fd before it gives
    //    `owner` back, ending the contract; `get_mut` is called only to reach a ring
    //    handle's methods (`try_pop*`, `try_push*`, `prepare_wait`), never
    //    to assign or swap it; the socket's registrations sit in an `Arc`,
    //    which gives out no `&mut` at all.
    // 4. Dropping the `AsyncFd` deregisters the fd before it drops `owner`
    //    (tokio's `Drop`), so the fd closes only after the reactor let go.
    let registered = unsafe { AsyncFd::register_with_interest(owner, interest) };
    registered.map_err(io::Error::from)
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
