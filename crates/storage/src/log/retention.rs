//! Removing records: retention (`retention.ms`, `retention.bytes`),
//! truncation (a follower's divergent tail, a Raft log's conflicting
//! entries, emptying the log for a newer snapshot) and moving the log start
//! offset (DeleteRecords, Raft log purges). Segments go whole; producer
//! state, producer snapshots and the leader epoch cache follow.

use strom_config::TopicConfig;

use super::loader::rebuild_producer_state;
use super::{index_capacity, random_segment_jitter_ms, Log, LogState};
use crate::durable_file::sync_dir;
use crate::error::Result;
use crate::producer_state::ProducerStateManager;
use crate::segment::LogSegment;

/// What a retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes freed.
    pub deleted_bytes: u64,
}

impl Log {
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
}
