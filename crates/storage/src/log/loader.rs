//! Creating a log and loading one from disk (Kafka's `LogLoader`): the
//! segments found in the directory, recovery of those an unclean shutdown
//! may have left half-written (re-read from the recovery point on, torn or
//! corrupt tails cut, later segments deleted), the producer state rebuilt
//! from its newest snapshot, and the leader epoch cache completed from the
//! recovered batches.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_config::TopicConfig;
use uuid::Uuid;

use super::partition_metadata::{read_partition_metadata, write_partition_metadata};
use super::{index_capacity, random_segment_jitter_ms, Log, LogState};
use crate::durable_file::sync_dir;
use crate::error::{Result, StorageError};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::ProducerStateManager;
use crate::segment::{LogSegment, LOG_FILE_SUFFIX};
use crate::TopicPartition;

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
    /// Now: the start of the first `flush.ms` interval, and the creation
    /// time of a segment created while loading.
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
}

/// The producer state as of `log_end_offset`: the newest snapshot, then the
/// headers of every batch after it.
pub(super) fn rebuild_producer_state(
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
