//! Where a ring lives: a header plus a data region of `capacity` bytes.
//!
//! The ring algorithm (`ring`) is written once against [`Region`]; production
//! uses [`MappedRegion`], a memfd mapping shared with the peer, and the loom
//! models use a small heap region whose bytes loom tracks. Copies are
//! bounds-checked here even though the ring only asks for validated ranges:
//! a bug in the ring then panics instead of reading out of bounds.

use std::mem::MaybeUninit;

use crate::header::RingHeader;

/// A ring's memory: the header and the data bytes.
pub(crate) trait Region: Send + Sync {
    /// The header (all atomics, shared with the peer).
    fn header(&self) -> &RingHeader;

    /// The data region's size: a validated power of two.
    fn capacity(&self) -> u64;

    /// Copies `src` into the data region at `off`.
    ///
    /// # Panics
    /// If `off + src.len()` exceeds the capacity (a bug in the caller).
    fn write(&self, off: u64, src: &[u8]);

    /// Copies `dst.len()` bytes out of the data region at `off`, initialising
    /// all of `dst`.
    ///
    /// # Panics
    /// If `off + dst.len()` exceeds the capacity (a bug in the caller).
    fn read(&self, off: u64, dst: &mut [MaybeUninit<u8>]);
}

/// Asserts that `off..off + len` lies in a data region of `capacity` bytes and
/// returns `off` as a `usize`.
pub(crate) fn in_bounds(off: u64, len: usize, capacity: u64) -> usize {
    let end = off.checked_add(len as u64);
    assert!(
        end.is_some_and(|end| end <= capacity),
        "ring bug: access {off}+{len} past capacity {capacity}"
    );
    off as usize
}

#[cfg(not(all(loom, test)))]
pub(crate) use mapped::MappedRegion;

#[cfg(not(all(loom, test)))]
mod mapped {
    use std::mem::MaybeUninit;

    use super::{Region, in_bounds};
    use crate::error::ShmError;
    use crate::header::{HEADER_SIZE, RingHeader};
    use crate::memfd::Mapping;

    /// A ring in a shared memfd mapping: header at offset 0, data at
    /// [`HEADER_SIZE`]. Invariant: `map.len() >= HEADER_SIZE + capacity`.
    #[derive(Debug)]
    pub(crate) struct MappedRegion {
        map: Mapping,
        /// Validated once at open; the header's own copy is never re-read.
        capacity: u64,
    }

    impl MappedRegion {
        /// Wraps a mapping that this process just initialised for a data
        /// region of `capacity` bytes.
        ///
        /// # Errors
        /// [`ShmError::BadHeader`] when the mapping's length does not match.
        pub(crate) fn new(map: Mapping, capacity: u64) -> Result<Self, ShmError> {
            if Some(map.len() as u64) != capacity.checked_add(HEADER_SIZE as u64) {
                return Err(ShmError::BadHeader("mapping does not match the capacity"));
            }
            Ok(Self { map, capacity })
        }

        /// Wraps a mapping received from the peer: its header must describe
        /// exactly the mapping.
        ///
        /// # Errors
        /// [`ShmError::BadSize`] for a mapping shorter than a header,
        /// [`ShmError::BadHeader`] for a header that is not a busd ring of
        /// this version and of exactly the mapping's size.
        pub(crate) fn open(map: Mapping) -> Result<Self, ShmError> {
            if map.len() < HEADER_SIZE {
                return Err(ShmError::BadSize {
                    actual: map.len() as u64,
                    expected: "at least a ring header",
                });
            }
            // Capacity 0 until validated: `header()` needs only HEADER_SIZE.
            let provisional = Self { map, capacity: 0 };
            let capacity = provisional
                .header()
                .validate(provisional.map.len() as u64)?;
            Ok(Self {
                capacity,
                ..provisional
            })
        }

        fn data(&self) -> *mut u8 {
            self.map.as_ptr().wrapping_add(HEADER_SIZE)
        }
    }

    impl Region for MappedRegion {
        fn header(&self) -> &RingHeader {
            // SAFETY:
            // 1. The mapping is page-aligned (≥ the header's 64-byte alignment)
            //    and at least HEADER_SIZE = size_of::<RingHeader>() bytes long
            //    (checked in `new` and `open`); it stays mapped while `self`
            //    lives.
            // 2. Every field of `RingHeader` is an atomic integer: any bit
            //    pattern is a valid value, and concurrent writes by the peer
            //    are atomic accesses, so a shared reference is sound.
            unsafe { &*self.map.as_ptr().cast::<RingHeader>() }
        }

        fn capacity(&self) -> u64 {
            self.capacity
        }

        fn write(&self, off: u64, src: &[u8]) {
            let off = in_bounds(off, src.len(), self.capacity);
            // SAFETY:
            // 1. `off + src.len() <= capacity` (asserted above), so the
            //    destination lies inside the data region of the live mapping.
            // 2. `src` is our own memory, never part of the mapping: no overlap.
            // 3. The producer writes only bytes the consumer has released (its
            //    head was loaded with Acquire): an honest consumer no longer
            //    reads them; a hostile one reading them races only with itself.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    self.data().wrapping_add(off),
                    src.len(),
                )
            }
        }

        fn read(&self, off: u64, dst: &mut [MaybeUninit<u8>]) {
            let off = in_bounds(off, dst.len(), self.capacity);
            // SAFETY:
            // 1. `off + dst.len() <= capacity` (asserted above): the source lies
            //    inside the data region of the live mapping.
            // 2. `dst` is our own memory, never part of the mapping: no overlap.
            // 3. The consumer reads only bytes published by the producer's
            //    Release store of tail (loaded with Acquire). A hostile
            //    producer may still scribble on them concurrently: the bytes are
            //    then garbage, but any `u8` is valid and nothing is interpreted
            //    before it is copied out, so that is the peer's loss only.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    self.data().wrapping_add(off).cast_const(),
                    dst.as_mut_ptr().cast::<u8>(),
                    dst.len(),
                );
            }
        }
    }
}
