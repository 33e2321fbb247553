//! Which parts of a pool are free: a buddy allocator over offsets.
//!
//! The pool is `2^max_order` bytes; blocks are powers of two from
//! `2^min_order` up to the whole pool, each aligned to its size. A request
//! takes the smallest free block that holds it, splitting larger ones in
//! halves; a freed block merges with its buddy (the other half of their
//! parent) whenever that is free too, so the pool does not fragment into
//! pieces too small for what it was sized for.
//!
//! This bookkeeping lives in the writer's own memory, never in the shared
//! mapping: the peer, which only reads the pool and hands blocks back by
//! offset, cannot corrupt it. An offset handed back that is not a block
//! lent out (never lent, or handed back twice) is refused, not trusted.

use std::collections::{BTreeSet, HashMap};

/// Free and lent blocks of one pool.
#[derive(Debug)]
pub(crate) struct Buddy {
    min_order: u32,
    max_order: u32,
    /// Free blocks by order (index `order - min_order`), by offset: the
    /// lowest offset is taken first, which keeps a lightly used pool's
    /// blocks in the pages already touched.
    free: Vec<BTreeSet<u64>>,
    /// Blocks lent out, by offset: their order.
    lent: HashMap<u64, u32>,
    /// Bytes lent out (whole blocks).
    in_use: u64,
}

/// Why an offset handed back was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotLent(pub(crate) u64);

impl Buddy {
    /// A pool of `2^max_order` bytes, all free, lending blocks of at least
    /// `2^min_order` bytes.
    ///
    /// # Panics
    /// If `min_order > max_order` or `max_order >= 64` (the callers check).
    pub(crate) fn new(min_order: u32, max_order: u32) -> Self {
        assert!(min_order <= max_order && max_order < 64, "bad pool orders");
        let mut free = vec![BTreeSet::new(); (max_order - min_order + 1) as usize];
        free[(max_order - min_order) as usize].insert(0);
        Self {
            min_order,
            max_order,
            free,
            lent: HashMap::new(),
            in_use: 0,
        }
    }

    /// The offset and size of a block lent for `len` bytes, or `None` if no
    /// free block is that large (`len` 0 takes the smallest block).
    pub(crate) fn alloc(&mut self, len: u64) -> Option<(u64, u64)> {
        let want = self.order_for(len)?;
        // The smallest free block at least that large.
        let have = (want..=self.max_order).find(|&o| !self.free_at(o).is_empty())?;
        let offset = self.free_at_mut(have).pop_first()?;
        // Split down to size, freeing each upper half.
        for order in (want..have).rev() {
            self.free_at_mut(order).insert(offset + (1 << order));
        }
        self.lent.insert(offset, want);
        self.in_use += 1 << want;
        Some((offset, 1 << want))
    }

    /// Takes back the block lent at `offset`, merging it with its free
    /// buddies; the block's size.
    ///
    /// # Errors
    /// [`NotLent`] for an offset that is not a block lent out now.
    pub(crate) fn free(&mut self, offset: u64) -> Result<u64, NotLent> {
        let Some(order) = self.lent.remove(&offset) else {
            return Err(NotLent(offset));
        };
        let size = 1 << order;
        self.in_use -= size;
        let (mut offset, mut order) = (offset, order);
        while order < self.max_order {
            let buddy = offset ^ (1 << order);
            if !self.free_at_mut(order).remove(&buddy) {
                break;
            }
            offset = offset.min(buddy);
            order += 1;
        }
        self.free_at_mut(order).insert(offset);
        Ok(size)
    }

    /// Bytes lent out, in whole blocks.
    pub(crate) fn in_use(&self) -> u64 {
        self.in_use
    }

    /// The largest block that can be lent at all: the whole pool.
    pub(crate) fn max_block(&self) -> u64 {
        1 << self.max_order
    }

    /// The order of the smallest block holding `len` bytes, if any is.
    fn order_for(&self, len: u64) -> Option<u32> {
        let order = len.max(1).checked_next_power_of_two()?.trailing_zeros();
        let order = order.max(self.min_order);
        (order <= self.max_order).then_some(order)
    }

    fn free_at(&self, order: u32) -> &BTreeSet<u64> {
        &self.free[(order - self.min_order) as usize]
    }

    fn free_at_mut(&mut self, order: u32) -> &mut BTreeSet<u64> {
        &mut self.free[(order - self.min_order) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_the_smallest_power_of_two_that_fits_and_aligned() {
        // 64 KiB in 4 KiB blocks.
        let mut sut = Buddy::new(12, 16);
        assert_eq!(sut.alloc(1), Some((0, 4096)));
        assert_eq!(sut.alloc(4097), Some((8192, 8192)));
        assert_eq!(sut.alloc(0), Some((4096, 4096)));
        assert_eq!(sut.alloc(32 * 1024), Some((32 * 1024, 32 * 1024)));
        assert_eq!(sut.in_use(), 48 * 1024);
        assert_eq!(sut.alloc(32 * 1024), None, "no 32 KiB block is left");
        assert_eq!(sut.alloc(65 * 1024), None, "larger than the pool");
    }

    #[test]
    fn freed_blocks_merge_back_into_the_whole_pool() {
        let mut sut = Buddy::new(12, 20);
        let mut lent = Vec::new();
        while let Some((offset, _)) = sut.alloc(5000) {
            lent.push(offset);
        }
        assert_eq!(lent.len(), 128, "1 MiB in 8 KiB blocks");
        // Freed out of order, they still merge.
        lent.reverse();
        lent.swap(3, 77);
        for offset in lent {
            sut.free(offset).unwrap();
        }
        assert_eq!(sut.in_use(), 0);
        assert_eq!(sut.alloc(1 << 20), Some((0, 1 << 20)));
    }

    #[test]
    fn an_offset_not_lent_out_is_refused() {
        let mut sut = Buddy::new(12, 16);
        let (offset, _) = sut.alloc(100).unwrap();
        assert_eq!(sut.free(offset + 1), Err(NotLent(offset + 1)));
        assert_eq!(sut.free(8192), Err(NotLent(8192)), "free, never lent");
        assert_eq!(sut.free(offset), Ok(4096));
        assert_eq!(sut.free(offset), Err(NotLent(offset)), "handed back twice");
        assert_eq!(sut.in_use(), 0);
    }

    #[test]
    fn any_sequence_keeps_blocks_disjoint_and_accounts_exactly() {
        // A deterministic pseudo-random walk of allocations and frees.
        let mut sut = Buddy::new(12, 18);
        let mut lent: Vec<(u64, u64)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed % 3 != 0 || lent.is_empty() {
                let len = seed % (80 * 1024);
                if let Some(block) = sut.alloc(len) {
                    assert!(block.1 >= len.max(1) && block.0 % block.1 == 0);
                    lent.push(block);
                }
            } else {
                let (offset, size) = lent.swap_remove((seed as usize / 3) % lent.len());
                assert_eq!(sut.free(offset), Ok(size));
            }
            let total: u64 = lent.iter().map(|b| b.1).sum();
            assert_eq!(sut.in_use(), total);
        }
        lent.sort_unstable();
        for pair in lent.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap: {pair:?}");
        }
    }
}
