//! A partition's log (Kafka's `UnifiedLog` over its `LocalLog`): an
//! ordered set of segments with a log start offset, a log end offset, a
//! high watermark and a recovery point.
//!
//! The high watermark is set by the replication layer; a loaded log starts
//! from the checkpointed one, or from its log start offset when there is
//! none (never from its log end offset), as Kafka's does.
//!
//! # Where things are
//!
//! This file holds the [`Log`] type, its state, and what reads or sets that
//! state directly (offsets, the high watermark, leader epochs, producer
//! state, going offline). The rest is split along Kafka's seams:
//!
//! * `append`: appends as leader and as follower, segment rolls, flushes,
//!   closing.
//! * `loader`: creating a log and loading one (Kafka's `LogLoader`):
//!   segment recovery, the producer-state rebuild, the leader epoch cache.
//! * `read`: reads and the timestamp lookups of ListOffsets.
//! * `retention`: retention, truncation and the log start offset.
//! * `partition_metadata`: the `partition.metadata` file.
//!
//! # Directory layout
//!
//! `<log dir>/<topic>-<partition>/` holds, per segment,
//! `<base offset>.log`, `.index` and `.timeindex` (see [`crate::segment`],
//! [`crate::offset_index`], [`crate::time_index`]); producer state
//! snapshots ([`crate::producer_state`]); the `leader-epoch-checkpoint`
//! ([`crate::leader_epoch`]); and `partition.metadata`, the topic id
//! (format in `partition_metadata`). Loading removes the temporary files a
//! crash may leave (`.tmp`, `.deleted`, `.cleaned`, `.swap`) and index
//! files without a segment.
//!
//! # Concurrency
//!
//! One mutex guards the segment map and offsets. Appends hold it for the
//! write into the page cache; reads hold it only to pick a segment and an
//! index position, then read the file through a
//! [`SegmentReader`](crate::segment::SegmentReader) snapshot (bytes below a
//! snapshot's size never change until truncation). fsync happens outside
//! the mutex.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_config::TopicConfig;
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::ProducerStateManager;
use crate::segment::LogSegment;
use crate::TopicPartition;

mod append;
mod loader;
mod partition_metadata;
mod read;
mod retention;
#[cfg(test)]
mod tests;

pub use append::LogAppendInfo;
pub use loader::{LoadOptions, LoadReport};
pub use partition_metadata::{read_partition_metadata, PARTITION_METADATA_FILE};
pub use read::{LogReadInfo, ReadBound};
pub use retention::RetentionOutcome;

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

/// Everything the log's mutex guards.
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

/// One partition's log. Every method takes `&self` (the state is behind
/// one mutex, see the module doc), so callers share it as `Arc<Log>`.
#[derive(Debug)]
pub struct Log {
    topic_partition: TopicPartition,
    dir: PathBuf,
    topic_id: Uuid,
    config: RwLock<Arc<TopicConfig>>,
    state: Mutex<LogState>,
}

/// Bytes reserved for each index of an active segment
/// (`segment.index.bytes`).
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

impl Log {
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

    /// The partition directory, `<log dir>/<topic>-<partition>`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The topic configuration in force.
    pub fn config(&self) -> Arc<TopicConfig> {
        Arc::clone(&self.config.read())
    }

    /// Replaces the configuration (topic configs were altered).
    pub fn set_config(&self, config: Arc<TopicConfig>) {
        *self.config.write() = config;
    }

    /// The four offsets, read together.
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

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.lock().segments.keys().copied().collect()
    }

    /// Marks the log closed without flushing (it is about to be deleted).
    pub fn mark_closed(&self) {
        self.state.lock().closed = true;
    }
}
