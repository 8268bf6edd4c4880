//! The controller: the only writer of the metadata log. On the quorum
//! leader it validates requests against the current image, turns them
//! into metadata records and commits them through the quorum
//! ([`crate::quorum`]); every node's state machine applies them and
//! publishes the new image. Operations are serialized on the leader and
//! validated only after everything committed before them is applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};
use strom_config::validate_topic_overrides;
use strom_metadata::topic_name::{
    unify_collision_chars, validate_topic_name, CLUSTER_METADATA_TOPIC,
};
use strom_metadata::{ConfigResourceType, MetadataImage, MetadataRecord};
use strom_protocol::ErrorCode;
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use crate::config_change::{config_change_records, ConfigChange};
use crate::election::{elect_leaders, preferred_leaders, ElectionResult, ElectionType};
use crate::error::{ApiError, ControllerError};
use crate::forwarding::ControllerChannel;
use crate::isr_change::{check_isr_change, IsrChange, IsrChanged};
use crate::ops::{ControllerOp, ControllerOpResult, PartitionReassignment};
use crate::placement::{place_replicas, PlacementBroker};
use crate::quorum::{MetadataQuorum, QuorumConfig};
use crate::quorum_description::QuorumDescription;
use crate::raft_types::ControllerNode;
use crate::reassignment;

/// The extractor [`Controller::route_as`] takes: the operation's own answer
/// is the variant `$variant`, whose fields the patterns bind and `$value`
/// turns into the caller's `Result`; any other answer is handed back.
macro_rules! answer {
    ($variant:ident($($field:pat),*) => $value:expr) => {
        |answer| match answer {
            $crate::ops::ControllerOpResult::$variant($($field),*) => Ok($value),
            other => Err(other),
        }
    };
}

mod cluster_control;

use cluster_control::BrokerSessions;
pub use cluster_control::PRODUCER_ID_BLOCK_SIZE;

/// Most partitions one CreateTopics or CreatePartitions request may create
/// (Kafka's `MAX_PARTITIONS_PER_BATCH`).
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// The controller id Kafka reports when none is known.
pub const NO_CONTROLLER_ID: i32 = -1;

/// How long asking a voter who leads may take.
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Preferred leader elections one rebalance round commits at most (Kafka's
/// `maxElectionsPerImbalance`); the rest wait for the next round.
pub const MAX_ELECTIONS_PER_REBALANCE: usize = 1_000;

/// How long an operation waits for the quorum to have a leader and answer.
pub const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the controller needs from the broker configuration.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This node's id.
    pub node_id: i32,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout: Duration,
    /// How often to move leadership back to preferred replicas
    /// (`leader.imbalance.check.interval.seconds`); `None` when
    /// `auto.leader.rebalance.enable` is false.
    pub leader_imbalance_check_interval: Option<Duration>,
}

/// A topic to create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateTopic {
    /// Name.
    pub name: String,
    /// Partitions, −1 for `num.partitions`.
    pub num_partitions: i32,
    /// Replication factor, −1 for `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: partition index → replicas.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides; a `None` value is an error.
    pub configs: Vec<(String, Option<String>)>,
}

/// A topic that was (or, with `validate_only`, would be) created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopic {
    /// Its id.
    pub topic_id: Uuid,
    /// Partitions.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// A topic to delete, by name or by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id.
    Id(Uuid),
    /// Neither or both were given.
    Invalid(String),
}

/// Partitions to add to a topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatePartitions {
    /// Topic name.
    pub name: String,
    /// New total count.
    pub count: i32,
    /// Replicas of each new partition, if given.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// The outcome of a write: the offset to wait for before the change is
/// visible on this broker.
pub type CommitOffset = i64;

/// How long start-up waits for the quorum to elect a leader.
pub const QUORUM_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The controller.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    cluster_id: String,
    quorum: MetadataQuorum,
    channel: ControllerChannel,
    write_lock: Mutex<()>,
    sessions: parking_lot::Mutex<BrokerSessions>,
    /// The term in which this node, as leader, last confirmed its image
    /// current: within one term every write goes through this node and is
    /// applied before it returns, so one confirmation per term suffices.
    current_in_term: parking_lot::Mutex<Option<u64>>,
}

impl Controller {
    /// Opens the metadata log and snapshots under `log_dir` and joins the
    /// quorum.
    pub async fn start(
        log_dir: &Path,
        had_clean_shutdown: bool,
        cluster_id: String,
        config: ControllerConfig,
        quorum: QuorumConfig,
    ) -> Result<Self, ControllerError> {
        let channel = ControllerChannel::new(
            cluster_id.clone(),
            quorum.node_id,
            quorum.voters.clone(),
            quorum.local_address,
        );
        let quorum =
            MetadataQuorum::start(log_dir, had_clean_shutdown, &cluster_id, quorum).await?;
        Ok(Self::from_parts(cluster_id, config, quorum, channel))
    }

