//! Delta resends: what a file's resend costs when only the blocks written since its last send go
//! over the link (the real sender's fixed blocks, compared by digest), not the whole file.
//!
//! ```text
//!  send ── writes (offset, len) ──► dirty blocks {2, 3, 7} ── resend ──► 3 × block (+ growth)
//! ```
//!
//! A first send, and a write of unknown extent ([`Extent::WHOLE`]), cost the whole size.

use alloc::vec::Vec;

/// The bytes one write dirtied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First byte.
    pub offset: u64,
    /// Bytes from `offset` (clipped to the file by the cost).
    pub len: u64,
}

impl Extent {
    /// A write whose extent is not known: every byte may have changed.
    pub const WHOLE: Extent = Extent {
        offset: 0,
        len: u64::MAX,
    };
}

/// One file's blocks written since its last send, as sorted, disjoint block ranges `[lo, hi)`:
/// a write covers a run of blocks, so ranges stay few however large the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirtyBlocks {
    ranges: Vec<(u64, u64)>,
    blocks: u64,
    whole: bool,
    /// The size the destination holds (its last send's); bytes past it are growth.
    sent_size: u64,
}

impl DirtyBlocks {
    /// Nothing dirty: the destination holds `sent_size` bytes, current.
    pub fn sent(&mut self, sent_size: u64) {
        self.ranges.clear();
        self.blocks = 0;
        self.whole = false;
        self.sent_size = sent_size;
    }

    /// Every byte may have changed (a write of unknown extent, a copy lost at the destination).
    pub fn whole(&mut self) {
        self.whole = true;
        self.ranges.clear();
    }

    /// Marks the blocks of `block` bytes that `extent` touches, within what the destination holds
    /// (beyond it, the bytes are growth and cost as such).
    pub fn write(&mut self, extent: Extent, block: u64) {
        if extent == Extent::WHOLE {
            return self.whole();
        }
        if self.whole {
            return;
        }
        let end = extent.offset.saturating_add(extent.len).min(self.sent_size);
        if extent.offset >= end {
            return;
        }
        let (lo, hi) = (extent.offset / block, end.div_ceil(block));
        // Merge [lo, hi) with the ranges it overlaps or touches.
        let first = self.ranges.partition_point(|&(_, h)| h < lo);
        let last = self.ranges.partition_point(|&(l, _)| l <= hi);
        let (mut lo, mut hi) = (lo, hi);
        for &(l, h) in &self.ranges[first..last] {
            self.blocks -= h - l;
            (lo, hi) = (lo.min(l), hi.max(h));
        }
        self.ranges.splice(first..last, [(lo, hi)]);
        self.blocks += hi - lo;
    }

    /// Bytes a resend of the file, now `size` bytes, puts on the link: the dirty blocks plus the
    /// growth past what the destination holds, never more than the file.
    pub fn cost(&self, size: u64, block: u64) -> u64 {
        if self.whole {
            return size;
        }
        let growth = size.saturating_sub(self.sent_size);
        self.blocks
            .saturating_mul(block)
            .saturating_add(growth)
            .min(size)
    }
}

/// The engine's delta state: a block size and every file's dirty blocks.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    pub(crate) block: u64,
    pub(crate) files: Vec<DirtyBlocks>,
}

impl Delta {
    pub(crate) fn new(block: u64, files: usize) -> Delta {
        Delta {
            block,
            files: alloc::vec![DirtyBlocks::default(); files],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    fn held(size: u64) -> DirtyBlocks {
        let mut d = DirtyBlocks::default();
        d.sent(size);
        d
    }

    #[test]
    fn writes_cost_the_distinct_blocks_they_touch() {
        let mut d = held(100 * KIB);
        // Bytes 100..200 lie in block 0; 8190..8194 straddle blocks 0 and 1.
        d.write(
            Extent {
                offset: 100,
                len: 100,
            },
            8 * KIB,
        );
        assert_eq!(d.cost(100 * KIB, 8 * KIB), 8 * KIB);
        d.write(
            Extent {
                offset: 8190,
                len: 4,
            },
            8 * KIB,
        );
        assert_eq!(d.cost(100 * KIB, 8 * KIB), 16 * KIB);
        // Block 5, then blocks 2..=4 join 0..=1 and 5 into one range of six.
        d.write(
            Extent {
                offset: 40 * KIB,
                len: 1,
            },
            8 * KIB,
        );
        d.write(
            Extent {
                offset: 16 * KIB,
                len: 24 * KIB,
            },
            8 * KIB,
        );
        assert_eq!(d.ranges, [(0, 6)]);
        assert_eq!(d.cost(100 * KIB, 8 * KIB), 48 * KIB);
    }

    #[test]
    fn growth_costs_the_tail_and_nothing_exceeds_the_size() {
        let mut d = held(10 * KIB);
        // A write past the held size is growth, not a dirty block.
        d.write(
            Extent {
                offset: 12 * KIB,
                len: KIB,
            },
            8 * KIB,
        );
        assert_eq!(d.cost(13 * KIB, 8 * KIB), 3 * KIB);
        // The last, partial block (8..10 KiB) is dirty: 8 KiB charged, capped by the size.
        d.write(
            Extent {
                offset: 9 * KIB,
                len: 1,
            },
            8 * KIB,
        );
        assert_eq!(d.cost(13 * KIB, 8 * KIB), 11 * KIB);
        d.write(Extent { offset: 0, len: 1 }, 8 * KIB);
        assert_eq!(d.cost(13 * KIB, 8 * KIB), 13 * KIB);
    }

    #[test]
    fn an_unknown_extent_costs_the_whole_file_until_the_next_send() {
        let mut d = held(64 * KIB);
        d.write(Extent::WHOLE, 8 * KIB);
        assert_eq!(d.cost(64 * KIB, 8 * KIB), 64 * KIB);
        d.whole();
        d.write(Extent { offset: 0, len: 1 }, 8 * KIB);
        assert_eq!(d.cost(64 * KIB, 8 * KIB), 64 * KIB);
        d.sent(64 * KIB);
        assert_eq!(d.cost(64 * KIB, 8 * KIB), 0);
    }
}
