//! The durable metadata log: `<first log dir>/__cluster_metadata-0`, a
//! partition log like any other (same segment, index and recovery rules, see
//! `strom_storage`), whose records are [`MetadataRecord`]s encoded as
//! described in `strom_metadata::record`. Every append is fsynced before it
//! counts as committed (`flush.messages=1`), and nothing is ever deleted by
//! retention.

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use strom_config::TopicConfig;
use strom_metadata::MetadataRecord;
use strom_storage::log::{LoadOptions, Log};
use strom_storage::log_manager::METADATA_LOG_DIR_NAME;
use strom_storage::{ReadBound, TopicPartition};
use uuid::Uuid;

use crate::error::ControllerError;

/// Most bytes read from the metadata log at once during replay.
const REPLAY_READ_BYTES: usize = 8 << 20;

/// The metadata log.
#[derive(Debug)]
pub struct MetadataLog {
    log: Log,
}

fn metadata_log_config() -> Arc<TopicConfig> {
    let mut c = TopicConfig::kafka_defaults();
    c.cleanup_delete = false;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    c.flush_messages = 1;
    c.max_message_bytes = i32::MAX;
    c.segment_bytes = 64 << 20;
    c.message_timestamp_after_max_ms = i64::MAX;
    Arc::new(c)
}

impl MetadataLog {
    /// Opens (or creates) the metadata log under `log_dir`.
    pub fn open(
        log_dir: &Path,
        had_clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Self, ControllerError> {
        let dir = log_dir.join(METADATA_LOG_DIR_NAME);
        let tp = TopicPartition::new(strom_metadata::topic_name::CLUSTER_METADATA_TOPIC, 0);
        let config = metadata_log_config();
        let log = if dir.exists() {
            // Every append is fsynced, so only a torn tail can need recovery;
            // the whole log is re-checked when the shutdown was not clean.
            let options = LoadOptions {
                had_clean_shutdown,
                recovery_point: 0,
                log_start_offset: 0,
                high_watermark: None,
                now_ms,
                topic_id: Uuid::new_v4(),
            };
            Log::load(dir, tp, config, options)?.0
        } else {
            Log::create(dir, tp, Uuid::new_v4(), config, now_ms)?
        };
        Ok(Self { log })
    }

    /// Offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.log.offsets().log_end_offset
    }

    /// Reads every record, in order, with its offset.
    pub fn replay(&self) -> Result<Vec<(i64, MetadataRecord)>, ControllerError> {
        let mut out = Vec::new();
        let mut next = self.log.offsets().log_start_offset;
        let end = self.log.offsets().log_end_offset;
        while next < end {
            let read = self
                .log
                .read(next, REPLAY_READ_BYTES, ReadBound::LogEnd, true)?;
            if read.records.is_empty() {
                return Err(ControllerError::Corrupt(format!(
                    "no batch at offset {next}"
                )));
            }
            let mut buf = read.records;
            while !buf.is_empty() {
                let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| {
                    ControllerError::Corrupt(format!("batch near offset {next}: {e}"))
                })?;
                for r in set.records {
                    if r.offset < next {
                        continue;
                    }
                    let value = r.value.as_deref().unwrap_or_default();
                    let record = MetadataRecord::from_json(value).map_err(|e| {
                        ControllerError::Corrupt(format!("record at offset {}: {e}", r.offset))
                    })?;
                    out.push((r.offset, record));
                    next = r.offset + 1;
                }
            }
        }
        Ok(out)
    }

    /// Appends records as one batch and fsyncs it; returns their offsets.
    pub fn append(
        &self,
        records: &[MetadataRecord],
        now_ms: i64,
    ) -> Result<Vec<i64>, ControllerError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let kafka_records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch whenever offset − sequence
                // changes; this keeps one batch with base sequence −1.
                sequence: i as i32 - 1,
                timestamp: now_ms,
                key: None,
                value: Some(Bytes::from(r.to_json())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &kafka_records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| ControllerError::Corrupt(format!("cannot encode metadata records: {e}")))?;
        let info = self.log.append_as_leader(buf, 0, now_ms)?;
        self.log.update_high_watermark(info.last_offset + 1);
        Ok((info.base_offset..=info.last_offset).collect())
    }

    /// Flushes and closes the log.
    pub fn close(&self, now_ms: i64) -> Result<(), ControllerError> {
        self.log.close(now_ms)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_replay_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = MetadataLog::open(dir.path(), true, 0).unwrap();
        let a = MetadataRecord::Topic {
            name: "a".into(),
            topic_id: Uuid::new_v4(),
        };
        let b = MetadataRecord::BrokerFencing {
            broker_id: 1,
            fenced: false,
        };
        assert_eq!(log.append(&[a.clone(), b.clone()], 5).unwrap(), vec![0, 1]);
        assert_eq!(log.append(std::slice::from_ref(&a), 6).unwrap(), vec![2]);
        drop(log); // unclean: no close
        let log = MetadataLog::open(dir.path(), false, 0).unwrap();
        let replayed = log.replay().unwrap();
        assert_eq!(replayed, vec![(0, a.clone()), (1, b), (2, a)]);
        assert_eq!(log.next_offset(), 3);
    }
}
