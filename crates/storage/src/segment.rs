//! One segment of a partition log: `<base offset>.log` with its offset and
//! time indexes.
//!
//! # File format of `.log`
//!
//! The file is the concatenation of v2 record batches exactly as producers
//! sent them (see `strom_protocol::batch` for the batch layout), with the
//! broker's base offset and partition leader epoch written into each header.
//! Nothing else is in the file: no file header, no padding, no footer.
//! Batches have strictly increasing offsets; the first batch's base offset is
//! at least the segment's base offset, which is also its file name (20
//! decimal digits, zero-padded, e.g. `00000000000000001234.log`). A segment
//! holds at most `segment.bytes` bytes (a single larger batch is allowed
//! alone) and offsets within `i32::MAX` of its base.
//!
//! # Rolling (Kafka's `LogSegment.shouldRoll`)
//!
//! The active segment is rolled before a batch that would take it past
//! `segment.bytes`, fill an index, or overflow its relative offsets, and when
//! it is old enough by *record time*: the incoming batch's max timestamp
//! minus the first batch's max timestamp exceeds `segment.ms` minus the
//! segment's jitter. A segment whose first batch has no timestamp (−1) ages
//! by wall clock from its creation instead (for a segment loaded from disk,
//! its file's modification time). So batches with old timestamps (replays,
//! backfills, MirrorMaker) fill a segment like any others instead of rolling
//! one per batch. The jitter is drawn once per segment, uniformly in
//! `[0, min(segment.jitter.ms, segment.ms))`, when the segment is created or
//! loaded, so segments of many partitions do not all roll at once.
//!
//! A crash can leave a torn batch at the end of the last segments; recovery
//! ([`LogSegment::recover`]) re-reads every batch, checks its header and
//! CRC32C, rebuilds both indexes, and truncates the file at the first batch
//! that is incomplete or invalid.
//!
//! # A full disk
//!
//! Every write that needs disk space is a system call that can fail: the
//! `pwrite` of a batch, and the reservation of index space (see
//! `index_file`) before an index entry is stored through its mapping. A new
//! segment reserves its indexes' first chunk when it is created, and an
//! append reserves its index entries *before* writing the batch, so on a
//! full disk (ENOSPC) or a failing one (EIO) an append fails with nothing
//! written, or with the partly written batch cut off again, and the error
//! goes up as KAFKA_STORAGE_ERROR. No store into an index mapping ever
//! needs an allocation, so the process is never killed by SIGBUS.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use strom_protocol::batch::{BatchError, BatchHeader, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};
use strom_protocol::compression::for_each_record_summary;

use crate::error::{Result, StorageError};
use crate::offset_index::{OffsetIndex, OffsetPosition};
use crate::time_index::{TimeIndex, TimestampOffset};

/// File name stem of the segment starting at `base_offset`.
pub fn segment_file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Extension of segment data files.
pub const LOG_FILE_SUFFIX: &str = ".log";
/// Extension of offset index files.
pub const INDEX_FILE_SUFFIX: &str = ".index";
/// Extension of time index files.
pub const TIME_INDEX_FILE_SUFFIX: &str = ".timeindex";

/// Bytes read at once when recovery streams a batch through CRC32C.
const RECOVERY_READ_CHUNK_BYTES: usize = 1 << 20;

/// What recovering a segment found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryOutcome {
    /// Bytes cut off the end of the file.
    pub truncated_bytes: u64,
    /// Valid batches kept.
    pub batches: u64,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundRecord {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Leader epoch of its batch.
    pub leader_epoch: i32,
}

/// A segment.
#[derive(Debug)]
pub struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    log: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_last_index_entry: usize,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch: record-time rolls count from it.
    rolling_based_timestamp: Option<i64>,
    created_ms: i64,
    /// Subtracted from `segment.ms` for this segment (drawn by the log).
    roll_jitter_ms: i64,
    next_offset: i64,
}

fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
    let stem = segment_file_stem(base_offset);
    (
        dir.join(format!("{stem}{LOG_FILE_SUFFIX}")),
        dir.join(format!("{stem}{INDEX_FILE_SUFFIX}")),
        dir.join(format!("{stem}{TIME_INDEX_FILE_SUFFIX}")),
    )
}

impl LogSegment {
    /// Creates a new, empty segment with preallocated indexes, rolling
    /// `roll_jitter_ms` early by time.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index_capacity_bytes: usize,
        now_ms: i64,
        roll_jitter_ms: i64,
    ) -> Result<Self> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(StorageError::io("create segment", &log_path))?;
        // Stale index files of a segment that was truncated away are reset.
        let _ = std::fs::remove_file(&index_path);
        let _ = std::fs::remove_file(&time_path);
        let mut segment = Self {
            base_offset,
            log_path,
            log: Arc::new(log),
            size: 0,
            offset_index: OffsetIndex::open(&index_path, base_offset, Some(index_capacity_bytes))?,
            time_index: TimeIndex::open(&time_path, base_offset, Some(index_capacity_bytes))?,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_based_timestamp: None,
            created_ms: now_ms,
            roll_jitter_ms,
            next_offset: base_offset,
        };
        // A full disk fails the roll, not an append in the middle of the
        // segment (see the module docs).
        segment.reserve_index_entries()?;
        Ok(segment)
    }

    /// Reserves disk space for the index entries the next batch may add:
    /// one offset index entry, and a time index entry plus the final one
    /// written when the segment becomes inactive.
    fn reserve_index_entries(&mut self) -> Result<()> {
        self.offset_index.file_mut().reserve_entries(1)?;
        self.time_index.file_mut().reserve_entries(2)
    }

    /// Opens an existing segment. Indexes that are missing are created
    /// empty and reported by the returned flag, so the caller recovers the
    /// segment. `index_capacity_bytes` preallocates the indexes of the active
    /// segment. Call [`LogSegment::load_tail`] or [`LogSegment::recover`]
    /// before use. It rolls `roll_jitter_ms` early by time.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_capacity_bytes: Option<usize>,
        roll_jitter_ms: i64,
    ) -> Result<(Self, bool)> {
        let (log_path, index_path, time_path) = paths(dir, base_offset);
        let indexes_missing = !index_path.exists() || !time_path.exists();
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(StorageError::io("open segment", &log_path))?;
        let meta = log
            .metadata()
            .map_err(StorageError::io("stat segment", &log_path))?;
        let created_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let segment = Self {
            base_offset,
            log_path,
            log: Arc::new(log),
            size: meta.len(),
            offset_index: OffsetIndex::open(&index_path, base_offset, index_capacity_bytes)?,
            time_index: TimeIndex::open(&time_path, base_offset, index_capacity_bytes)?,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_based_timestamp: None,
            created_ms,
            roll_jitter_ms,
            next_offset: base_offset,
        };
        Ok((segment, indexes_missing))
    }

    /// Finishes opening a segment whose indexes are trusted (clean
    /// shutdown): checks the indexes against the file, then reads the batch
    /// headers after the last index entry to find the next offset and the
    /// largest timestamp. An error means the segment needs recovery.
    pub fn load_tail(&mut self) -> Result<()> {
        self.offset_index.sanity_check(self.size)?;
        let last = self.offset_index.last_entry().unwrap_or(OffsetPosition {
            offset: self.base_offset,
            position: 0,
        });
        if let Some(t) = self.time_index.last_entry() {
            self.max_timestamp = t.timestamp;
            self.offset_of_max_timestamp = t.offset;
        }
        let reader = self.reader();
        let mut position = u64::from(last.position);
        let mut next_offset = self.base_offset;
        while position < self.size {
            let header = reader.header_at(position)?;
            let end = position + header.size_bytes() as u64;
            if end > self.size || header.base_offset < next_offset || header.last_offset_delta < 0 {
                return Err(self.corrupt(format!(
                    "batch at position {position} is torn or out of order"
                )));
            }
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.last_offset();
            }
            next_offset = header.next_offset();
            position = end;
        }
        if self.size > 0 {
            self.rolling_based_timestamp = Some(reader.header_at(0)?.max_timestamp);
            self.next_offset = next_offset;
        }
        self.time_index
            .sanity_check(self.next_offset.max(self.base_offset))?;
        Ok(())
    }

    fn corrupt(&self, reason: String) -> StorageError {
        StorageError::CorruptFile {
            path: self.log_path.clone(),
            reason,
        }
    }

    /// Re-reads every batch, checking headers, offsets and CRC32C, rebuilds
    /// both indexes and truncates the file after the last valid batch.
    pub fn recover(&mut self, index_interval_bytes: usize) -> Result<RecoveryOutcome> {
        self.offset_index.reset();
        self.time_index.reset();
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.rolling_based_timestamp = None;
        self.next_offset = self.base_offset;
        let reader = self.reader();
        let mut position: u64 = 0;
        let mut batches = 0u64;
        let mut chunk = Vec::new();
        while position < self.size {
            let Ok(header) = reader.header_at(position) else {
                break;
            };
            let size = header.size_bytes() as u64;
            let relative_ok = i32::try_from(header.last_offset() - self.base_offset).is_ok();
            if position + size > self.size
                || header.base_offset < self.next_offset
                || header.last_offset_delta < 0
                || !relative_ok
                || !reader.crc_matches(position, &header, &mut chunk)?
            {
                break;
            }
            self.index_batch(&header, position as u32, index_interval_bytes)?;
            position += size;
            batches += 1;
        }
        let truncated_bytes = self.size - position;
        if truncated_bytes > 0 {
            self.log
                .set_len(position)
                .map_err(StorageError::io("truncate segment", &self.log_path))?;
            self.size = position;
        }
        Ok(RecoveryOutcome {
            truncated_bytes,
            batches,
        })
    }

    /// Bookkeeping shared by append and recovery: index entries every
    /// `index_interval_bytes`, largest timestamp, next offset. Fails only
    /// when index space cannot be reserved.
    fn index_batch(
        &mut self,
        header: &BatchHeader,
        position: u32,
        index_interval_bytes: usize,
    ) -> Result<()> {
        if self.bytes_since_last_index_entry > index_interval_bytes {
            let (max_timestamp, offset_of_max_timestamp) =
                if header.max_timestamp > self.max_timestamp {
                    (header.max_timestamp, header.last_offset())
                } else {
                    (self.max_timestamp, self.offset_of_max_timestamp)
                };
            self.offset_index.append(header.last_offset(), position)?;
            self.time_index
                .maybe_append(max_timestamp, offset_of_max_timestamp)?;
            self.bytes_since_last_index_entry = 0;
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        self.bytes_since_last_index_entry += header.size_bytes();
        if self.rolling_based_timestamp.is_none() {
            self.rolling_based_timestamp = Some(header.max_timestamp);
        }
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Appends one batch whose offsets have been assigned. On an error
    /// (ENOSPC, EIO) nothing of the batch stays in the segment, as far as
    /// the file system lets the write be undone.
    pub fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        index_interval_bytes: usize,
    ) -> Result<()> {
        let position =
            u32::try_from(self.size).map_err(|_| self.corrupt("segment exceeds 4 GiB".into()))?;
        #[cfg(test)]
        if tests_fault::FAIL_NEXT_WRITE.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(StorageError::io("append to segment", &self.log_path)(
                std::io::Error::other("injected fault"),
            ));
        }
        // Index space first: a batch is never written without room for the
        // entries that index it.
        self.reserve_index_entries()?;
        if let Err(e) = self.log.write_all_at(batch, self.size) {
            // Drop whatever part of the batch reached the file.
            let _ = self.log.set_len(self.size);
            return Err(StorageError::io("append to segment", &self.log_path)(e));
        }
        if let Err(e) = self.index_batch(header, position, index_interval_bytes) {
            let _ = self.log.set_len(self.size);
            return Err(e);
        }
        self.size += batch.len() as u64;
        Ok(())
    }

    /// Whether a batch of `batch_bytes` ending at `last_offset`, whose
    /// largest timestamp is `max_timestamp`, must go to a new segment: size,
    /// index capacity, relative offset range, or age by record time (see
    /// the module docs). An empty segment never rolls.
    pub fn should_roll(
        &self,
        batch_bytes: usize,
        last_offset: i64,
        max_timestamp: i64,
        segment_bytes: i32,
        segment_ms: i64,
        now_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        let full = self.size + batch_bytes as u64 > segment_bytes.max(0) as u64;
        let index_full = self.offset_index.is_full() || self.time_index.is_full();
        let offset_overflow = i32::try_from(last_offset - self.base_offset).is_err();
        let aged = self.time_waited_for_roll(now_ms, max_timestamp)
            > segment_ms.saturating_sub(self.roll_jitter_ms);
        full || index_full || offset_overflow || aged
    }

    /// Kafka's `timeWaitedForRoll`: how far `max_timestamp` is past the first
    /// batch's max timestamp, or, when that batch has none, how long ago the
    /// segment was created.
    fn time_waited_for_roll(&self, now_ms: i64, max_timestamp: i64) -> i64 {
        match self.rolling_based_timestamp {
            Some(first) if first >= 0 => max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(self.created_ms),
        }
    }

    /// What this segment subtracts from `segment.ms`.
    pub fn roll_jitter_ms(&self) -> i64 {
        self.roll_jitter_ms
    }

    /// Makes this segment inactive: writes the final time index entry and
    /// trims both indexes to their entries.
    pub fn on_become_inactive(&mut self) -> Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
        }
        self.offset_index.file_mut().trim()?;
        self.time_index.file_mut().trim()?;
        Ok(())
    }

    /// Grows the indexes back to full capacity (when this segment becomes
    /// the active one again after truncation or load).
    pub fn make_active(&mut self, index_capacity_bytes: usize) -> Result<()> {
        self.offset_index.file_mut().resize(index_capacity_bytes)?;
        self.time_index.file_mut().resize(index_capacity_bytes)
    }

    /// Removes every batch with offsets `≥ offset` (the whole batch holding
    /// `offset` goes). Returns the bytes removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<u64> {
        if offset >= self.next_offset {
            return Ok(0);
        }
        let start = self.offset_index.lookup(offset);
        let reader = self.reader();
        let found = reader.find_batch(offset, u64::from(start.position))?;
        let Some((position, header)) = found else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.log
            .set_len(position)
            .map_err(StorageError::io("truncate segment", &self.log_path))?;
        self.size = position;
        self.offset_index.truncate_to(offset);
        self.time_index.truncate_to(offset);
        self.next_offset = header.base_offset.max(self.base_offset);
        match self.time_index.last_entry() {
            Some(TimestampOffset { timestamp, offset }) => {
                self.max_timestamp = timestamp;
                self.offset_of_max_timestamp = offset;
            }
            None => {
                self.max_timestamp = -1;
                self.offset_of_max_timestamp = self.base_offset;
            }
        }
        self.bytes_since_last_index_entry = 0;
        if self.size == 0 {
            self.rolling_based_timestamp = None;
        }
        Ok(removed)
    }

    /// fsyncs the data file and writes back the indexes.
    pub fn flush(&self) -> Result<()> {
        self.log
            .sync_data()
            .map_err(StorageError::io("fsync segment", &self.log_path))?;
        self.offset_index.file().flush()?;
        self.time_index.file().flush()
    }

    /// Schedules index write-back without waiting.
    pub fn flush_indexes_async(&self) -> Result<()> {
        self.offset_index.file().flush_async()?;
        self.time_index.file().flush_async()
    }

    /// Deletes the segment's files.
    pub fn delete_files(self) -> Result<()> {
        let index_path = self.offset_index.file().path().to_path_buf();
        let time_path = self.time_index.file().path().to_path_buf();
        drop(self.offset_index);
        drop(self.time_index);
        for p in [&self.log_path, &index_path, &time_path] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("delete segment file", p)(e)),
            }
        }
        Ok(())
    }

    /// A snapshot for reading outside the log's lock.
    pub fn reader(&self) -> SegmentReader {
        SegmentReader {
            base_offset: self.base_offset,
            path: self.log_path.clone(),
            file: Arc::clone(&self.log),
            size: self.size,
        }
    }

    /// The offset index entry to start a scan for `offset` from.
    pub fn index_lookup(&self, offset: i64) -> OffsetPosition {
        self.offset_index.lookup(offset)
    }

    /// The time index entry to start a scan for `timestamp` from.
    pub fn time_index_lookup(&self, timestamp: i64) -> TimestampOffset {
        self.time_index.lookup(timestamp)
    }

    /// First offset of the segment (its name).
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset after the segment's last record.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes in the data file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Largest timestamp in the segment (−1 when none).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Last offset of the batch holding the largest timestamp.
    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }

    /// The timestamp retention compares with `retention.ms`: the largest
    /// record timestamp, or the file's modification time when there is none.
    pub fn largest_timestamp_for_retention(&self) -> i64 {
        if self.max_timestamp >= 0 {
            self.max_timestamp
        } else {
            self.created_ms
        }
    }

    /// The data file's modification time in ms (its creation time if it
    /// cannot be read).
    pub fn last_modified_ms(&self) -> i64 {
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(self.created_ms, |d| d.as_millis() as i64)
    }

    /// Entries in the offset index (for tests and metrics).
    pub fn offset_index_entries(&self) -> usize {
        self.offset_index.entries()
    }

    /// Path of the data file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// Fault injection for this crate's unit tests.
