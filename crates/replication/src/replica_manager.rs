//! The partitions this broker hosts, kept in step with the metadata image,
//! and the produce, fetch and list-offsets paths over them.
//!
//! * Reconciliation: every new metadata image is compared with the hosted
//!   partitions: logs are created for new local replicas, deleted for
//!   deleted topics (or a topic re-created under a new id), and leadership
//!   and configs are updated. `applied_offset` tells waiters which metadata
//!   offset the broker has caught up with.
//! * Produce appends each partition's batch (validation and disk I/O on the
//!   blocking pool) and, for acks=all, waits for the high watermark.
//! * Fetch reads partitions in request order under Kafka's byte limits and,
//!   when fewer than `min_bytes` are available, waits up to `max_wait_ms`
//!   for any partition's high watermark to move (a delayed fetch), then
//!   reads again.

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
use strom_storage::log::{LogAppendInfo, ReadBound};
use strom_storage::log_manager::LoadSummary;
use strom_storage::{LogManager, StorageError, TopicPartition};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::clock::{lag_clock_ms, now_ms};
use crate::error::ReplicaError;
use crate::partition::{Partition, PartitionState};
use crate::replica_fetcher::{run_replica_fetcher, FetcherConfig};
use crate::replication_quota::ReplicationQuota;

/// Runs `f`, turning a panic (a bug, already logged by the panic hook) into
/// an error for this partition only.
pub fn isolate<T>(f: impl FnOnce() -> Result<T, ReplicaError>) -> Result<T, ReplicaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ReplicaError::Internal("the operation panicked".into())))
}

/// Which records a consumer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset (the high watermark while there are no
    /// transactions).
    ReadCommitted,
}

impl IsolationLevel {
    /// From the wire value (0 or 1).
    pub fn from_wire(value: i8) -> Self {
        if value == 1 {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        }
    }
}

/// Request-wide fetch parameters.
#[derive(Debug, Clone, Copy)]
pub struct FetchParams {
    /// Longest wait for `min_bytes`.
    pub max_wait_ms: u64,
    /// Bytes wanted before answering.
    pub min_bytes: usize,
    /// Most bytes in the whole response.
    pub max_bytes: usize,
    /// Isolation level.
    pub isolation: IsolationLevel,
    /// The follower fetching, when a replica fetches (it reads up to the
    /// log end offset and its fetch offsets are its progress). Only a
    /// fetch the caller verified as coming from that broker may name it
    /// (the server checks the listener and the broker epoch).
    pub replica_id: Option<i32>,
}

/// One partition of a fetch.
#[derive(Debug, Clone)]
pub struct FetchPartition {
    /// Partition.
    pub topic_partition: TopicPartition,
    /// First offset wanted.
    pub fetch_offset: i64,
    /// Most bytes for this partition.
    pub partition_max_bytes: usize,
    /// The client's leader epoch (−1: unknown).
    pub current_leader_epoch: i32,
    /// A follower's epoch of its last fetched batch (−1: not sent); a log
    /// that diverges from the leader's there gets a diverging epoch.
    pub last_fetched_epoch: i32,
}

/// What a fetch returns for one partition.
#[derive(Debug)]
pub struct FetchPartitionResult {
    /// The error, if any.
    pub error: Option<ReplicaError>,
    /// Whole batches.
    pub records: Bytes,
    /// High watermark (−1 on error).
    pub high_watermark: i64,
    /// Last stable offset (−1 on error).
    pub last_stable_offset: i64,
    /// Log start offset (−1 on error).
    pub log_start_offset: i64,
    /// For a follower whose log diverges: the epoch and end offset it must
    /// truncate to before fetching again.
    pub diverging_epoch: Option<(i32, i64)>,
}

impl FetchPartitionResult {
    /// An answer without records at `p`'s current offsets.
    fn no_records(p: &Partition, diverging_epoch: Option<(i32, i64)>) -> Self {
        let offsets = p.log().offsets();
        Self {
            error: None,
            records: Bytes::new(),
            high_watermark: offsets.high_watermark,
            last_stable_offset: offsets.high_watermark,
            log_start_offset: offsets.log_start_offset,
            diverging_epoch,
        }
    }

    fn error(e: ReplicaError) -> Self {
        Self {
            error: Some(e),
            records: Bytes::new(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: None,
        }
    }
}

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
}

