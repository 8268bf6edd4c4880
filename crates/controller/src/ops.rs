//! The operations a controller performs, as values: what a broker forwards
//! to the active controller over the controller RPC, and the answers.

use serde::{Deserialize, Serialize};
use strom_metadata::BrokerRegistration;
use uuid::Uuid;

use crate::config_change::ConfigChange;
use crate::controller::{CommitOffset, CreatePartitions, CreateTopic, CreatedTopic, TopicRef};
use crate::election::{ElectionResult, ElectionType};
use crate::error::ApiError;
use crate::isr_change::{IsrChange, IsrChanged};
use crate::quorum_description::QuorumDescription;
use crate::raft_types::ControllerNode;

/// One partition's requested reassignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReassignment {
    /// By name: an unknown one is UNKNOWN_TOPIC_OR_PARTITION.
    pub topic: String,
    /// A partition the topic does not have is UNKNOWN_TOPIC_OR_PARTITION.
    pub partition: i32,
    /// The replicas to move to; `None` cancels the one under way.
    pub target: Option<Vec<i32>>,
}

/// A broker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    /// The node id the broker registered with.
    pub broker_id: i32,
    /// Its registration's epoch: a heartbeat from any other registration
    /// is STALE_BROKER_EPOCH.
    pub broker_epoch: i64,
    /// The metadata offset it has applied.
    pub applied_offset: i64,
    /// It is shutting down: move leadership away.
    pub want_shutdown: bool,
    /// Its replicas whose logs failed (topic id, partition): move their
    /// leadership and ISR membership away.
    #[serde(default)]
    pub offline_replicas: Vec<(Uuid, i32)>,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The broker is fenced (not caught up yet, or shutting down).
    pub fenced: bool,
    /// The broker leads nothing any more and may stop.
    pub should_shutdown: bool,
}

/// An operation for the active controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerOp {
    /// CreateTopics: each topic is created or refused on its own.
    CreateTopics {
        /// In request order; a name given twice fails both.
        topics: Vec<CreateTopic>,
        /// Check and answer as if created, committing nothing.
        validate_only: bool,
    },
    /// DeleteTopics: each topic is deleted or refused on its own.
    DeleteTopics {
        /// By name or by id (DeleteTopics v6+), in request order.
        topics: Vec<TopicRef>,
    },
    /// CreatePartitions: each topic grows or is refused on its own.
    CreatePartitions {
        /// One per topic, in request order.
        requests: Vec<CreatePartitions>,
        /// Check and answer as if grown, committing nothing.
        validate_only: bool,
    },
    /// A broker (re-)registers.
    RegisterBroker(BrokerRegistration),
    /// A broker heartbeats.
    BrokerHeartbeat(BrokerHeartbeat),
    /// A broker needs producer ids.
    AllocateProducerIds {
        /// The broker the block is recorded for.
        broker_id: i32,
        /// Its registration's epoch, recorded with the block (Kafka's
        /// ProducerIdsRecord); not checked.
        broker_epoch: i64,
    },
    /// ElectLeaders: a new leader for each partition, or why not.
    ElectLeaders {
        /// Preferred or unclean.
        election: ElectionType,
        /// The partitions; every partition when `None`.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// DescribeQuorum.
    DescribeQuorum,
    /// AlterPartition: a leader's new ISR.
    AlterPartition(IsrChange),
    /// AlterPartitionReassignments.
    AlterPartitionReassignments {
        /// The partitions and their targets.
        partitions: Vec<PartitionReassignment>,
        /// Whether the replication factor may change (v1).
        allow_replication_factor_change: bool,
    },
    /// IncrementalAlterConfigs, and the legacy AlterConfigs (a change
    /// that replaces every key).
    IncrementalAlterConfigs {
        /// Each resource's changes.
        changes: Vec<ConfigChange>,
        /// Check and answer as if applied, committing nothing.
        validate_only: bool,
    },
    /// A broker-only node asks to follow the metadata log as an observer,
    /// replicated to at `endpoint`.
    AddObserver {
        /// Its `node.id`, as the Raft learner's id.
        node_id: u64,
        /// Where the controllers reach it (its inter-broker listener).
        endpoint: ControllerNode,
    },
}

/// The answer to a [`ControllerOp`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerOpResult {
    /// To CreateTopics.
    CreateTopics(Vec<Result<CreatedTopic, ApiError>>, Option<CommitOffset>),
    /// To DeleteTopics.
    DeleteTopics(Vec<Result<(Uuid, String), ApiError>>, Option<CommitOffset>),
    /// To CreatePartitions.
    CreatePartitions(Vec<Result<(), ApiError>>, Option<CommitOffset>),
    /// To RegisterBroker: the broker epoch (its registration's offset).
    RegisterBroker(Result<CommitOffset, ApiError>),
    /// To BrokerHeartbeat.
    BrokerHeartbeat(Result<HeartbeatReply, ApiError>),
    /// To AllocateProducerIds: the first id of the block.
    AllocateProducerIds(Result<i64, ApiError>),
    /// To ElectLeaders.
    ElectLeaders(Vec<ElectionResult>, Option<CommitOffset>),
    /// To AlterPartitionReassignments: each partition's outcome.
    AlterPartitionReassignments(Vec<Result<(), ApiError>>, Option<CommitOffset>),
    /// To IncrementalAlterConfigs: each resource's outcome.
    IncrementalAlterConfigs(Vec<Result<(), ApiError>>, Option<CommitOffset>),
    /// To DescribeQuorum.
    DescribeQuorum(QuorumDescription),
    /// To AddObserver.
    AddObserver(Result<(), ApiError>),
    /// To AlterPartition: the partition after the change.
    AlterPartition(Result<(IsrChanged, Option<CommitOffset>), ApiError>),
    /// The receiver is not the active controller (the leader it knows).
    NotLeader(Option<u64>),
    /// The operation could not be carried out at all.
    Failed(ApiError),
}
