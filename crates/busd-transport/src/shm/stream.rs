//! [`ShmReader`] and [`ShmWriter`]: a byte stream over two rings, so the
//! framing codec above sees what it would see on a socket.
//!
//! - Each `poll_write` pushes up to a quarter of the ring, and at most
//!   64 KiB, as one ring message (so the peer drains one while the next is
//!   written, and a message fits the reader's buffer); a vectored write
//!   gathers its slices into one message, straight into the ring.
//! - The reader copies a message straight into the caller's buffer when it
//!   fits there; a larger one is popped into the reader's own buffer and
//!   served over several reads.
//! - A **zero-length message is end of stream**: `poll_shutdown` pushes it
//!   (as does dropping a writer that was not shut down, when the ring has room),
//!   and the reader answers EOF from then on.
//! - Both halves wait on the ring's eventfd through tokio's reactor
//!   (`prepare_wait` arms the ring's "waiting" flag first, so no wake-up is
//!   lost), and both also watch the unix socket the rings were set up over.
//!   After the setup only payload segments' fds travel on it (see `fds`);
//!   its hang-up means the peer is gone (the peer process exited or was
//!   killed, or dropped its connection). The reader
//!   still drains what the peer published before it went; a writer waiting
//!   for room fails with `BrokenPipe`.
//! - A peer that breaks the ring's invariants yields `InvalidData` errors
//!   ([`Corrupt`](busd_shm::Corrupt)), never a panic.
//! - A peer that signals the reader's eventfd with nothing in the ring
//!   (a wake-up storm) gets one empty wake-up per message it sent and
//!   100 per 100 ms besides; past that the reader looks again only when
//!   the window ends (`wakes`), so a storm costs bounded CPU.
//!
//! # Spin, then park
//!
//! A reader that finds the ring empty re-checks it [`READ_SPIN`] times, then
//! arms its eventfd and parks. It can keep polling for longer first: for
//! [`spin_window`], yielding to the runtime between rounds (so other tasks
//! and the reactor still run). That window is 0 by default and
//! `BUSD_SHM_SPIN_US` sets it, for measurements: between two threads with
//! nothing else to do, 20 µs of it brings a round trip from ~7 µs to under
//! 1 µs, but on a busy 2-core machine with the daemon, the requester and the
//! responder competing for the cores it made request/reply 2–4× slower. An
//! idle connection costs no CPU either way once parked.
//! A writer never spins: a full ring means the reader is behind.

mod liveness;
mod reader;
mod wakes;
mod writer;

pub(super) use liveness::register_socket;
pub(crate) use reader::ShmReader;
pub(crate) use writer::ShmWriter;