/// Counts one request in a purgatory while it lives.
struct Delayed<'a>(&'a AtomicUsize);

impl<'a> Delayed<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
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
        }
    }

    /// acks=all produce requests waiting for the in-sync replicas now.
    pub fn delayed_produces(&self) -> usize {
        self.delayed_produces.load(Ordering::Relaxed)
    }

    /// Fetch requests waiting for data now.
    pub fn delayed_fetches(&self) -> usize {
        self.delayed_fetches.load(Ordering::Relaxed)
    }

    /// Starts, updates and stops follower fetchers so that every partition
    /// this broker follows (it is a replica, another broker leads) is
    /// fetched from its leader's `listener`. Call after each
    /// [`ReplicaManager::reconcile`], from within the runtime.
    pub fn sync_fetchers(&self, image: &MetadataImage, listener: &str, config: &FetcherConfig) {
        let mut wanted: HashMap<i32, Vec<Arc<Partition>>> = HashMap::new();
        for p in self.all_partitions() {
            let state = p.state();
            if state.leader >= 0 && state.leader != self.node_id {
                wanted.entry(state.leader).or_default().push(p);
            }
        }
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, handle| {
            let keep = wanted.contains_key(leader);
            if !keep {
                let _ = handle.stop.send(true);
            }
            keep
        });
        for (leader, mut partitions) in wanted {
            partitions.sort_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
            let address = image
                .broker(leader)
                .and_then(|b| b.endpoints.iter().find(|e| e.name == listener))
                .map(|e| format!("{}:{}", e.host, e.port));
            let Some(address) = address else {
                tracing::warn!(
                    leader,
                    listener,
                    "the leader has no endpoint on the inter-broker listener"
                );
                continue;
            };
            match fetchers.get(&leader) {
                Some(handle) if handle.address == address => {
                    handle.partitions.send_if_modified(|current| {
                        let same = current.len() == partitions.len()
                            && current
                                .iter()
                                .zip(&partitions)
                                .all(|(a, b)| Arc::ptr_eq(a, b));
                        if !same {
                            *current = partitions.clone();
                        }
                        !same
                    });
                }
                _ => {
                    if let Some(old) = fetchers.remove(&leader) {
                        let _ = old.stop.send(true);
                    }
                    let (partitions_tx, partitions_rx) = watch::channel(partitions);
                    let (stop, stopped) = watch::channel(false);
                    tokio::spawn(run_replica_fetcher(
                        leader,
                        address.clone(),
                        config.clone(),
                        Arc::clone(&self.follower_quota),
                        partitions_rx,
                        stopped,
                    ));
                    tracing::info!(leader, %address, "fetching from a leader");
                    fetchers.insert(
                        leader,
                        FetcherHandle {
                            address,
                            partitions: partitions_tx,
                            stop,
                        },
                    );
                }
            }
        }
    }

    /// The ISR changes this broker's led partitions need now (see
    /// [`Partition::propose_isr_change`]).
    pub fn isr_change_proposals(
        &self,
        lag_clock_ms: i64,
        max_lag_ms: i64,
        may_join: impl Fn(i32) -> bool,
    ) -> Vec<(Arc<Partition>, PartitionState, Vec<i32>)> {
        self.all_partitions()
            .into_iter()
            .filter_map(|p| {
                let (state, isr) = p.propose_isr_change(lag_clock_ms, max_lag_ms, &may_join)?;
                Some((p, state, isr))
            })
            .collect()
    }

    /// Stops every follower fetcher (shutdown).
    pub fn stop_fetchers(&self) {
        for (_, handle) in self.fetchers.lock().drain() {
            let _ = handle.stop.send(true);
        }
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

    /// Loads the logs on disk at start-up, setting aside those the metadata
    /// no longer has. While a log directory is offline, a hosted partition
    /// whose log was not found is held offline rather than created empty
    /// (it may live in that directory). Blocking.
    pub fn load_logs(&self, image: &MetadataImage) -> Result<LoadSummary, StorageError> {
        let mut summary = self.log_manager.load_logs(now_ms(), |tp, topic_id| {
            let topic = image.topic(&tp.topic)?;
            let hosted = topic
                .partitions
                .get(&tp.partition)
                .is_some_and(|p| p.replicas.contains(&self.node_id));
            let same_topic = topic_id.is_none_or(|id| id == topic.id);
            (hosted && same_topic).then(|| (self.topic_config(image, &tp.topic), topic.id))
        })?;
        if !self.log_manager.offline_dirs().is_empty() {
            let assigned = image
                .topics()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .filter(|(_, p)| p.replicas.contains(&self.node_id))
                        .map(|(index, _)| {
                            (
                                TopicPartition::new(topic.name.clone(), *index),
                                topic.id,
                                self.topic_config(image, &topic.name),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            summary.offline_logs += self
                .log_manager
                .hold_missing_logs_offline(assigned, now_ms());
        }
        Ok(summary)
    }

    /// Brings the hosted partitions in line with `image`. Blocking.
    pub fn reconcile(&self, image: &MetadataImage) {
        let now = now_ms();
        let mut wanted: HashMap<TopicPartition, (Uuid, PartitionState)> = HashMap::new();
        for topic in image.topics() {
            for (p, reg) in &topic.partitions {
                if reg.replicas.contains(&self.node_id) {
                    wanted.insert(
                        TopicPartition::new(topic.name.clone(), *p),
                        (
                            topic.id,
                            PartitionState {
                                leader: reg.leader,
                                leader_epoch: reg.leader_epoch,
                                partition_epoch: reg.partition_epoch,
                                replicas: reg.replicas.clone(),
                                isr: reg.isr.clone(),
                            },
                        ),
                    );
                }
            }
        }
        // Remove partitions no longer hosted, or whose topic was re-created.
        let doomed: Vec<TopicPartition> = self
            .partitions
            .read()
            .iter()
            .filter(|(tp, p)| wanted.get(*tp).is_none_or(|(id, _)| *id != p.topic_id()))
            .map(|(tp, _)| tp.clone())
            .collect();
        for tp in doomed {
            self.partitions.write().remove(&tp);
            if let Err(e) = self.log_manager.delete(&tp) {
                tracing::error!(partition = %tp, error = %e, "cannot delete log");
            } else {
                tracing::info!(partition = %tp, "deleted partition log");
            }
        }
        self.configs
            .lock()
            .retain(|topic, _| image.topic(topic).is_some());
        for (tp, (topic_id, state)) in wanted {
            let config = self.topic_config(image, &tp.topic);
            let existing = self.partitions.read().get(&tp).cloned();
            match existing {
                Some(p) => {
                    if p.state() != state {
                        p.update_state(state);
                    }
                    if !Arc::ptr_eq(&p.log().config(), &config) {
                        p.log().set_config(config);
                    }
                }
                None => match self.log_manager.get_or_create(&tp, topic_id, config, now) {
                    Ok(log) => {
                        let p = Arc::new(Partition::new(self.node_id, topic_id, log, state));
                        self.partitions.write().insert(tp, p);
                    }
                    Err(e) => tracing::error!(partition = %tp, error = %e, "cannot create log"),
                },
            }
        }
        let own = image.configs(ConfigResourceType::Broker, &self.node_id.to_string());
        let cluster_default = image.configs(ConfigResourceType::Broker, "");
        self.leader_quota.set_rate(throttled_rate(
            &own,
            &cluster_default,
            LEADER_THROTTLED_RATE,
        ));
        self.follower_quota.set_rate(throttled_rate(
            &own,
            &cluster_default,
            FOLLOWER_THROTTLED_RATE,
        ));
        self.applied_offset.send_replace(image.offset);
    }

    /// The metadata offset the hosted partitions reflect.
    pub fn applied_offset(&self) -> i64 {
        *self.applied_offset.borrow()
    }

    /// Waits until the hosted partitions reflect metadata `offset`.
    pub async fn wait_for_metadata(&self, offset: i64, timeout: Duration) -> bool {
        let mut rx = self.applied_offset.subscribe();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|o| *o >= offset))
            .await
            .is_ok_and(|r| r.is_ok());
        reached
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

    /// Appends each partition's records. `acks` must already be valid.
    pub async fn append_records(
        &self,
        image: &MetadataImage,
        entries: Vec<(TopicPartition, Bytes)>,
        acks: i16,
        timeout: Duration,
        produce_version: i16,
    ) -> Vec<Result<LogAppendInfo, ReplicaError>> {
        let targets: Vec<Result<(Arc<Partition>, Bytes), ReplicaError>> = entries
            .into_iter()
            .map(|(tp, records)| self.leader_partition(image, &tp, -1).map(|p| (p, records)))
            .collect();
        let appended = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            targets
                .into_iter()
                .map(|t| {
                    t.and_then(|(p, records)| {
                        isolate(|| p.append_as_leader(&records, acks, produce_version, now))
                            .map(|i| (p, i))
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "append task failed");
            Vec::new()
        });
        // One deadline for the whole request, as Kafka's delayed produce.
        let deadline = Instant::now() + timeout;
        let _delayed = (acks == -1 && appended.iter().any(Result::is_ok))
            .then(|| Delayed::enter(&self.delayed_produces));
        let mut out = Vec::with_capacity(appended.len());
        for r in appended {
            out.push(match r {
                Ok((p, append)) if acks == -1 => p
                    .wait_for_replication(
                        append.info.last_offset + 1,
                        append.leader_epoch,
                        deadline,
                    )
                    .await
                    .map(|()| append.info),
                Ok((_, append)) => Ok(append.info),
                Err(e) => Err(e),
            });
        }
        out
    }

    /// Reads partitions for a fetch, waiting for data as Kafka's delayed
    /// fetch does.
    pub async fn fetch(
        &self,
        image: &MetadataImage,
        params: FetchParams,
        partitions: Vec<FetchPartition>,
    ) -> Vec<FetchPartitionResult> {
        let targets: Vec<Result<Arc<Partition>, ReplicaError>> = partitions
            .iter()
            .map(|fp| self.leader_partition(image, &fp.topic_partition, fp.current_leader_epoch))
            .collect();
        let deadline = Instant::now() + Duration::from_millis(params.max_wait_ms);
        let partitions = Arc::new(partitions);
        // Consumers wait for the high watermark to move; followers for the
        // log to grow (the high watermark waits for them).
        let mut watchers: Vec<watch::Receiver<i64>> = targets
            .iter()
            .flatten()
            .map(|p| match params.replica_id {
                Some(_) => p.subscribe_log_end_offset(),
                None => p.subscribe_high_watermark(),
            })
            .collect();
        let live: Arc<Vec<Option<Arc<Partition>>>> =
            Arc::new(targets.iter().map(|t| t.as_ref().ok().cloned()).collect());
        let mut errors: Vec<Option<ReplicaError>> = targets.into_iter().map(Result::err).collect();
        let appended = |live: &[Option<Arc<Partition>>]| -> u64 {
            live.iter().flatten().map(|p| p.appended_bytes()).sum()
        };
        loop {
            for w in &mut watchers {
                w.mark_unchanged();
            }
            // Taken before reading: bytes appended while the read runs count
            // as new (after it, they would be lost to the estimate below and
            // the wait would run to its deadline).
            let baseline = appended(&live);
            let (live2, parts2) = (Arc::clone(&live), Arc::clone(&partitions));
            let quota = Arc::clone(&self.leader_quota);
            let results =
                tokio::task::spawn_blocking(move || read_pass(&live2, &parts2, params, &quota))
                    .await
                    .unwrap_or_default();
            let total: usize = results.iter().flatten().map(|r| r.records.len()).sum();
            let any_error = errors.iter().any(Option::is_some)
                || results.iter().flatten().any(|r| r.error.is_some());
            let now = Instant::now();
            if params.max_wait_ms == 0
                || total >= params.min_bytes
                || any_error
                || now >= deadline
                || watchers.is_empty()
            {
                return results
                    .into_iter()
                    .zip(errors.iter_mut())
                    .map(|(r, e)| match (r, e.take()) {
                        (Some(r), _) => r,
                        (None, Some(e)) => FetchPartitionResult::error(e),
                        (None, None) => {
                            FetchPartitionResult::error(ReplicaError::UnknownTopicOrPartition)
                        }
                    })
                    .collect();
            }
            // Wait for high watermarks to move until enough bytes could have
            // arrived for min_bytes (estimated from what was appended, as
            // Kafka's delayed fetch estimates from positions), or the
            // deadline; then read again (and answer if past the deadline).
            let _delayed = Delayed::enter(&self.delayed_fetches);
            loop {
                let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    break;
                }
                let estimate = total as u64 + appended(&live).saturating_sub(baseline);
                if estimate >= params.min_bytes as u64 {
                    break;
                }
                for w in &mut watchers {
                    w.mark_unchanged();
                }
            }
        }
    }

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

/// One read of every live partition under Kafka's limits: each partition
/// gets `min(partition_max_bytes, bytes left)`; until some partition returns
/// data, a partition may return one whole batch over its limit (KIP-74).
///
/// For a follower out of the ISR whose replica this leader throttles
/// (`leader.replication.throttled.replicas`), the read counts against
/// `leader_quota`, and while that is exceeded the partition answers empty.
fn read_pass(
    live: &[Option<Arc<Partition>>],
    partitions: &[FetchPartition],
    params: FetchParams,
    leader_quota: &ReplicationQuota,
) -> Vec<Option<FetchPartitionResult>> {
    let mut left = params.max_bytes;
    let mut min_one = true;
    let bound = match params.replica_id {
        Some(_) => ReadBound::LogEnd,
        None => ReadBound::HighWatermark,
    };
    let now = lag_clock_ms();
    live.iter()
        .zip(partitions)
        .map(|(p, fp)| {
            let p = p.as_ref()?;
            if let Some(replica) = params.replica_id {
                match follower_fetch_check(p, replica, fp, now) {
                    Ok(None) => {}
                    Ok(Some(diverging)) => return Some(diverging),
                    Err(e) => return Some(fetch_error(p, e, true)),
                }
            }
            let throttled = params
                .replica_id
                .is_some_and(|replica| leader_throttles(p, replica));
            if throttled && leader_quota.is_exceeded() {
                return Some(FetchPartitionResult::no_records(p, None));
            }
            let limit = fp.partition_max_bytes.min(left);
            Some(
                match isolate(|| p.read(fp.fetch_offset, limit, bound, min_one)) {
                    Ok(r) => {
                        if throttled {
                            leader_quota.record(r.records.len());
                        }
                        if !r.records.is_empty() {
                            min_one = false;
                        }
                        left = left.saturating_sub(r.records.len());
                        FetchPartitionResult {
                            error: None,
                            records: r.records,
                            high_watermark: r.high_watermark,
                            last_stable_offset: r.high_watermark,
                            log_start_offset: r.log_start_offset,
                            diverging_epoch: None,
                        }
                    }
                    Err(e) => fetch_error(p, e, params.replica_id.is_some()),
                },
            )
        })
        .collect()
}

/// Whether this leader throttles what it sends `replica` of `p`: the
/// topic lists this leader's replica of the partition and `replica` is out
/// of the ISR.
fn leader_throttles(p: &Partition, replica: i32) -> bool {
    p.log()
        .config()
        .leader_replication_throttled_replicas
        .contains(p.topic_partition().partition, p.node_id())
        && !p.is_in_sync(replica)
}

/// A partition's failed read. A follower out of range learns where this
/// log starts and what is committed, to restart or truncate by (consumers
/// get −1, as from Kafka).
fn fetch_error(p: &Partition, e: ReplicaError, follower: bool) -> FetchPartitionResult {
    let out_of_range = e.error_code() == ErrorCode::OffsetOutOfRange;
    let mut r = FetchPartitionResult::error(e);
    if out_of_range && follower {
        let o = p.log().offsets();
        r.log_start_offset = o.log_start_offset;
        r.high_watermark = o.high_watermark;
    }
    r
}

/// A follower's fetch of `fp`: when its last fetched epoch shows its log
/// diverges from this leader's, the answer that tells it where to truncate
/// (Kafka's diverging epoch, KIP-595's fetch-based truncation); otherwise
/// its fetch offset is recorded as its progress.
fn follower_fetch_check(
    p: &Partition,
    replica: i32,
    fp: &FetchPartition,
    lag_clock_ms: i64,
) -> Result<Option<FetchPartitionResult>, ReplicaError> {
    if fp.last_fetched_epoch >= 0 {
        let (epoch, end_offset) = p.log().end_offset_for_epoch(fp.last_fetched_epoch);
        if epoch < 0 || end_offset < 0 {
            // An epoch newer than any here: nothing to go by (Kafka answers
            // the same); the follower falls back to the high watermark.
            let offsets = p.log().offsets();
            return Err(StorageError::OffsetOutOfRange {
                offset: fp.fetch_offset,
                log_start_offset: offsets.log_start_offset,
                log_end_offset: offsets.log_end_offset,
            }
            .into());
        }
        if epoch < fp.last_fetched_epoch || end_offset < fp.fetch_offset {
            return Ok(Some(FetchPartitionResult::no_records(
                p,
                Some((epoch, end_offset)),
            )));
        }
    }
    p.record_follower_fetch(replica, fp.fetch_offset, lag_clock_ms)?;
    Ok(None)
}

/// How often the periodic log work runs.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceIntervals {
    /// `log.retention.check.interval.ms`.
    pub retention_check: Duration,
    /// How often `flush.ms` is checked.
    pub flush_check: Duration,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub checkpoint: Duration,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_expiration_check: Duration,
    /// `producer.id.expiration.ms`.
    pub producer_expiration_ms: i64,
}

/// Runs retention, flushes, checkpoints and producer expiration until
/// `shutdown` fires.
pub async fn run_log_maintenance(
    log_manager: Arc<LogManager>,
    intervals: MaintenanceIntervals,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retention = tokio::time::interval(intervals.retention_check);
    let mut flush = tokio::time::interval(intervals.flush_check);
    let mut checkpoint = tokio::time::interval(intervals.checkpoint);
    let mut producers = tokio::time::interval(intervals.producer_expiration_check);
    for t in [&mut retention, &mut flush, &mut checkpoint, &mut producers] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.reset();
    }
    loop {
        let lm = Arc::clone(&log_manager);
        tokio::select! {
            _ = shutdown_signalled(&mut shutdown) => return,
            _ = retention.tick() => {
                let _ = tokio::task::spawn_blocking(move || lm.enforce_retention(now_ms())).await;
            }
            _ = flush.tick() => {
                let _ = tokio::task::spawn_blocking(move || lm.flush_due(now_ms())).await;
            }
                        _ = producers.tick() => {
                let ms = intervals.producer_expiration_ms;
                let _ = tokio::task::spawn_blocking(move || lm.remove_expired_producers(now_ms(), ms)).await;
            }
            _ = checkpoint.tick() => {
                let r = tokio::task::spawn_blocking(move || lm.checkpoint()).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "cannot write offset checkpoints");
                }
            }
        }
    }
}

