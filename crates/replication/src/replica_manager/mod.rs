//! The partitions this broker hosts, kept in step with the metadata image,
//! and the produce, fetch and list-offsets paths over them. One file per
//! job, as Kafka's ReplicaManager divides it:
//!
//! * [`metadata`]: applying metadata to local replicas. Every new image is
//!   compared with the hosted partitions: logs are created for new local
//!   replicas, deleted for deleted topics (or a topic re-created under a new
//!   id), and leadership and configs are updated. `applied_offset` tells
//!   waiters which metadata offset the broker has caught up with.
//! * [`fetchers`]: the fetcher manager: one replica fetcher per leader this
//!   broker follows partitions of, and the ISR changes its led partitions
//!   need.
//! * [`produce`]: appends each partition's batch (validation and disk I/O on
//!   the blocking pool) and, for acks=all, waits for the high watermark.
//! * [`fetch`]: reads partitions in request order under Kafka's byte limits
//!   and, when fewer than `min_bytes` are available, waits up to
//!   `max_wait_ms` for any partition's high watermark to move (a delayed
//!   fetch), then reads again.
//! * [`list_offsets`]: ListOffsets by timestamp and its special values.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use parking_lot::{Mutex, RwLock};
use strom_config::throttle::{throttled_rate, FOLLOWER_THROTTLED_RATE, LEADER_THROTTLED_RATE};
use strom_config::{LogDefaults, TopicConfig};
use strom_metadata::{ConfigResourceType, MetadataImage};
use strom_protocol::ErrorCode;
use strom_runtime::byte_budget::{ByteBudget, BytePermit};
use strom_runtime::clock::{lag_clock_ms, now_ms};
use strom_storage::log::{LogAppendInfo, ReadBound};
use strom_storage::log_manager::LoadSummary;
use strom_storage::{LogManager, StorageError, TopicPartition};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::ReplicaError;
use crate::partition::{Partition, PartitionState};
use crate::replica_fetcher::{run_replica_fetcher, FetcherConfig};
use crate::replication_quota::ReplicationQuota;

mod fetch;
mod fetchers;
mod list_offsets;
mod metadata;
mod produce;

pub use fetch::{FetchParams, FetchPartition, FetchPartitionResult, IsolationLevel};
pub use list_offsets::{special_timestamps, OffsetAndTimestamp};

/// A catch-unwind boundary: runs `f`, turning a panic (a bug, already logged
/// by the panic hook) into an error for this partition only.
pub fn panic_boundary<T>(f: impl FnOnce() -> Result<T, ReplicaError>) -> Result<T, ReplicaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ReplicaError::Internal("the operation panicked".into())))
}

/// A topic's overrides as last seen, and the config resolved from them.
type CachedTopicConfig = (Arc<BTreeMap<String, String>>, Arc<TopicConfig>);

/// All partitions hosted on this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    log_manager: Arc<LogManager>,
    log_defaults: LogDefaults,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    configs: Mutex<HashMap<String, CachedTopicConfig>>,
    applied_offset: watch::Sender<i64>,
    /// One fetcher task per leader this broker follows partitions of.
    fetchers: Mutex<HashMap<i32, FetcherHandle>>,
    /// What this broker sends, as leader, to throttled replicas.
    leader_quota: Arc<ReplicationQuota>,
    /// What this broker fetches, as follower, for throttled replicas.
    follower_quota: Arc<ReplicationQuota>,
    /// acks=all produce requests waiting for the ISR (Kafka's produce
    /// purgatory).
    delayed_produces: AtomicUsize,
    /// Fetch requests waiting for data (Kafka's fetch purgatory).
    delayed_fetches: AtomicUsize,
    /// Record bytes read for consumers and not yet written to them
    /// (`queued.max.fetch.response.bytes`); `None` is unlimited.
    fetch_response_budget: Option<Arc<ByteBudget>>,
}

/// Counts one request in a purgatory while it lives. Entering tells the
/// connection serving the request that it now waits on other clients, so it
/// gives back the request budget it holds for it (`strom_runtime::parking`).
struct Delayed<'a>(&'a AtomicUsize);

impl<'a> Delayed<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        strom_runtime::parking::parked();
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Delayed<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running fetcher: where it fetches from, its partitions, its stop.
#[derive(Debug)]
struct FetcherHandle {
    address: String,
    partitions: watch::Sender<Vec<Arc<Partition>>>,
    stop: watch::Sender<bool>,
}

