//! A partition's log: an ordered set of segments with a log start offset, a
//! log end offset, a high watermark and a recovery point.
//!
//! The high watermark is set by the replication layer; a loaded log starts
//! from the checkpointed one, or from its log start offset when there is
//! none (never from its log end offset), as Kafka's does.
//!
//! # Directory layout
//!
//! `<log dir>/<topic>-<partition>/` holds, per segment,
//! `<base offset>.log`, `.index` and `.timeindex` (see [`crate::segment`],
//! [`crate::offset_index`], [`crate::time_index`]), plus
//! `partition.metadata`:
//!
//! ```text
//! version: 0
//! topic_id: <topic id, 22 characters of URL-safe base64>
//! ```
//!
//! written to a `.tmp` file, fsynced and renamed into place, like Kafka's.
//!
//! # Concurrency
//!
//! One mutex guards the segment map and offsets. Appends hold it for the
//! write into the page cache; reads hold it only to pick a segment and an
//! index position, then read the file through a [`SegmentReader`] snapshot
//! (bytes below a snapshot's size never change until truncation). fsync
//! happens outside the mutex.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use strom_config::{MessageTimestampType, TopicConfig};
use strom_protocol::batch::{self, BatchHeader, BatchIter};
use strom_protocol::uuid_text::{uuid_from_base64, uuid_to_base64};
use uuid::Uuid;

use crate::durable_file::{sync_dir, write_atomically};
use crate::error::{Result, StorageError};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{ProducerStateManager, SequenceCheck};
use crate::segment::{FoundRecord, LogSegment, SegmentReader, LOG_FILE_SUFFIX};
use crate::TopicPartition;

/// File holding the partition's topic id.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, −1 otherwise.
    pub log_append_time_ms: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// Records appended (0 for a duplicate).
    pub records: i64,
    /// Bytes appended (0 for a duplicate).
    pub bytes: usize,
    /// The batch was a retry of one already written: nothing was appended
    /// and the offsets are the original ones.
    pub duplicate: bool,
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Up to the high watermark (consumers).
    HighWatermark,
    /// Up to the log end offset (replicas).
    LogEnd,
}

/// The result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReadInfo {
    /// Whole batches, starting with the batch that holds the requested
    /// offset.
    pub records: Bytes,
    /// High watermark when the read started.
    pub high_watermark: i64,
    /// Log start offset when the read started.
    pub log_start_offset: i64,
    /// Log end offset when the read started.
    pub log_end_offset: i64,
}

/// Offsets of a log at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// First offset kept.
    pub log_start_offset: i64,
    /// Offset after the last record.
    pub log_end_offset: i64,
    /// Offset up to which records are committed.
    pub high_watermark: i64,
    /// Offset up to which the log is known to be on disk.
    pub recovery_point: i64,
}

/// Options for loading a log from disk.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// The broker shut down cleanly: indexes are trusted.
    pub had_clean_shutdown: bool,
    /// Checkpointed recovery point (0 when unknown).
    pub recovery_point: i64,
    /// Checkpointed log start offset (0 when unknown).
    pub log_start_offset: i64,
    /// Checkpointed high watermark, if any. Without one the log starts
    /// from its log start offset, as Kafka's does: records past it may
    /// never have reached the in-sync replicas, and only a leader, from
    /// what they fetched, may commit them (a leader alone in the ISR does
    /// so at once).
    pub high_watermark: Option<i64>,
    /// Current time.
    pub now_ms: i64,
    /// The topic's id, written to `partition.metadata` if it is missing.
    pub topic_id: Uuid,
}

/// What loading found, for logging.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Segments loaded.
    pub segments: usize,
    /// Segments re-read and re-indexed.
    pub recovered_segments: usize,
    /// Bytes cut from torn or corrupt tails.
    pub truncated_bytes: u64,
    /// Segments deleted because they followed a corrupt one.
    pub deleted_segments: usize,
}

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes freed.
    pub deleted_bytes: u64,
}

#[derive(Debug)]
struct LogState {
    segments: BTreeMap<i64, LogSegment>,
    log_start_offset: i64,
    log_end_offset: i64,
    high_watermark: i64,
    recovery_point: i64,
    last_flush_ms: i64,
    closed: bool,
    /// Set by a failed write or fsync: the log's file contents may differ
    /// from its state, so it refuses appends and reads until recovered by
    /// a restart.
    offline: Option<String>,
    producers: ProducerStateManager,
    /// Where each leader epoch starts ([`crate::leader_epoch`]).
    epochs: LeaderEpochCache,
}

impl LogState {
    /// Refuses changes to a closed or offline log.
    fn check_writable(&self, partition: &TopicPartition) -> Result<()> {
        if self.closed {
            return Err(StorageError::Closed(partition.to_string()));
        }
        self.check_online(partition)
    }