#[cfg(test)]
pub(crate) mod tests_fault {
    /// Makes the next segment write fail with an I/O error.
    pub static FAIL_NEXT_WRITE: std::sync::atomic::AtomicBool =
        std::sync::atomic::AtomicBool::new(false);
}

/// A read-only view of a segment's data file as of a moment: bytes below
/// `size` never change until the segment is truncated or deleted.
#[derive(Debug, Clone)]
pub struct SegmentReader {
    /// The segment's base offset.
    pub base_offset: i64,
    path: PathBuf,
    file: Arc<File>,
    /// Bytes readable.
    pub size: u64,
}

impl SegmentReader {
    /// Reads exactly `len` bytes at `position`.
    pub fn read(&self, position: u64, len: usize) -> Result<Bytes> {
        if position + len as u64 > self.size {
            return Err(StorageError::CorruptFile {
                path: self.path.clone(),
                reason: format!(
                    "read of {len} bytes at {position} past the end ({})",
                    self.size
                ),
            });
        }
        let mut buf = BytesMut::zeroed(len);
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(StorageError::io("read segment", &self.path))?;
        Ok(buf.freeze())
    }

    /// Reads and parses the batch header at `position`.
    pub fn header_at(&self, position: u64) -> Result<BatchHeader> {
        let available = self.size.saturating_sub(position);
        let len = (BATCH_HEADER_BYTES as u64).min(available) as usize;
        let mut buf = [0u8; BATCH_HEADER_BYTES];
        let slot = buf.get_mut(..len).unwrap_or(&mut []);
        self.file
            .read_exact_at(slot, position)
            .map_err(StorageError::io("read segment", &self.path))?;
        BatchHeader::parse(slot).map_err(|e| StorageError::CorruptFile {
            path: self.path.clone(),
            reason: format!("batch at position {position}: {e}"),
        })
    }

