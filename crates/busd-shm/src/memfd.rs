//! memfds and their shared mappings.
//!
//! A memfd is anonymous shared memory that lives exactly as long as some
//! process holds its fd or a mapping of it: a peer that dies leaves nothing
//! behind, unlike a file under `/dev/shm`.
//!
//! A mapped file that shrinks under a mapping turns the next access past its
//! end into `SIGBUS`. So a received memfd is mapped only after [`check_seals`]
//! proved that it can no longer shrink, and after `fstat` proved it is at least
//! as long as the mapping: a truncated or short memfd is refused, never mapped
//! past its end.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

use crate::error::ShmError;

/// Seals a ring memfd carries once sized: neither side can resize it any more,
/// so neither can make the other's mapping fault.
pub const RING_SEALS: SealFlags = SealFlags::SHRINK.union(SealFlags::GROW);

/// Seals a payload segment carries: its bytes, and its size, are frozen.
pub const SEGMENT_SEALS: SealFlags = SealFlags::WRITE
    .union(SealFlags::SHRINK)
    .union(SealFlags::GROW);

/// Creates a memfd of `len` zero bytes (`MFD_CLOEXEC | MFD_ALLOW_SEALING`).
/// `name` shows up in `/proc/PID/maps` only; it need not be unique.
///
/// # Errors
/// [`ShmError::Sys`] when `memfd_create` or `ftruncate` fails.
pub fn create_memfd(name: &str, len: u64) -> Result<OwnedFd, ShmError> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(ShmError::sys("memfd_create"))?;
    rustix::fs::ftruncate(&fd, len).map_err(ShmError::sys("ftruncate"))?;
    Ok(fd)
}

/// Adds `seals` (plus `F_SEAL_SEAL`, so no seal can be added later) to a memfd.
///
/// # Errors
/// [`ShmError::Sys`]: e.g. `EBUSY` when sealing `WRITE` while a writable
/// shared mapping exists, `EPERM` when the memfd was already sealed.
pub fn seal(fd: BorrowedFd<'_>, seals: SealFlags) -> Result<(), ShmError> {
    rustix::fs::fcntl_add_seals(fd, seals | SealFlags::SEAL).map_err(ShmError::sys("F_ADD_SEALS"))
}

/// Adds `seals` but leaves the memfd open to more (no `F_SEAL_SEAL`): for a
/// segment being written, whose size is fixed before it is mapped and whose
/// bytes are sealed once it is unmapped.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: SealFlags) -> Result<(), ShmError> {
    rustix::fs::fcntl_add_seals(fd, seals).map_err(ShmError::sys("F_ADD_SEALS"))
}

/// Checks that a received memfd carries at least the `required` seals.
///
/// # Errors
/// [`ShmError::MissingSeals`] when one is absent; [`ShmError::Sys`] when the fd
/// cannot be sealed at all (not a memfd: `EINVAL`).
pub fn check_seals(fd: BorrowedFd<'_>, required: SealFlags) -> Result<(), ShmError> {
    let actual = rustix::fs::fcntl_get_seals(fd).map_err(ShmError::sys("F_GET_SEALS"))?;
    if actual.contains(required) {
        Ok(())
    } else {
        Err(ShmError::MissingSeals { required, actual })
    }
}

/// The size of the file behind `fd`, from `fstat`.
///
/// # Errors
/// [`ShmError::Sys`] when `fstat` fails.
pub fn memfd_len(fd: BorrowedFd<'_>) -> Result<u64, ShmError> {
    let stat = rustix::fs::fstat(fd).map_err(ShmError::sys("fstat"))?;
    u64::try_from(stat.st_size).map_err(|_| ShmError::BadSize {
        actual: 0,
        expected: "a non-negative size",
    })
}

/// A shared mapping of a whole memfd, unmapped on drop.
///
/// It hands out only a raw pointer: what may be read or written through it,
/// and how, is the business of the types built on it (`Segment`, the ring).
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY:
// 1. A `Mapping` is an address range owned by this value alone; moving it to
//    another thread moves the ownership of `munmap` with it.
// 2. It exposes no references, only a raw pointer: every access through it is
//    done by the ring (atomics, raw copies) or `Segment` (sealed bytes), which
//    state their own concurrency arguments.
unsafe impl Send for Mapping {}

// SAFETY:
// 1. As for `Send`: `&Mapping` gives only `len()` and a raw pointer, and what
//    is done through that pointer is argued where it is done.
unsafe impl Sync for Mapping {}

/// Checks that `fd` carries `seals` and holds at least `len` bytes, `len`
/// not 0; returns its size.
///
/// # Errors
/// [`ShmError::MissingSeals`], [`ShmError::BadSize`] for a memfd shorter
/// than `len` (or `len == 0`), [`ShmError::Sys`] when it is not a memfd.
pub(crate) fn check_sealed(
    fd: BorrowedFd<'_>,
    len: u64,
    seals: SealFlags,
) -> Result<u64, ShmError> {
    check_seals(fd, seals)?;
    let actual = memfd_len(fd)?;
    if len == 0 || actual < len {
        return Err(ShmError::BadSize {
            actual,
            expected: "at least the mapped length, and not empty",
        });
    }
    Ok(actual)
}

impl Mapping {
    /// Maps the first `len` bytes of `fd`, shared, after checking that the
    /// memfd is at least that long and carries `seals` (which must include
    /// `SHRINK`, so it stays that long).
    ///
    /// # Errors
    /// [`ShmError::MissingSeals`], [`ShmError::BadSize`] for a memfd shorter
    /// than `len` (or `len == 0`), [`ShmError::Sys`] when `mmap` fails.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        len: u64,
        seals: SealFlags,
        writable: bool,
    ) -> Result<Self, ShmError> {
        debug_assert!(seals.contains(SealFlags::SHRINK));
        let actual = check_sealed(fd, len, seals)?;
        let len = usize::try_from(len).map_err(|_| ShmError::BadSize {
            actual,
            expected: "a size that fits the address space",
        })?;
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY:
        // 1. A null hint lets the kernel choose a fresh range, so no existing
        //    Rust allocation is replaced.
        // 2. `len` is non-zero and no longer than the file (`check_sealed` above),
        //    and the file cannot shrink (SHRINK seal checked above), so every
        //    byte of the mapping stays backed: no SIGBUS.
        let ptr =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd, 0) }
                .map_err(ShmError::sys("mmap"))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(ShmError::BadSize {
            actual,
            expected: "a mapping at a non-null address",
        })?;
        Ok(Self { ptr, len })
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first byte; page-aligned, valid for `len()` bytes until drop.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY:
        // 1. `ptr`/`len` are exactly the range `mmap` returned in `map`.
        // 2. Every handle that reads through the pointer holds this `Mapping`
        //    (directly or through an `Arc`), so none outlives it.
        let result = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert!(result.is_ok(), "munmap of our own mapping failed");
    }
}
