//! ListOffsets (key 2): offsets by time, and the special earliest (−2),
//! latest (−1), max-timestamp (−3, from v7), earliest-local (−4, from v8)
//! and latest-tiered (−5, from v9) lookups.
//!
//! Latest is the high watermark for consumers (read-uncommitted and, with
//! no transactions, read-committed) and the log end offset for brokers.
//! A timestamp lookup that finds nothing answers offset −1, timestamp −1.

use std::collections::HashSet;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;
use strom_replication::{panic_boundary, special_timestamps, IsolationLevel, OffsetAndTimestamp};
use strom_storage::TopicPartition;

use super::str_bytes_v3;
use crate::context::RequestContext;
use crate::legacy::V3;
use crate::registry::{count_partition_errors, Handler, Reply};

/// ListOffsets.
pub struct ListOffsetsHandler;

/// The `replica_id` of consumers.
const CONSUMER_REPLICA_ID: i32 = -1;
/// The `replica_id` of debugging tools (may ask followers).
const DEBUGGING_REPLICA_ID: i32 = -2;

/// Lowest ListOffsets version that may ask for a special timestamp.
fn min_version_for(timestamp: i64) -> Option<i16> {
    use special_timestamps::*;
    match timestamp {
        t if t >= 0 => Some(0),
        LATEST | EARLIEST => Some(0),
        MAX_TIMESTAMP => Some(7),
        EARLIEST_LOCAL => Some(8),
        LATEST_TIERED => Some(9),
        _ => None,
    }
}

impl Handler for ListOffsetsHandler {
    type Request = ListOffsetsRequest;
    type Response = ListOffsetsResponse;
    const API_KEY: ApiKey = ApiKey::ListOffsets;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 10 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count_partition_errors(&r.topics, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(
        ctx: RequestContext,
        request: ListOffsetsRequest,
    ) -> Reply<ListOffsetsResponse> {
        let version = ctx.api_version;
        let image = ctx.image();
        let replica_id = request.replica_id.0;
        let isolation = match replica_id {
            CONSUMER_REPLICA_ID => Some(IsolationLevel::from_wire(request.isolation_level)),
            DEBUGGING_REPLICA_ID => None,
            _ => None,
        };
        let rm = std::sync::Arc::clone(&ctx.broker.replica_manager);
        let topics = strom_runtime::blocking::run(move || {
            let mut seen = HashSet::new();
            request
                .topics
                .into_iter()
                .map(|topic| {
                    let name = topic.name.0.to_string();
                    let partitions = topic
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let tp = TopicPartition::new(name.clone(), p.partition_index);
                            let result = if !seen.insert(tp.clone()) {
                                Err(ErrorCode::InvalidRequest)
                            } else if min_version_for(p.timestamp).is_none_or(|v| version < v) {
                                Err(ErrorCode::UnsupportedVersion)
                            } else {
                                panic_boundary(|| {
                                    rm.list_offset(
                                        &image,
                                        &tp,
                                        p.timestamp,
                                        isolation,
                                        p.current_leader_epoch,
                                    )
                                })
                                .map_err(|e| e.error_code())
                            };
                            let (code, found) = match result {
                                Ok(found) => (0, found),
                                Err(code) => (code.code(), OffsetAndTimestamp::NONE),
                            };
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                                .with_timestamp(found.timestamp)
                                .with_offset(found.offset)
                                .with_leader_epoch(if version >= 4 {
                                    found.leader_epoch
                                } else {
                                    -1
                                })
                        })
                        .collect();
                    ListOffsetsTopicResponse::default()
                        .with_name(topic.name)
                        .with_partitions(partitions)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        Reply::Respond(ListOffsetsResponse::default().with_topics(topics))
    }
}

/// ListOffsets v0, removed in Kafka 4 and still accepted by Kafka 3.9:
/// answers with up to `max_num_offsets` segment start offsets before the
/// timestamp (Kafka's `fetchOffsetsBefore`), newest first.
pub struct ListOffsetsV0Handler;

impl Handler for ListOffsetsV0Handler {
    type Request = V3<kafka_protocol_v3::messages::ListOffsetsRequest>;
    type Response = V3<kafka_protocol_v3::messages::ListOffsetsResponse>;
    const API_KEY: ApiKey = ApiKey::ListOffsets;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, V3(request): Self::Request) -> Reply<Self::Response> {
        use kafka_protocol_v3::messages::list_offsets_response as v3;
        let image = ctx.image();
        let from_consumer = request.replica_id.0 == CONSUMER_REPLICA_ID;
        let rm = std::sync::Arc::clone(&ctx.broker.replica_manager);
        let topics = strom_runtime::blocking::run(move || {
            request
                .topics
                .into_iter()
                .map(|topic| {
                    let name = topic.name.0.to_string();
                    let partitions = topic
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let tp = TopicPartition::new(name.clone(), p.partition_index);
                            let max = p.max_num_offsets.max(0) as usize;
                            let r = v3::ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index);
                            match panic_boundary(|| {
                                rm.legacy_offsets_before(
                                    &image,
                                    &tp,
                                    p.timestamp,
                                    max,
                                    from_consumer,
                                )
                            }) {
                                Ok(offsets) => r.with_old_style_offsets(offsets),
                                Err(e) => r.with_error_code(e.error_code().code()),
                            }
                        })
                        .collect();
                    v3::ListOffsetsTopicResponse::default()
                        .with_name(kafka_protocol_v3::messages::TopicName(str_bytes_v3(&name)))
                        .with_partitions(partitions)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        Reply::Respond(V3(
            kafka_protocol_v3::messages::ListOffsetsResponse::default().with_topics(topics),
        ))
    }
}
