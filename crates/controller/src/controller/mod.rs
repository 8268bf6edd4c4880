//! The controller: the only writer of the metadata log. On the quorum
//! leader it validates requests against the current image, turns them
//! into metadata records and commits them through the quorum
//! ([`crate::quorum`]); every node's state machine applies them and
//! publishes the new image. Operations are serialized on the leader and
//! validated only after everything committed before them is applied.
//!
//! This file holds the [`Controller`] itself: start-up, routing each
//! operation to the active controller (carried out here when this node
//! leads, else forwarded and retried while leadership moves), and the
//! dispatch of the operations it carries out as leader. What they do is
//! split as in Kafka's controller:
//! - `cluster_control.rs` (`ClusterControlManager`): broker registration,
//!   heartbeats, fencing and unfencing, session expiry, producer id blocks;
//! - `replication_control.rs` (`ReplicationControlManager`): topics,
//!   partitions and replica placement, ISR changes, leader elections,
//!   reassignments;
//! - `configuration_control.rs` (`ConfigurationControlManager`): config
//!   changes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::{MetadataImage, MetadataRecord};
use strom_protocol::ErrorCode;
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::error::{ApiError, ControllerError};
use crate::forwarding::ControllerChannel;
use crate::ops::{ControllerOp, ControllerOpResult};
use crate::quorum::{MetadataQuorum, QuorumConfig};
use crate::quorum_description::QuorumDescription;
use crate::raft_types::ControllerNode;

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
mod configuration_control;
mod replication_control;

use cluster_control::BrokerSessions;
pub use cluster_control::PRODUCER_ID_BLOCK_SIZE;
pub use replication_control::{
    CreatePartitions, CreateTopic, CreatedTopic, TopicRef, MAX_ELECTIONS_PER_REBALANCE,
    MAX_PARTITIONS_PER_REQUEST,
};

/// The controller id Kafka reports when none is known.
pub const NO_CONTROLLER_ID: i32 = -1;

/// How long asking a voter who leads may take.
const LEADER_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an operation waits for the quorum to have a leader and answer.
pub const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the controller needs from the broker configuration.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// `node.id`.
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

/// The outcome of a write: the offset to wait for before the change is
/// visible on this broker.
pub type CommitOffset = i64;

/// How long start-up waits for the quorum to elect a leader.
pub const QUORUM_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Every node's way to change metadata, controllers and broker-only
/// nodes alike: an operation is carried out here when this node is the
/// active controller and forwarded to the one that is otherwise.
#[derive(Debug)]
pub struct Controller {
    config: ControllerConfig,
    cluster_id: String,
    quorum: MetadataQuorum,
    /// Forwards operations to the active controller.
    channel: ControllerChannel,
    /// Serializes operations on the leader, so each is validated against
    /// the image its predecessors left.
    write_lock: Mutex<()>,
    sessions: parking_lot::Mutex<BrokerSessions>,
    /// The term in which this node, as leader, last confirmed its image
    /// current: within one term every write goes through this node and is
    /// applied before it returns, so one confirmation per term suffices.
    current_in_term: parking_lot::Mutex<Option<u64>>,
    /// The last write's completion (see [`Self::commit`]): an operation
    /// whose caller gave up leaves its write going on, and the next one
    /// waits for it before reading the image.
    last_write: parking_lot::Mutex<Option<watch::Receiver<bool>>>,
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
            last_write: parking_lot::Mutex::new(None),
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

    /// DescribeQuorum, answered by the active controller.
    pub async fn describe_quorum(&self, timeout: Duration) -> Result<QuorumDescription, ApiError> {
        let op = ControllerOp::DescribeQuorum;
        self.route_as(op, timeout, answer!(DescribeQuorum(d) => Ok(d)))
            .await
    }

    /// The Raft quorum underneath: leadership, terms, the metadata log.
    pub fn quorum(&self) -> &MetadataQuorum {
        &self.quorum
    }

    /// The cluster id every controller RPC carries (`meta.properties`).
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
        // A write abandoned by its caller may still commit: the image must
        // not be read before it ends.
        // (A clone, left in place: if this wait is abandoned too, the next
        // operation still waits.)
        let last_write = self.last_write.lock().clone();
        if let Some(mut done) = last_write {
            let _ = done.wait_for(|done| *done).await;
        }
        let term = self.quorum.term();
        let confirmed = *self.current_in_term.lock() == Some(term) && self.quorum.is_leader();
        if !confirmed {
            self.quorum.ensure_current().await?;
            *self.current_in_term.lock() = Some(term);
        }
        Ok(self.image())
    }

    /// Whether a metadata write of this node (as leader) has not ended
    /// yet, including one whose caller gave up on it.
    pub fn write_in_progress(&self) -> bool {
        self.last_write
            .lock()
            .as_ref()
            .is_some_and(|done| !*done.borrow())
    }

    /// Commits records through the quorum; returns the offset to wait for.
    /// Must be called with the write lock held, after [`Self::current_image`].
    ///
    /// The write runs in its own task: a caller that gives up (a timeout,
    /// a closed connection) drops this future and with it the write lock,
    /// but not the write, which may still commit. The next operation's
    /// [`Self::current_image`] waits for it to end, so no operation is
    /// validated against an image missing a write still under way (a
    /// broker fenced while a topic it was just made leader of is still
    /// being committed would otherwise stay its leader).
    async fn commit(&self, records: Vec<MetadataRecord>) -> Result<CommitOffset, ControllerError> {
        let (done_tx, done_rx) = watch::channel(false);
        *self.last_write.lock() = Some(done_rx);
        let quorum = self.quorum.clone();
        let write = tokio::spawn(async move {
            let result = quorum.write(records).await;
            let _ = done_tx.send(true);
            result
        });
        write
            .await
            .map_err(|e| ControllerError::Unavailable(format!("the metadata write stopped: {e}")))?
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

/// An answer of another kind than the operation sent asks for (a bug, or
/// nodes of different versions): UNKNOWN_SERVER_ERROR.
fn unexpected(answer: ControllerOpResult) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownServerError,
        format!("unexpected controller answer {answer:?}"),
    )
}
