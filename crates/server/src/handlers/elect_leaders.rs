//! ElectLeaders (key 43): preferred (type 0, the only kind in v0) or
//! unclean (type 1) leader election for the partitions asked for, or for
//! every partition when the list is null (then partitions that need no
//! election are left out of the answer, as in Kafka). The active
//! controller decides; the answer waits until this broker has applied the
//! new leaders. Per partition: ELECTION_NOT_NEEDED,
//! PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE or
//! UNKNOWN_TOPIC_OR_PARTITION; an unknown election type is INVALID_REQUEST.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use strom_controller::election::{ElectionResult, ElectionType};
use strom_protocol::ErrorCode;

use super::{metadata_wait, str_bytes};
use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// ElectLeaders.
pub struct ElectLeadersHandler;

impl Handler for ElectLeadersHandler {
    type Request = ElectLeadersRequest;
    type Response = ElectLeadersResponse;
    const API_KEY: ApiKey = ApiKey::ElectLeaders;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        count_partition_errors(
            &r.replica_election_results,
            |t| &t.partition_result,
            |p| p.error_code,
            count,
        );
    }

    async fn handle(
        ctx: RequestContext,
        request: ElectLeadersRequest,
    ) -> Reply<ElectLeadersResponse> {
        let election = match request.election_type {
            0 => ElectionType::Preferred,
            1 => ElectionType::Unclean,
            other => {
                tracing::debug!(election_type = other, "ElectLeaders: unknown election type");
                return Reply::Respond(ElectLeadersResponse::default().with_error_code(
                    if ctx.api_version >= 1 {
                        ErrorCode::InvalidRequest.code()
                    } else {
                        0
                    },
                ));
            }
        };
        let partitions: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
            let mut seen = std::collections::HashSet::new();
            topics
                .into_iter()
                .flat_map(|t| {
                    let name = t.topic.0.to_string();
                    t.partitions.into_iter().map(move |p| (name.clone(), p))
                })
                .filter(|tp| seen.insert(tp.clone()))
                .collect()
        });
        if partitions.as_ref().is_some_and(Vec::is_empty) {
            return Reply::Respond(ElectLeadersResponse::default());
        }
        let wait = metadata_wait(request.timeout_ms);
        let (results, offset) = match ctx
            .broker
            .controller
            .elect_leaders(election, partitions.clone(), wait)
            .await
        {
            Ok(answer) => answer,
            // No controller answered: every partition asked for gets the
            // error (v0 has no other place for it), and v1+ the top level.
            Err(e) => {
                let failed = partitions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| (p, Err(e.clone())))
                    .collect();
                let top = if ctx.api_version >= 1 {
                    e.code.code()
                } else {
                    0
                };
                return Reply::Respond(answer(failed).with_error_code(top));
            }
        };
        if let Some(offset) = offset {
            ctx.broker.wait_for_metadata(offset, wait).await;
        }
        Reply::Respond(answer(results))
    }
}

/// The response for `results`, grouped by topic in their order.
fn answer(results: Vec<ElectionResult>) -> ElectLeadersResponse {
    let mut by_topic: Vec<ReplicaElectionResult> = Vec::new();
    for ((topic, partition), result) in results {
        let entry = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(result.as_ref().map_or_else(|e| e.code.code(), |()| 0))
            .with_error_message(
                result
                    .err()
                    .map(|e| str_bytes(e.message.unwrap_or_else(|| e.code.to_string()))),
            );
        match by_topic.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partition_result.push(entry),
            _ => by_topic.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(vec![entry]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(by_topic)
}
