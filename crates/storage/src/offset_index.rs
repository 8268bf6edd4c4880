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

use crate::error::Result;
use crate::index::{decode_relative_offset, encode_relative_offset, Index, IndexEntry};

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

impl IndexEntry for OffsetPosition {
    const BYTES: usize = OFFSET_INDEX_ENTRY_BYTES;
    const FREE_SLOTS_KEPT: usize = 0;
    type Encoded = [u8; OFFSET_INDEX_ENTRY_BYTES];

    fn decode(bytes: &[u8], base_offset: i64) -> Option<Self> {
        let e: [u8; OFFSET_INDEX_ENTRY_BYTES] = bytes.try_into().ok()?;
        let [r0, r1, r2, r3, p0, p1, p2, p3] = e;
        Some(OffsetPosition {
            offset: decode_relative_offset([r0, r1, r2, r3], base_offset),
            position: u32::from_be_bytes([p0, p1, p2, p3]),
        })
    }

    fn encode(&self, base_offset: i64) -> Option<Self::Encoded> {
        let rel = encode_relative_offset(self.offset, base_offset)?;
        let mut e = [0u8; OFFSET_INDEX_ENTRY_BYTES];
        e[..4].copy_from_slice(&rel);
        e[4..].copy_from_slice(&self.position.to_be_bytes());
        Some(e)
    }

    fn key(&self) -> i64 {
        self.offset
    }

    fn offset(&self) -> i64 {
        self.offset
    }

    /// Strictly increasing in both fields.
    fn follows(&self, prev: &Self) -> bool {
        self.offset > prev.offset && self.position > prev.position
    }

    fn segment_start(base_offset: i64) -> Self {
        OffsetPosition {
            offset: base_offset,
            position: 0,
        }
    }
}

/// A segment's offset index: [`OffsetIndex::lookup`] finds the last entry
/// whose offset is `≤` the target, or the segment start (position 0).
pub type OffsetIndex = Index<OffsetPosition>;

impl OffsetIndex {
    /// Appends `offset → position`. Entries that do not increase are
    /// ignored (returns false), as is an entry when the index is full; an
    /// error when its disk space cannot be reserved.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<bool> {
        self.append_entry(OffsetPosition { offset, position })
    }

    /// Checks what can be checked cheaply against the segment file: entries
    /// strictly increasing and positions inside the file.
    pub fn sanity_check(&self, log_size_bytes: u64) -> Result<()> {
        self.check_entries(|i, e| {
            (u64::from(e.position) >= log_size_bytes.max(1)).then(|| {
                format!(
                    "entry {i} points at position {} beyond the log's {log_size_bytes} bytes",
                    e.position
                )
            })
        })
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
    fn entries_are_stored_as_the_format_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&path, 100, Some(80)).unwrap();
        assert!(idx.append(105, 0x0102_0304).unwrap());
        idx.file_mut().trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::read(&path).unwrap(), [0, 0, 0, 5, 1, 2, 3, 4]);
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