    /// A controller over a quorum that is already running (simulations
    /// start one over an in-memory network); `channel` forwards to the
    /// active controller when this node does not lead.
    pub fn from_parts(
        cluster_id: String,
        config: ControllerConfig,
        quorum: MetadataQuorum,
        channel: ControllerChannel,
    ) -> Self {
        Self {
            config,
            cluster_id,
            quorum,
            channel,
            write_lock: Mutex::new(()),
            sessions: parking_lot::Mutex::new(BrokerSessions::default()),
            current_in_term: parking_lot::Mutex::new(None),
        }
    }

    /// Carries out `op` on the active controller: here if this node leads,
    /// else forwarded to the leader, retrying while leadership moves, for
    /// at most `timeout` (then REQUEST_TIMED_OUT).
    async fn route(
        &self,
        op: ControllerOp,
        timeout: Duration,
    ) -> Result<ControllerOpResult, ApiError> {
        let deadline = Instant::now() + timeout;
        let mut last_error = ControllerError::Unavailable("no quorum leader".into());
        // Without a known leader (an election, or a broker-only node not yet
        // an observer) the voters are asked in turn who leads, with a
        // question that is cheap and harmless to repeat, under a short
        // deadline: a voter that hangs (paused) costs little, and the
        // operation itself goes only to a leader.
        let voters = self.channel.voter_ids();
        let mut hint: Option<u64> = None;
        let mut attempt = 0usize;
        // A leader that could not be reached: a node that does not vote
        // goes on believing in it until the next leader reaches it, so the
        // voters are asked instead.
        let mut unreachable: Option<u64> = None;
        while Instant::now() < deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let believed = self.quorum.leader().filter(|l| Some(*l) != unreachable);
            let target = hint.take().or(believed);
            let result = match target {
                Some(leader) if leader == self.quorum.node_id() => {
                    Ok(self.execute_here(op.clone()).await)
                }
                Some(leader) => {
                    let sent = self.channel.send(leader, op.clone(), remaining).await;
                    unreachable = sent.is_err().then_some(leader);
                    sent
                }
                None => {
                    attempt += 1;
                    let voter = voters.get(attempt % voters.len().max(1)).copied();
                    if let Some(voter) = voter.filter(|v| *v != self.quorum.node_id()) {
                        let ask = LEADER_PROBE_TIMEOUT.min(remaining);
                        match self
                            .channel
                            .send(voter, ControllerOp::DescribeQuorum, ask)
                            .await
                        {
                            Ok(ControllerOpResult::DescribeQuorum(d)) => {
                                hint = u64::try_from(d.leader_id).ok();
                            }
                            Ok(ControllerOpResult::NotLeader(leader)) => hint = leader,
                            _ => {}
                        }
                        if hint.is_some() {
                            continue;
                        }
                    }
                    Err(ControllerError::Unavailable("no quorum leader".into()))
                }
            };
            match result {
                Ok(ControllerOpResult::NotLeader(leader)) => {
                    hint = leader;
                    last_error = ControllerError::NotLeader(None);
                }
                Ok(answer) if lost_leadership(&answer) => {
                    last_error = ControllerError::NotLeader(None);
                }
                Ok(ControllerOpResult::Failed(e)) => return Err(e),
                Ok(answer) => return Ok(answer),
                Err(e) => last_error = e,
            }
            tracing::debug!(?target, error = %last_error, "controller operation not carried out yet; retrying");
            // Leadership is moving or the leader is unreachable: wait a
            // little for the quorum to settle.
            let _ = self
                .quorum
                .wait_for_leader(Duration::from_millis(200).min(remaining))
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(ApiError::new(
            ErrorCode::RequestTimedOut,
            format!("the active controller did not answer in time: {last_error}"),
        ))
    }

    /// [`Self::route`] for the public operations: the answer `answer` (an
    /// [`answer!`] closure) recognizes is the result; any other answer is
    /// UNKNOWN_SERVER_ERROR. Batch operations turn an error into every
    /// request failing with it.
    async fn route_as<T>(
        &self,
        op: ControllerOp,
        timeout: Duration,
        answer: impl FnOnce(ControllerOpResult) -> Result<Result<T, ApiError>, ControllerOpResult>,
    ) -> Result<T, ApiError> {
        answer(self.route(op, timeout).await?).unwrap_or_else(|other| Err(unexpected(other)))
    }

