//! Shared helpers of the end-to-end tests: a broker process and typed
//! requests over a raw connection.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::batch::BatchIter;
use strom_protocol::batch_builder::BatchBuilder;
use strom_test_utils::{BrokerProcess, KafkaConnection};

pub const BIN: &str = env!("CARGO_BIN_EXE_strom");

pub fn broker(overrides: &[&str]) -> BrokerProcess {
    BrokerProcess::start(BIN, overrides).expect("start strom")
}

pub fn connect(b: &BrokerProcess) -> KafkaConnection {
    KafkaConnection::connect(&b.bootstrap()).expect("connect")
}

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn create_topic(
    c: &mut KafkaConnection,
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    let t = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        );
    c.send(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_timeout_ms(10_000),
    )
    .unwrap()
}

/// Creates a topic with `rf` replicas per partition; its error code.
pub fn create_topic_rf(c: &mut KafkaConnection, topic: &str, partitions: i32, rf: i16) -> i16 {
    let t = create_topics_request::CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(rf);
    let r: CreateTopicsResponse = c
        .send(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default()
                .with_topics(vec![t])
                .with_timeout_ms(10_000),
        )
        .unwrap();
    r.topics[0].error_code
}

/// Metadata v12 about one topic.
pub fn topic_metadata(c: &mut KafkaConnection, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    c.send(ApiKey::Metadata, 12, &req).unwrap()
}

/// Partition index -> leader id of the first topic of `r` (empty when it
/// has an error).
pub fn partition_leaders(r: &MetadataResponse) -> std::collections::BTreeMap<i32, i32> {
    r.topics
        .first()
        .filter(|t| t.error_code == 0)
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect()
        })
        .unwrap_or_default()
}

pub fn values_batch(values: &[&[u8]]) -> Bytes {
    Bytes::from(BatchBuilder::of_values(now_ms(), values).build())
}

pub fn produce_raw(
    c: &mut KafkaConnection,
    version: i16,
    topic: &str,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    c.send(ApiKey::Produce, version, &req).unwrap()
}

/// Produces one batch; returns (error code, base offset).
pub fn produce(
    c: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    values: &[&[u8]],
) -> (i16, i64) {
    let r = produce_raw(c, 9, topic, partition, values_batch(values), -1);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])])
}

pub fn fetch(
    c: &mut KafkaConnection,
    topic: &str,
    partition: i32,
    offset: i64,
    max: i32,
) -> fetch_response::PartitionData {
    let r = c
        .send(
            ApiKey::Fetch,
            12,
            &fetch_request(topic, partition, offset, max),
        )
        .unwrap();
    assert_eq!(r.error_code, 0);
    r.responses[0].partitions[0].clone()
}

/// (offset, value) of every record in `records`, checking each batch's CRC.
pub fn decode_records(records: &Bytes) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for item in BatchIter::new(records) {
        let (pos, h) = item.unwrap();
        let batch = records.slice(pos..pos + h.size_bytes());
        strom_protocol::batch::check_batch(&batch).unwrap();
        strom_protocol::compression::for_each_record::<strom_protocol::batch::BatchError>(
            &batch,
            &h,
            |r| {
                out.push((
                    h.base_offset + i64::from(r.offset_delta),
                    r.value.map(|v| v.to_vec()).unwrap_or_default(),
                ));
                Ok(())
            },
        )
        .unwrap();
    }
    out
}

pub fn list_offset(
    c: &mut KafkaConnection,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> list_offsets_response::ListOffsetsPartitionResponse {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])]);
    let r = c.send(ApiKey::ListOffsets, version, &req).unwrap();
    r.topics[0].partitions[0].clone()
}

/// DescribeQuorum for one partition of `topic` (the metadata log is
/// `__cluster_metadata`, partition 0).
pub fn describe_quorum_request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default(
    )
    .with_topic_name(name(topic))
    .with_partitions(vec![
        describe_quorum_request::PartitionData::default().with_partition_index(partition)
    ])])
}

/// IncrementalAlterConfigs of one resource: `(key, operation, value)`;
/// its error code.
pub fn alter_configs(
    node: &BrokerProcess,
    resource_type: i8,
    resource: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> i16 {
    let mut c = connect(node);
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            incremental_alter_configs_request::AlterableConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_config_operation(*op)
                .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
        })
        .collect();
    let r: IncrementalAlterConfigsResponse = c
        .send(
            ApiKey::IncrementalAlterConfigs,
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(resource.to_string()))
                    .with_configs(configs),
            ]),
        )
        .unwrap();
    r.responses[0].error_code
}

/// A `/proc/<pid>/status` field in KiB (see
/// [`strom_test_utils::proc_status_kib`]); panics when it cannot be read.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    strom_test_utils::proc_status_kib(pid, field)
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
