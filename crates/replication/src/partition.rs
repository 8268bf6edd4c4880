//! One partition replica on this broker: its log, its place in the
//! metadata (leader, leader epoch, replicas, ISR) and its high watermark.
//!
//! The high watermark is the offset every in-sync replica has; consumers
//! never read past it. With this broker as the only in-sync replica it
//! follows the log end offset on every append. Waiters (acks=all produces,
//! long-polling fetches) watch it through a `tokio::sync::watch` channel.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use strom_storage::log::{LogAppendInfo, LogReadInfo, ReadBound};
use strom_storage::validate::validate_client_records;
use strom_storage::{Log, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ReplicaError;

/// The partition's registration as this broker last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Leader broker id (−1: none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// A partition replica hosted here.
#[derive(Debug)]
pub struct Partition {
    topic_partition: TopicPartition,
    topic_id: Uuid,
    node_id: i32,
    log: Arc<Log>,
    state: RwLock<PartitionState>,
    high_watermark: watch::Sender<i64>,
    /// Bytes appended since start-up: lets a waiting fetch estimate how much
    /// new data there is without reading it.
    appended_bytes: std::sync::atomic::AtomicU64,
}

impl Partition {
    /// Wraps a log with its metadata state.
    pub fn new(node_id: i32, topic_id: Uuid, log: Arc<Log>, state: PartitionState) -> Self {
        let hw = log.offsets().high_watermark;
        let (high_watermark, _) = watch::channel(hw);
        let p = Self {
            topic_partition: log.topic_partition().clone(),
            topic_id,
            node_id,
            log,
            state: RwLock::new(state),
            high_watermark,
            appended_bytes: std::sync::atomic::AtomicU64::new(0),
        };
        p.maybe_increment_high_watermark();
        p
    }

    /// Topic and partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// Topic id.
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Current metadata state.
    pub fn state(&self) -> PartitionState {
        self.state.read().clone()
    }

    /// Applies a new registration from the metadata.
    pub fn update_state(&self, state: PartitionState) {
        *self.state.write() = state;
        self.maybe_increment_high_watermark();
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.state.read().leader == self.node_id
    }

    /// Checks a request's `current_leader_epoch` (−1 skips the check).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), ReplicaError> {
        let current = self.state.read().leader_epoch;
        match requested {
            -1 => Ok(()),
            r if r < current => Err(ReplicaError::FencedLeaderEpoch {
                request: r,
                current,
            }),
            r if r > current => Err(ReplicaError::UnknownLeaderEpoch {
                request: r,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// Leader-only check used by produce, fetch and list offsets.
    pub fn ensure_leader(&self, current_leader_epoch: i32) -> Result<(), ReplicaError> {
        self.check_leader_epoch(current_leader_epoch)?;
        if !self.is_leader() {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        Ok(())
    }

    /// Validates and appends a producer's batch. Blocking (disk I/O).
    pub fn append_as_leader(
        &self,
        records: &Bytes,
        required_acks: i16,
        produce_version: i16,
        now_ms: i64,
    ) -> Result<LogAppendInfo, ReplicaError> {
        let (leader_epoch, isr) = {
            let s = self.state.read();
            if s.leader != self.node_id {
                return Err(ReplicaError::NotLeaderOrFollower);
            }
            (s.leader_epoch, s.isr.len())
        };
        let config = self.log.config();
        if required_acks == -1 && (isr as i64) < i64::from(config.min_insync_replicas) {
            return Err(ReplicaError::NotEnoughReplicas {
                isr,
                min_isr: config.min_insync_replicas,
            });
        }
        let batch = validate_client_records(records, &config, produce_version, now_ms)?;
        let info = self.log.append_as_leader(batch, leader_epoch, now_ms)?;
        self.appended_bytes
            .fetch_add(info.bytes as u64, std::sync::atomic::Ordering::Relaxed);
        if info.duplicate {
            tracing::debug!(
                partition = %self.topic_partition,
                base_offset = info.base_offset,
                "duplicate batch of an idempotent producer: answered with its original offsets"
            );
        }
        self.maybe_increment_high_watermark();
        Ok(info)
    }

    /// Moves the high watermark to what every in-sync replica has. With no
    /// follower state tracked yet, only a partition whose ISR is this
    /// broker alone advances.
    pub fn maybe_increment_high_watermark(&self) {
        let s = self.state.read();
        if s.leader != self.node_id || s.isr.iter().any(|r| *r != self.node_id) {
            return;
        }
        drop(s);
        let end = self.log.offsets().log_end_offset;
        let hw = self.log.update_high_watermark(end);
        // Only forward: a racing append may have published a higher value.
        self.high_watermark.send_if_modified(|old| {
            let forward = hw > *old;
            if forward {
                *old = hw;
            }
            forward
        });
    }

    /// Bytes appended since start-up.
    pub fn appended_bytes(&self) -> u64 {
        self.appended_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The high watermark now.
    pub fn high_watermark(&self) -> i64 {
        self.log.offsets().high_watermark
    }

    /// A receiver that wakes when the high watermark moves.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Reads from the log. Blocking (disk I/O).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one_batch: bool,
    ) -> Result<LogReadInfo, ReplicaError> {
        Ok(self.log.read(offset, max_bytes, bound, min_one_batch)?)
    }
}
