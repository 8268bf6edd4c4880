//! The group coordinator: which `__consumer_offsets` partition holds a
//! group, one shard task per partition this broker leads (loaded from the
//! partition's records when leadership arrives), and the async API the
//! request handlers call.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::RwLock;
use strom_controller::{Controller, CreateTopic};
use strom_metadata::MetadataImage;
use strom_protocol::batch::BatchIter;
use strom_protocol::batch_builder::BatchBuilder;
use strom_protocol::ErrorCode;
use strom_replication::ReplicaManager;
use strom_storage::{ReadBound, TopicPartition};
use tokio::sync::{mpsc, oneshot, watch};

use crate::offsets_topic::{
    partition_for, OffsetsRecord, CONSUMER_OFFSETS_TOPIC, MAX_RECORD_STRING_BYTES,
};
use crate::outcome::*;
use crate::shard::{Command, OffsetsWriter, Shard};
use strom_config::GroupKeys as GroupConfig;
use strom_runtime::clock::now_ms;

/// Commands queued per shard before senders wait.
const SHARD_QUEUE_LEN: usize = 1024;
/// Bytes read at once when loading a partition.
const LOAD_READ_BYTES: usize = 4 << 20;
/// How long [`GroupCoordinator::coordinator_for`] waits for
/// `__consumer_offsets` to be created and applied before answering
/// COORDINATOR_NOT_AVAILABLE.
const OFFSETS_TOPIC_CREATE_WAIT: Duration = Duration::from_secs(10);

struct ShardHandle {
    commands: mpsc::Sender<Command>,
    /// [`LOADING`], [`LOADED`] or [`LOAD_FAILED`].
    load_state: Arc<AtomicU8>,
    shutdown: watch::Sender<bool>,
    leader_epoch: i32,
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    config: Arc<GroupConfig>,
    node_id: i32,
    replica_manager: Arc<ReplicaManager>,
    image: watch::Receiver<Arc<MetadataImage>>,
    shards: RwLock<HashMap<i32, ShardHandle>>,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("node_id", &self.node_id)
            .field("shards", &self.shards.read().len())
            .finish()
    }
}

/// Appends to one `__consumer_offsets` partition through the replica
/// manager, waiting for the in-sync replicas.
struct PartitionWriter {
    tp: TopicPartition,
    replica_manager: Arc<ReplicaManager>,
    image: watch::Receiver<Arc<MetadataImage>>,
    timeout: Duration,
}

/// Encodes records as one uncompressed batch.
fn encode_batch(records: &[OffsetsRecord]) -> Bytes {
    let records = records
        .iter()
        .map(|r| (Some(r.encode_key()), r.encode_value()));
    Bytes::from(BatchBuilder::of_records(now_ms(), records).build())
}

impl OffsetsWriter for PartitionWriter {
    fn append(
        &self,
        records: Vec<OffsetsRecord>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ErrorCode>> + Send + '_>> {
        Box::pin(async move {
            let batch = encode_batch(&records);
            let image = self.image.borrow().clone();
            let results = self
                .replica_manager
                .append_records(&image, vec![(self.tp.clone(), batch)], -1, self.timeout, 9)
                .await;
            match results.into_iter().next() {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e.error_code()),
                None => Err(ErrorCode::UnknownServerError),
            }
        })
    }
}

/// A shard's groups are being read from its partition.
const LOADING: u8 = 0;
/// A shard serves requests.
const LOADED: u8 = 1;
/// A shard's partition could not be read: this broker does not coordinate
/// its groups (NOT_COORDINATOR) until leadership changes.
const LOAD_FAILED: u8 = 2;

/// Why a partition's groups could not be loaded.
#[derive(Debug)]
struct LoadFailed(String);

