//! AlterPartitionReassignments (key 45): moves partitions to new replicas,
//! or cancels a move (a null replica list). The active controller starts
//! each reassignment (see `strom_controller::reassignment`): the new
//! replicas join as followers, and once all are in the ISR the old ones
//! are dropped. The answer comes when the reassignment has started (this
//! broker applied it), not when it is done; ListPartitionReassignments
//! shows what is still moving. Per partition: UNKNOWN_TOPIC_OR_PARTITION,
//! INVALID_REPLICA_ASSIGNMENT, INVALID_REPLICATION_FACTOR (v1 without
//! `allow_replication_factor_change`), NO_REASSIGNMENT_IN_PROGRESS; a
//! controller that does not answer is the top-level error.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey,
};
use kafka_protocol::protocol::VersionRange;
use strom_controller::ops::PartitionReassignment;
use strom_controller::ApiError;

use super::{metadata_wait, str_bytes};
use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// AlterPartitionReassignments.
pub struct AlterPartitionReassignmentsHandler;

fn error_message(e: &ApiError) -> kafka_protocol::protocol::StrBytes {
    str_bytes(e.message.clone().unwrap_or_else(|| e.code.to_string()))
}

impl Handler for AlterPartitionReassignmentsHandler {
    type Request = AlterPartitionReassignmentsRequest;
    type Response = AlterPartitionReassignmentsResponse;
    const API_KEY: ApiKey = ApiKey::AlterPartitionReassignments;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        count_partition_errors(&r.responses, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(
        ctx: RequestContext,
        request: AlterPartitionReassignmentsRequest,
    ) -> Reply<AlterPartitionReassignmentsResponse> {
        // v0 has no such flag and always allowed it.
        let allow_rf_change = ctx.api_version == 0 || request.allow_replication_factor_change;
        let partitions: Vec<PartitionReassignment> = request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| PartitionReassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                })
            })
            .collect();
        let response = AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(request.allow_replication_factor_change);
        let wait = metadata_wait(request.timeout_ms);
        let results = match ctx
            .broker
            .controller
            .reassign_partitions(partitions.clone(), allow_rf_change, wait)
            .await
        {
            Ok((results, offset)) => {
                if let Some(offset) = offset {
                    ctx.broker.wait_for_metadata(offset, wait).await;
                }
                results
            }
            Err(e) => {
                return Reply::Respond(
                    response
                        .with_error_code(e.code.code())
                        .with_error_message(Some(error_message(&e))),
                )
            }
        };
        let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
        for (p, result) in partitions.iter().zip(results) {
            let entry = ReassignablePartitionResponse::default()
                .with_partition_index(p.partition)
                .with_error_code(result.as_ref().map_or_else(|e| e.code.code(), |()| 0))
                .with_error_message(result.err().map(|e| error_message(&e)));
            match topics.last_mut() {
                Some(last) if last.name.0.as_str() == p.topic => last.partitions.push(entry),
                _ => topics.push(
                    ReassignableTopicResponse::default()
                        .with_name(kafka_protocol::messages::TopicName(str_bytes(
                            p.topic.clone(),
                        )))
                        .with_partitions(vec![entry]),
                ),
            }
        }
        Reply::Respond(response.with_responses(topics))
    }
}
