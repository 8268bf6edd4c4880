//! DescribeQuorum (key 55): the metadata quorum as the active controller
//! sees it: leader, epoch, high watermark, each voter's log end offset and
//! when it last fetched and was caught up (v1+), and the voters' controller
//! endpoints (v2). Any broker answers by asking the active controller. The
//! only partition there is `__cluster_metadata-0`; asking for anything
//! else is UNKNOWN_TOPIC_OR_PARTITION for each partition asked for, and
//! no reachable controller is NOT_LEADER_OR_FOLLOWER, as in Kafka.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::VersionRange;
use strom_controller::quorum_description::ReplicaProgress;
use strom_metadata::topic_name::CLUSTER_METADATA_TOPIC as METADATA_TOPIC;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// DescribeQuorum.
pub struct DescribeQuorumHandler;

/// How long to wait for the active controller's answer.
const DESCRIBE_QUORUM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn replica_state(p: &ReplicaProgress) -> ReplicaState {
    ReplicaState::default()
        .with_replica_id(BrokerId(p.replica_id))
        .with_log_end_offset(p.log_end_offset)
        .with_last_fetch_timestamp(p.last_fetch_timestamp_ms)
        .with_last_caught_up_timestamp(p.last_caught_up_timestamp_ms)
}

/// Every partition asked for, with `code`.
fn each_partition_failed(
    request: &DescribeQuorumRequest,
    code: ErrorCode,
    version: i16,
) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.code())
                                .with_error_message(
                                    (version >= 2).then(|| str_bytes(code.to_string())),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

impl Handler for DescribeQuorumHandler {
    type Request = DescribeQuorumRequest;
    type Response = DescribeQuorumResponse;
    const API_KEY: ApiKey = ApiKey::DescribeQuorum;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        count_partition_errors(&r.topics, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(
        ctx: RequestContext,
        request: DescribeQuorumRequest,
    ) -> Reply<DescribeQuorumResponse> {
        let version = ctx.api_version;
        let asks_for_metadata_log = matches!(
            request.topics.as_slice(),
            [t] if t.topic_name.0.as_str() == METADATA_TOPIC
                && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0)
        );
        if !asks_for_metadata_log {
            return Reply::Respond(each_partition_failed(
                &request,
                ErrorCode::UnknownTopicOrPartition,
                version,
            ));
        }
        let d = match ctx
            .broker
            .controller
            .describe_quorum(DESCRIBE_QUORUM_TIMEOUT)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "DescribeQuorum: no active controller answered");
                return Reply::Respond(each_partition_failed(
                    &request,
                    ErrorCode::NotLeaderOrFollower,
                    version,
                ));
            }
        };
        let partition = PartitionData::default()
            .with_partition_index(0)
            .with_leader_id(BrokerId(d.leader_id))
            .with_leader_epoch(d.leader_epoch)
            .with_high_watermark(d.high_watermark)
            .with_current_voters(d.voters.iter().map(replica_state).collect())
            .with_observers(d.observers.iter().map(replica_state).collect());
        let listener_name = ctx
            .broker
            .config
            .controller_listener_names
            .first()
            .cloned()
            .unwrap_or_else(|| "CONTROLLER".to_string());
        let nodes = if version >= 2 {
            d.voter_endpoints
                .iter()
                .map(|(id, endpoint)| {
                    Node::default()
                        .with_node_id(BrokerId(*id))
                        .with_listeners(vec![Listener::default()
                            .with_name(str_bytes(listener_name.clone()))
                            .with_host(str_bytes(endpoint.host.clone()))
                            .with_port(endpoint.port)])
                })
                .collect()
        } else {
            Vec::new()
        };
        Reply::Respond(
            DescribeQuorumResponse::default()
                .with_topics(vec![TopicData::default()
                    .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
                    .with_partitions(vec![partition])])
                .with_nodes(nodes),
        )
    }
}