    /// Carries out `op` if this node leads the quorum (the server side of
    /// forwarding).
    pub async fn execute_here(&self, op: ControllerOp) -> ControllerOpResult {
        if !self.quorum.is_leader() {
            return ControllerOpResult::NotLeader(self.quorum.leader());
        }
        self.execute_as_leader(op).await
    }

    async fn execute_as_leader(&self, op: ControllerOp) -> ControllerOpResult {
        match op {
            ControllerOp::CreateTopics {
                topics,
                validate_only,
            } => {
                let (r, o) = self.create_topics_here(topics, validate_only).await;
                ControllerOpResult::CreateTopics(r, o)
            }
            ControllerOp::DeleteTopics { topics } => {
                let (r, o) = self.delete_topics_here(topics).await;
                ControllerOpResult::DeleteTopics(r, o)
            }
            ControllerOp::CreatePartitions {
                requests,
                validate_only,
            } => {
                let (r, o) = self.create_partitions_here(requests, validate_only).await;
                ControllerOpResult::CreatePartitions(r, o)
            }
            ControllerOp::RegisterBroker(registration) => {
                ControllerOpResult::RegisterBroker(self.register_broker_here(registration).await)
            }
            ControllerOp::BrokerHeartbeat(heartbeat) => {
                ControllerOpResult::BrokerHeartbeat(self.heartbeat_here(heartbeat).await)
            }
            ControllerOp::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => ControllerOpResult::AllocateProducerIds(
                self.allocate_producer_ids_here(broker_id, broker_epoch)
                    .await,
            ),
            ControllerOp::ElectLeaders {
                election,
                partitions,
            } => {
                let (r, o) = self
                    .elect_leaders_here(election, partitions.as_deref())
                    .await;
                ControllerOpResult::ElectLeaders(r, o)
            }
            ControllerOp::AlterPartition(change) => {
                ControllerOpResult::AlterPartition(self.alter_partition_here(change).await)
            }
            ControllerOp::AlterPartitionReassignments {
                partitions,
                allow_replication_factor_change,
            } => {
                let (r, o) = self
                    .reassign_partitions_here(&partitions, allow_replication_factor_change)
                    .await;
                ControllerOpResult::AlterPartitionReassignments(r, o)
            }
            ControllerOp::IncrementalAlterConfigs {
                changes,
                validate_only,
            } => {
                let (r, o) = self.alter_configs_here(&changes, validate_only).await;
                ControllerOpResult::IncrementalAlterConfigs(r, o)
            }
            ControllerOp::AddObserver { node_id, endpoint } => ControllerOpResult::AddObserver(
                self.quorum
                    .add_observer(node_id, endpoint)
                    .await
                    .map_err(|e| e.to_api_error()),
            ),
            ControllerOp::DescribeQuorum => match self.quorum.describe() {
                Some(description) => ControllerOpResult::DescribeQuorum(description),
                None => ControllerOpResult::NotLeader(self.quorum.leader()),
            },
        }
    }