    fn check_online(&self, partition: &TopicPartition) -> Result<()> {
        match &self.offline {
            Some(reason) => Err(StorageError::LogOffline {
                partition: partition.to_string(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn active(&mut self) -> Result<&mut LogSegment> {
        self.segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::Closed("log has no segments".into()))
    }
}

/// One partition's log.
#[derive(Debug)]
pub struct Log {
    topic_partition: TopicPartition,
    dir: PathBuf,
    topic_id: Uuid,
    config: RwLock<Arc<TopicConfig>>,
    state: Mutex<LogState>,
}

fn index_capacity(config: &TopicConfig) -> usize {
    config.segment_index_bytes.max(0) as usize
}

/// A new segment's roll jitter, Kafka's `randomSegmentJitter`: uniform in
/// `[0, min(segment.jitter.ms, segment.ms))`, 0 without jitter.
pub fn random_segment_jitter_ms(config: &TopicConfig) -> i64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    let (random, _) = Uuid::new_v4().as_u64_pair();
    // `bound` is positive, so the remainder fits in it.
    (random % bound as u64) as i64
}

/// Reads a partition directory's topic id.
pub fn read_partition_metadata(dir: &Path) -> Result<Option<Uuid>> {
    let path = dir.join(PARTITION_METADATA_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", &path)(e)),
    };
    let corrupt = |reason: &str| StorageError::CorruptFile {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    let version = lines
        .next()
        .and_then(|l| l.strip_prefix("version:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| corrupt("first line must be 'version: N'"))?;
    if version < 0 {
        return Err(corrupt("negative version"));
    }
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("topic_id:"))
        .and_then(|v| uuid_from_base64(v.trim()))
        .ok_or_else(|| corrupt("second line must be 'topic_id: <base64 uuid>'"))?;
    if id.is_nil() {
        return Err(corrupt("topic id is zero"));
    }
    Ok(Some(id))
}

fn write_partition_metadata(dir: &Path, topic_id: &Uuid) -> Result<()> {
    let text = format!("version: 0\ntopic_id: {}\n", uuid_to_base64(topic_id));
    write_atomically(&dir.join(PARTITION_METADATA_FILE), text.as_bytes())
}

impl Log {
    /// Creates a new, empty log in `dir` (which must not exist yet).
    pub fn create(
        dir: PathBuf,
        topic_partition: TopicPartition,
        topic_id: Uuid,
        config: Arc<TopicConfig>,
        now_ms: i64,
    ) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(StorageError::io("create log directory", &dir))?;
        let created = (|| {
            write_partition_metadata(&dir, &topic_id)?;
            let segment = LogSegment::create(
                &dir,
                0,
                index_capacity(&config),
                now_ms,
                random_segment_jitter_ms(&config),
            )?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
            sync_dir(&dir)?;
            Ok((segment, LeaderEpochCache::load(&dir)?))
        })();
        let (segment, epochs) = match created {
            Ok(created) => created,
            Err(e) => {
                // Half a new log (a full disk) holds nothing: it goes, so a
                // retry starts afresh instead of finding a stray directory.
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut segments = BTreeMap::new();
        segments.insert(0, segment);
        Ok(Self {
            topic_partition,
            dir,
            topic_id,
            config: RwLock::new(config),
            state: Mutex::new(LogState {
                segments,
                log_start_offset: 0,
                log_end_offset: 0,
                high_watermark: 0,
                recovery_point: 0,
                last_flush_ms: now_ms,
                closed: false,
                offline: None,
                producers: ProducerStateManager::new(),
                epochs,
            }),
        })
    }

    /// Loads an existing log, recovering what an unclean shutdown may have
    /// left half-written.
    pub fn load(
        dir: PathBuf,
        topic_partition: TopicPartition,
        config: Arc<TopicConfig>,
        options: LoadOptions,
    ) -> Result<(Self, LoadReport)> {
        let topic_id = match read_partition_metadata(&dir)? {
            Some(id) => id,
            None => {
                write_partition_metadata(&dir, &options.topic_id)?;
                options.topic_id
            }
        };
        let mut report = LoadReport::default();
        let mut bases = Vec::new();
        let entries = fs::read_dir(&dir).map_err(StorageError::io("list log directory", &dir))?;
        for entry in entries {
            let entry = entry.map_err(StorageError::io("list log directory", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".deleted")
                || name.ends_with(".tmp")
                || name.ends_with(".cleaned")
                || name.ends_with(".swap")
            {
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(stem) = name.strip_suffix(LOG_FILE_SUFFIX) {
                match stem.parse::<i64>() {
                    Ok(base) if base >= 0 => bases.push(base),
                    _ => tracing::warn!(file = %name, "ignoring a file that is not a segment"),
                }
            }
        }
        bases.sort_unstable();
        // Orphan index files (no .log beside them) are removed.
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let stem = name
                    .strip_suffix(crate::segment::INDEX_FILE_SUFFIX)
                    .or_else(|| name.strip_suffix(crate::segment::TIME_INDEX_FILE_SUFFIX));
                if let Some(base) = stem.and_then(|s| s.parse::<i64>().ok()) {
                    if bases.binary_search(&base).is_err() {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }

        let capacity = index_capacity(&config);
        let index_interval = config.index_interval_bytes.max(0) as usize;
        // The segment holding the recovery point and every later one are
        // re-read after an unclean shutdown.
        let recover_from = bases
            .iter()
            .rev()
            .find(|b| **b <= options.recovery_point)
            .copied()
            .unwrap_or(i64::MIN);
        let mut segments: BTreeMap<i64, LogSegment> = BTreeMap::new();
        let mut truncated_in_segment = false;
        let last_base = bases.last().copied();
        for base in bases {
            if truncated_in_segment {
                // Everything after a corrupt batch is unflushed garbage.
                let (segment, _) = LogSegment::open(&dir, base, None, 0)?;
                segment.delete_files()?;
                report.deleted_segments += 1;
                continue;
            }
            let active = Some(base) == last_base;
            let (mut segment, indexes_missing) = LogSegment::open(
                &dir,
                base,
                active.then_some(capacity),
                random_segment_jitter_ms(&config),
            )?;
            let must_recover =
                indexes_missing || (!options.had_clean_shutdown && base >= recover_from);
            let recover = must_recover || segment.load_tail().is_err();
            if recover {
                let outcome = segment.recover(index_interval)?;
                report.recovered_segments += 1;
                report.truncated_bytes += outcome.truncated_bytes;
                if outcome.truncated_bytes > 0 {
                    truncated_in_segment = true;
                    tracing::warn!(
                        partition = %topic_partition,
                        segment = base,
                        truncated_bytes = outcome.truncated_bytes,
                        "truncated a torn or corrupt tail during recovery"
                    );
                }
                if !active {
                    segment.on_become_inactive()?;
                }
            }
            segments.insert(base, segment);
        }
        if truncated_in_segment {
            // The segment that was truncated is now the last one.
            if let Some(last) = segments.values_mut().next_back() {
                last.make_active(capacity)?;
            }
            // The segments after it are gone for good: without this, a
            // second power loss could bring their names back, with records
            // at offsets the log is about to reuse.
            if report.deleted_segments > 0 {
                sync_dir(&dir)?;
            }
        }
        if segments.is_empty() {
            let base = options.log_start_offset.max(0);
            segments.insert(
                base,
                LogSegment::create(
                    &dir,
                    base,
                    capacity,
                    options.now_ms,
                    random_segment_jitter_ms(&config),
                )?,
            );
            sync_dir(&dir)?;
        }
        report.segments = segments.len();
        let log_end_offset = segments.values().next_back().map_or(0, |s| s.next_offset());
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let log_start_offset = options.log_start_offset.max(first_base).min(log_end_offset);
        // Recovered data is fsynced so the recovery point can move to the end
        // (an empty segment has nothing to make durable).
        if report.recovered_segments > 0 {
            for s in segments.values() {
                if s.base_offset() >= recover_from && s.size() > 0 {
                    s.flush()?;
                }
            }
        }
        // Never the log end offset: that would expose records no in-sync
        // replica may have (see `LoadOptions::high_watermark`).
        let high_watermark = options
            .high_watermark
            .unwrap_or(log_start_offset)
            .clamp(log_start_offset, log_end_offset);
        let producers = rebuild_producer_state(&dir, &segments, log_end_offset)?;
        let epochs = load_leader_epochs(
            &dir,
            &topic_partition,
            &segments,
            (!options.had_clean_shutdown).then_some(recover_from),
            log_start_offset,
            log_end_offset,
        )?;
        let log = Self {
            topic_partition,
            dir,
            topic_id,
            config: RwLock::new(config),
            state: Mutex::new(LogState {
                segments,
                log_start_offset,
                log_end_offset,
                high_watermark,
                recovery_point: log_end_offset,
                last_flush_ms: options.now_ms,
                closed: false,
                offline: None,
                producers,
                epochs,
            }),
        };
        Ok((log, report))
    }

    /// A log that failed to load with `reason`: it has no segments, answers
    /// every read and write with [`StorageError::LogOffline`]
    /// (KAFKA_STORAGE_ERROR), and keeps the checkpointed offsets of
    /// `options`, so checkpoints written meanwhile keep them too. Its files
    /// are left as they are; the next start-up tries to load it again.
    /// Holding it keeps the partition's directory from being taken for a
    /// stray and replaced by an empty log.
    pub fn failed_to_load(
        dir: PathBuf,
        topic_partition: TopicPartition,
        config: Arc<TopicConfig>,
        options: &LoadOptions,
        reason: String,
    ) -> Self {
        let log_start_offset = options.log_start_offset.max(0);
        let high_watermark = options
            .high_watermark
            .unwrap_or(log_start_offset)
            .max(log_start_offset);
        let recovery_point = options.recovery_point.max(0);
        let epochs = LeaderEpochCache::unread(&dir);
        Self {
            topic_partition,
            dir,
            topic_id: options.topic_id,
            config: RwLock::new(config),
            state: Mutex::new(LogState {
                segments: BTreeMap::new(),
                log_start_offset,
                log_end_offset: high_watermark.max(recovery_point),
                high_watermark,
                recovery_point,
                last_flush_ms: options.now_ms,
                closed: false,
                offline: Some(reason),
                producers: ProducerStateManager::new(),
                epochs,
            }),
        }
    }

    /// Whether the log is offline after an I/O error or failed to load.
    pub fn is_offline(&self) -> bool {
        self.state.lock().offline.is_some()
    }

    /// Refuses with [`StorageError::LogOffline`] (KAFKA_STORAGE_ERROR) when
    /// the log is offline after an I/O error or failed to load.
    pub fn check_online(&self) -> Result<()> {
        self.state.lock().check_online(&self.topic_partition)
    }

    /// The partition this log holds.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// The topic id recorded in `partition.metadata`.
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current configuration.
    pub fn config(&self) -> Arc<TopicConfig> {
        Arc::clone(&self.config.read())
    }

    /// Replaces the configuration (topic configs were altered).
    pub fn set_config(&self, config: Arc<TopicConfig>) {
        *self.config.write() = config;
    }

    /// Offsets now.
    pub fn offsets(&self) -> LogOffsets {
        let s = self.state.lock();
        LogOffsets {
            log_start_offset: s.log_start_offset,
            log_end_offset: s.log_end_offset,
            high_watermark: s.high_watermark,
            recovery_point: s.recovery_point,
        }
    }

    /// Moves the high watermark (bounded by the log end offset; never
    /// backwards except to follow truncation).
    pub fn update_high_watermark(&self, offset: i64) -> i64 {
        let mut s = self.state.lock();
        let hw = offset.clamp(s.log_start_offset, s.log_end_offset);
        if hw > s.high_watermark {
            s.high_watermark = hw;
        }
        s.high_watermark
    }

    /// Appends one validated batch as the leader: assigns offsets from the
    /// log end offset, writes the leader epoch and, for LogAppendTime topics,
    /// the append time, then fsyncs if `flush.messages` says so.
    pub fn append_as_leader(
        &self,
        mut batch: BytesMut,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LogAppendInfo> {
        let config = self.config();
        let (info, flush_to) = {
            let mut s = self.state.lock();
            s.check_writable(&self.topic_partition)?;
            let produced = BatchHeader::parse(&batch).map_err(StorageError::CorruptBatch)?;
            if produced.is_transactional() {
                return Err(StorageError::InvalidTxnState);
            }
            if let SequenceCheck::Duplicate(original) = s.producers.check(&produced)? {
                let log_append =
                    config.message_timestamp_type == MessageTimestampType::LogAppendTime;
                return Ok(LogAppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time_ms: if log_append { original.timestamp } else { -1 },
                    log_start_offset: s.log_start_offset,
                    records: 0,
                    bytes: 0,
                    duplicate: true,
                });
            }
            let base_offset = s.log_end_offset;
            batch::set_base_offset(&mut batch, base_offset);
            batch::set_partition_leader_epoch(&mut batch, leader_epoch);
            // A new epoch's start is recorded before its first batch.
            if let Err(e) = s.epochs.assign(leader_epoch, base_offset) {
                return Err(self.take_offline(&mut s, e));
            }
            let log_append_time_ms =
                if config.message_timestamp_type == MessageTimestampType::LogAppendTime {
                    batch::set_log_append_time(&mut batch, now_ms);
                    now_ms
                } else {
                    -1
                };
            let header = BatchHeader::parse(&batch).map_err(StorageError::CorruptBatch)?;
            let index_interval = config.index_interval_bytes.max(0) as usize;
            let written = self
                .maybe_roll(&mut s, &config, batch.len(), &header, now_ms)
                .and_then(|()| s.active()?.append(&batch, &header, index_interval));
            if let Err(e) = written {
                return Err(self.take_offline(&mut s, e));
            }
            s.log_end_offset = header.next_offset();
            s.producers.update(&header, now_ms);
            let info = LogAppendInfo {
                base_offset,
                last_offset: header.last_offset(),
                log_append_time_ms,
                log_start_offset: s.log_start_offset,
                records: i64::from(header.records_count),
                bytes: batch.len(),
                duplicate: false,
            };
            let unflushed = s.log_end_offset - s.recovery_point;
            let flush_to = (unflushed >= config.flush_messages).then_some(s.log_end_offset);
            (info, flush_to)
        };
        if let Some(offset) = flush_to {
            if let Err(e) = self.flush(offset, now_ms) {
                // The batch may not be durable: it must not be acknowledged,
                // and nothing after it may be written over an unknown state.
                return Err(self.take_offline(&mut self.state.lock(), e));
            }
        }
        Ok(info)
    }

    /// Appends batches a follower fetched from its leader, as they are:
    /// offsets, leader epochs and timestamps were assigned by the leader.
    /// Each batch's CRC is checked and the batches must continue the log
    /// exactly (the first starts at the log end offset, each follows the
    /// last); anything else appends nothing. Leader epochs seen for the
    /// first time are recorded, and producer state follows, so this
    /// replica can lead later. Returns the new log end offset.
    pub fn append_as_follower(&self, records: &[u8], now_ms: i64) -> Result<i64> {
        let config = self.config();
        let mut batches = Vec::new();
        let mut position = 0;
        while position < records.len() {
            let Some(rest) = records.get(position..) else {
                break;
            };
            let header = match batch::check_batch(rest) {
                Ok(h) => h,
                // A fetch response may end with a partial batch: it is left
                // for the next fetch.
                Err(batch::BatchError::Truncated { .. }) => break,
                Err(e) => return Err(StorageError::CorruptBatch(e)),
            };
            let size = header.size_bytes();
            batches.push((position, header));
            position += size;
        }
        let (end, flush_to) = {
            let mut s = self.state.lock();
            s.check_writable(&self.topic_partition)?;
            let mut expected = s.log_end_offset;
            for (_, header) in &batches {
                if header.base_offset != expected || header.last_offset() < header.base_offset {
                    return Err(StorageError::UnexpectedAppendOffset {
                        expected,
                        got: header.base_offset,
                    });
                }
                expected = header.next_offset();
            }
            let index_interval = config.index_interval_bytes.max(0) as usize;
            for (start, header) in &batches {
                let Some(bytes) = records.get(*start..*start + header.size_bytes()) else {
                    break;
                };
                let written = s
                    .epochs
                    .assign(header.partition_leader_epoch, header.base_offset)
                    .and_then(|_| self.maybe_roll(&mut s, &config, bytes.len(), header, now_ms))
                    .and_then(|()| s.active()?.append(bytes, header, index_interval));
                if let Err(e) = written {
                    return Err(self.take_offline(&mut s, e));
                }
                s.log_end_offset = header.next_offset();
                s.producers.update(header, header.max_timestamp);
            }
            let unflushed = s.log_end_offset - s.recovery_point;
            let flush_to = (unflushed >= config.flush_messages).then_some(s.log_end_offset);
            (s.log_end_offset, flush_to)
        };
        if let Some(offset) = flush_to {
            if let Err(e) = self.flush(offset, now_ms) {
                return Err(self.take_offline(&mut self.state.lock(), e));
            }
        }
        Ok(end)
    }

    /// Marks the log offline after an I/O error and returns the error the
    /// caller reports (KAFKA_STORAGE_ERROR).
    fn take_offline(&self, s: &mut LogState, e: StorageError) -> StorageError {
        tracing::error!(partition = %self.topic_partition, error = %e, "log is offline after an I/O error; restart the broker to recover it");
        let reason = e.to_string();
        s.offline = Some(reason.clone());
        StorageError::LogOffline {
            partition: self.topic_partition.to_string(),
            reason,
        }
    }

    /// Rolls a new segment before `header`'s batch when the active segment
    /// is full or old enough by record time (see [`crate::segment`]).
    fn maybe_roll(
        &self,
        s: &mut LogState,
        config: &TopicConfig,
        batch_bytes: usize,
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<()> {
        let needs_roll = s.active()?.should_roll(
            batch_bytes,
            header.last_offset(),
            header.max_timestamp,
            config.segment_bytes,
            config.segment_ms,
            now_ms,
        );
        if needs_roll {
            self.roll(s, config, now_ms)?;
        }
        Ok(())
    }

    fn roll(&self, s: &mut LogState, config: &TopicConfig, now_ms: i64) -> Result<()> {
        let new_base = s.log_end_offset;
        if s.segments.contains_key(&new_base) {
            return Ok(());
        }
        s.active()?.on_become_inactive()?;
        s.producers.write_snapshot(&self.dir, new_base)?;
        let segment = LogSegment::create(
            &self.dir,
            new_base,
            index_capacity(config),
            now_ms,
            random_segment_jitter_ms(config),
        )?;
        sync_dir(&self.dir)?;
        s.segments.insert(new_base, segment);
        tracing::debug!(partition = %self.topic_partition, base_offset = new_base, "rolled a new segment");
        Ok(())
    }

    /// Rolls a new segment now if the active one is not empty.
    pub fn force_roll(&self, now_ms: i64) -> Result<()> {
        let config = self.config();
        let mut s = self.state.lock();
        s.check_writable(&self.topic_partition)?;
        if s.active()?.size() > 0 {
            self.roll(&mut s, &config, now_ms)?;
        }
        Ok(())
    }

    /// fsyncs every segment holding offsets below `offset` that is not yet
    /// known to be on disk, then moves the recovery point.
    pub fn flush(&self, offset: i64, now_ms: i64) -> Result<()> {
        let files: Vec<SegmentReader> = {
            let s = self.state.lock();
            if offset <= s.recovery_point {
                return Ok(());
            }
            s.check_online(&self.topic_partition)?;
            let first = s
                .segments
                .range(..=s.recovery_point)
                .next_back()
                .map_or(i64::MIN, |(b, _)| *b);
            let mut out = Vec::new();
            for (_, seg) in s.segments.range(first..offset) {
                seg.flush_indexes_async()?;
                out.push(seg.reader());
            }
            out
        };
        for f in &files {
            f.sync_data()?;
        }
        let mut s = self.state.lock();
        if offset > s.recovery_point {
            s.recovery_point = offset.min(s.log_end_offset);
        }
        s.last_flush_ms = now_ms;
        Ok(())
    }

    /// fsyncs when `flush.ms` has passed since the last flush and there is
    /// unflushed data.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<()> {
        let flush_ms = self.config().flush_ms;
        let (due, end) = {
            let s = self.state.lock();
            // An offline log has nothing it could flush (and would only
            // repeat its error).
            let due = s.offline.is_none()
                && s.log_end_offset > s.recovery_point
                && now_ms.saturating_sub(s.last_flush_ms) >= flush_ms;
            (due, s.log_end_offset)
        };
        if due {
            self.flush(end, now_ms)?;
        }
        Ok(())
    }

    /// Reads whole batches starting with the one holding `start_offset`, up
    /// to `max_bytes` (or one whole batch when `min_one_batch` and the first
    /// batch is larger), never past `bound`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one_batch: bool,
    ) -> Result<LogReadInfo> {
        struct Plan {
            readers: Vec<(SegmentReader, u64)>,
            limit: Option<(i64, SegmentReader, u64)>,
        }
        let (plan, offsets) = {
            let s = self.state.lock();
            s.check_online(&self.topic_partition)?;
            let offsets = LogOffsets {
                log_start_offset: s.log_start_offset,
                log_end_offset: s.log_end_offset,
                high_watermark: s.high_watermark,
                recovery_point: s.recovery_point,
            };
            if start_offset < s.log_start_offset || start_offset > s.log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset: start_offset,
                    log_start_offset: s.log_start_offset,
                    log_end_offset: s.log_end_offset,
                });
            }
            let max_offset = match bound {
                ReadBound::HighWatermark => s.high_watermark,
                ReadBound::LogEnd => s.log_end_offset,
            };
            if start_offset >= max_offset {
                (None, offsets)
            } else {
                let first = s
                    .segments
                    .range(..=start_offset)
                    .next_back()
                    .map_or(i64::MIN, |(b, _)| *b);
                let readers: Vec<(SegmentReader, u64)> = s
                    .segments
                    .range(first..)
                    .map(|(_, seg)| {
                        let pos = if seg.base_offset() == first {
                            u64::from(seg.index_lookup(start_offset).position)
                        } else {
                            0
                        };
                        (seg.reader(), pos)
                    })
                    .collect();
                let limit = (max_offset < s.log_end_offset)
                    .then(|| {
                        s.segments.range(..=max_offset).next_back().map(|(_, seg)| {
                            (
                                max_offset,
                                seg.reader(),
                                u64::from(seg.index_lookup(max_offset).position),
                            )
                        })
                    })
                    .flatten();
                (Some(Plan { readers, limit }), offsets)
            }
        };
        let empty = LogReadInfo {
            records: Bytes::new(),
            high_watermark: offsets.high_watermark,
            log_start_offset: offsets.log_start_offset,
            log_end_offset: offsets.log_end_offset,
        };
        let Some(plan) = plan else {
            return Ok(empty);
        };
        for (reader, from) in plan.readers {
            let Some((position, header)) = reader.find_batch(start_offset, from)? else {
                continue;
            };
            let end = match &plan.limit {
                Some((max_offset, lim_reader, lim_from))
                    if lim_reader.base_offset == reader.base_offset =>
                {
                    lim_reader
                        .position_of_offset(*max_offset, *lim_from)?
                        .min(reader.size)
                }
                _ => reader.size,
            };
            if position >= end
                || header.base_offset >= plan.limit.as_ref().map_or(i64::MAX, |l| l.0)
            {
                return Ok(empty);
            }
            let available = (end - position) as usize;
            let first_batch = header.size_bytes();
            let want = if min_one_batch && first_batch > max_bytes {
                first_batch
            } else {
                max_bytes
            };
            let len = want.min(available);
            if len < first_batch {
                return Ok(empty);
            }
            let bytes = reader.read(position, len)?;
            let whole = whole_batches_len(&bytes);
            return Ok(LogReadInfo {
                records: bytes.slice(..whole),
                ..empty
            });
        }
        Ok(empty)
    }

    /// The first record with timestamp `≥ timestamp` (at or after the log
    /// start offset).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<FoundRecord>> {
        let candidates: Vec<(SegmentReader, u64, i64)> = {
            let s = self.state.lock();
            s.check_online(&self.topic_partition)?;
            let log_start = s.log_start_offset;
            s.segments
                .values()
                .filter(|seg| seg.next_offset() > log_start && seg.max_timestamp() >= timestamp)
                .map(|seg| {
                    let min_offset = log_start.max(seg.base_offset());
                    let entry = seg.time_index_lookup(timestamp);
                    let pos = seg.index_lookup(entry.offset.max(min_offset)).position;
                    (seg.reader(), u64::from(pos), min_offset)
                })
                .collect()
        };
        for (reader, position, min_offset) in candidates {
            if let Some(found) = reader.find_timestamp(timestamp, min_offset, position)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first such record).
    pub fn max_timestamp_record(&self) -> Result<Option<FoundRecord>> {
        let target = {
            let s = self.state.lock();
            s.check_online(&self.topic_partition)?;
            let mut best: Option<&LogSegment> = None;
            for seg in s.segments.values() {
                if seg.max_timestamp() >= 0
                    && best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp())
                {
                    best = Some(seg);
                }
            }
            best.map(|seg| {
                let pos = seg.index_lookup(seg.offset_of_max_timestamp()).position;
                (
                    seg.reader(),
                    u64::from(pos),
                    seg.max_timestamp(),
                    s.log_start_offset,
                )
            })
        };
        let Some((reader, mut position, max_ts, log_start)) = target else {
            return Ok(None);
        };
        while position < reader.size {
            let header = reader.header_at(position)?;
            if header.max_timestamp == max_ts && header.last_offset() >= log_start {
                if let Some(found) = reader.scan_records(position, &header, |off, ts| {
                    ts == max_ts && off >= log_start
                })? {
                    return Ok(Some(FoundRecord {
                        timestamp: max_ts,
                        ..found
                    }));
                }
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// ListOffsets v0's answer: up to `max_offsets` offsets, in descending
    /// order, of segment starts (and the log end) whose segment was last
    /// modified at or before `timestamp` (−1: start from the log end, −2:
    /// only the log start), as Kafka's `fetchOffsetsBefore` computes them.
    pub fn offsets_before(&self, timestamp: i64, max_offsets: usize, now_ms: i64) -> Vec<i64> {
        let mut points: Vec<(i64, i64)> = {
            let s = self.state.lock();
            let mut points: Vec<(i64, i64)> = s
                .segments
                .values()
                .map(|seg| {
                    (
                        seg.base_offset().max(s.log_start_offset),
                        seg.last_modified_ms(),
                    )
                })
                .collect();
            if s.segments
                .values()
                .next_back()
                .is_some_and(|seg| seg.size() > 0)
            {
                points.push((s.log_end_offset, now_ms));
            }
            points
        };
        let start = match timestamp {
            -1 => points.len().checked_sub(1),
            -2 => (!points.is_empty()).then_some(0),
            t => points.iter().rposition(|(_, modified)| *modified <= t),
        };
        let Some(start) = start else {
            return Vec::new();
        };
        points.truncate(start + 1);
        let mut out: Vec<i64> = points
            .iter()
            .rev()
            .take(max_offsets)
            .map(|(o, _)| *o)
            .collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        out
    }

    /// Deletes segments past `retention.ms` or beyond `retention.bytes` (for
    /// `cleanup.policy` with `delete`), only below the high watermark, and
    /// moves the log start offset.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let config = self.config();
        if !config.cleanup_delete {
            return Ok(RetentionOutcome::default());
        }
        let removed: Vec<LogSegment> = {
            let mut s = self.state.lock();
            if s.closed || s.offline.is_some() {
                return Ok(RetentionOutcome::default());
            }
            let bases: Vec<i64> = s.segments.keys().copied().collect();
            let total: u64 = s.segments.values().map(LogSegment::size).sum();
            // Bytes above retention.bytes; None when size is unlimited.
            let mut size_excess: Option<i64> = (config.retention_bytes >= 0)
                .then(|| (total as i64).saturating_sub(config.retention_bytes));
            let mut doomed = Vec::new();
            for (i, base) in bases.iter().enumerate() {
                let Some(seg) = s.segments.get(base) else {
                    break;
                };
                let upper = bases.get(i + 1).copied().unwrap_or(s.log_end_offset);
                if seg.size() == 0 || upper > s.high_watermark {
                    break;
                }
                let by_time = config.retention_ms >= 0
                    && now_ms.saturating_sub(seg.largest_timestamp_for_retention())
                        > config.retention_ms;
                let by_size = size_excess.is_some_and(|excess| excess >= seg.size() as i64);
                let below_start = upper <= s.log_start_offset;
                if !(by_time || by_size || below_start) {
                    break;
                }
                if let Some(excess) = size_excess.as_mut() {
                    *excess -= seg.size() as i64;
                }
                doomed.push(*base);
            }
            if doomed.is_empty() {
                return Ok(RetentionOutcome::default());
            }
            if doomed.len() == bases.len() {
                // Keep an empty active segment at the log end.
                self.roll(&mut s, &config, now_ms)?;
            }
            let mut removed = Vec::new();
            for base in doomed {
                if let Some(seg) = s.segments.remove(&base) {
                    removed.push(seg);
                }
            }
            let first = s
                .segments
                .keys()
                .next()
                .copied()
                .unwrap_or(s.log_end_offset);
            s.log_start_offset = s.log_start_offset.max(first);
            s.high_watermark = s.high_watermark.max(s.log_start_offset);
            s.recovery_point = s.recovery_point.max(s.log_start_offset);
            let log_start = s.log_start_offset;
            s.producers.evict_below(log_start);
            ProducerStateManager::delete_snapshots_below(&self.dir, log_start);
            if let Err(e) = s.epochs.truncate_from_start(log_start) {
                return Err(self.take_offline(&mut s, e));
            }
            removed
        };
        let mut outcome = RetentionOutcome::default();
        for seg in removed {
            outcome.deleted_bytes += seg.size();
            outcome.deleted_segments += 1;
            seg.delete_files()?;
        }
        if outcome.deleted_segments > 0 {
            tracing::info!(
                partition = %self.topic_partition,
                deleted_segments = outcome.deleted_segments,
                deleted_bytes = outcome.deleted_bytes,
                log_start_offset = self.offsets().log_start_offset,
                "retention deleted segments"
            );
        }
        Ok(outcome)
    }

    /// Removes every record at or above `offset`: a follower's divergent
    /// tail, or a Raft log's conflicting entries. The whole batch holding
    /// `offset` goes, so the log may end below it; the high watermark and
    /// recovery point follow, and the producer state is rebuilt as of the
    /// new end. Truncating at or below the log start leaves an empty log
    /// starting at `offset`; at or above the log end, only leader epochs
    /// starting at the log end go. Returns the new log end offset.
    pub fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<i64> {
        let config = self.config();
        let (removed, end) = {
            let mut s = self.state.lock();
            s.check_writable(&self.topic_partition)?;
            if offset >= s.log_end_offset {
                // No record goes, but an epoch this replica started as
                // leader without appending to it (it starts at the log
                // end) does: the new leader's log says otherwise, and a
                // follower fetching with it would be told to truncate to
                // where it already is, forever. Kafka does the same.
                let end = s.log_end_offset;
                if let Err(e) = s.epochs.truncate_from_end(end) {
                    return Err(self.take_offline(&mut s, e));
                }
                return Ok(end);
            }
            match self.truncate_locked(&mut s, &config, offset.max(0), now_ms) {
                Ok(removed) => (removed, s.log_end_offset),
                Err(e) => return Err(self.take_offline(&mut s, e)),
            }
        };
        for seg in removed {
            seg.delete_files()?;
        }
        sync_dir(&self.dir)?;
        tracing::info!(partition = %self.topic_partition, offset, log_end_offset = end, "truncated the log");
        Ok(end)
    }

    /// Removes every segment and starts the log afresh, empty, at `offset`
    /// (Kafka's `truncateFullyAndStartAt`): a follower that installs a
    /// snapshot newer than its whole log.
    pub fn truncate_fully_and_start_at(&self, offset: i64, now_ms: i64) -> Result<()> {
        let config = self.config();
        let mut s = self.state.lock();
        s.check_writable(&self.topic_partition)?;
        let offset = offset.max(0);
        let removed: Vec<LogSegment> = std::mem::take(&mut s.segments).into_values().collect();
        let result = (|| {
            for seg in removed {
                seg.delete_files()?;
            }
            let segment = LogSegment::create(
                &self.dir,
                offset,
                index_capacity(&config),
                now_ms,
                random_segment_jitter_ms(&config),
            )?;
            sync_dir(&self.dir)?;
            Ok(segment)
        })();
        match result {
            Ok(segment) => {
                s.segments.insert(offset, segment);
                s.log_start_offset = offset;
                s.log_end_offset = offset;
                s.high_watermark = offset;
                s.recovery_point = offset;
                let _ = ProducerStateManager::load_latest(&self.dir, -1);
                s.producers = ProducerStateManager::new();
                if let Err(e) = s.epochs.clear() {
                    return Err(self.take_offline(&mut s, e));
                }
                tracing::info!(partition = %self.topic_partition, offset, "emptied the log to start at a new offset");
                Ok(())
            }
            Err(e) => Err(self.take_offline(&mut s, e)),
        }
    }

    fn truncate_locked(
        &self,
        s: &mut LogState,
        config: &TopicConfig,
        offset: i64,
        now_ms: i64,
    ) -> Result<Vec<LogSegment>> {
        let doomed: Vec<i64> = s.segments.range(offset..).map(|(b, _)| *b).collect();
        let removed: Vec<LogSegment> = doomed.iter().filter_map(|b| s.segments.remove(b)).collect();
        let capacity = index_capacity(config);
        if s.segments.is_empty() {
            // The new segment may take an old one's file names: those go first.
            for seg in removed {
                seg.delete_files()?;
            }
            let segment = LogSegment::create(
                &self.dir,
                offset,
                capacity,
                now_ms,
                random_segment_jitter_ms(config),
            )?;
            s.segments.insert(offset, segment);
            s.log_start_offset = offset;
            s.log_end_offset = offset;
            s.high_watermark = offset;
            s.recovery_point = offset;
            // Every producer snapshot is of records that are gone.
            let _ = ProducerStateManager::load_latest(&self.dir, -1);
            s.producers = ProducerStateManager::new();
            s.epochs.clear()?;
            return Ok(Vec::new());
        } else {
            let active = s.active()?;
            active.truncate_to(offset)?;
            active.make_active(capacity)?;
        }
        let end = s.active()?.next_offset();
        s.log_end_offset = end;
        s.log_start_offset = s.log_start_offset.min(end);
        s.high_watermark = s.high_watermark.clamp(s.log_start_offset, end);
        s.recovery_point = s.recovery_point.min(end);
        s.producers = rebuild_producer_state(&self.dir, &s.segments, end)?;
        s.epochs.truncate_from_end(end)?;
        let start = s.log_start_offset;
        s.epochs.truncate_from_start(start)?;
        Ok(removed)
    }

    /// Moves the log start offset up to `offset` (at most the high
    /// watermark), deleting the segments wholly below it: DeleteRecords,
    /// or a Raft log purging entries a snapshot holds. Returns the new log
    /// start offset.
    pub fn increment_log_start_offset(&self, offset: i64, now_ms: i64) -> Result<i64> {
        let config = self.config();
        let (removed, start) = {
            let mut s = self.state.lock();
            s.check_writable(&self.topic_partition)?;
            let target = offset.min(s.high_watermark);
            if target <= s.log_start_offset {
                return Ok(s.log_start_offset);
            }
            s.log_start_offset = target;
            s.recovery_point = s.recovery_point.max(target);
            let bases: Vec<i64> = s.segments.keys().copied().collect();
            let mut doomed = Vec::new();
            for (i, base) in bases.iter().enumerate() {
                let upper = bases.get(i + 1).copied().unwrap_or(s.log_end_offset);
                // An empty active segment at the log end always stays.
                if upper > target || *base == s.log_end_offset {
                    break;
                }
                doomed.push(*base);
            }
            if doomed.len() == bases.len() {
                // Keep an empty active segment at the log end.
                if let Err(e) = self.roll(&mut s, &config, now_ms) {
                    return Err(self.take_offline(&mut s, e));
                }
            }
            let removed: Vec<LogSegment> =
                doomed.iter().filter_map(|b| s.segments.remove(b)).collect();
            s.producers.evict_below(target);
            ProducerStateManager::delete_snapshots_below(&self.dir, target);
            if let Err(e) = s.epochs.truncate_from_start(target) {
                return Err(self.take_offline(&mut s, e));
            }
            (removed, target)
        };
        for seg in removed {
            seg.delete_files()?;
        }
        Ok(start)
    }

    /// OffsetForLeaderEpoch: the largest epoch not above `requested` this
    /// log knows and the offset where it ends (see
    /// [`LeaderEpochCache::end_offset_for`]).
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let s = self.state.lock();
        s.epochs.end_offset_for(requested, s.log_end_offset)
    }

    /// As a new leader in `leader_epoch`: records that the epoch starts at
    /// the log end offset (Kafka's `maybeAssignEpochStartOffset`), unless
    /// the log already knows this epoch or a newer one.
    pub fn assign_epoch_start_offset(&self, leader_epoch: i32) -> Result<()> {
        let mut s = self.state.lock();
        s.check_writable(&self.topic_partition)?;
        if s.epochs.latest_epoch().is_some_and(|e| e >= leader_epoch) {
            return Ok(());
        }
        let end = s.log_end_offset;
        if let Err(e) = s.epochs.assign(leader_epoch, end) {
            return Err(self.take_offline(&mut s, e));
        }
        Ok(())
    }

    /// The newest leader epoch in the log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.lock().epochs.latest_epoch()
    }

    /// Every (leader epoch, start offset), oldest first.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        self.state.lock().epochs.entries()
    }

    /// Forgets producers idle for `expiration_ms`; returns how many.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.state
            .lock()
            .producers
            .remove_expired(now_ms, expiration_ms)
    }

    /// The producer state (for tests and DescribeProducers).
    pub fn producer_state(&self) -> ProducerStateManager {
        self.state.lock().producers.clone()
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state
            .lock()
            .segments
            .values()
            .map(LogSegment::size)
            .sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.lock().segments.keys().copied().collect()
    }

    /// Flushes everything and trims the active segment's indexes; the log
    /// accepts no more appends. An offline log, or one that fails to close,
    /// is only marked closed and the error returned: its files stay as they
    /// are, and the caller must not record a clean shutdown for it, so the
    /// next start-up recovers it.
    pub fn close(&self, now_ms: i64) -> Result<()> {
        let end = self.offsets().log_end_offset;
        let flushed = self.flush(end, now_ms);
        let mut s = self.state.lock();
        if let Err(e) = s.check_online(&self.topic_partition) {
            s.closed = true;
            return Err(e);
        }
        if s.closed {
            return flushed;
        }
        s.closed = true;
        let closed = flushed.and_then(|()| {
            let end = s.log_end_offset;
            s.producers.write_snapshot(&self.dir, end)?;
            s.active()?.on_become_inactive()?;
            for seg in s.segments.values() {
                seg.flush()?;
            }
            Ok(())
        });
        closed.map_err(|e| self.take_offline(&mut s, e))
    }

    /// Marks the log closed without flushing (it is about to be deleted).
    pub fn mark_closed(&self) {
        self.state.lock().closed = true;
    }
}

/// The producer state as of `log_end_offset`: the newest snapshot, then the
/// headers of every batch after it.
fn rebuild_producer_state(
    dir: &Path,
    segments: &BTreeMap<i64, LogSegment>,
    log_end_offset: i64,
) -> Result<ProducerStateManager> {
    let (mut producers, from) = ProducerStateManager::load_latest(dir, log_end_offset);
    let first = segments
        .range(..=from)
        .next_back()
        .map_or(i64::MIN, |(b, _)| *b);
    for seg in segments.range(first..).map(|(_, s)| s) {
        let reader = seg.reader();
        let mut position = if seg.base_offset() == first {
            u64::from(seg.index_lookup(from).position)
        } else {
            0
        };
        while position < reader.size {
            let header = reader.header_at(position)?;
            if header.base_offset >= from {
                producers.update(&header, header.max_timestamp);
            }
            position += header.size_bytes() as u64;
        }
    }
    Ok(producers)
}

/// The leader epoch cache of a loaded log: the checkpoint file, completed
/// from the batches of recovered segments (from `recovered_from`) after an
/// unclean shutdown, and cut to the log's offsets. A missing file for a
/// non-empty log, or a corrupt one, is rebuilt from every batch's leader
/// epoch.
fn load_leader_epochs(
    dir: &Path,
    partition: &TopicPartition,
    segments: &BTreeMap<i64, LogSegment>,
    recovered_from: Option<i64>,
    log_start_offset: i64,
    log_end_offset: i64,
) -> Result<LeaderEpochCache> {
    let loaded = match LeaderEpochCache::load(dir) {
        Ok(cache) if cache.entries().is_empty() && log_end_offset > log_start_offset => None,
        Ok(cache) => Some(cache),
        Err(StorageError::CorruptFile { reason, .. }) => {
            tracing::warn!(%partition, %reason, "rebuilding a corrupt leader epoch checkpoint from the log");
            None
        }
        Err(e) => return Err(e),
    };
    let mut cache = match loaded {
        Some(mut cache) => {
            if let Some(from) = recovered_from {
                cache.assign_all(epoch_starts(segments, from)?)?;
            }
            cache
        }
        None => LeaderEpochCache::rebuild(dir, epoch_starts(segments, i64::MIN)?)?,
    };
    cache.truncate_from_end(log_end_offset)?;
    cache.truncate_from_start(log_start_offset)?;
    Ok(cache)
}

/// Where each leader epoch starts in the batches of segments from the one
/// holding `from` on (reading batch headers only).
fn epoch_starts(segments: &BTreeMap<i64, LogSegment>, from: i64) -> Result<Vec<(i32, i64)>> {
    let first = segments
        .range(..=from)
        .next_back()
        .map_or(i64::MIN, |(b, _)| *b);
    let mut starts: Vec<(i32, i64)> = Vec::new();
    for seg in segments.range(first..).map(|(_, s)| s) {
        let reader = seg.reader();
        let mut position = 0;
        while position < reader.size {
            let header = reader.header_at(position)?;
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && starts.last().is_none_or(|(e, _)| *e != epoch) {
                starts.push((epoch, header.base_offset));
            }
            position += header.size_bytes() as u64;
        }
    }
    Ok(starts)
}

/// Bytes of the leading whole batches in `bytes`.
fn whole_batches_len(bytes: &[u8]) -> usize {
    let mut end = 0;
    for item in BatchIter::new(bytes) {
        match item {
            Ok((pos, header)) => end = pos + header.size_bytes(),
            Err(_) => break,
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::batch_builder::BatchBuilder;

    fn batch() -> BytesMut {
        BytesMut::from(&BatchBuilder::of_values(0, &[b"v"]).build()[..])
    }

    #[test]
    fn each_segment_draws_its_jitter_below_segment_ms_and_segment_jitter_ms() {
        let mut config = TopicConfig::kafka_defaults();
        assert_eq!(random_segment_jitter_ms(&config), 0, "no jitter by default");
        config.segment_ms = 1_000;
        config.segment_jitter_ms = 250;
        let draws: Vec<i64> = (0..64).map(|_| random_segment_jitter_ms(&config)).collect();
        assert!(draws.iter().all(|j| (0..250).contains(j)), "{draws:?}");
        assert!(draws.iter().any(|j| *j != draws[0]), "{draws:?}");
        // Never more than segment.ms.
        config.segment_jitter_ms = i64::MAX;
        assert!((0..64).all(|_| (0..1_000).contains(&random_segment_jitter_ms(&config))));
    }

    #[test]
    fn an_io_error_takes_the_log_offline_until_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(TopicConfig::kafka_defaults());
        let log = Log::create(
            dir.path().join("t-0"),
            TopicPartition::new("t", 0),
            Uuid::new_v4(),
            config,
            0,
        )
        .unwrap();
        log.append_as_leader(batch(), 0, 0).unwrap();
        crate::segment::tests_fault::FAIL_NEXT_WRITE
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let e = log.append_as_leader(batch(), 0, 0).unwrap_err();
        assert_eq!(e.error_code(), strom_protocol::ErrorCode::KafkaStorageError);
        // Later appends and reads are refused, not silently accepted.
        assert!(matches!(
            log.append_as_leader(batch(), 0, 0),
            Err(StorageError::LogOffline { .. })
        ));
        assert!(matches!(
            log.read(0, 100, ReadBound::LogEnd, true),
            Err(StorageError::LogOffline { .. })
        ));
        assert_eq!(log.offsets().log_end_offset, 1);
    }

    fn load_options(had_clean_shutdown: bool) -> LoadOptions {
        LoadOptions {
            had_clean_shutdown,
            recovery_point: 0,
            log_start_offset: 0,
            high_watermark: None,
            now_ms: 0,
            topic_id: Uuid::nil(),
        }
    }

    #[test]
    fn leader_epochs_follow_appends_truncation_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-0");
        let config = Arc::new(TopicConfig::kafka_defaults());
        let tp = TopicPartition::new("t", 0);
        let log = Log::create(
            path.clone(),
            tp.clone(),
            Uuid::new_v4(),
            Arc::clone(&config),
            0,
        )
        .unwrap();
        for epoch in [0, 0, 2, 2, 2, 5] {
            log.append_as_leader(batch(), epoch, 0).unwrap();
        }
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2), (5, 5)]);
        assert_eq!(log.end_offset_for_epoch(2), (2, 5));
        assert_eq!(log.end_offset_for_epoch(5), (5, 6));
        assert_eq!(log.end_offset_for_epoch(3), (2, 5));
        // A divergent tail goes, and its epoch with it.
        log.truncate_to(4, 0).unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2)]);
        log.append_as_leader(batch(), 6, 0).unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2), (6, 4)]);
        log.close(0).unwrap();
        // A clean restart reads the checkpoint.
        let (log, _) = Log::load(
            path.clone(),
            tp.clone(),
            Arc::clone(&config),
            load_options(true),
        )
        .unwrap();
        assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 2), (6, 4)]);
        log.mark_closed();
        drop(log);
        // A corrupt or missing checkpoint is rebuilt from the batches.
        for damage in ["0\n9\n", ""] {
            let file = path.join(crate::leader_epoch::LEADER_EPOCH_CHECKPOINT_FILE);
            if damage.is_empty() {
                std::fs::remove_file(&file).unwrap();
            } else {
                std::fs::write(&file, damage).unwrap();
            }
            let (log, _) = Log::load(
                path.clone(),
                tp.clone(),
                Arc::clone(&config),
                load_options(false),
            )
            .unwrap();
            assert_eq!(
                log.leader_epochs(),
                vec![(0, 0), (2, 2), (6, 4)],
                "{damage:?}"
            );
            log.mark_closed();
        }
        // Moving the log start trims the oldest epochs.
        let (log, _) =
            Log::load(path.clone(), tp, Arc::clone(&config), load_options(true)).unwrap();
        log.update_high_watermark(5);
        log.increment_log_start_offset(3, 0).unwrap();
        assert_eq!(log.leader_epochs(), vec![(2, 3), (6, 4)]);
        log.truncate_fully_and_start_at(10, 0).unwrap();
        assert!(log.leader_epochs().is_empty());
    }

    #[test]
    fn a_new_leaders_epoch_starts_at_the_log_end_until_truncated_there() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(
            dir.path().join("t-0"),
            TopicPartition::new("t", 0),
            Uuid::new_v4(),
            Arc::new(TopicConfig::kafka_defaults()),
            0,
        )
        .unwrap();
        log.append_as_leader(batch(), 3, 0).unwrap();
        log.append_as_leader(batch(), 3, 0).unwrap();
        // Leader in epoch 5, nothing appended yet: epoch 3 ended at 2.
        log.assign_epoch_start_offset(5).unwrap();
        assert_eq!(log.leader_epochs(), vec![(3, 0), (5, 2)]);
        assert_eq!(log.end_offset_for_epoch(4), (3, 2));
        // An older or the same epoch changes nothing.
        log.assign_epoch_start_offset(4).unwrap();
        log.assign_epoch_start_offset(5).unwrap();
        assert_eq!(log.leader_epochs(), vec![(3, 0), (5, 2)]);
        // Deposed before appending, told to truncate at its log end: no
        // record goes, the empty epoch does.
        assert_eq!(log.truncate_to(2, 0).unwrap(), 2);
        assert_eq!(log.leader_epochs(), vec![(3, 0)]);
        assert_eq!(log.latest_epoch(), Some(3));
    }

    #[test]
    fn a_follower_appends_the_leaders_batches_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(TopicConfig::kafka_defaults());
        let make = |name: &str| {
            Log::create(
                dir.path().join(name),
                TopicPartition::new(name, 0),
                Uuid::new_v4(),
                Arc::clone(&config),
                0,
            )
            .unwrap()
        };
        let leader = make("leader");
        let follower = make("follower");
        for epoch in [1, 1, 4] {
            leader.append_as_leader(batch(), epoch, 0).unwrap();
        }
        let all = leader
            .read(0, 1 << 20, ReadBound::LogEnd, true)
            .unwrap()
            .records;
        // A fetch response may end in a partial batch: only whole ones go in.
        let cut = all.len() - 5;
        assert_eq!(follower.append_as_follower(&all[..cut], 0).unwrap(), 2);
        // The rest, from the follower's end.
        let rest = leader
            .read(2, 1 << 20, ReadBound::LogEnd, true)
            .unwrap()
            .records;
        assert_eq!(follower.append_as_follower(&rest, 0).unwrap(), 3);
        assert_eq!(follower.leader_epochs(), leader.leader_epochs());
        let copied = follower
            .read(0, 1 << 20, ReadBound::LogEnd, true)
            .unwrap()
            .records;
        assert_eq!(copied, all, "stored as received");
        // Batches that do not continue the log are refused whole.
        assert!(matches!(
            follower.append_as_follower(&all, 0),
            Err(StorageError::UnexpectedAppendOffset {
                expected: 3,
                got: 0
            })
        ));
        leader.append_as_leader(batch(), 4, 0).unwrap();
        let next = leader
            .read(3, 1 << 20, ReadBound::LogEnd, true)
            .unwrap()
            .records;
        let mut bad = next.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(matches!(
            follower.append_as_follower(&bad, 0),
            Err(StorageError::CorruptBatch(_))
        ));
        assert_eq!(follower.offsets().log_end_offset, 3);
        assert_eq!(follower.append_as_follower(&next, 0).unwrap(), 4);
        // Nothing to append is no change.
        assert_eq!(follower.append_as_follower(&[], 0).unwrap(), 4);
    }
}
