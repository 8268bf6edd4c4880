//! What the offset index and the time index share: a segment's index is
//! an [`IndexFile`] of fixed-size entries that strictly follow each other,
//! so a lookup is a binary search for the last entry whose key is `≤` the
//! target, a truncation keeps the entries before an offset, and a sanity
//! check walks the entries once. [`Index`] is that index over any
//! [`IndexEntry`]; the offset index ([`crate::offset_index`]) and the time
//! index ([`crate::time_index`]) are it with their entry types, and their
//! modules own their file formats. The file itself (mapping, preallocation,
//! disk space reserved before an entry is stored) is `index_file`'s.

use std::marker::PhantomData;
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::index_file::IndexFile;

/// An entry of an index: its encoding on disk, the key lookups search by
/// and the order entries follow.
pub trait IndexEntry: Copy {
    /// Bytes of one entry on disk.
    const BYTES: usize;
    /// Slots the index keeps free: it reports itself full when no more
    /// than this many are left.
    const FREE_SLOTS_KEPT: usize;
    /// An encoded entry, [`IndexEntry::BYTES`] long.
    type Encoded: AsRef<[u8]>;

    /// Decodes an entry of the index of the segment starting at
    /// `base_offset`.
    fn decode(bytes: &[u8], base_offset: i64) -> Option<Self>;

    /// Encodes the entry for the index of the segment starting at
    /// `base_offset`; None when it cannot be stored there.
    fn encode(&self, base_offset: i64) -> Option<Self::Encoded>;

    /// What lookups search by.
    fn key(&self) -> i64;

    /// The absolute offset the entry points at.
    fn offset(&self) -> i64;

    /// Whether the entry may come after `prev` in the index.
    fn follows(&self, prev: &Self) -> bool;

    /// What a lookup below every entry finds: the segment's start.
    fn segment_start(base_offset: i64) -> Self;
}

/// `offset` relative to `base_offset` as the index files store it: 4
/// bytes, big-endian; None outside `0..=i32::MAX`.
pub(crate) fn encode_relative_offset(offset: i64, base_offset: i64) -> Option<[u8; 4]> {
    let rel = i32::try_from(offset - base_offset).ok()?;
    if rel < 0 {
        return None;
    }
    Some(rel.to_be_bytes())
}

/// The absolute offset of a stored relative offset.
pub(crate) fn decode_relative_offset(bytes: [u8; 4], base_offset: i64) -> i64 {
    base_offset.saturating_add(i64::from(i32::from_be_bytes(bytes)))
}

/// A segment's index of `E` entries.
#[derive(Debug)]
pub struct Index<E> {
    base_offset: i64,
    file: IndexFile,
    entry: PhantomData<E>,
}

impl<E: IndexEntry> Index<E> {
    /// Opens the index of the segment starting at `base_offset`, its file
    /// preallocated to `capacity_bytes` when given (see `index_file`).
    pub fn open(path: &Path, base_offset: i64, capacity_bytes: Option<usize>) -> Result<Self> {
        Ok(Self {
            base_offset,
            file: IndexFile::open(path, E::BYTES, capacity_bytes)?,
            entry: PhantomData,
        })
    }

    fn read(&self, i: usize) -> Option<E> {
        E::decode(self.file.entry(i)?, self.base_offset)
    }

    /// Number of entries.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    /// Whether the index is full (see [`IndexEntry::FREE_SLOTS_KEPT`]).
    pub fn is_full(&self) -> bool {
        self.file.free_slots() <= E::FREE_SLOTS_KEPT
    }

    /// The last entry.
    pub fn last_entry(&self) -> Option<E> {
        self.entries().checked_sub(1).and_then(|i| self.read(i))
    }

    /// Appends `entry` if it can be stored and follows the last entry.
    /// Returns whether it was appended (not when the index is full); an
    /// error when its disk space cannot be reserved.
    pub(crate) fn append_entry(&mut self, entry: E) -> Result<bool> {
        let Some(encoded) = entry.encode(self.base_offset) else {
            return Ok(false);
        };
        if let Some(last) = self.last_entry() {
            if !entry.follows(&last) {
                return Ok(false);
            }
        }
        self.file.append(encoded.as_ref())
    }

    /// The last entry whose key is `≤ target`, or the segment start.
    pub fn lookup(&self, target: i64) -> E {
        // Binary search for the number of entries with key <= target.
        let (mut lo, mut hi) = (0usize, self.entries());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.read(mid) {
                Some(e) if e.key() <= target => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo.checked_sub(1)
            .and_then(|i| self.read(i))
            .unwrap_or_else(|| E::segment_start(self.base_offset))
    }

    /// Removes entries for offsets `≥ offset`.
    pub fn truncate_to(&mut self, offset: i64) {
        let keep = (0..self.entries())
            .take_while(|&i| self.read(i).is_some_and(|e| e.offset() < offset))
            .count();
        self.file.truncate_entries(keep);
    }

    /// Removes every entry.
    pub fn reset(&mut self) {
        self.file.truncate_entries(0);
    }

    /// Checks that every entry is readable, passes `out_of_bounds` (which
    /// says why one does not) and follows the one before.
    pub(crate) fn check_entries(
        &self,
        out_of_bounds: impl Fn(usize, &E) -> Option<String>,
    ) -> Result<()> {
        let mut prev: Option<E> = None;
        for i in 0..self.entries() {
            let e = self
                .read(i)
                .ok_or_else(|| self.corrupt("unreadable entry".into()))?;
            if let Some(reason) = out_of_bounds(i, &e) {
                return Err(self.corrupt(reason));
            }
            if let Some(p) = prev {
                if !e.follows(&p) {
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
