//! Payload pools: one memfd per direction of a connection, mapped once and
//! reused for every large payload, so that steady traffic costs no
//! `memfd_create`, no `mmap`/`munmap` and no page faults per message (a
//! sealed segment costs all three, and the kernel's zeroing of each page).
//!
//! A pool has one writer, the process that created it, which lends out
//! blocks ([`PoolWriter::alloc`]), writes a payload into one and sends the
//! block's offset and length in a frame. The reader maps the same memfd
//! read-only and reads the payload in place ([`PoolReader::view`]) until it
//! hands the offset back; only then does the writer lend that block again.
//!
//! # Isolation
//!
//! - The writer seals the memfd with [`POOL_SEALS`] before passing it:
//!   its size is fixed (no `SIGBUS` for either side) and, with
//!   `F_SEAL_FUTURE_WRITE`, no new writable mapping of it can be made. The
//!   writer keeps the one it made before sealing; the reader can only map
//!   it read-only, so it can change nothing the writer will read or lend.
//! - A pool is private to one connection and one direction: the daemon
//!   writes into each receiver's own pool only what the rules let that
//!   receiver see, so no process can read a payload it was not given.
//! - The writer touches only blocks it has not lent out; a reader holding
//!   a block sees its bytes stay as they were until it hands it back.
//! - Which blocks are lent lives in the writer's own memory (see `buddy`);
//!   an offset handed back that was not lent is refused
//!   ([`PoolError::NotLent`]). A reader checks every offset and length
//!   against the pool's size before reading.
//! - A peer may still write its own pool while the daemon reads a payload
//!   from it: the daemon copies such bytes out with [`PoolReader::copy_to`]
//!   (raw copies, as the ring does), never holding a reference to memory a
//!   hostile process can change.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::SealFlags;

use crate::buddy::Buddy;
use crate::error::ShmError;
use crate::memfd::{Mapping, create_memfd, memfd_len, seal};

/// Seals a pool memfd carries before it is passed on: a fixed size, and
/// no new writable mapping (see the module docs).
pub const POOL_SEALS: SealFlags = SealFlags::SHRINK
    .union(SealFlags::GROW)
    .union(SealFlags::FUTURE_WRITE);

/// The smallest block a pool lends: one page.
pub const MIN_POOL_BLOCK: u64 = 4096;

/// The smallest pool: 64 KiB.
pub const MIN_POOL: u64 = 64 * 1024;

/// The largest pool: 1 GiB.
pub const MAX_POOL: u64 = 1 << 30;

/// A peer broke a pool's rules: the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// A block handed back that is not lent out (never, or no more).
    #[error("pool block at {0} handed back, which is not lent out")]
    NotLent(u64),
    /// A payload said to lie outside the pool.
    #[error("a payload at {offset}+{len} in a pool of {size} bytes")]
    OutOfBounds {
        /// Where it was said to start.
        offset: u64,
        /// Its length.
        len: u64,
        /// The pool's size.
        size: u64,
    },
}

/// The writer's side of a pool: its writable mapping and which blocks are
/// lent out.
#[derive(Debug)]
pub struct PoolWriter {
    map: Arc<Mapping>,
    blocks: Buddy,
}

/// A block lent out for one payload: the writer fills it
/// ([`as_mut_slice`](Self::as_mut_slice)) and then sends its
/// [`offset`](Self::offset) and [`len`](Self::len). Dropping it does not
/// give the block back; [`PoolWriter::release`] does, once the reader is
/// done with it (or [`PoolWriter::cancel`], if it was never sent).
#[derive(Debug)]
pub struct PoolSlot {
    map: Arc<Mapping>,
    offset: u64,
    len: usize,
    /// The whole block's size: what the slot holds of the pool.
    block: u64,
}

/// The reader's side of a pool: a read-only mapping.
#[derive(Debug, Clone)]
pub struct PoolReader {
    map: Arc<Mapping>,
}

