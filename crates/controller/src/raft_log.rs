//! The metadata quorum's durable Raft log: `__cluster_metadata-0` under the
//! first log directory, a partition log like any other (segments, indexes,
//! crash recovery: see `strom_storage`), plus the [`crate::quorum_state`]
//! file beside it.
//!
//! # Format
//!
//! Raft entry `i` is the record batch at offset `i`: a v2 batch holding one
//! record, whose `partition_leader_epoch` is the entry's term (KRaft's
//! epoch) and whose value is JSON naming the payload:
//!
//! ```json
//! {"Records":{"records":[{"type":"Topic","name":"orders","topic_id":"..."}, ...]}}
//! "Blank"
//! {"Membership":{"membership":{"configs":[[1,2,3]],"nodes":{"1":{"host":"127.0.0.1","port":9093}, ...}}}}
//! ```
//!
//! `Records` carries the metadata records one controller operation commits
//! together (`strom_metadata::record` describes each); `Blank` is the entry
//! a new leader commits first; `Membership` is openraft's voter set.
//! Entries are appended with their term, fsynced once per append call
//! before openraft is told they are durable, truncated from a conflict on
//! (whole batches, so exactly at an entry) and purged from the front up to
//! what a snapshot holds; the purge point and the vote live in the quorum
//! state file.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, EntryPayload, LogState, Membership, OptionalSend, RaftLogReader, StorageIOError,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use strom_config::TopicConfig;
use strom_metadata::MetadataRecord;
use strom_protocol::batch::{BatchHeader, BatchIter};
use strom_protocol::batch_builder::BatchBuilder;
use strom_storage::log::{LoadOptions, Log};
use strom_storage::log_manager::METADATA_LOG_DIR_NAME;
use strom_storage::{ReadBound, TopicPartition};
use uuid::Uuid;

use crate::error::ControllerError;
use crate::quorum_state::{QuorumStateFile, QUORUM_STATE_FILE};
use crate::raft_types::{
    log_id, ControllerNode, MetadataBatch, MetadataLogId, MetadataRaft, MetadataVote,
    RaftStorageError,
};
use strom_runtime::clock::now_ms;

/// Most bytes read from the log at once.
const READ_CHUNK_BYTES: usize = 4 << 20;

/// An entry's payload as stored. (Externally tagged: an internally tagged
/// enum would buffer the membership's node map and lose its integer keys.)
#[derive(Debug, Serialize, Deserialize)]
enum StoredPayload {
    /// A new leader's first entry.
    Blank,
    /// Metadata records.
    Records {
        /// The records.
        records: Vec<MetadataRecord>,
    },
    /// A voter set.
    Membership {
        /// The set.
        membership: Membership<u64, ControllerNode>,
    },
}

/// The metadata log's configuration: never deleted by retention, flushed
/// explicitly by the store, never limited by record size.
fn metadata_log_config() -> Arc<TopicConfig> {
    let mut c = TopicConfig::kafka_defaults();
    c.cleanup_delete = false;
    c.retention_ms = -1;
    c.retention_bytes = -1;
    c.flush_messages = i64::MAX;
    c.flush_ms = i64::MAX;
    c.max_message_bytes = i32::MAX;
    c.segment_bytes = 64 << 20;
    c.message_timestamp_after_max_ms = i64::MAX;
    c.message_timestamp_before_max_ms = i64::MAX;
    Arc::new(c)
}

/// Encodes an entry as a one-record batch (offsets are assigned on append).
fn encode_entry(entry: &Entry<MetadataRaft>) -> Result<BytesMut, ControllerError> {
    let payload = match &entry.payload {
        EntryPayload::Blank => StoredPayload::Blank,
        EntryPayload::Normal(MetadataBatch(records)) => StoredPayload::Records {
            records: records.clone(),
        },
        EntryPayload::Membership(m) => StoredPayload::Membership {
            membership: m.clone(),
        },
    };
    let value = serde_json::to_vec(&payload)
        .map_err(|e| ControllerError::Corrupt(format!("cannot encode entry: {e}")))?;
    let batch = BatchBuilder::of_records(now_ms(), [(None, Some(Bytes::from(value)))]).build();
    Ok(BytesMut::from(&batch[..]))
}

