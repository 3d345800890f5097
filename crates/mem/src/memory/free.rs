//! The free byte ranges of a segment list: where a memzone may go. Offsets are from the list's
//! base; ranges are kept sorted and coalesced (no two touch), so a range given back merges with
//! its free neighbours and the list's whole length comes back as one range.

use std::collections::BTreeMap;

/// The byte ranges of a list that no memzone holds: offset -> length.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FreeRanges {
    ranges: BTreeMap<usize, usize>,
}

impl FreeRanges {
    /// A list of `len` bytes, all free.
    pub(super) fn new(len: usize) -> FreeRanges {
        FreeRanges { ranges: BTreeMap::from([(0, len)]) }
    }

    /// The free ranges, `(offset, length)`, in address order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().map(|(&o, &l)| (o, l))
    }

    /// Takes `[start, start + len)` out of the free range holding it; false (and nothing taken)
    /// if no free range holds all of it.
    pub(super) fn take(&mut self, start: usize, len: usize) -> bool {
        let Some((&off, &flen)) = self.ranges.range(..=start).next_back() else { return false };
        let end = off + flen;
        if start + len > end {
            return false;
        }
        self.ranges.remove(&off);
        if start > off {
            self.ranges.insert(off, start - off);
        }
        if start + len < end {
            self.ranges.insert(start + len, end - start - len);
        }
        true
    }

    /// Puts `[off, off + len)` back, merging it with the free ranges it touches.
    pub(super) fn give(&mut self, mut off: usize, mut len: usize) {
        if let Some((&prev, &plen)) = self.ranges.range(..off).next_back() {
            if prev + plen == off {
                self.ranges.remove(&prev);
                off = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = self.ranges.get(&(off + len)) {
            self.ranges.remove(&(off + len));
            len += nlen;
        }
        self.ranges.insert(off, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(f: &FreeRanges) -> Vec<(usize, usize)> {
        f.iter().collect()
    }

    #[test]
    fn free_ranges_split_and_merge_back() {
        let mut free = FreeRanges::new(1000);
        assert!(free.take(128, 64));
        assert_eq!(ranges(&free), [(0, 128), (192, 808)]);
        assert!(free.take(192, 100));
        assert_eq!(ranges(&free), [(0, 128), (292, 708)]);
        free.give(128, 64);
        assert_eq!(ranges(&free), [(0, 192), (292, 708)]);
        free.give(192, 100);
        assert_eq!(ranges(&free), [(0, 1000)]);
    }

    #[test]
    fn taking_a_whole_range_or_its_ends_leaves_no_empty_range() {
        let mut free = FreeRanges::new(1000);
        assert!(free.take(0, 100));
        assert!(free.take(900, 100));
        assert_eq!(ranges(&free), [(100, 800)]);
        assert!(free.take(100, 800));
        assert_eq!(ranges(&free), []);
        free.give(500, 10);
        assert_eq!(ranges(&free), [(500, 10)], "no neighbour to merge with");
    }

    #[test]
    fn what_is_not_free_cannot_be_taken() {
        let mut free = FreeRanges::new(1000);
        assert!(free.take(100, 100));
        let before = free.clone();
        for (start, len) in [(150, 10), (50, 100), (990, 20), (1000, 1)] {
            assert!(!free.take(start, len), "{start}+{len}");
            assert_eq!(free, before);
        }
    }

    #[test]
    fn a_range_given_back_merges_with_one_neighbour_or_both() {
        let mut free = FreeRanges::new(1000);
        for start in [0, 200, 400, 600, 800] {
            assert!(free.take(start, 100));
        }
        assert_eq!(ranges(&free), [(100, 100), (300, 100), (500, 100), (700, 100), (900, 100)]);
        free.give(200, 50);
        assert_eq!(ranges(&free), [(100, 150), (300, 100), (500, 100), (700, 100), (900, 100)], "the one before");
        free.give(450, 50);
        assert_eq!(ranges(&free), [(100, 150), (300, 100), (450, 150), (700, 100), (900, 100)], "the one after");
        free.give(600, 100);
        assert_eq!(ranges(&free), [(100, 150), (300, 100), (450, 350), (900, 100)], "both");
        for (off, len) in [(0, 100), (250, 50), (400, 50), (800, 100)] {
            free.give(off, len);
        }
        assert_eq!(ranges(&free), [(0, 1000)]);
    }
}