    /// Creates topics; each topic succeeds or fails on its own. Gives up
    /// after `timeout` when no controller answers.
    pub async fn create_topics(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
        timeout: Duration,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, Option<CommitOffset>) {
        let n = topics.len();
        let op = ControllerOp::CreateTopics {
            topics,
            validate_only,
        };
        self.route_as(op, timeout, answer!(CreateTopics(r, o) => Ok((r, o))))
            .await
            .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    /// Deletes topics; returns each one's id and name or its error.
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
        timeout: Duration,
    ) -> (Vec<Result<(Uuid, String), ApiError>>, Option<CommitOffset>) {
        let n = topics.len();
        let op = ControllerOp::DeleteTopics { topics };
        self.route_as(op, timeout, answer!(DeleteTopics(r, o) => Ok((r, o))))
            .await
            .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    /// Adds partitions to topics.
    pub async fn create_partitions(
        &self,
        requests: Vec<CreatePartitions>,
        validate_only: bool,
        timeout: Duration,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let n = requests.len();
        let op = ControllerOp::CreatePartitions {
            requests,
            validate_only,
        };
        self.route_as(op, timeout, answer!(CreatePartitions(r, o) => Ok((r, o))))
            .await
            .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    /// ElectLeaders: elects leaders of the given partitions (every
    /// partition when `None`); each partition's result.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
        timeout: Duration,
    ) -> Result<(Vec<ElectionResult>, Option<CommitOffset>), ApiError> {
        let op = ControllerOp::ElectLeaders {
            election,
            partitions,
        };
        self.route_as(op, timeout, answer!(ElectLeaders(r, o) => Ok((r, o))))
            .await
    }

    /// Asks the active controller to replicate the metadata log to this
    /// node, a broker that does not vote, at `endpoint`.
    pub async fn add_observer(
        &self,
        endpoint: ControllerNode,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let op = ControllerOp::AddObserver {
            node_id: self.quorum.node_id(),
            endpoint,
        };
        self.route_as(op, timeout, answer!(AddObserver(r) => r))
            .await
    }

    /// AlterPartition: commits a leader's new ISR; returns the partition
    /// after it and the offset to wait for.
    pub async fn alter_partition(
        &self,
        change: IsrChange,
        timeout: Duration,
    ) -> Result<(IsrChanged, Option<CommitOffset>), ApiError> {
        let op = ControllerOp::AlterPartition(change);
        self.route_as(op, timeout, answer!(AlterPartition(r) => r))
            .await
    }

    async fn alter_partition_here(
        &self,
        change: IsrChange,
    ) -> Result<(IsrChanged, Option<CommitOffset>), ApiError> {
        let _guard = self.write_lock.lock().await;
        let image = self.current_image().await.map_err(|e| e.to_api_error())?;
        let (record, after) = check_isr_change(&image, &change)?;
        let Some(record) = record else {
            return Ok((after, None));
        };
        // A reassignment whose new replicas are all in sync now completes
        // in the same commit.
        let mut records = vec![record];
        if let Some(done) =
            completed_reassignment(&image, &change.topic, change.partition, &records)
        {
            tracing::info!(topic = %change.topic, partition = change.partition, "completed a partition reassignment");
            records.push(done);
        }
        let offset = self.commit(records).await.map_err(|e| e.to_api_error())?;
        tracing::info!(
            topic = %change.topic,
            partition = change.partition,
            isr = ?after.isr,
            partition_epoch = after.partition_epoch,
            "changed the ISR"
        );
        Ok((after, Some(offset)))
    }

    /// DescribeQuorum, answered by the active controller.
    pub async fn describe_quorum(&self, timeout: Duration) -> Result<QuorumDescription, ApiError> {
        let op = ControllerOp::DescribeQuorum;
        self.route_as(op, timeout, answer!(DescribeQuorum(d) => Ok(d)))
            .await
    }

    /// The quorum.
    pub fn quorum(&self) -> &MetadataQuorum {
        &self.quorum
    }

    /// The cluster id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The node id of the active controller as far as this node knows; −1
    /// (Kafka's "no controller") during an election.
    pub fn active_controller_id(&self) -> i32 {
        self.quorum
            .leader()
            .and_then(|l| i32::try_from(l).ok())
            .unwrap_or(NO_CONTROLLER_ID)
    }

    /// The newest image this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// A receiver that sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.subscribe()
    }

    /// Waits until the image reflects everything committed before now (on
    /// the leader) and returns it. Must be called with the write lock held.
    async fn current_image(&self) -> Result<Arc<MetadataImage>, ControllerError> {
        let term = self.quorum.term();
        let confirmed = *self.current_in_term.lock() == Some(term) && self.quorum.is_leader();
        if !confirmed {
            self.quorum.ensure_current().await?;
            *self.current_in_term.lock() = Some(term);
        }
        Ok(self.image())
    }

    /// Commits records through the quorum; returns the offset to wait for.
    /// Must be called with the write lock held.
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<CommitOffset, ControllerError> {
        self.quorum.write(records).await
    }