/// Decodes the entry a batch holds (public for the fuzz targets).
pub fn decode_entry(
    header: &BatchHeader,
    batch: Bytes,
) -> Result<Entry<MetadataRaft>, ControllerError> {
    let corrupt = |why: String| {
        ControllerError::Corrupt(format!(
            "metadata log entry at offset {}: {why}",
            header.base_offset
        ))
    };
    let mut buf = batch;
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| corrupt(e.to_string()))?;
    let [record] = set.records.as_slice() else {
        return Err(corrupt(format!(
            "{} records, expected 1",
            set.records.len()
        )));
    };
    let value = record.value.as_deref().unwrap_or_default();
    let payload: StoredPayload =
        serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    let term = u64::try_from(header.partition_leader_epoch)
        .map_err(|_| corrupt(format!("negative term {}", header.partition_leader_epoch)))?;
    let index = u64::try_from(header.base_offset).map_err(|_| corrupt("negative offset".into()))?;
    Ok(Entry {
        log_id: log_id(term, index),
        payload: match payload {
            StoredPayload::Blank => EntryPayload::Blank,
            StoredPayload::Records { records } => EntryPayload::Normal(MetadataBatch(records)),
            StoredPayload::Membership { membership } => EntryPayload::Membership(membership),
        },
    })
}

struct Inner {
    log: Log,
    quorum: Mutex<QuorumStateFile>,
}

/// The log store (cheap to clone: every clone is the same log).
#[derive(Clone)]
pub struct RaftLogStore {
    inner: Arc<Inner>,
}

impl Debug for RaftLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore")
            .field("offsets", &self.inner.log.offsets())
            .finish()
    }
}

fn io_write(e: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::write_logs(&e).into()
}

fn io_read(e: impl std::error::Error + 'static) -> RaftStorageError {
    StorageIOError::read_logs(&e).into()
}

/// Runs blocking disk work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControllerError> + Send + 'static,
) -> Result<T, ControllerError> {
    strom_runtime::blocking::run(f)
        .await
        .map_err(|e| ControllerError::Corrupt(format!("metadata log task failed: {e}")))?
}

impl RaftLogStore {
    /// Opens (or creates) the metadata log under `log_dir`.
    pub fn open(log_dir: &Path, had_clean_shutdown: bool) -> Result<Self, ControllerError> {
        let dir = log_dir.join(METADATA_LOG_DIR_NAME);
        let tp = TopicPartition::new(strom_metadata::topic_name::CLUSTER_METADATA_TOPIC, 0);
        let config = metadata_log_config();
        let (log, quorum, start) = if dir.exists() {
            let quorum = QuorumStateFile::open(&dir)?;
            let start = quorum.state().last_purged.map_or(0, |p| p.index as i64 + 1);
            let options = LoadOptions {
                had_clean_shutdown,
                recovery_point: 0,
                log_start_offset: start,
                // Raft tracks what is committed; the storage log's high
                // watermark only caps purges here, so it is the log end
                // (a larger value is clamped to it).
                high_watermark: Some(i64::MAX),
                now_ms: now_ms(),
                topic_id: Uuid::new_v4(),
            };
            (
                Log::load(dir.clone(), tp, config, options)?.0,
                quorum,
                start,
            )
        } else {
            let log = Log::create(dir.clone(), tp, Uuid::new_v4(), config, now_ms())?;
            (log, QuorumStateFile::open(&dir)?, 0)
        };
        let offsets = log.offsets();
        if offsets.log_end_offset > offsets.log_start_offset
            && !dir.join(QUORUM_STATE_FILE).exists()
        {
            return Err(ControllerError::Corrupt(format!(
                "{} holds a metadata log without a quorum state: it was written by an earlier \
                 Strom version; move the log directories aside to start afresh",
                dir.display()
            )));
        }
        if offsets.log_start_offset < start {
            log.increment_log_start_offset(start, now_ms())?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                log,
                quorum: Mutex::new(quorum),
            }),
        })
    }

    /// Offset the next entry will get.
    pub fn next_index(&self) -> u64 {
        self.inner.log.offsets().log_end_offset.max(0) as u64
    }

    /// Flushes and closes the log.
    pub fn close(&self) -> Result<(), ControllerError> {
        self.inner.log.close(now_ms())?;
        Ok(())
    }

    /// Entries with indexes in `[start, end)`.
    fn read_entries(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<MetadataRaft>>, ControllerError> {
        let log = &self.inner.log;
        let mut out = Vec::new();
        let offsets = log.offsets();
        // Purged entries are simply not returned.
        let mut next = (start.min(i64::MAX as u64) as i64).max(offsets.log_start_offset);
        let end = (end.min(i64::MAX as u64) as i64).min(offsets.log_end_offset);
        while next < end {
            let read = log.read(next, READ_CHUNK_BYTES, ReadBound::LogEnd, true)?;
            if read.records.is_empty() {
                break;
            }
            let before = next;
            for batch in BatchIter::new(&read.records) {
                let (position, header) =
                    batch.map_err(|e| ControllerError::Corrupt(format!("metadata log: {e}")))?;
                if header.base_offset < next {
                    continue;
                }
                if header.base_offset >= end {
                    return Ok(out);
                }
                let bytes = read.records.slice(position..position + header.size_bytes());
                out.push(decode_entry(&header, bytes)?);
                next = header.next_offset();
            }
            if next == before {
                return Err(ControllerError::Corrupt(format!(
                    "metadata log: no entry at offset {next}"
                )));
            }
        }
        Ok(out)
    }

    /// The id of the last entry, if the log holds any.
    fn last_entry_id(&self) -> Result<Option<MetadataLogId>, ControllerError> {
        let o = self.inner.log.offsets();
        if o.log_end_offset <= o.log_start_offset {
            return Ok(None);
        }
        let last = (o.log_end_offset - 1) as u64;
        Ok(self
            .read_entries(last, last + 1)?
            .into_iter()
            .next()
            .map(|e| e.log_id))
    }
}