/// A payload in a pool, read in place: valid as long as this value lives
/// (it holds the mapping). Hand its offset back to the writer only once no
/// view of it is left.
#[derive(Debug)]
pub struct PoolView {
    map: Arc<Mapping>,
    offset: usize,
    len: usize,
}

impl PoolWriter {
    /// A new pool of `size` bytes (a power of two from [`MIN_POOL`] to
    /// [`MAX_POOL`]), mapped writable and sealed with [`POOL_SEALS`]; the
    /// memfd to pass to the reader.
    ///
    /// # Errors
    /// [`ShmError::BadSize`] for another size; [`ShmError::Sys`] when a
    /// syscall fails (out of memory or fds).
    pub fn create(name: &str, size: u64) -> Result<(Self, OwnedFd), ShmError> {
        if !size.is_power_of_two() || !(MIN_POOL..=MAX_POOL).contains(&size) {
            return Err(ShmError::BadSize {
                actual: size,
                expected: "a power of two from 64 KiB to 1 GiB",
            });
        }
        let fd = create_memfd(name, size)?;
        // Sized first, mapped writable, then sealed: FUTURE_WRITE spares
        // the mapping made before it and refuses any made after.
        crate::memfd::add_seals(fd.as_fd(), SealFlags::SHRINK | SealFlags::GROW)?;
        let map = Mapping::map(fd.as_fd(), size, SealFlags::SHRINK, true)?;
        seal(fd.as_fd(), POOL_SEALS)?;
        let blocks = Buddy::new(MIN_POOL_BLOCK.trailing_zeros(), size.trailing_zeros());
        Ok((
            Self {
                map: Arc::new(map),
                blocks,
            },
            fd,
        ))
    }

    /// Lends a block for a payload of `len` bytes, or `None` when no free
    /// block is that large (the pool is busy, or `len` is over its size):
    /// the caller sends the payload another way, or waits for blocks to
    /// come back.
    pub fn alloc(&mut self, len: usize) -> Option<PoolSlot> {
        let (offset, block) = self.blocks.alloc(len as u64)?;
        Some(PoolSlot {
            map: Arc::clone(&self.map),
            offset,
            len,
            block,
        })
    }

    /// Takes back the block at `offset`, which the reader handed back;
    /// the block's size.
    ///
    /// # Errors
    /// [`PoolError::NotLent`] for an offset not lent out now: a peer that
    /// hands back what it was not given, or twice.
    pub fn release(&mut self, offset: u64) -> Result<u64, PoolError> {
        self.blocks
            .free(offset)
            .map_err(|e| PoolError::NotLent(e.0))
    }

    /// Takes back a block that was never sent.
    pub fn cancel(&mut self, slot: PoolSlot) {
        let freed = self.blocks.free(slot.offset);
        debug_assert!(freed.is_ok(), "a slot of another pool cancelled");
    }

    /// Bytes lent out now, in whole blocks.
    pub fn in_use(&self) -> u64 {
        self.blocks.in_use()
    }

    /// The pool's size: also the largest payload one block holds.
    pub fn size(&self) -> u64 {
        self.blocks.max_block()
    }
}

impl PoolSlot {
    /// Where the block lies in the pool.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The size of the block it holds of the pool (a power of two, at
    /// least the payload's length).
    pub fn block_len(&self) -> u64 {
        self.block
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload's bytes, to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY:
        // 1. `offset + len` lies within the mapping: the allocator lent a
        //    block of at least `len` bytes inside the pool (`Buddy::alloc`),
        //    and the mapping is the whole pool, which cannot shrink (sealed).
        // 2. The mapping is writable (`PoolWriter::create` maps it so) and
        //    lives as long as `self.map`, which this borrow keeps.
        // 3. No other reference to these bytes exists in this process: the
        //    block is lent to this slot alone until `release`/`cancel`,
        //    which take the slot or come after the reader gave it back, and
        //    `&mut self` makes this borrow exclusive. The reader only maps
        //    the pool; it reads the block after the slot was sent, when no
        //    writer borrow is alive any more.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.map.as_ptr().wrapping_add(self.offset as usize),
                self.len,
            )
        }
    }

    /// The payload's bytes as written so far.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as in `as_mut_slice`; `&self` shares the borrow with no
        // writer, since writing needs `&mut self`.
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().wrapping_add(self.offset as usize),
                self.len,
            )
        }
    }
}