    async fn create_topics_here(
        &self,
        topics: Vec<CreateTopic>,
        validate_only: bool,
    ) -> (Vec<Result<CreatedTopic, ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(topics.len(), &e.to_api_error()),
        };
        let mut name_counts: HashMap<&str, usize> = HashMap::new();
        for t in &topics {
            *name_counts.entry(t.name.as_str()).or_default() += 1;
        }
        let total_partitions: i64 = topics
            .iter()
            .map(|t| {
                if t.assignments.is_empty() {
                    i64::from(if t.num_partitions == -1 {
                        self.config.num_partitions
                    } else {
                        t.num_partitions
                    })
                } else {
                    t.assignments.len() as i64
                }
            })
            .filter(|n| *n > 0)
            .sum();
        let mut records = Vec::new();
        let mut unified_in_request: HashSet<String> = HashSet::new();
        let mut results = Vec::with_capacity(topics.len());
        for t in &topics {
            let result = if name_counts.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
                Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic name.",
                ))
            } else if total_partitions > MAX_PARTITIONS_PER_REQUEST {
                Err(ApiError::new(
                    ErrorCode::PolicyViolation,
                    "Excessively large number of partitions per request.",
                ))
            } else {
                self.plan_topic(&image, t, &mut unified_in_request, &mut records)
            };
            results.push(result);
        }
        if validate_only {
            return (results, None);
        }
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            for r in results.iter().filter_map(|r| r.as_ref().ok()) {
                tracing::info!(topic_id = %r.topic_id, partitions = r.num_partitions, "created topic");
            }
        }
        (results, offset)
    }

    /// Commits `records`, made for the requests whose outcomes are
    /// `results`: if the commit fails, the requests that had succeeded
    /// fail with its error. Nothing to commit is no commit.
    async fn commit_for<T>(
        &self,
        results: Vec<Result<T, ApiError>>,
        records: Vec<MetadataRecord>,
    ) -> (Vec<Result<T, ApiError>>, Option<CommitOffset>) {
        if records.is_empty() {
            return (results, None);
        }
        match self.commit(records).await {
            Ok(offset) => (results, Some(offset)),
            Err(e) => {
                tracing::error!(error = %e, "cannot commit metadata records");
                let err = e.to_api_error();
                let failed = results
                    .into_iter()
                    .map(|r| r.and_then(|_| Err(err.clone())))
                    .collect();
                (failed, None)
            }
        }
    }

    fn plan_topic(
        &self,
        image: &MetadataImage,
        t: &CreateTopic,
        unified_in_request: &mut HashSet<String>,
        records: &mut Vec<MetadataRecord>,
    ) -> Result<CreatedTopic, ApiError> {
        if t.name == CLUSTER_METADATA_TOPIC {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "Creation of internal topic __cluster_metadata is prohibited.",
            ));
        }
        validate_topic_name(&t.name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidTopicException, m))?;
        if image.topic(&t.name).is_some() {
            return Err(ApiError::new(
                ErrorCode::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let unified = unify_collision_chars(&t.name);
        if let Some(other) = image
            .topics()
            .find(|o| unify_collision_chars(&o.name) == unified)
        {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with existing topic: {}",
                    t.name, other.name
                ),
            ));
        }
        if !unified_in_request.insert(unified) {
            return Err(ApiError::new(
                ErrorCode::InvalidTopicException,
                format!(
                    "Topic '{}' collides with another topic in the request",
                    t.name
                ),
            ));
        }
        let brokers = placement_brokers(image);
        let assignments: Vec<Vec<i32>> = if t.assignments.is_empty() {
            let partitions = if t.num_partitions == -1 {
                self.config.num_partitions
            } else {
                t.num_partitions
            };
            let rf = if t.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                t.replication_factor
            };
            if partitions <= 0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidPartitions,
                    "Number of partitions was set to an invalid non-positive value.",
                ));
            }
            if rf <= 0 {
                return Err(ApiError::new(
                    ErrorCode::InvalidReplicationFactor,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                ));
            }
            place_replicas(&brokers, 0, partitions, rf)?
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "A manual partition assignment was specified, but numPartitions or replicationFactor was not set to -1.",
                ));
            }
            let mut sorted = t.assignments.clone();
            sorted.sort_by_key(|(p, _)| *p);
            for (i, (p, _)) in sorted.iter().enumerate() {
                if *p != i as i32 {
                    return Err(ApiError::new(
                        ErrorCode::InvalidReplicaAssignment,
                        "Partitions should be consecutive and start at 0.",
                    ));
                }
            }
            let replicas: Vec<Vec<i32>> = sorted.into_iter().map(|(_, r)| r).collect();
            validate_assignments(image, &replicas, None)?;
            replicas
        };
        let mut configs = BTreeMap::new();
        for (k, v) in &t.configs {
            let v = v.clone().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidConfig,
                    format!("Null value not supported for topic configs: {k}"),
                )
            })?;
            configs.insert(k.clone(), v);
        }
        validate_topic_overrides(&configs).map_err(|e| match e {
            strom_config::ConfigError::UnknownTopicConfig(k) => ApiError::new(
                ErrorCode::InvalidConfig,
                format!("Unknown topic config name: {k}"),
            ),
            other => ApiError::new(ErrorCode::InvalidConfig, other.to_string()),
        })?;
        let topic_id = Uuid::new_v4();
        records.push(MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id,
        });
        for (name, value) in &configs {
            records.push(MetadataRecord::Config {
                resource_type: ConfigResourceType::Topic,
                resource_name: t.name.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            });
        }
        for (p, replicas) in assignments.iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id,
                partition_id: p as i32,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas.first().copied().unwrap_or(-1),
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        Ok(CreatedTopic {
            topic_id,
            num_partitions: assignments.len() as i32,
            replication_factor: assignments.first().map_or(0, |r| r.len() as i16),
            configs,
        })
    }

    async fn delete_topics_here(
        &self,
        topics: Vec<TopicRef>,
    ) -> (Vec<Result<(Uuid, String), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        if !self.config.delete_topic_enable {
            let err = ApiError::new(
                ErrorCode::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            );
            return every_request_failed(topics.len(), &err);
        }
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(topics.len(), &e.to_api_error()),
        };
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        let resolved: Vec<Result<(Uuid, String), ApiError>> = topics
            .iter()
            .map(|t| match t {
                TopicRef::Name(n) => {
                    image
                        .topic(n)
                        .map(|t| (t.id, t.name.clone()))
                        .ok_or_else(|| {
                            ApiError::new(
                                ErrorCode::UnknownTopicOrPartition,
                                "This server does not host this topic-partition.",
                            )
                        })
                }
                TopicRef::Id(id) => image
                    .topic_by_id(id)
                    .map(|t| (t.id, t.name.clone()))
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::UnknownTopicId,
                            "This server does not host this topic ID.",
                        )
                    }),
                TopicRef::Invalid(m) => Err(ApiError::new(ErrorCode::InvalidRequest, m.clone())),
            })
            .collect();
        for (id, _) in resolved.iter().flatten() {
            *seen.entry(*id).or_default() += 1;
        }
        let results: Vec<Result<(Uuid, String), ApiError>> = resolved
            .into_iter()
            .map(|r| match r {
                Ok((id, _)) if seen.get(&id).copied().unwrap_or(0) > 1 => Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Duplicate topic in the request.",
                )),
                other => other,
            })
            .collect();
        let records: Vec<MetadataRecord> = results
            .iter()
            .flatten()
            .map(|(id, _)| MetadataRecord::RemoveTopic { topic_id: *id })
            .collect();
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            for (id, name) in results.iter().flatten() {
                tracing::info!(topic = %name, topic_id = %id, "deleted topic");
            }
        }
        (results, offset)
    }

    async fn create_partitions_here(
        &self,
        requests: Vec<CreatePartitions>,
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(requests.len(), &e.to_api_error()),
        };
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for r in &requests {
            *counts.entry(r.name.as_str()).or_default() += 1;
        }
        let mut records = Vec::new();
        let mut added_total: i64 = 0;
        let results = requests
            .iter()
            .map(|r| {
                if counts.get(r.name.as_str()).copied().unwrap_or(0) > 1 {
                    return Err(ApiError::new(ErrorCode::InvalidRequest, "Duplicate topic name."));
                }
                let topic = image.topic(&r.name).ok_or_else(|| {
                    ApiError::new(ErrorCode::UnknownTopicOrPartition, "This server does not host this topic-partition.")
                })?;
                let current = topic.partitions.len() as i32;
                if r.count == current {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPartitions,
                        format!("Topic already has {current} partition(s)."),
                    ));
                }
                if r.count < current {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPartitions,
                        format!(
                            "The topic {} currently has {current} partition(s); {} would not be an increase.",
                            r.name, r.count
                        ),
                    ));
                }
                let adding = r.count - current;
                added_total += i64::from(adding);
                if added_total > MAX_PARTITIONS_PER_REQUEST {
                    return Err(ApiError::new(
                        ErrorCode::PolicyViolation,
                        "Excessively large number of partitions per request.",
                    ));
                }
                let rf = topic.partitions.values().next().map_or(1, |p| p.replicas.len() as i16);
                let replicas = match &r.assignments {
                    Some(a) => {
                        if a.len() != adding as usize {
                            return Err(ApiError::new(
                                ErrorCode::InvalidReplicaAssignment,
                                format!("Attempted to add {adding} additional partition(s), but only {} assignment(s) were specified.", a.len()),
                            ));
                        }
                        validate_assignments(&image, a, Some(rf as usize))?;
                        a.clone()
                    }
                    None => {
                        let brokers = placement_brokers(&image);
                        place_replicas(&brokers, current, adding, rf)?
                    }
                };
                for (i, replicas) in replicas.into_iter().enumerate() {
                    records.push(MetadataRecord::Partition {
                        topic_id: topic.id,
                        partition_id: current + i as i32,
                        isr: replicas.clone(),
                        leader: replicas.first().copied().unwrap_or(-1),
                        replicas,
                        leader_epoch: 0,
                        partition_epoch: 0,
                    });
                }
                Ok(())
            })
            .collect::<Vec<_>>();
        if validate_only {
            return (results, None);
        }
        self.commit_for(results, records).await
    }

    async fn elect_leaders_here(
        &self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> (Vec<ElectionResult>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => {
                let err = e.to_api_error();
                let results = partitions
                    .unwrap_or_default()
                    .iter()
                    .map(|p| (p.clone(), Err(err.clone())))
                    .collect();
                return (results, None);
            }
        };
        let (results, records) = elect_leaders(&image, election, partitions);
        if records.is_empty() {
            return (results, None);
        }
        match self.commit(records).await {
            Ok(offset) => (results, Some(offset)),
            Err(e) => {
                let err = e.to_api_error();
                let results = results
                    .into_iter()
                    .map(|(p, r)| (p, r.and(Err(err.clone()))))
                    .collect();
                (results, None)
            }
        }
    }

    /// AlterPartitionReassignments: starts (or cancels) each partition's
    /// reassignment; one commit for all.
    pub async fn reassign_partitions(
        &self,
        partitions: Vec<PartitionReassignment>,
        allow_replication_factor_change: bool,
        timeout: Duration,
    ) -> Result<(Vec<Result<(), ApiError>>, Option<CommitOffset>), ApiError> {
        let op = ControllerOp::AlterPartitionReassignments {
            partitions,
            allow_replication_factor_change,
        };
        self.route_as(
            op,
            timeout,
            answer!(AlterPartitionReassignments(r, o) => Ok((r, o))),
        )
        .await
    }

    async fn reassign_partitions_here(
        &self,
        partitions: &[PartitionReassignment],
        allow_replication_factor_change: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(partitions.len(), &e.to_api_error()),
        };
        // Each partition against the image its predecessors in this
        // request made, so one partition named twice is judged twice.
        let mut next = (*image).clone();
        let mut records = Vec::new();
        let mut results = Vec::new();
        for r in partitions {
            let outcome = reassignment_records(&next, r, allow_replication_factor_change);
            results.push(outcome.as_ref().map(|_| ()).map_err(Clone::clone));
            let Ok(these) = outcome else { continue };
            match next.apply(
                these
                    .iter()
                    .enumerate()
                    .map(|(i, rec)| (next.offset + 1 + i as i64, rec)),
            ) {
                Ok((applied, _)) => next = applied,
                Err(e) => {
                    tracing::error!(error = %e, "a reassignment record does not apply");
                    if let Some(last) = results.last_mut() {
                        *last = Err(ApiError::new(ErrorCode::UnknownServerError, e.to_string()));
                    }
                    continue;
                }
            }
            records.extend(these);
        }
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            tracing::info!(
                partitions = partitions.len(),
                "started or cancelled partition reassignments"
            );
        }
        (results, offset)
    }

    /// IncrementalAlterConfigs: each resource's outcome (see
    /// [`crate::config_change`]).
    pub async fn incremental_alter_configs(
        &self,
        changes: Vec<ConfigChange>,
        validate_only: bool,
        timeout: Duration,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let n = changes.len();
        let op = ControllerOp::IncrementalAlterConfigs {
            changes,
            validate_only,
        };
        self.route_as(
            op,
            timeout,
            answer!(IncrementalAlterConfigs(r, o) => Ok((r, o))),
        )
        .await
        .unwrap_or_else(|e| every_request_failed(n, &e))
    }

    async fn alter_configs_here(
        &self,
        changes: &[ConfigChange],
        validate_only: bool,
    ) -> (Vec<Result<(), ApiError>>, Option<CommitOffset>) {
        let _guard = self.write_lock.lock().await;
        let image = match self.current_image().await {
            Ok(image) => image,
            Err(e) => return every_request_failed(changes.len(), &e.to_api_error()),
        };
        let mut results = Vec::new();
        let mut records = Vec::new();
        for change in changes {
            match config_change_records(&image, change) {
                Ok(these) => {
                    results.push(Ok(()));
                    records.extend(these);
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if validate_only || records.is_empty() {
            return (results, None);
        }
        let (results, offset) = self.commit_for(results, records).await;
        if offset.is_some() {
            tracing::info!(resources = changes.len(), "altered configs");
        }
        (results, offset)
    }

    /// Moves leadership back to preferred replicas every
    /// `leader.imbalance.check.interval.seconds` while this node is the
    /// active controller (`auto.leader.rebalance.enable`); runs until
    /// `shutdown`.
    pub async fn run_leader_rebalance(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let Some(interval) = self.config.leader_imbalance_check_interval else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if !self.quorum.is_leader() {
                continue;
            }
            let _guard = self.write_lock.lock().await;
            let Ok(image) = self.current_image().await else {
                continue;
            };
            let mut records = preferred_leaders(&image, None);
            records.truncate(MAX_ELECTIONS_PER_REBALANCE);
            if records.is_empty() {
                continue;
            }
            let moved = records.len();
            match self.commit(records).await {
                Ok(_) => tracing::info!(
                    partitions = moved,
                    "moved leadership back to preferred replicas"
                ),
                Err(e) => tracing::warn!(error = %e, "preferred leader election failed"),
            }
        }
    }

    /// Leaves the quorum and closes the metadata log.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        self.quorum.shutdown().await
    }
}