fn range_to_indexes<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<MetadataRaft> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<MetadataRaft>>, RaftStorageError> {
        let (start, end) = range_to_indexes(&range);
        self.read_entries(start, end).map_err(io_read)
    }
}

impl RaftLogStorage<MetadataRaft> for RaftLogStore {
    type LogReader = RaftLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<MetadataRaft>, RaftStorageError> {
        let last_purged_log_id = self.inner.quorum.lock().state().last_purged;
        let last = self.last_entry_id().map_err(io_read)?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &MetadataVote) -> Result<(), RaftStorageError> {
        let inner = Arc::clone(&self.inner);
        let vote = *vote;
        blocking(move || inner.quorum.lock().save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<MetadataVote>, RaftStorageError> {
        Ok(self.inner.quorum.lock().state().vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<MetadataLogId>,
    ) -> Result<(), RaftStorageError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.quorum.lock().save_committed(committed))
            .await
            .map_err(io_write)
    }

    async fn read_committed(&mut self) -> Result<Option<MetadataLogId>, RaftStorageError> {
        Ok(self.inner.quorum.lock().state().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<MetadataRaft>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry<MetadataRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<MetadataRaft>> = entries.into_iter().collect();
        let inner = Arc::clone(&self.inner);
        let written = blocking(move || {
            let log = &inner.log;
            for entry in &entries {
                let index = entry.log_id.index as i64;
                let o = log.offsets();
                if index < o.log_end_offset && index >= o.log_start_offset {
                    // An entry replaces the one at its index and everything
                    // after it (openraft truncates first; this keeps the log
                    // consecutive even if it did not).
                    log.truncate_to(index, now_ms())?;
                } else if index != o.log_end_offset {
                    if o.log_end_offset == o.log_start_offset {
                        // An empty log (all purged) continues after a snapshot.
                        log.truncate_fully_and_start_at(index, now_ms())?;
                    } else {
                        return Err(ControllerError::Corrupt(format!(
                            "entry {} does not follow the log end {}",
                            entry.log_id, o.log_end_offset
                        )));
                    }
                }
                let term = i32::try_from(entry.log_id.leader_id.term).map_err(|_| {
                    ControllerError::Corrupt(format!(
                        "term {} too large",
                        entry.log_id.leader_id.term
                    ))
                })?;
                let info = log.append_as_leader(encode_entry(entry)?, term, now_ms())?;
                log.update_high_watermark(info.last_offset + 1);
            }
            let end = log.offsets().log_end_offset;
            log.flush(end, now_ms())?;
            Ok(())
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(io_write(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: MetadataLogId) -> Result<(), RaftStorageError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            inner.log.truncate_to(log_id.index as i64, now_ms())?;
            Ok(())
        })
        .await
        .map_err(io_write)
    }

    async fn purge(&mut self, log_id: MetadataLogId) -> Result<(), RaftStorageError> {
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            inner.quorum.lock().save_last_purged(log_id)?;
            let target = log_id.index as i64 + 1;
            let o = inner.log.offsets();
            if target > o.log_end_offset {
                inner.log.truncate_fully_and_start_at(target, now_ms())?;
            } else {
                inner.log.increment_log_start_offset(target, now_ms())?;
            }
            Ok(())
        })
        .await
        .map_err(io_write)
    }
}