impl PoolReader {
    /// Maps a pool received from its writer, read-only, after checking its
    /// seals and its size.
    ///
    /// # Errors
    /// [`ShmError::MissingSeals`] for a pool not sealed with
    /// [`POOL_SEALS`]; [`ShmError::BadSize`] for a size that is not a power
    /// of two from [`MIN_POOL`] to [`MAX_POOL`]; [`ShmError::Sys`] when it
    /// is not a memfd or cannot be mapped.
    pub fn open(fd: BorrowedFd<'_>) -> Result<Self, ShmError> {
        let size = memfd_len(fd)?;
        if !size.is_power_of_two() || !(MIN_POOL..=MAX_POOL).contains(&size) {
            return Err(ShmError::BadSize {
                actual: size,
                expected: "a pool: a power of two from 64 KiB to 1 GiB",
            });
        }
        let map = Mapping::map(fd, size, POOL_SEALS, false)?;
        Ok(Self { map: Arc::new(map) })
    }

    /// The pool's size.
    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    /// The `len` bytes at `offset`, read in place: for a pool whose writer
    /// is trusted not to touch a block it lent (the daemon's pools, read by
    /// a client).
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] when `offset..offset + len` is not inside
    /// the pool.
    pub fn view(&self, offset: u64, len: u64) -> Result<PoolView, PoolError> {
        let (offset, len) = self.range(offset, len)?;
        Ok(PoolView {
            map: Arc::clone(&self.map),
            offset,
            len,
        })
    }

    /// Copies the `dst.len()` bytes at `offset` into `dst`, at once: for a
    /// pool whose writer may change them meanwhile (a client's pool, read
    /// by the daemon), which then gets whatever bytes were there.
    ///
    /// # Errors
    /// [`PoolError::OutOfBounds`] when `offset..offset + dst.len()` is not
    /// inside the pool.
    pub fn copy_to(&self, offset: u64, dst: &mut [u8]) -> Result<(), PoolError> {
        let (offset, len) = self.range(offset, dst.len() as u64)?;
        // SAFETY:
        // 1. `offset..offset + len` lies inside the mapping (`range`), which
        //    lives as long as `self.map` and cannot shrink (sealed).
        // 2. The source may be written concurrently by the peer: the copy
        //    goes through raw pointers into memory this process owns,
        //    creating no reference to the shared bytes (as the ring's reads
        //    do); torn bytes are possible and harmless (they are only data).
        // 3. `dst` is `len` bytes of our own memory, never part of the
        //    mapping: no overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().wrapping_add(offset),
                dst.as_mut_ptr(),
                len,
            );
        }
        Ok(())
    }

    /// Checks that `offset..offset + len` lies inside the pool.
    fn range(&self, offset: u64, len: u64) -> Result<(usize, usize), PoolError> {
        let size = self.map.len() as u64;
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok((offset as usize, len as usize)),
            _ => Err(PoolError::OutOfBounds { offset, len, size }),
        }
    }
}

impl PoolView {
    /// The payload's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY:
        // 1. `offset..offset + len` was checked to lie inside the mapping
        //    (`PoolReader::range`), which `self.map` keeps alive and which
        //    cannot shrink (sealed).
        // 2. The bytes do not change while this view lives: the writer
        //    touches only blocks it has not lent out, and this block stays
        //    lent until its offset is handed back, which the owner of this
        //    view does only after dropping it (the contract of `view`).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().wrapping_add(self.offset), self.len) }
    }
}

impl AsRef<[u8]> for PoolView {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}