/// Whether an answer says only that the controller could not act as the
/// leader (it lost or could not confirm leadership before doing anything),
/// so the operation may be sent again to whoever leads.
fn lost_leadership(answer: &ControllerOpResult) -> bool {
    let lost = |e: &ApiError| e.code == ErrorCode::NotController;
    match answer {
        ControllerOpResult::CreateTopics(r, None) => {
            !r.is_empty() && r.iter().all(|x| x.as_ref().is_err_and(lost))
        }
        ControllerOpResult::DeleteTopics(r, None) => {
            !r.is_empty() && r.iter().all(|x| x.as_ref().is_err_and(lost))
        }
        ControllerOpResult::CreatePartitions(r, None) => {
            !r.is_empty() && r.iter().all(|x| x.as_ref().is_err_and(lost))
        }
        ControllerOpResult::ElectLeaders(r, None) => {
            !r.is_empty() && r.iter().all(|(_, x)| x.as_ref().is_err_and(lost))
        }
        ControllerOpResult::AlterPartitionReassignments(r, None)
        | ControllerOpResult::IncrementalAlterConfigs(r, None) => {
            !r.is_empty() && r.iter().all(|x| x.as_ref().is_err_and(lost))
        }
        ControllerOpResult::RegisterBroker(Err(e))
        | ControllerOpResult::AddObserver(Err(e))
        | ControllerOpResult::AlterPartition(Err(e))
        | ControllerOpResult::BrokerHeartbeat(Err(e))
        | ControllerOpResult::AllocateProducerIds(Err(e))
        | ControllerOpResult::Failed(e) => lost(e),
        _ => false,
    }
}

