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

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::index_file::IndexFile;

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

/// A segment's time index.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

impl TimeIndex {
    /// Opens the time index of the segment starting at `base_offset`.
    pub fn open(path: &Path, base_offset: i64, capacity_bytes: Option<usize>) -> Result<Self> {
        Ok(Self {
            base_offset,
            file: IndexFile::open(path, TIME_INDEX_ENTRY_BYTES, capacity_bytes)?,
        })
    }

    fn read(&self, i: usize) -> Option<TimestampOffset> {
        let e = self.file.entry(i)?;
        let ts: [u8; 8] = e.get(..8)?.try_into().ok()?;
        let rel: [u8; 4] = e.get(8..12)?.try_into().ok()?;
        let rel = i32::from_be_bytes(rel);
        Some(TimestampOffset {
            timestamp: i64::from_be_bytes(ts),
            offset: self.base_offset.saturating_add(i64::from(rel)),
        })
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// Whether the index is full. Like Kafka, one slot stays free for the
    /// final entry written when the segment is rolled or closed.
    pub fn is_full(&self) -> bool {
        self.file.free_slots() < 2
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.entries().checked_sub(1).and_then(|i| self.read(i))
    }

    /// Appends `timestamp → offset` if the timestamp is larger than the last
    /// entry's and the offset not smaller. Returns whether it was appended;
    /// an error when its disk space cannot be reserved.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> Result<bool> {
        let Ok(rel) = i32::try_from(offset - self.base_offset) else {
            return Ok(false);
        };
        if rel < 0 || timestamp < 0 {
            return Ok(false);
        }
        if let Some(last) = self.last_entry() {
            if timestamp <= last.timestamp || offset < last.offset {
                return Ok(false);
            }
        }
        let mut e = [0u8; TIME_INDEX_ENTRY_BYTES];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&rel.to_be_bytes());
        self.file.append(&e)
    }

    /// The last entry with timestamp `≤ target`, or the segment start with
    /// timestamp −1.
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.read(mid) {
                Some(e) if e.timestamp <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
            .and_then(|i| self.read(i))
            .unwrap_or(TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            })
    }

    /// Removes entries for offsets `≥ offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = (0..self.entries())
            .take_while(|&i| self.read(i).is_some_and(|e| e.offset < offset))
            .count();
        self.file.truncate_entries(keep);
    }

    /// Removes every entry.
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Entries strictly increasing in timestamp and non-decreasing in offset,
    /// offsets not beyond `max_offset`.
    pub fn sanity_check(&self, max_offset: i64) -> Result<()> {
        let mut prev: Option<TimestampOffset> = None;
        for i in 0..self.entries() {
            let e = self
                .read(i)
                .ok_or_else(|| self.corrupt("unreadable entry".into()))?;
            if e.offset > max_offset {
                return Err(self.corrupt(format!("entry {i} points past offset {max_offset}")));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.offset < p.offset {
                    return Err(self.corrupt(format!("entry {i} does not increase")));
                }
            }
            prev = Some(e);
        }
        Ok(())
    }

    fn corrupt(&self, reason: String) -> StorageError {
        StorageError::CorruptFile {
            path: self.file.path().to_path_buf(),
            reason,
        }
    }

    pub(crate) fn file_mut(&mut self) -> &mut IndexFile {
        &mut self.file
    }

    pub(crate) fn file(&self) -> &IndexFile {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
