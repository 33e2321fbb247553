//! Sealed payload segments: large payloads passed by fd, never copied.
//!
//! The sender writes the payload into a fresh memfd with `pwrite` (not through
//! a mapping: `F_SEAL_WRITE` is refused while a writable mapping exists),
//! seals it with [`SEGMENT_SEALS`], and passes the fd. Every receiver checks
//! the seals before mapping it read-only, so the bytes it is shown can change
//! no more, for anyone, and the segment cannot shrink under the mapping.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::error::ShmError;
use crate::memfd::{Mapping, SEGMENT_SEALS, create_memfd, memfd_len, seal};

/// A read-only mapping of a sealed payload memfd.
#[derive(Debug)]
pub struct Segment {
    map: Mapping,
}

impl Segment {
    /// Writes `payload` into a new memfd and seals it; returns the fd to pass
    /// to receivers. An empty payload is refused (it has no use as a segment
    /// and cannot be mapped).
    ///
    /// # Errors
    /// [`ShmError::BadSize`] for an empty payload, [`ShmError::Sys`] when a
    /// syscall fails.
    pub fn create(name: &str, payload: &[u8]) -> Result<OwnedFd, ShmError> {
        if payload.is_empty() {
            return Err(ShmError::BadSize {
                actual: 0,
                expected: "a non-empty payload",
            });
        }
        let fd = create_memfd(name, payload.len() as u64)?;
        let mut written = 0;
        while written < payload.len() {
            match rustix::io::pwrite(&fd, &payload[written..], written as u64) {
                Ok(0) => {
                    return Err(ShmError::Sys {
                        op: "pwrite",
                        source: std::io::ErrorKind::WriteZero.into(),
                    });
                }
                Ok(n) => written += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(ShmError::sys("pwrite")(errno)),
            }
        }
        seal(fd.as_fd(), SEGMENT_SEALS)?;
        Ok(fd)
    }

    /// Maps a received segment read-only, after checking its seals.
    ///
    /// # Errors
    /// [`ShmError::MissingSeals`] for an unsealed (still writable or
    /// resizable) memfd, [`ShmError::BadSize`] for an empty one,
    /// [`ShmError::Sys`] when it is not a memfd or cannot be mapped.
    pub fn open(fd: BorrowedFd<'_>) -> Result<Self, ShmError> {
        let len = memfd_len(fd)?;
        let map = Mapping::map(fd, len, SEGMENT_SEALS, false)?;
        Ok(Self { map })
    }

    /// The payload.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY:
        // 1. The mapping is `len` readable bytes and lives as long as `self`,
        //    which the returned borrow cannot outlive.
        // 2. `open` checked F_SEAL_WRITE, so no process can change the bytes any
        //    more (no writable mapping can exist or be made, `write` fails), and
        //    F_SEAL_SHRINK, so they stay backed: the slice is immutable memory.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// The payload's length in bytes (never 0).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: empty segments are refused at open.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl AsRef<[u8]> for Segment {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}