/// The answer to `n` requests that all failed with `err`.
fn every_request_failed<T>(
    n: usize,
    err: &ApiError,
) -> (Vec<Result<T, ApiError>>, Option<CommitOffset>) {
    ((0..n).map(|_| Err(err.clone())).collect(), None)
}

/// The records that start or cancel one partition's reassignment.
fn reassignment_records(
    image: &MetadataImage,
    request: &PartitionReassignment,
    allow_replication_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorCode::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        )
    };
    let topic = image.topic(&request.topic).ok_or_else(unknown)?;
    let p = topic
        .partitions
        .get(&request.partition)
        .ok_or_else(unknown)?;
    match &request.target {
        Some(target) => reassignment::start_reassignment(
            image,
            topic.id,
            request.partition,
            p,
            target,
            allow_replication_factor_change,
        ),
        None => reassignment::cancel_reassignment(image, topic.id, request.partition, p)
            .map(|r| vec![r]),
    }
}

/// After `records` (an ISR change) applied to `image`: the record that
/// completes the partition's reassignment, if it may complete.
fn completed_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    records: &[MetadataRecord],
) -> Option<MetadataRecord> {
    let moving = image.topic(topic)?.partitions.get(&partition)?;
    if !moving.is_reassigning() {
        return None;
    }
    let (after, _) = image
        .apply(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| (image.offset + 1 + i as i64, r)),
        )
        .ok()?;
    let t = after.topic(topic)?;
    reassignment::complete_reassignment(&after, t.id, partition, t.partitions.get(&partition)?)
}

