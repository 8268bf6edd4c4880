//! ListOffsets: the offset for a timestamp, the special timestamps
//! (earliest, latest, max timestamp, ...), and the legacy v0 offsets list.

use super::*;

/// An offset found by ListOffsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// Offset (−1: none).
    pub offset: i64,
    /// Timestamp (−1: none).
    pub timestamp: i64,
    /// Leader epoch (−1: unknown).
    pub leader_epoch: i32,
}

impl OffsetAndTimestamp {
    /// "Nothing found": offset, timestamp and epoch −1.
    pub const NONE: Self = Self {
        offset: -1,
        timestamp: -1,
        leader_epoch: -1,
    };
}

/// ListOffsets' special timestamps.
pub mod special_timestamps {
    /// The next offset (high watermark, last stable offset or log end).
    pub const LATEST: i64 = -1;
    /// The log start offset.
    pub const EARLIEST: i64 = -2;
    /// The record with the largest timestamp (KIP-734).
    pub const MAX_TIMESTAMP: i64 = -3;
    /// The local log start offset (KIP-405).
    pub const EARLIEST_LOCAL: i64 = -4;
    /// The last offset in tiered storage (KIP-1005).
    pub const LATEST_TIERED: i64 = -5;
}

impl ReplicaManager {
    /// Answers one partition of ListOffsets v0: segment start offsets
    /// before a time, capped at the high watermark for consumers.
    pub fn legacy_offsets_before(
        &self,
        image: &MetadataImage,
        tp: &TopicPartition,
        timestamp: i64,
        max_offsets: usize,
        from_consumer: bool,
    ) -> Result<Vec<i64>, ReplicaError> {
        let p = self.leader_partition(image, tp, -1)?;
        let offsets = p.log().offsets_before(timestamp, max_offsets, now_ms());
        if !from_consumer {
            return Ok(offsets);
        }
        let hw = p.high_watermark();
        if offsets.iter().any(|o| *o > hw) {
            let mut capped = vec![hw];
            capped.extend(offsets.into_iter().skip_while(|o| *o > hw));
            capped.truncate(max_offsets.max(1));
            return Ok(capped);
        }
        Ok(offsets)
    }

    /// Answers one partition of ListOffsets.
    pub fn list_offset(
        &self,
        image: &MetadataImage,
        tp: &TopicPartition,
        timestamp: i64,
        isolation: Option<IsolationLevel>,
        current_leader_epoch: i32,
    ) -> Result<OffsetAndTimestamp, ReplicaError> {
        use special_timestamps::*;
        let p = self.leader_partition(image, tp, current_leader_epoch)?;
        let log = p.log();
        // An offline log's offsets are not an answer (KAFKA_STORAGE_ERROR).
        log.check_online()?;
        let offsets = log.offsets();
        let leader_epoch = p.state().leader_epoch;
        let last_fetchable = match isolation {
            Some(_) => offsets.high_watermark,
            None => offsets.log_end_offset,
        };
        let capped = |found: Option<strom_storage::segment::FoundRecord>| match found {
            Some(f) if f.offset < last_fetchable => OffsetAndTimestamp {
                offset: f.offset,
                timestamp: f.timestamp,
                leader_epoch: if f.leader_epoch >= 0 {
                    f.leader_epoch
                } else {
                    -1
                },
            },
            _ => OffsetAndTimestamp::NONE,
        };
        Ok(match timestamp {
            LATEST => OffsetAndTimestamp {
                offset: last_fetchable,
                timestamp: -1,
                leader_epoch,
            },
            EARLIEST | EARLIEST_LOCAL => OffsetAndTimestamp {
                offset: offsets.log_start_offset,
                timestamp: -1,
                leader_epoch: -1,
            },
            MAX_TIMESTAMP => capped(log.max_timestamp_record()?),
            LATEST_TIERED => OffsetAndTimestamp::NONE,
            t if t >= 0 => capped(log.offset_for_timestamp(t)?),
            _ => OffsetAndTimestamp::NONE,
        })
    }
}
