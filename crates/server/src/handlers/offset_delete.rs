//! OffsetDelete (key 47): removes committed offsets of a group. The group
//! must be empty, or a consumer group not subscribed to the topics
//! (GROUP_SUBSCRIBED_TO_TOPIC per partition otherwise). Partitions of
//! topics that do not exist are UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::{error_code, ErrorCode};

use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// OffsetDelete.
pub struct OffsetDeleteHandler;

impl Handler for OffsetDeleteHandler {
    type Request = OffsetDeleteRequest;
    type Response = OffsetDeleteResponse;
    const API_KEY: ApiKey = ApiKey::OffsetDelete;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        count_partition_errors(&r.topics, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(
        ctx: RequestContext,
        request: OffsetDeleteRequest,
    ) -> Reply<OffsetDeleteResponse> {
        let image = ctx.image();
        let mut slots: Vec<Vec<(i32, Result<usize, ErrorCode>)>> = Vec::new();
        let mut partitions = Vec::new();
        for topic in &request.topics {
            let known = image.topic(&topic.name);
            slots.push(
                topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let index = p.partition_index;
                        if known.is_some_and(|t| t.partitions.contains_key(&index)) {
                            partitions.push((topic.name.0.to_string(), index));
                            (index, Ok(partitions.len() - 1))
                        } else {
                            (index, Err(ErrorCode::UnknownTopicOrPartition))
                        }
                    })
                    .collect(),
            );
        }
        let results = match ctx
            .broker
            .groups
            .delete_offsets(&request.group_id, partitions)
            .await
        {
            Ok(results) => results,
            Err(code) => {
                return Reply::Respond(OffsetDeleteResponse::default().with_error_code(code.code()))
            }
        };
        let topics = request
            .topics
            .into_iter()
            .zip(slots)
            .map(|(topic, slots)| {
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name)
                    .with_partitions(
                        slots
                            .into_iter()
                            .map(|(index, slot)| {
                                let error = match slot {
                                    Err(code) => Some(code),
                                    Ok(i) => results
                                        .get(i)
                                        .copied()
                                        .unwrap_or(Some(ErrorCode::UnknownServerError)),
                                };
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_error_code(error_code(error))
                            })
                            .collect(),
                    )
            })
            .collect();
        Reply::Respond(OffsetDeleteResponse::default().with_topics(topics))
    }
}