/// The brokers new replicas may go to: the unfenced ones, with their racks.
fn placement_brokers(image: &MetadataImage) -> Vec<PlacementBroker> {
    image
        .unfenced_brokers()
        .map(|b| PlacementBroker {
            id: b.broker_id,
            rack: b.rack.clone(),
        })
        .collect()
}

fn unexpected(answer: ControllerOpResult) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownServerError,
        format!("unexpected controller answer {answer:?}"),
    )
}

/// Checks manual replica assignments: non-empty, no duplicate brokers,
/// registered brokers, equal sizes (or `rf` when given).
fn validate_assignments(
    image: &MetadataImage,
    assignments: &[Vec<i32>],
    rf: Option<usize>,
) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::InvalidReplicaAssignment, m);
    let expected = rf
        .or_else(|| assignments.first().map(Vec::len))
        .unwrap_or(0);
    for replicas in assignments {
        if replicas.is_empty() {
            return Err(bad(
                "The manual partition assignment includes an empty replica list.".into(),
            ));
        }
        let unique: HashSet<&i32> = replicas.iter().collect();
        if unique.len() != replicas.len() {
            return Err(bad(format!("The manual partition assignment includes the broker ids more than once: {replicas:?}")));
        }
        if let Some(b) = replicas.iter().find(|b| image.broker(**b).is_none()) {
            return Err(bad(format!("The manual partition assignment includes broker {b}, but no such broker is registered.")));
        }
        if replicas.len() != expected {
            return Err(bad(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {expected} replica(s).",
                replicas.len()
            )));
        }
    }
    Ok(())
}