    /// Streams the batch at `position` through CRC32C.
    fn crc_matches(
        &self,
        position: u64,
        header: &BatchHeader,
        chunk: &mut Vec<u8>,
    ) -> Result<bool> {
        // The CRC covers everything after the crc field (byte 21 on).
        let mut at = position + 21;
        let end = position + header.size_bytes() as u64;
        let mut crc = 0u32;
        while at < end {
            let n = ((end - at) as usize).min(RECOVERY_READ_CHUNK_BYTES);
            chunk.resize(n, 0);
            self.file
                .read_exact_at(chunk, at)
                .map_err(StorageError::io("read segment", &self.path))?;
            crc = crc32c::crc32c_append(crc, chunk);
            at += n as u64;
        }
        Ok(crc == header.crc)
    }

    /// Scans batch headers from `from_position` for the first batch whose
    /// last offset is `≥ offset`.
    pub fn find_batch(
        &self,
        offset: i64,
        from_position: u64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let mut position = from_position;
        while position + LOG_OVERHEAD_BYTES as u64 <= self.size {
            let header = self.header_at(position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// The position of the first batch whose base offset is `≥ offset`, or
    /// the end of the readable bytes.
    pub fn position_of_offset(&self, offset: i64, from_position: u64) -> Result<u64> {
        let mut position = from_position;
        while position + LOG_OVERHEAD_BYTES as u64 <= self.size {
            let header = self.header_at(position)?;
            if header.base_offset >= offset {
                return Ok(position);
            }
            position += header.size_bytes() as u64;
        }
        Ok(self.size)
    }

    /// Scans batches from `from_position` for the first record with
    /// timestamp `≥ timestamp` and offset `≥ min_offset`.
    pub fn find_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
        from_position: u64,
    ) -> Result<Option<FoundRecord>> {
        let mut position = from_position;
        while position + LOG_OVERHEAD_BYTES as u64 <= self.size {
            let header = self.header_at(position)?;
            if header.max_timestamp >= timestamp && header.last_offset() >= min_offset {
                let found = self.scan_records(position, &header, |offset, ts| {
                    ts >= timestamp && offset >= min_offset
                })?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// The first record of the batch at `position` (whose header is
    /// `header`) that `pick` accepts.
    pub fn scan_records(
        &self,
        position: u64,
        header: &BatchHeader,
        mut pick: impl FnMut(i64, i64) -> bool,
    ) -> Result<Option<FoundRecord>> {
        /// Why the record walk stopped.
        enum Stop {
            Found(FoundRecord),
            Corrupt(BatchError),
        }
        impl From<BatchError> for Stop {
            fn from(e: BatchError) -> Self {
                Stop::Corrupt(e)
            }
        }
        let batch = self.read(position, header.size_bytes())?;
        let log_append = header.timestamp_type()
            == strom_protocol::kafka_protocol::records::TimestampType::LogAppend;
        let walked = for_each_record_summary(&batch, header, |record| {
            let offset = header
                .base_offset
                .saturating_add(i64::from(record.offset_delta));
            let ts = if log_append {
                header.max_timestamp
            } else {
                header.base_timestamp.saturating_add(record.timestamp_delta)
            };
            if pick(offset, ts) {
                return Err(Stop::Found(FoundRecord {
                    offset,
                    timestamp: ts,
                    leader_epoch: header.partition_leader_epoch,
                }));
            }
            Ok(())
        });
        match walked {
            Ok(()) => Ok(None),
            Err(Stop::Found(found)) => Ok(Some(found)),
            Err(Stop::Corrupt(e)) => Err(StorageError::CorruptFile {
                path: self.path.clone(),
                reason: format!("batch at position {position}: {e}"),
            }),
        }
    }
}

impl SegmentReader {
    /// fsyncs the data file.
    pub fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StorageError::io("fsync segment", &self.path))
    }
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