/// Resolves once `shutdown` holds `true` (or its sender is gone). Holds no
/// borrow across awaits, so it can sit in `tokio::select!` of a spawned task.
pub async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::test_support::{append, leader_partition};

    /// Broker 1 leads `t-0` with follower 2 in the ISR, three batches of
    /// two records written.
    fn leader() -> (tempfile::TempDir, Arc<Partition>) {
        let (dir, p) = leader_partition(vec![1, 2], vec![1, 2]);
        for _ in 0..3 {
            append(&p, &[b"a", b"b"]);
        }
        (dir, Arc::new(p))
    }

    fn fetch_at(offset: i64, last_fetched_epoch: i32) -> FetchPartition {
        FetchPartition {
            topic_partition: TopicPartition::new("t", 0),
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: 3,
            last_fetched_epoch,
        }
    }

    fn params(replica_id: Option<i32>) -> FetchParams {
        FetchParams {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            isolation: IsolationLevel::ReadUncommitted,
            replica_id,
        }
    }

    #[test]
    fn followers_read_to_the_log_end_and_move_the_high_watermark() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        // A consumer sees nothing: the follower has not confirmed anything.
        let r = read_pass(
            &live,
            &[fetch_at(0, -1)],
            params(None),
            &ReplicationQuota::default(),
        );
        assert!(r[0].as_ref().unwrap().records.is_empty());
        assert_eq!(p.high_watermark(), 0);
        // The follower reads everything.
        let r = read_pass(
            &live,
            &[fetch_at(0, -1)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert!(r.error.is_none() && r.diverging_epoch.is_none());
        assert_eq!(
            strom_protocol::batch::BatchIter::new(&r.records).count(),
            3,
            "all three batches"
        );
        // Its next fetch says it has them: the high watermark follows.
        read_pass(
            &live,
            &[fetch_at(6, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 6);
        // A broker that is not a replica is refused.
        let r = read_pass(
            &live,
            &[fetch_at(0, -1)],
            params(Some(9)),
            &ReplicationQuota::default(),
        );
        assert_eq!(
            r[0].as_ref()
                .unwrap()
                .error
                .as_ref()
                .map(ReplicaError::error_code),
            Some(strom_protocol::ErrorCode::NotLeaderOrFollower)
        );
    }

    #[test]
    fn a_follower_in_an_epoch_unknown_here_is_out_of_range_with_the_leaders_offsets() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        read_pass(
            &live,
            &[fetch_at(4, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 4);
        // Epoch 7 is newer than anything this log knows: nothing tells
        // where it ended (Kafka answers OFFSET_OUT_OF_RANGE too). The
        // follower gets this log's start and high watermark to truncate to.
        let r = read_pass(
            &live,
            &[fetch_at(9, 7)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!(
            r.error.as_ref().map(ReplicaError::error_code),
            Some(ErrorCode::OffsetOutOfRange)
        );
        assert_eq!((r.log_start_offset, r.high_watermark), (0, 4));
        // A consumer out of range gets −1, as from Kafka.
        let r = read_pass(
            &live,
            &[fetch_at(9, -1)],
            params(None),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!((r.log_start_offset, r.high_watermark), (-1, -1));
    }

    #[test]
    fn a_follower_fetch_beyond_the_log_end_is_out_of_range_and_not_progress() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        // The log ends at 6; a fetch at 1 000 000 claims what the leader
        // never had (Kafka answers OFFSET_OUT_OF_RANGE and records nothing).
        let r = read_pass(
            &live,
            &[fetch_at(1_000_000, -1)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!(
            r.error.as_ref().map(ReplicaError::error_code),
            Some(ErrorCode::OffsetOutOfRange)
        );
        assert_eq!((r.log_start_offset, r.high_watermark), (0, 0));
        assert_eq!(p.high_watermark(), 0, "the high watermark stays");
        assert_eq!(p.follower_progress(2).unwrap().log_end_offset, -1);
        // At the log end exactly, it is progress.
        read_pass(
            &live,
            &[fetch_at(6, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 6);
    }

    #[test]
    fn a_throttled_out_of_sync_follower_waits_for_the_leader_quota() {
        let (_dir, p) = leader_partition(vec![1, 2, 3], vec![1, 2]);
        for _ in 0..3 {
            append(&p, &[b"a", b"b"]);
        }
        let overrides = [(
            "leader.replication.throttled.replicas".to_string(),
            "*".to_string(),
        )]
        .into();
        let config = TopicConfig::resolve(&LogDefaults::kafka_defaults(), &overrides).unwrap();
        p.log().set_config(Arc::new(config));
        let live = vec![Some(Arc::new(p))];
        let quota = ReplicationQuota::default();
        quota.set_rate(1);
        // 3 is out of the ISR: its first read is counted, then it waits.
        let r = read_pass(&live, &[fetch_at(0, -1)], params(Some(3)), &quota);
        assert!(!r[0].as_ref().unwrap().records.is_empty());
        let r = read_pass(&live, &[fetch_at(0, -1)], params(Some(3)), &quota);
        let r = r[0].as_ref().unwrap();
        assert!(r.records.is_empty() && r.error.is_none());
        // 2 is in the ISR: never throttled.
        let r = read_pass(&live, &[fetch_at(0, -1)], params(Some(2)), &quota);
        assert!(!r[0].as_ref().unwrap().records.is_empty());
    }

    #[test]
    fn a_diverging_follower_is_told_where_to_truncate() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        // It claims records of epoch 2 up to offset 5; this leader's log
        // starts epoch 3 at 0, so epoch 2 ended at 0.
        let r = read_pass(
            &live,
            &[fetch_at(5, 2)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!(r.diverging_epoch, Some((2, 0)));
        assert!(r.records.is_empty());
        // Not counted as progress.
        assert_eq!(p.follower_progress(2).unwrap().log_end_offset, -1);
        // Asking within the current epoch is fine.
        let r = read_pass(
            &live,
            &[fetch_at(2, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(r[0].as_ref().unwrap().diverging_epoch, None);
        assert_eq!(p.follower_progress(2).unwrap().log_end_offset, 2);
    }
}