impl ReplicaManager {
    /// A manager over `log_manager`'s logs.
    pub fn new(node_id: i32, log_manager: Arc<LogManager>, log_defaults: LogDefaults) -> Self {
        let (applied_offset, _) = watch::channel(-1);
        Self {
            node_id,
            log_manager,
            log_defaults,
            partitions: RwLock::new(HashMap::new()),
            configs: Mutex::new(HashMap::new()),
            applied_offset,
            fetchers: Mutex::new(HashMap::new()),
            leader_quota: Arc::new(ReplicationQuota::default()),
            follower_quota: Arc::new(ReplicationQuota::default()),
            delayed_produces: AtomicUsize::new(0),
            delayed_fetches: AtomicUsize::new(0),
            fetch_response_budget: None,
        }
    }

    /// Holds what consumers' fetches read against `budget` (see
    /// [`FetchPartitionResult::memory`]); followers' fetches are not held.
    pub fn with_fetch_response_budget(mut self, budget: Arc<ByteBudget>) -> Self {
        self.fetch_response_budget = Some(budget);
        self
    }

    /// The budget consumers' fetches are held against, if any.
    pub fn fetch_response_budget(&self) -> Option<&Arc<ByteBudget>> {
        self.fetch_response_budget.as_ref()
    }

    /// acks=all produce requests waiting for the in-sync replicas now.
    pub fn delayed_produces(&self) -> usize {
        self.delayed_produces.load(Ordering::Relaxed)
    }

    /// Fetch requests waiting for data now.
    pub fn delayed_fetches(&self) -> usize {
        self.delayed_fetches.load(Ordering::Relaxed)
    }

    /// The log manager.
    pub fn log_manager(&self) -> &Arc<LogManager> {
        &self.log_manager
    }

    /// This broker's partition counts (under-replicated, under and at min
    /// ISR among the partitions it leads) and the cluster's offline
    /// partitions, as of `image`.
    pub fn partition_health(&self, image: &MetadataImage) -> strom_metadata::PartitionHealth {
        image.partition_health(self.node_id, |topic| {
            usize::try_from(self.topic_config(image, topic).min_insync_replicas).unwrap_or(1)
        })
    }

    /// The effective config of a topic in `image`.
    pub fn topic_config(&self, image: &MetadataImage, topic: &str) -> Arc<TopicConfig> {
        let overrides = image.topic_configs(topic);
        let mut cache = self.configs.lock();
        if let Some((o, c)) = cache.get(topic) {
            if Arc::ptr_eq(o, &overrides) || **o == *overrides {
                return Arc::clone(c);
            }
        }
        let config = Arc::new(TopicConfig::resolve(&self.log_defaults, &overrides).unwrap_or_else(|e| {
            tracing::error!(topic, error = %e, "invalid stored topic config; using broker defaults");
            TopicConfig::resolve(&self.log_defaults, &BTreeMap::new()).unwrap_or_else(|_| TopicConfig::kafka_defaults())
        }));
        cache.insert(topic.to_string(), (overrides, Arc::clone(&config)));
        config
    }

    /// A hosted partition.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// The hosted replicas whose logs are offline (an I/O error, a log that
    /// failed to load), as (topic id, partition): what the broker reports
    /// to the controller so their leadership and ISR membership move away.
    pub fn offline_replicas(&self) -> Vec<(Uuid, i32)> {
        self.partitions
            .read()
            .iter()
            .filter(|(_, p)| p.log().is_offline())
            .map(|(tp, p)| (p.topic_id(), tp.partition))
            .collect()
    }

    /// The partition if this broker leads it, else the Kafka error.
    pub fn leader_partition(
        &self,
        image: &MetadataImage,
        tp: &TopicPartition,
        current_leader_epoch: i32,
    ) -> Result<Arc<Partition>, ReplicaError> {
        match self.partition(tp) {
            Some(p) => {
                p.ensure_leader(current_leader_epoch)?;
                Ok(p)
            }
            None => {
                let known = image
                    .topic(&tp.topic)
                    .is_some_and(|t| t.partitions.contains_key(&tp.partition));
                Err(if known {
                    ReplicaError::NotLeaderOrFollower
                } else {
                    ReplicaError::UnknownTopicOrPartition
                })
            }
        }
    }
}
