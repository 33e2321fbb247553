//! Sealed payload segments: large payloads passed by fd, never copied.
//!
//! The sender writes the payload into a fresh memfd with `pwrite` (not through
//! a mapping: `F_SEAL_WRITE` is refused while a writable mapping exists),
//! seals it with [`SEGMENT_SEALS`], and passes the fd. Every receiver checks
//! the seals before mapping it read-only, so the bytes it is shown can change
//! no more, for anyone, and the segment cannot shrink under the mapping.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::SealFlags;

use crate::error::ShmError;
use crate::memfd::{
    Mapping, SEGMENT_SEALS, add_seals, check_sealed, create_memfd, memfd_len, seal,
};

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

    /// Checks a received segment as [`open`](Self::open) does, without
    /// mapping it: for a process that only passes the fd on and may never
    /// need the bytes. Returns its length.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn check(fd: BorrowedFd<'_>) -> Result<u64, ShmError> {
        // At least one byte: the same test `open` makes, short of mapping.
        check_sealed(fd, 1, SEGMENT_SEALS)
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

/// A segment being written in place: a fresh memfd mapped writable, for a
/// sender that builds a large payload straight in shared memory instead of
/// copying it there ([`Segment::create`]); [`seal`](Self::seal) then unmaps
/// it and seals it like any segment.
#[derive(Debug)]
pub struct SegmentMut {
    map: Mapping,
    fd: OwnedFd,
}

impl SegmentMut {
    /// A zeroed segment of `len` bytes, its size sealed.
    ///
    /// # Errors
    /// [`ShmError::BadSize`] for `len == 0`, [`ShmError::Sys`] when a
    /// syscall fails (out of fds or memory).
    pub fn new(name: &str, len: usize) -> Result<Self, ShmError> {
        if len == 0 {
            return Err(ShmError::BadSize {
                actual: 0,
                expected: "a non-empty payload",
            });
        }
        let fd = create_memfd(name, len as u64)?;
        let size = SealFlags::SHRINK | SealFlags::GROW;
        add_seals(fd.as_fd(), size)?;
        let map = Mapping::map(fd.as_fd(), len as u64, size, true)?;
        Ok(Self { map, fd })
    }

    /// The bytes, to write the payload into.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY:
        // 1. The mapping is `len` readable and writable bytes and lives as
        //    long as `self`, which the returned borrow cannot outlive.
        // 2. The fd has never left this value (only `seal` gives it out, after
        //    the mapping is gone), so no other mapping or process writes
        //    these bytes, and `&mut self` makes this borrow the only one.
        // 3. SHRINK is sealed: every byte stays backed (no SIGBUS).
        unsafe { std::slice::from_raw_parts_mut(self.map.as_ptr(), self.map.len()) }
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as for `as_mut_slice`: this value's mapping, backed, and
        // written by no one else; `&self` excludes `as_mut_slice` meanwhile.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// The payload's length in bytes (never 0).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always `false`: empty segments are refused.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Unmaps the segment and seals it (`F_SEAL_WRITE`, which the kernel
    /// refuses while a writable mapping exists, then no further seals):
    /// the fd to pass, as from [`Segment::create`].
    ///
    /// # Errors
    /// [`ShmError::Sys`] when sealing fails.
    pub fn seal(self) -> Result<OwnedFd, ShmError> {
        let Self { map, fd } = self;
        drop(map);
        seal(fd.as_fd(), SEGMENT_SEALS)?;
        Ok(fd)
    }
}

impl AsRef<[u8]> for Segment {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}
