//! The time index of a segment: `<base offset>.timeindex`.
//!
//! # File format
//!
//! A sequence of 12-byte entries, big-endian:
//!
//! | bytes | field           | meaning                                                        |
//! |------:|-----------------|----------------------------------------------------------------|
//! |     8 | timestamp       | largest record timestamp seen in the segment so far (ms)      |
//! |     4 | relative_offset | last offset of the batch holding that timestamp − base offset |
//!
//! An entry is added next to each offset index entry, and once more when the
//! segment is rolled or closed, but only when its timestamp is larger than
//! the previous entry's, so timestamps strictly increase. To find the first
//! record with timestamp `≥ t`, take the last entry with timestamp `≤ t` and
//! scan batches from that offset. The file is preallocated and trimmed like
//! the offset index.

use crate::error::Result;
use crate::index::{decode_relative_offset, encode_relative_offset, Index, IndexEntry};

/// Bytes per time index entry.
pub const TIME_INDEX_ENTRY_BYTES: usize = 12;

/// A timestamp and the offset it was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Timestamp in ms.
    pub timestamp: i64,
    /// Absolute offset.
    pub offset: i64,
}

impl IndexEntry for TimestampOffset {
    const BYTES: usize = TIME_INDEX_ENTRY_BYTES;
    /// Like Kafka, one slot stays free for the final entry written when the
    /// segment is rolled or closed.
    const FREE_SLOTS_KEPT: usize = 1;
    type Encoded = [u8; TIME_INDEX_ENTRY_BYTES];

    fn decode(bytes: &[u8], base_offset: i64) -> Option<Self> {
        let ts: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let rel: [u8; 4] = bytes.get(8..12)?.try_into().ok()?;
        Some(TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            offset: decode_relative_offset(rel, base_offset),
        })
    }

    /// None for a negative timestamp too.
    fn encode(&self, base_offset: i64) -> Option<Self::Encoded> {
        let rel = encode_relative_offset(self.offset, base_offset)?;
        if self.timestamp < 0 {
            return None;
        }
        let mut e = [0u8; TIME_INDEX_ENTRY_BYTES];
        e[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        e[8..].copy_from_slice(&rel);
        Some(e)
    }

    fn key(&self) -> i64 {
        self.timestamp
    }

    fn offset(&self) -> i64 {
        self.offset
    }

    /// Strictly increasing in timestamp, non-decreasing in offset.
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.offset >= prev.offset
    }

    /// Timestamp −1.
    fn segment_start(base_offset: i64) -> Self {
        TimestampOffset {
            timestamp: -1,
            offset: base_offset,
        }
    }
}

/// A segment's time index: [`TimeIndex::lookup`] finds the last entry with
/// timestamp `≤` the target, or the segment start with timestamp −1. It is
/// full while one slot is still free, for the final entry.
pub type TimeIndex = Index<TimestampOffset>;

impl TimeIndex {
    /// Appends `timestamp → offset` if the timestamp is larger than the last
    /// entry's and the offset not smaller. Returns whether it was appended;
    /// an error when its disk space cannot be reserved.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<bool> {
        self.append_entry(TimestampOffset { timestamp, offset })
    }

    /// Entries strictly increasing in timestamp and non-decreasing in offset,
    /// offsets not beyond `max_offset`.
    pub fn sanity_check(&self, max_offset: i64) -> Result<()> {
        self.check_entries(|i, e| {
            (e.offset > max_offset).then(|| format!("entry {i} points past offset {max_offset}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_stored_as_the_format_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.timeindex");
        let mut idx = TimeIndex::open(&path, 100, Some(120)).unwrap();
        assert!(idx.maybe_append(0x0102_0304_0506_0708, 107).unwrap());
        idx.file_mut().trim().unwrap();
        drop(idx);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 7]
        );
    }

    #[test]
    fn one_slot_stays_free_for_the_final_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::open(&path, 0, Some(36)).unwrap();
        assert!(idx.maybe_append(1, 1).unwrap());
        assert!(!idx.is_full());
        assert!(idx.maybe_append(2, 2).unwrap());
        assert!(idx.is_full());
        assert!(idx.maybe_append(3, 3).unwrap(), "the final entry fits");
        assert!(!idx.maybe_append(4, 4).unwrap());
    }

    #[test]
    fn only_increasing_timestamps_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut idx = TimeIndex::open(&path, 0, Some(1200)).unwrap();
        assert!(!idx.is_full());
        assert!(idx.maybe_append(1000, 5).unwrap());
        assert!(!idx.maybe_append(1000, 9).unwrap());
        assert!(!idx.maybe_append(900, 9).unwrap());
        assert!(idx.maybe_append(2000, 9).unwrap());
        assert!(idx.maybe_append(3000, 20).unwrap());
        assert_eq!(
            idx.lookup(500),
            TimestampOffset {
                timestamp: -1,
                offset: 0
            }
        );
        assert_eq!(
            idx.lookup(2500),
            TimestampOffset {
                timestamp: 2000,
                offset: 9
            }
        );
        assert_eq!(idx.lookup(9999).offset, 20);
        idx.sanity_check(20).unwrap();
        assert!(idx.sanity_check(10).is_err());
        idx.truncate_to(9);
        assert_eq!(
            idx.last_entry(),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 5
            })
        );
    }
}
