//! One file per Kafka API. Each handler declares its API key and the
//! versions it serves; [`register_all`] puts them in the registry that
//! ApiVersions is generated from.

use kafka_protocol::protocol::StrBytes;

use crate::registry::HandlerRegistry;

pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod fetch;
pub mod init_producer_id;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

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
        .register::<init_producer_id::InitProducerIdHandler>();
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

/// The "not requested" value of authorized-operations fields.
pub(crate) const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;
