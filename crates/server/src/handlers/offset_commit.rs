//! OffsetCommit (key 8): a group's consumed positions are stored in its
//! `__consumer_offsets` partition, replicated before the answer.
//!
//! Members of a classic group commit with their generation and member id;
//! consumers that manage partitions themselves commit with generation −1
//! to a group with no members ("simple" groups). Partitions of topics that
//! do not exist are UNKNOWN_TOPIC_OR_PARTITION, metadata longer than
//! `offset.metadata.max.bytes` is OFFSET_METADATA_TOO_LARGE, each per
//! partition. A commit with a generation to a group that does not exist is
//! GROUP_ID_NOT_FOUND from v9 and ILLEGAL_GENERATION before, as in Kafka.
//! An explicit retention time (v2–4 only; clients send −1, "the broker's")
//! is not honoured yet: those offsets too expire by
//! `offsets.retention.minutes`, where Kafka would use the one asked for.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::outcome::{CommitParams, OffsetToCommit};
use strom_protocol::{error_code, ErrorCode};

use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// OffsetCommit.
pub struct OffsetCommitHandler;

impl Handler for OffsetCommitHandler {
    type Request = OffsetCommitRequest;
    type Response = OffsetCommitResponse;
    const API_KEY: ApiKey = ApiKey::OffsetCommit;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 9 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count_partition_errors(&r.topics, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(
        ctx: RequestContext,
        request: OffsetCommitRequest,
    ) -> Reply<OffsetCommitResponse> {
        let image = ctx.image();
        // Per partition in request order: an early error, or the index of
        // the offset handed to the coordinator.
        let mut slots: Vec<Vec<(i32, Result<usize, ErrorCode>)>> = Vec::new();
        let mut offsets = Vec::new();
        for topic in &request.topics {
            let known = image.topic(&topic.name);
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let exists = known.is_some_and(|t| t.partitions.contains_key(&p.partition_index));
                if !exists {
                    partitions.push((p.partition_index, Err(ErrorCode::UnknownTopicOrPartition)));
                    continue;
                }
                partitions.push((p.partition_index, Ok(offsets.len())));
                offsets.push(OffsetToCommit {
                    topic: topic.name.0.to_string(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                });
            }
            slots.push(partitions);
        }
        let results = if request.group_id.is_empty() {
            Err(ErrorCode::InvalidGroupId)
        } else if offsets.is_empty() {
            Ok(Vec::new())
        } else {
            ctx.broker
                .groups
                .commit_offsets(CommitParams {
                    group_id: request.group_id.0.to_string(),
                    generation_id: request.generation_id_or_member_epoch,
                    member_id: request.member_id.to_string(),
                    group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
                    offsets,
                })
                .await
        };
        let results = results.map_err(|code| match code {
            ErrorCode::GroupIdNotFound if ctx.api_version < 9 => ErrorCode::IllegalGeneration,
            other => other,
        });
        let topics = request
            .topics
            .into_iter()
            .zip(slots)
            .map(|(topic, partitions)| {
                OffsetCommitResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, slot)| {
                                let error = match (slot, &results) {
                                    (_, Err(ErrorCode::InvalidGroupId)) => {
                                        Some(ErrorCode::InvalidGroupId)
                                    }
                                    (Err(code), _) => Some(code),
                                    (Ok(_), Err(code)) => Some(*code),
                                    (Ok(i), Ok(r)) => r
                                        .get(i)
                                        .copied()
                                        .unwrap_or(Some(ErrorCode::UnknownServerError)),
                                };
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(error_code(error))
                            })
                            .collect(),
                    )
            })
            .collect();
        Reply::Respond(OffsetCommitResponse::default().with_topics(topics))
    }
}
