//! The offset index of a segment: `<base offset>.index`.
//!
//! # File format
//!
//! A sequence of 8-byte entries, big-endian:
//!
//! | bytes | field           | meaning                                                   |
//! |------:|-----------------|-----------------------------------------------------------|
//! |     4 | relative_offset | last offset of a batch minus the segment's base offset     |
//! |     4 | position        | byte position of that batch in the segment's `.log` file  |
//!
//! Entries are strictly increasing in both fields. The index is sparse: an
//! entry is added when more than `index.interval.bytes` of batches were
//! appended since the previous one. To find offset `x`, take the last entry
//! whose offset is `≤ x` (or position 0) and scan batches forward from its
//! position to the first batch whose last offset is `≥ x`. The active
//! segment's file is preallocated to `segment.index.bytes` and trimmed to
//! its entries when the segment is rolled or the broker shuts down cleanly;
//! trailing all-zero entries are unwritten space.

use std::path::Path;

use crate::error::{Result, StorageError};
use crate::index_file::IndexFile;

/// Bytes per offset index entry.
pub const OFFSET_INDEX_ENTRY_BYTES: usize = 8;

/// A position in the log for an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset.
    pub offset: i64,
    /// Byte position in the segment file.
    pub position: u32,
}

/// A segment's offset index.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    /// Opens the index of the segment starting at `base_offset`.
    pub fn open(path: &Path, base_offset: i64, capacity_bytes: Option<usize>) -> Result<Self> {
        Ok(Self {
            base_offset,
            file: IndexFile::open(path, OFFSET_INDEX_ENTRY_BYTES, capacity_bytes)?,
        })
    }

    fn read(&self, i: usize) -> Option<OffsetPosition> {
        let e: [u8; OFFSET_INDEX_ENTRY_BYTES] = self.file.entry(i)?.try_into().ok()?;
        let [r0, r1, r2, r3, p0, p1, p2, p3] = e;
        let rel = i32::from_be_bytes([r0, r1, r2, r3]);
        let pos = u32::from_be_bytes([p0, p1, p2, p3]);
        Some(OffsetPosition {
            offset: self.base_offset.saturating_add(i64::from(rel)),
            position: pos,
        })
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// Whether another entry fits.
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.entries().checked_sub(1).and_then(|i| self.read(i))
    }

    /// Appends `offset → position`. Entries that do not increase are
    /// ignored (returns false), as is an entry when the index is full; an
    /// error when its disk space cannot be reserved.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<bool> {
        let Ok(rel) = i32::try_from(offset - self.base_offset) else {
            return Ok(false);
        };
        if rel < 0 {
            return Ok(false);
        }
        if let Some(last) = self.last_entry() {
            if offset <= last.offset || position <= last.position {
                return Ok(false);
            }
        }
        let mut e = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        e[..4].copy_from_slice(&rel.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.file.append(&e)
    }

    /// The last entry whose offset is `≤ target`, or the segment start.
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let start = OffsetPosition {
            offset: self.base_offset,
            position: 0,
        };
        // Binary search for the number of entries with offset <= target.
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.read(mid) {
                Some(e) if e.offset <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
            .and_then(|i| self.read(i))
            .unwrap_or(start)
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

    /// Checks what can be checked cheaply against the segment file: entries
    /// strictly increasing and positions inside the file.
    pub fn sanity_check(&self, log_size_bytes: u64) -> Result<()> {
        let mut prev: Option<OffsetPosition> = None;
        for i in 0..self.entries() {
            let e = self
                .read(i)
                .ok_or_else(|| self.corrupt("unreadable entry".into()))?;
            if u64::from(e.position) >= log_size_bytes.max(1) {
                return Err(self.corrupt(format!(
                    "entry {i} points at position {} beyond the log's {log_size_bytes} bytes",
                    e.position
                )));
            }
            if let Some(p) = prev {
                if e.offset <= p.offset || e.position <= p.position {
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
    fn append_lookup_truncate_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&path, 100, Some(80)).unwrap();
        assert_eq!(
            idx.lookup(150),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        for i in 1..=10 {
            assert!(idx.append(100 + i * 10, (i * 1000) as u32).unwrap());
        }
        assert!(idx.is_full());
        assert!(!idx.append(300, 99_999).unwrap(), "full index must refuse");
        assert!(
            !idx.append(105, 50).unwrap(),
            "non-increasing entries are refused"
        );
        assert_eq!(idx.lookup(99).offset, 100);
        assert_eq!(
            idx.lookup(125),
            OffsetPosition {
                offset: 120,
                position: 2000
            }
        );
        assert_eq!(
            idx.lookup(500),
            OffsetPosition {
                offset: 200,
                position: 10000
            }
        );
        idx.truncate_to(150);
        assert_eq!(idx.entries(), 4);
        idx.file_mut().trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 32);
        let idx = OffsetIndex::open(&path, 100, None).unwrap();
        assert_eq!(idx.entries(), 4);
        assert_eq!(
            idx.last_entry(),
            Some(OffsetPosition {
                offset: 140,
                position: 4000
            })
        );
        idx.sanity_check(5000).unwrap();
        assert!(idx.sanity_check(3000).is_err());
    }

    #[test]
    fn untrimmed_file_counts_only_written_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::open(&path, 0, Some(8 * 1024)).unwrap();
        idx.append(5, 100).unwrap();
        idx.append(9, 200).unwrap();
        drop(idx); // no trim: as after a crash
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 * 1024);
        let idx = OffsetIndex::open(&path, 0, Some(8 * 1024)).unwrap();
        assert_eq!(idx.entries(), 2);
    }
}