/// Reads every record of a partition (up to its high watermark) into
/// `apply`, in order; returns how many there were. A batch that does not
/// decode is skipped with an error log (the others still count); a read
/// that fails fails the load, since what follows would be missing.
fn read_partition(
    replica_manager: &ReplicaManager,
    tp: &TopicPartition,
    apply: &mut dyn FnMut(OffsetsRecord),
) -> Result<usize, LoadFailed> {
    let Some(partition) = replica_manager.partition(tp) else {
        return Err(LoadFailed("the partition is not hosted here".into()));
    };
    let log = partition.log();
    let mut count = 0;
    let mut next = log.offsets().log_start_offset;
    loop {
        let start = next;
        let read = log
            .read(next, LOAD_READ_BYTES, ReadBound::HighWatermark, true)
            .map_err(|e| LoadFailed(e.to_string()))?;
        if read.records.is_empty() {
            return Ok(count);
        }
        for batch in BatchIter::new(&read.records) {
            let (position, header) = batch.map_err(|e| LoadFailed(e.to_string()))?;
            // Whatever its records, the next batch starts after this one.
            let batch_end = header.next_offset();
            let mut bytes = read.records.slice(position..position + header.size_bytes());
            match RecordBatchDecoder::decode(&mut bytes) {
                Ok(set) => {
                    for r in set.records {
                        // A batch may start before the log start offset.
                        if r.offset < next {
                            continue;
                        }
                        next = r.offset.saturating_add(1);
                        let Some(key) = r.key.as_deref() else {
                            continue;
                        };
                        match OffsetsRecord::decode(key, r.value.as_deref()) {
                            Ok(Some(record)) => {
                                apply(record);
                                count += 1;
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(partition = %tp, offset = r.offset, error = %e, "skipping a corrupt record")
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(partition = %tp, base_offset = header.base_offset, error = %e, "skipping an undecodable batch of __consumer_offsets: the group changes in it are lost");
                }
            }
            next = next.max(batch_end);
        }
        if next <= start {
            return Err(LoadFailed(format!("no progress reading at offset {start}")));
        }
    }
}

impl GroupCoordinator {
    /// A coordinator for this broker.
    pub fn new(
        config: GroupConfig,
        node_id: i32,
        replica_manager: Arc<ReplicaManager>,
        image: watch::Receiver<Arc<MetadataImage>>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            node_id,
            replica_manager,
            image,
            shards: RwLock::new(HashMap::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of a group, if the topic exists.
    pub fn partition_of(&self, image: &MetadataImage, group_id: &str) -> Option<i32> {
        let topic = image.topic(CONSUMER_OFFSETS_TOPIC)?;
        Some(partition_for(group_id, topic.partitions.len() as i32))
    }

    /// How to create `__consumer_offsets`: Kafka's settings, with the
    /// replication factor capped by the brokers there are (so a single
    /// node works out of the box).
    fn offsets_topic_spec(&self, live_brokers: usize) -> CreateTopic {
        let rf = self
            .config
            .offsets_topic_replication_factor
            .min(live_brokers.max(1).min(i16::MAX as usize) as i16);
        CreateTopic {
            name: CONSUMER_OFFSETS_TOPIC.to_string(),
            num_partitions: self.config.offsets_topic_num_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".into(), Some("compact".into())),
                ("compression.type".into(), Some("producer".into())),
                (
                    "segment.bytes".into(),
                    Some(self.config.offsets_topic_segment_bytes.to_string()),
                ),
            ],
        }
    }

    /// The broker coordinating `group_id` (FindCoordinator): the leader of
    /// its `__consumer_offsets` partition, with the image that names it.
    /// The first call creates the topic through `controller` (Kafka's
    /// `offsets.topic.*` settings, the replication factor capped by the
    /// live brokers) and waits until this broker has applied it, so a new
    /// cluster answers the first request instead of
    /// COORDINATOR_NOT_AVAILABLE. Every failure is COORDINATOR_NOT_AVAILABLE:
    /// the client asks again.
    pub async fn coordinator_for(
        &self,
        controller: &Controller,
        group_id: &str,
    ) -> Result<CoordinatorNode, ErrorCode> {
        let image = self.with_offsets_topic(controller).await?;
        let leader = self
            .partition_of(&image, group_id)
            .and_then(|partition| {
                image
                    .topic(CONSUMER_OFFSETS_TOPIC)?
                    .partitions
                    .get(&partition)
            })
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        Ok(CoordinatorNode {
            node_id: leader,
            image,
        })
    }

    /// The applied image once `__consumer_offsets` is in it, creating the
    /// topic first if it is not.
    async fn with_offsets_topic(
        &self,
        controller: &Controller,
    ) -> Result<Arc<MetadataImage>, ErrorCode> {
        let image = self.image.borrow().clone();
        if image.topic(CONSUMER_OFFSETS_TOPIC).is_some() {
            return Ok(image);
        }
        let spec = self.offsets_topic_spec(image.unfenced_brokers().count());
        let (results, _) = controller
            .create_topics(vec![spec], false, OFFSETS_TOPIC_CREATE_WAIT)
            .await;
        match results.into_iter().next() {
            Some(Ok(created)) => {
                tracing::info!(
                    topic = CONSUMER_OFFSETS_TOPIC,
                    partitions = created.num_partitions,
                    replication_factor = created.replication_factor,
                    "created the group coordinator's topic"
                );
            }
            Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => {}
            Some(Err(e)) => {
                tracing::warn!(error = ?e.code, message = ?e.message, "cannot create __consumer_offsets");
                return Err(ErrorCode::CoordinatorNotAvailable);
            }
            None => return Err(ErrorCode::CoordinatorNotAvailable),
        }
        let mut applied = self.image.clone();
        let reached = tokio::time::timeout(
            OFFSETS_TOPIC_CREATE_WAIT,
            applied.wait_for(|img| img.topic(CONSUMER_OFFSETS_TOPIC).is_some()),
        )
        .await;
        match reached {
            Ok(Ok(img)) => Ok(Arc::clone(&img)),
            _ => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }

    /// Starts shards for the `__consumer_offsets` partitions this broker
    /// now leads and stops those it no longer leads. Call after every
    /// metadata change is applied.
    pub fn sync_leadership(&self, image: &MetadataImage) {
        let led: HashMap<i32, i32> = image
            .topic(CONSUMER_OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.leader == self.node_id)
                    .map(|(i, p)| (*i, p.leader_epoch))
                    .collect()
            })
            .unwrap_or_default();
        let mut shards = self.shards.write();
        shards.retain(|partition, handle| {
            let keep = led.get(partition) == Some(&handle.leader_epoch);
            if !keep {
                let _ = handle.shutdown.send(true);
                tracing::info!(
                    partition,
                    "stopped coordinating a __consumer_offsets partition"
                );
            }
            keep
        });
        for (partition, epoch) in led {
            if shards.contains_key(&partition) {
                continue;
            }
            let (commands, rx) = mpsc::channel(SHARD_QUEUE_LEN);
            let (shutdown, shutdown_rx) = watch::channel(false);
            let load_state = Arc::new(AtomicU8::new(LOADING));
            shards.insert(
                partition,
                ShardHandle {
                    commands,
                    load_state: Arc::clone(&load_state),
                    shutdown,
                    leader_epoch: epoch,
                },
            );
            let tp = TopicPartition::new(CONSUMER_OFFSETS_TOPIC, partition);
            let writer = Arc::new(PartitionWriter {
                tp: tp.clone(),
                replica_manager: Arc::clone(&self.replica_manager),
                image: self.image.clone(),
                timeout: Duration::from_millis(self.config.offsets_commit_timeout_ms),
            });
            let rm = Arc::clone(&self.replica_manager);
            let config = Arc::clone(&self.config);
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let load_tp = tp.clone();
                let loaded_shard = strom_runtime::blocking::run(move || {
                    let mut shard = Shard::new(config, writer);
                    let count = read_partition(&rm, &load_tp, &mut |r| shard.replay(r));
                    shard.start_sessions();
                    (shard, count)
                })
                .await;
                let (shard, count) = match loaded_shard {
                    Ok((shard, Ok(count))) => (shard, count),
                    Ok((_, Err(LoadFailed(why)))) => {
                        load_state.store(LOAD_FAILED, Ordering::Release);
                        tracing::error!(partition = %tp, error = %why, "cannot load the groups of this partition; not coordinating them");
                        return;
                    }
                    Err(e) => {
                        load_state.store(LOAD_FAILED, Ordering::Release);
                        tracing::error!(partition = %tp, error = %e, "loading the groups of this partition failed; not coordinating them");
                        return;
                    }
                };
                load_state.store(LOADED, Ordering::Release);
                let elapsed_ms = started.elapsed().as_millis() as u64;
                if count == 0 {
                    tracing::debug!(partition = %tp, elapsed_ms, "coordinating an empty __consumer_offsets partition");
                } else {
                    tracing::info!(partition = %tp, records = count, elapsed_ms, "loaded group coordinator state");
                }
                shard.run(rx, shutdown_rx).await;
            });
        }
    }

    /// The shard coordinating `group_id`, or the error a client gets.
    fn shard_for(&self, group_id: &str) -> Result<mpsc::Sender<Command>, ErrorCode> {
        if group_id.is_empty() || group_id.len() > MAX_RECORD_STRING_BYTES {
            return Err(ErrorCode::InvalidGroupId);
        }
        let image = self.image.borrow().clone();
        let partition = self
            .partition_of(&image, group_id)
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        let shards = self.shards.read();
        let handle = shards.get(&partition).ok_or(ErrorCode::NotCoordinator)?;
        match handle.load_state.load(Ordering::Acquire) {
            LOADED => Ok(handle.commands.clone()),
            LOADING => Err(ErrorCode::CoordinatorLoadInProgress),
            _ => Err(ErrorCode::NotCoordinator),
        }
    }

    /// Whether this broker coordinates `group_id` right now (FindCoordinator
    /// answers from the metadata; this is the local view).
    pub fn is_local(&self, group_id: &str) -> Result<(), ErrorCode> {
        self.shard_for(group_id).map(|_| ())
    }

    async fn ask<T>(
        &self,
        group_id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ErrorCode> {
        let tx = self.shard_for(group_id)?;
        // The shard may answer only after other members' requests (a
        // rebalance) or the replicas' fetches (a commit): the request budget
        // this request holds goes back first (`strom_runtime::parking`).
        strom_runtime::parking::parked();
        let (reply, rx) = oneshot::channel();
        tx.send(make(reply))
            .await
            .map_err(|_| ErrorCode::NotCoordinator)?;
        rx.await.map_err(|_| ErrorCode::NotCoordinator)
    }

    /// JoinGroup.
    pub async fn join_group(&self, p: JoinParams) -> JoinOutcome {
        let member = p.member_id.clone();
        let group = p.group_id.clone();
        self.ask(&group, |r| Command::Join(p, r))
            .await
            .unwrap_or_else(|code| JoinOutcome::error(member, code))
    }

    /// SyncGroup.
    pub async fn sync_group(&self, p: SyncParams) -> SyncOutcome {
        let group = p.group_id.clone();
        self.ask(&group, |r| Command::Sync(p, r))
            .await
            .unwrap_or_else(SyncOutcome::error)
    }

    /// Heartbeat.
    pub async fn heartbeat(&self, p: HeartbeatParams) -> Option<ErrorCode> {
        let group = p.group_id.clone();
        match self.ask(&group, |r| Command::Heartbeat(p, r)).await {
            Ok(answer) => answer,
            // As Kafka: members keep their sessions through a load.
            Err(ErrorCode::CoordinatorLoadInProgress) => None,
            Err(code) => Some(code),
        }
    }

    /// LeaveGroup: one result per member, or an error for the request.
    pub async fn leave_group(
        &self,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        self.ask(group_id, |r| {
            Command::Leave(group_id.to_string(), members, r)
        })
        .await?
    }

    /// OffsetCommit: one result per offset, or an error for the request.
    pub async fn commit_offsets(
        &self,
        p: CommitParams,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let group = p.group_id.clone();
        self.ask(&group, |r| Command::Commit(p, r)).await?
    }

    /// OffsetFetch (`None`: every partition with an offset).
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<FetchedOffset>, ErrorCode> {
        self.ask(group_id, |r| {
            Command::FetchOffsets(group_id.to_string(), partitions, r)
        })
        .await
    }

    /// DescribeGroups (`None`: no such group).
    pub async fn describe_group(
        &self,
        group_id: &str,
    ) -> Result<Option<GroupDescription>, ErrorCode> {
        self.ask(group_id, |r| Command::Describe(group_id.to_string(), r))
            .await
    }

    /// DeleteGroups for one group.
    pub async fn delete_group(&self, group_id: &str) -> Option<ErrorCode> {
        self.ask(group_id, |r| Command::Delete(group_id.to_string(), r))
            .await
            .unwrap_or_else(Some)
    }

    /// OffsetDelete: per-partition results, or an error for the group.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        self.ask(group_id, |r| {
            Command::DeleteOffsets(group_id.to_string(), partitions, r)
        })
        .await?
    }

    /// ListGroups over every partition this broker coordinates: the groups
    /// of the loaded partitions, and COORDINATOR_LOAD_IN_PROGRESS if some
    /// are still loading.
    pub async fn list_groups(&self) -> (Vec<GroupListing>, Option<ErrorCode>) {
        let handles: Vec<(mpsc::Sender<Command>, u8)> = self
            .shards
            .read()
            .values()
            .map(|h| (h.commands.clone(), h.load_state.load(Ordering::Acquire)))
            .collect();
        let error = handles
            .iter()
            .any(|(_, state)| *state == LOADING)
            .then_some(ErrorCode::CoordinatorLoadInProgress);
        let mut out = Vec::new();
        for (tx, _) in handles.into_iter().filter(|(_, state)| *state == LOADED) {
            let (reply, rx) = oneshot::channel();
            if tx.send(Command::List(reply)).await.is_ok() {
                if let Ok(mut groups) = rx.await {
                    out.append(&mut groups);
                }
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        (out, error)
    }

    /// Stops every shard (broker shutdown).
    pub fn shutdown(&self) {
        for handle in self.shards.write().drain().map(|(_, h)| h) {
            let _ = handle.shutdown.send(true);
        }
    }
}
