//! Writing to the log: appends as leader (offsets, leader epoch and
//! LogAppendTime assigned here) and as follower (batches stored as the
//! leader wrote them), rolling a new segment when the active one is full
//! or old, flushing (`flush.messages`, `flush.ms`) and closing.

use bytes::BytesMut;
use strom_config::{MessageTimestampType, TopicConfig};
use strom_protocol::batch::{self, BatchHeader};

use super::{index_capacity, random_segment_jitter_ms, Log, LogState};
use crate::durable_file::sync_dir;
use crate::error::{Result, StorageError};
use crate::producer_state::SequenceCheck;
use crate::segment::{LogSegment, SegmentReader};

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

impl Log {
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

    /// Rolls a new segment at the log end offset (unless a segment already
    /// starts there): the active one's indexes are trimmed, a
    /// producer snapshot is written, and the new name is made durable.
    pub(super) fn roll(&self, s: &mut LogState, config: &TopicConfig, now_ms: i64) -> Result<()> {
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
}
