//! A memory-mapped file of fixed-size entries, the file under
//! [`crate::index::Index`] (the offset index and the time index).
//!
//! Like Kafka's `AbstractIndex`, the file of the active segment is
//! preallocated to the index's maximum size (rounded down to whole entries)
//! and mapped once, so appends are plain memory writes; when the segment is
//! rolled or closed the file is trimmed to the entries it holds. A file left
//! untrimmed by a crash ends in zeroed entries, which are not counted.
//!
//! # Disk space: ENOSPC is an error, never SIGBUS
//!
//! The preallocated size is only a file size: the file is sparse, and a
//! store into a page of the mapping that has no disk block yet makes the
//! filesystem allocate one in the page fault. On a full disk that fault
//! cannot fail politely: the kernel sends SIGBUS and the broker dies (and
//! dies again in recovery while the disk stays full). So the mapping is
//! never touched beyond `reserved_bytes`, the prefix of the file known to
//! have disk space:
//!
//! * an append first reserves the space of its entry: `fallocate` (mode 0,
//!   inside the file size) from `reserved_bytes` up to the next
//!   [`RESERVE_CHUNK_BYTES`] boundary, or only up to the entry's end when
//!   the whole chunk does not fit, and zeros written with `pwrite` where
//!   the filesystem has no `fallocate`. A failure is an I/O error (ENOSPC)
//!   the caller reports as KAFKA_STORAGE_ERROR; a new segment reserves its
//!   first chunk when it is created, so a full disk usually fails the roll;
//! * opening a file counts its entries with `pread`, which never allocates
//!   (a read fault on a hole of a full tmpfs would, and SIGBUS too); the
//!   written entries' pages hold data, so they have blocks, and
//!   `reserved_bytes` starts at their end;
//! * shrinking the file (trim, truncation) lowers `reserved_bytes` with it.
//!
//! A page is reserved once, so this costs one system call per chunk of
//! entries (64 KiB: 8192 offset index entries, 32 MiB of log at the default
//! `index.interval.bytes`), uses the descriptor the index already holds,
//! and keeps the real disk use of an active segment's indexes at their
//! entries plus at most one chunk each, not `segment.index.bytes`.
//! Copy-on-write filesystems (btrfs) allocate on every write, so there a
//! reservation cannot rule a fault out entirely.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::{Result, StorageError};

/// Bytes of an index file reserved at once (aligned to this size).
pub(crate) const RESERVE_CHUNK_BYTES: usize = 64 * 1024;

/// A memory-mapped index file.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: Option<MmapMut>,
    entry_bytes: usize,
    entries: usize,
    /// The prefix of the file known to have disk blocks (written or
    /// reserved); the mapping is never touched at or beyond it.
    reserved_bytes: usize,
}

