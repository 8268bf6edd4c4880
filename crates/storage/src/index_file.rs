//! A memory-mapped file of fixed-size entries, the shared machinery of the
//! offset index and the time index.
//!
//! Like Kafka's `AbstractIndex`, the file of the active segment is
//! preallocated to the index's maximum size (rounded down to whole entries)
//! and mapped once, so appends are plain memory writes; when the segment is
//! rolled or closed the file is trimmed to the entries it holds. A file left
//! untrimmed by a crash ends in zeroed entries, which are not counted.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{Result, StorageError};

/// A memory-mapped index file.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    entry_bytes: usize,
    entries: usize,
}

impl IndexFile {
    /// Opens (creating if needed) the file. When `capacity_bytes` is given
    /// the file is grown or preallocated to that size, rounded down to whole
    /// entries, ready for appends; otherwise it is mapped at its size.
    pub(crate) fn open(
        path: &Path,
        entry_bytes: usize,
        capacity_bytes: Option<usize>,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(StorageError::io("open index", path))?;
        let len = file
            .metadata()
            .map_err(StorageError::io("stat index", path))?
            .len() as usize;
        let whole_len = len - len % entry_bytes;
        let mut index = IndexFile {
            path: path.to_path_buf(),
            file,
            mmap: None,
            entry_bytes,
            entries: 0,
        };
        index.map(whole_len)?;
        index.entries = index.count_written_entries(whole_len / entry_bytes);
        if let Some(cap) = capacity_bytes {
            index.resize(cap)?;
        } else if whole_len != len {
            index.resize(whole_len)?;
        }
        Ok(index)
    }

    fn map(&mut self, len: usize) -> Result<()> {
        self.mmap = None;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the file is owned by this broker's log directory and only
        // ever written through this mapping; no other process modifies it
        // while it is mapped. Every access goes through bounds-checked slices
        // of the mapping.
        let mmap = unsafe { MmapMut::map_mut(&self.file) }
            .map_err(StorageError::io("mmap index", &self.path))?;
        self.mmap = Some(mmap);
        Ok(())
    }

    /// Counts the entries of a file that may end in zeroed (never written)
    /// entries. Entries are written from the front, so the written ones are
    /// a prefix and the boundary is found by binary search, touching a few
    /// pages of a preallocated file instead of all of them. Entry 0 is
    /// always counted when present (a first entry of all zeros is legal)
    /// unless every slot is zero (a fresh file). Should a crash leave a
    /// zeroed hole inside the prefix, fewer entries are counted: the index
    /// is sparse, so lookups stay correct, and recovery rebuilds it anyway.
    fn count_written_entries(&self, slots: usize) -> usize {
        let is_zero = |i: usize| self.entry(i).is_none_or(|e| e.iter().all(|b| *b == 0));
        if slots == 0 {
            return 0;
        }
        if !is_zero(slots - 1) {
            return slots;
        }
        // Invariant: entry `lo - 1` is written (or lo == 1), entry `hi` is zero.
        let (mut lo, mut hi) = (1, slots - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if is_zero(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo == 1 && slots > 1 && is_zero(0) {
            // A lone zero entry followed by zero slots: a fresh file.
            return 0;
        }
        lo
    }

    /// Changes the file's size to `bytes` rounded down to whole entries (but
    /// never below the entries it holds) and remaps it.
    pub(crate) fn resize(&mut self, bytes: usize) -> Result<()> {
        let target = (bytes - bytes % self.entry_bytes).max(self.entries * self.entry_bytes);
        if self.mapped_len() == target {
            return Ok(());
        }
        self.mmap = None;
        self.file
            .set_len(target as u64)
            .map_err(StorageError::io("resize index", &self.path))?;
        self.map(target)
    }

    /// Trims the file to the entries it holds.
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.resize(self.entries * self.entry_bytes)
    }

    fn mapped_len(&self) -> usize {
        self.mmap.as_ref().map_or(0, |m| m.len())
    }

    /// Entries written.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Whether another entry fits.
    pub(crate) fn is_full(&self) -> bool {
        (self.entries + 1) * self.entry_bytes > self.mapped_len()
    }

    /// Entries that still fit in the mapped file.
    pub(crate) fn free_slots(&self) -> usize {
        (self.mapped_len() / self.entry_bytes).saturating_sub(self.entries)
    }

    /// The bytes of entry `i`.
    pub(crate) fn entry(&self, i: usize) -> Option<&[u8]> {
        let start = i.checked_mul(self.entry_bytes)?;
        self.mmap.as_ref()?.get(start..start + self.entry_bytes)
    }

    /// Appends one entry; false when the file is full.
    pub(crate) fn append(&mut self, entry: &[u8]) -> bool {
        let start = self.entries * self.entry_bytes;
        let Some(slot) = self
            .mmap
            .as_mut()
            .and_then(|m| m.get_mut(start..start + entry.len()))
        else {
            return false;
        };
        slot.copy_from_slice(entry);
        self.entries += 1;
        true
    }

    /// Keeps the first `n` entries, zeroing the rest.
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        let (from, to) = (n * self.entry_bytes, self.entries * self.entry_bytes);
        if let Some(dead) = self.mmap.as_mut().and_then(|m| m.get_mut(from..to)) {
            dead.fill(0);
        }
        self.entries = n;
    }

    /// Writes dirty pages back to the file (synchronously).
    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(m) = &self.mmap {
            m.flush()
                .map_err(StorageError::io("flush index", &self.path))?;
        }
        Ok(())
    }

    /// Schedules dirty pages to be written back.
    pub(crate) fn flush_async(&self) -> Result<()> {
        if let Some(m) = &self.mmap {
            m.flush_async()
                .map_err(StorageError::io("flush index", &self.path))?;
        }
        Ok(())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens a file of `slots` 8-byte slots whose first `written` entries
    /// are non-zero (entry 0 optionally all zeros, which is legal).
    fn counted(slots: usize, written: usize, zero_first: bool) -> usize {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut bytes = vec![0u8; slots * 8];
        for i in 0..written {
            if !(i == 0 && zero_first) {
                bytes[i * 8] = 1;
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        IndexFile::open(&path, 8, None).unwrap().entries()
    }

    #[test]
    fn counts_the_written_prefix_of_a_preallocated_file() {
        assert_eq!(counted(0, 0, false), 0);
        assert_eq!(counted(1, 0, false), 1, "a lone zero entry is legal");
        assert_eq!(counted(1, 1, false), 1);
        assert_eq!(counted(4096, 0, false), 0, "a fresh preallocated file");
        for written in [1, 2, 3, 511, 512, 513, 4095, 4096] {
            assert_eq!(counted(4096, written, false), written, "{written}");
        }
        for written in [2, 3, 700] {
            assert_eq!(
                counted(4096, written, true),
                written,
                "zero first, {written}"
            );
        }
    }

    #[test]
    fn a_torn_trailing_partial_entry_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        std::fs::write(&path, [1u8; 8 * 3 + 5]).unwrap();
        let index = IndexFile::open(&path, 8, None).unwrap();
        assert_eq!(index.entries(), 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
    }
}
