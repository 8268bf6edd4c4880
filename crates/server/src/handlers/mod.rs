//! One file per Kafka API. Each handler declares its API key and the
//! versions it serves; [`register_all`] puts them in the registry that
//! ApiVersions is generated from.

use kafka_protocol::protocol::StrBytes;

use crate::registry::HandlerRegistry;

/// Kafka's config resource type ids (DescribeConfigs, AlterConfigs,
/// IncrementalAlterConfigs).
mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
}

pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod api_versions;
mod cluster_view;
mod config_changes;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;

/// Registers every handler.
pub fn register_all(registry: &mut HandlerRegistry) {
    registry
        .register::<api_versions::ApiVersionsHandler>()
        .register::<metadata::MetadataHandler>()
        .register::<produce::ProduceHandler>()
        .register::<fetch::FetchHandler>()
        .register::<list_offsets::ListOffsetsHandler>()
        .register::<list_offsets::ListOffsetsV0Handler>()
        .register::<create_topics::CreateTopicsHandler>()
        .register::<create_topics::CreateTopicsV0Handler>()
        .register::<delete_topics::DeleteTopicsHandler>()
        .register::<delete_topics::DeleteTopicsV0Handler>()
        .register::<create_partitions::CreatePartitionsHandler>()
        .register::<describe_configs::DescribeConfigsHandler>()
        .register::<describe_configs::DescribeConfigsV0Handler>()
        .register::<describe_cluster::DescribeClusterHandler>()
        .register::<describe_quorum::DescribeQuorumHandler>()
        .register::<describe_topic_partitions::DescribeTopicPartitionsHandler>()
        .register::<elect_leaders::ElectLeadersHandler>()
        .register::<incremental_alter_configs::IncrementalAlterConfigsHandler>()
        .register::<alter_configs::AlterConfigsHandler>()
        .register::<alter_partition_reassignments::AlterPartitionReassignmentsHandler>()
        .register::<list_partition_reassignments::ListPartitionReassignmentsHandler>()
        .register::<init_producer_id::InitProducerIdHandler>()
        .register::<find_coordinator::FindCoordinatorHandler>()
        .register::<join_group::JoinGroupHandler>()
        .register::<sync_group::SyncGroupHandler>()
        .register::<heartbeat::HeartbeatHandler>()
        .register::<leave_group::LeaveGroupHandler>()
        .register::<offset_commit::OffsetCommitHandler>()
        .register::<offset_fetch::OffsetFetchHandler>()
        .register::<offset_for_leader_epoch::OffsetForLeaderEpochHandler>()
        .register::<list_groups::ListGroupsHandler>()
        .register::<describe_groups::DescribeGroupsHandler>()
        .register::<delete_groups::DeleteGroupsHandler>()
        .register::<offset_delete::OffsetDeleteHandler>()
        .register::<sasl_handshake::SaslHandshakeHandler>()
        .register::<sasl_authenticate::SaslAuthenticateHandler>();
}

/// The name of a topic a request names by id (`by_id`: the version carries
/// topic ids, Produce v13+ and Fetch v13+) or by name; `None` for an id
/// this broker does not know (UNKNOWN_TOPIC_ID).
pub(crate) fn topic_name_of(
    image: &strom_metadata::MetadataImage,
    by_id: bool,
    name: &str,
    id: &uuid::Uuid,
) -> Option<String> {
    if by_id {
        image.topic_by_id(id).map(|t| t.name.clone())
    } else {
        Some(name.to_string())
    }
}

/// A `StrBytes` from any string.
pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A `StrBytes` of Kafka 3.9's schemas (see [`crate::legacy`]).
pub(crate) fn str_bytes_v3(s: &str) -> kafka_protocol_v3::protocol::StrBytes {
    kafka_protocol_v3::protocol::StrBytes::from_string(s.to_string())
}

/// How long admin requests wait for this broker to apply the metadata they
/// committed, at most.
pub(crate) fn metadata_wait(timeout_ms: i32) -> std::time::Duration {
    std::time::Duration::from_millis(timeout_ms.clamp(1_000, 60_000) as u64)
}

/// Kafka's bit field of all operations on a topic (no authorizer: all are
/// allowed): READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS.
pub(crate) const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Kafka's bit field of all operations on the cluster: CREATE, ALTER,
/// DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE.
pub(crate) const CLUSTER_AUTHORIZED_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// Kafka's bit field of all operations on a group: READ, DELETE, DESCRIBE.
pub(crate) const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// A group member's host as Kafka reports it: `/` and the peer's address.
pub(crate) fn client_host(ctx: &crate::context::RequestContext) -> String {
    format!("/{}", ctx.peer.ip())
}

/// A protocol name for a response field that is nullable from
/// `nullable_from`: before that version a missing name is the empty
/// string, from it an empty name is null (as Kafka's responses do).
pub(crate) fn protocol_name_for(
    version: i16,
    nullable_from: i16,
    name: Option<String>,
) -> Option<StrBytes> {
    if version < nullable_from {
        Some(str_bytes(name.unwrap_or_default()))
    } else {
        name.filter(|n| !n.is_empty()).map(str_bytes)
    }
}

/// The "not requested" value of authorized-operations fields.
pub(crate) const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