impl IndexFile {
    /// Opens (creating if needed) the file. When `capacity_bytes` is given
    /// the file is grown or preallocated to that size, rounded down to whole
    /// entries, ready for appends; otherwise it is mapped at its size. No
    /// disk space is reserved (see the module docs).
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
            reserved_bytes: 0,
        };
        index.entries = index.count_written_entries(whole_len / entry_bytes)?;
        index.reserved_bytes = index.entries * entry_bytes;
        index.map(whole_len)?;
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
        // ever written through this mapping (and, beyond `reserved_bytes`,
        // by `reserve`); no other process modifies it while it is mapped.
        // Every access goes through bounds-checked slices of the mapping,
        // below `reserved_bytes`, so no access faults on a page without
        // disk space.
        let mmap = unsafe { MmapMut::map_mut(&self.file) }
            .map_err(StorageError::io("mmap index", &self.path))?;
        self.mmap = Some(mmap);
        Ok(())
    }

    /// Whether slot `i` of the file is all zeros, read with `pread` (never
    /// through the mapping: the slot may be a hole).
    fn slot_is_zero(&self, i: usize, buf: &mut [u8]) -> Result<bool> {
        self.file
            .read_exact_at(buf, (i * self.entry_bytes) as u64)
            .map_err(StorageError::io("read index", &self.path))?;
        Ok(buf.iter().all(|b| *b == 0))
    }

    /// Counts the entries of a file that may end in zeroed (never written)
    /// entries. Entries are written from the front, so the written ones are
    /// a prefix and the boundary is found by binary search, reading a few
    /// slots of a preallocated file instead of all of them. Entry 0 is
    /// always counted when present (a first entry of all zeros is legal)
    /// unless every slot is zero (a fresh file). Should a crash leave a
    /// zeroed hole inside the prefix, fewer entries are counted: the index
    /// is sparse, so lookups stay correct, and recovery rebuilds it anyway.
    fn count_written_entries(&self, slots: usize) -> Result<usize> {
        let mut buf = vec![0u8; self.entry_bytes];
        let mut is_zero = |i: usize| self.slot_is_zero(i, &mut buf);
        if slots == 0 {
            return Ok(0);
        }
        if !is_zero(slots - 1)? {
            return Ok(slots);
        }
        // Invariant: entry `lo - 1` is written (or lo == 1), entry `hi` is zero.
        let (mut lo, mut hi) = (1, slots - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if is_zero(mid)? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        if lo == 1 && slots > 1 && is_zero(0)? {
            // A lone zero entry followed by zero slots: a fresh file.
            return Ok(0);
        }
        Ok(lo)
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
        self.reserved_bytes = self.reserved_bytes.min(target);
        self.map(target)
    }

    /// Trims the file to the entries it holds.
    pub(crate) fn trim(&mut self) -> Result<()> {
        self.resize(self.entries * self.entry_bytes)
    }

    fn mapped_len(&self) -> usize {
        self.mmap.as_ref().map_or(0, |m| m.len())
    }

    /// Reserves disk space for the next `n` entries (as many as fit), so
    /// appending them cannot fault (see the module docs).
    pub(crate) fn reserve_entries(&mut self, n: usize) -> Result<()> {
        let end = self
            .entries
            .saturating_add(n)
            .saturating_mul(self.entry_bytes)
            .min(self.mapped_len());
        self.reserve(end)
    }

    /// Makes `[0, end)` of the file have disk space: the whole chunk
    /// holding `end` if it fits, else exactly up to `end`.
    fn reserve(&mut self, end: usize) -> Result<()> {
        if end <= self.reserved_bytes {
            return Ok(());
        }
        let chunk_end = end
            .div_ceil(RESERVE_CHUNK_BYTES)
            .saturating_mul(RESERVE_CHUNK_BYTES)
            .min(self.mapped_len())
            .max(end);
        let from = self.reserved_bytes;
        let reserved = match allocate(&self.file, from, chunk_end) {
            Ok(()) => chunk_end,
            // A nearly full disk may still have the page or two the
            // entries need.
            Err(_) if chunk_end > end => {
                allocate(&self.file, from, end)
                    .map_err(StorageError::io("reserve index space", &self.path))?;
                end
            }
            Err(e) => return Err(StorageError::io("reserve index space", &self.path)(e)),
        };
        self.reserved_bytes = reserved;
        Ok(())
    }

    /// Entries written.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Entries that still fit in the mapped file.
    pub(crate) fn free_slots(&self) -> usize {
        (self.mapped_len() / self.entry_bytes).saturating_sub(self.entries)
    }

    /// The bytes of entry `i` (a written entry, so in the reserved prefix).
    pub(crate) fn entry(&self, i: usize) -> Option<&[u8]> {
        let start = i.checked_mul(self.entry_bytes)?;
        let end = start.checked_add(self.entry_bytes)?;
        if end > self.reserved_bytes {
            return None;
        }
        self.mmap.as_ref()?.get(start..end)
    }

    /// Appends one entry, reserving its disk space first; false when the
    /// file is full, an error when the space cannot be reserved (nothing
    /// is written then).
    pub(crate) fn append(&mut self, entry: &[u8]) -> Result<bool> {
        let start = self.entries * self.entry_bytes;
        let end = start + entry.len();
        if end > self.mapped_len() {
            return Ok(false);
        }
        self.reserve(end)?;
        let Some(slot) = self.mmap.as_mut().and_then(|m| m.get_mut(start..end)) else {
            return Ok(false);
        };
        slot.copy_from_slice(entry);
        self.entries += 1;
        Ok(true)
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

    /// Bytes of the file with disk space reserved (for tests).
    #[cfg(test)]
    pub(crate) fn reserved_bytes(&self) -> usize {
        self.reserved_bytes
    }
}

/// Gives bytes `[from, to)` of `file`, which lie inside its size, disk
/// blocks: `fallocate`, or zeros written where the filesystem does not
/// support it (FUSE, some network filesystems). Either fails with ENOSPC
/// on a full disk.
fn allocate(file: &File, from: usize, to: usize) -> std::io::Result<()> {
    if to <= from {
        return Ok(());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        use rustix::io::Errno;
        loop {
            match fallocate(
                file,
                FallocateFlags::empty(),
                from as u64,
                (to - from) as u64,
            ) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(Errno::OPNOTSUPP | Errno::NOSYS) => break,
                Err(e) => return Err(e.into()),
            }
        }
    }
    const ZEROS: [u8; 4096] = [0; 4096];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len());
        file.write_all_at(ZEROS.get(..n).unwrap_or(&ZEROS), at as u64)?;
        at += n;
    }
    Ok(())
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
    fn disk_space_is_reserved_a_chunk_at_a_time_before_entries_are_stored() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let capacity = 4 * RESERVE_CHUNK_BYTES;
        let mut index = IndexFile::open(&path, 8, Some(capacity)).unwrap();
        let allocated = |path: &Path| std::fs::metadata(path).unwrap().blocks() * 512;
        // A preallocated file is sparse until space is reserved.
        assert_eq!(index.reserved_bytes(), 0);
        assert_eq!(allocated(&path), 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), capacity as u64);
        index.reserve_entries(1).unwrap();
        assert_eq!(index.reserved_bytes(), RESERVE_CHUNK_BYTES);
        assert!(allocated(&path) >= RESERVE_CHUNK_BYTES as u64);
        assert!(allocated(&path) < capacity as u64);
        let per_chunk = RESERVE_CHUNK_BYTES / 8;
        for i in 0..per_chunk {
            assert!(index.append(&(i as u64 + 1).to_be_bytes()).unwrap());
        }
        assert_eq!(index.reserved_bytes(), RESERVE_CHUNK_BYTES);
        assert!(index.append(&u64::MAX.to_be_bytes()).unwrap());
        assert_eq!(index.reserved_bytes(), 2 * RESERVE_CHUNK_BYTES);
        // Nothing past the reserved prefix is read through the mapping.
        assert!(index.entry(per_chunk).is_some());
        assert!(index.entry(2 * per_chunk).is_none());
        // Reopened (untrimmed, as after a crash): the written entries are
        // counted without touching the holes, and reserved again on demand.
        drop(index);
        let mut index = IndexFile::open(&path, 8, Some(capacity)).unwrap();
        assert_eq!(index.entries(), per_chunk + 1);
        assert_eq!(index.reserved_bytes(), (per_chunk + 1) * 8);
        assert!(index.append(&7u64.to_be_bytes()).unwrap());
        assert_eq!(index.reserved_bytes(), 2 * RESERVE_CHUNK_BYTES);
        // Trimming gives the space back.
        index.trim().unwrap();
        assert_eq!(index.reserved_bytes(), (per_chunk + 2) * 8);
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
