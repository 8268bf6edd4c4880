//! DeleteTopics (key 20): by name, or from v6 by name or id. Refused with
//! TOPIC_DELETION_DISABLED when `delete.topic.enable=false`. The answer
//! waits until this broker has removed the topic's logs.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use strom_controller::{ApiError, TopicRef};
use uuid::Uuid;

use super::{metadata_wait, str_bytes};
use crate::context::RequestContext;
use crate::legacy::V3;
use crate::registry::{Handler, Reply};

/// DeleteTopics.
pub struct DeleteTopicsHandler;

/// Deletes topics and waits until this broker has removed their logs.
async fn delete(
    ctx: &RequestContext,
    refs: Vec<TopicRef>,
    timeout_ms: i32,
) -> Vec<Result<(Uuid, String), ApiError>> {
    let (results, offset) = ctx
        .broker
        .controller
        .delete_topics(refs, metadata_wait(timeout_ms))
        .await;
    if let Some(offset) = offset {
        ctx.broker
            .wait_for_metadata(offset, metadata_wait(timeout_ms))
            .await;
    }
    results
}

impl Handler for DeleteTopicsHandler {
    type Request = DeleteTopicsRequest;
    type Response = DeleteTopicsResponse;
    const API_KEY: ApiKey = ApiKey::DeleteTopics;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.responses.iter().for_each(|t| count(t.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: DeleteTopicsRequest,
    ) -> Reply<DeleteTopicsResponse> {
        let version = ctx.api_version;
        let asked: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
            request
                .topics
                .into_iter()
                .map(|t| (t.name, t.topic_id))
                .collect()
        } else {
            request
                .topic_names
                .into_iter()
                .map(|n| (Some(n), Uuid::nil()))
                .collect()
        };
        let refs = asked
            .iter()
            .map(|(name, id)| match (name, id.is_nil()) {
                (Some(n), true) => TopicRef::Name(n.0.to_string()),
                (None, false) => TopicRef::Id(*id),
                (None, true) => {
                    TopicRef::Invalid("Neither topic name nor id were specified.".into())
                }
                (Some(_), false) => {
                    TopicRef::Invalid("You may not specify both topic name and topic id.".into())
                }
            })
            .collect();
        let results = delete(&ctx, refs, request.timeout_ms).await;
        let responses = asked
            .into_iter()
            .zip(results)
            .map(|((name, id), result)| match result {
                Ok((topic_id, topic_name)) => DeletableTopicResult::default()
                    .with_name(Some(TopicName(str_bytes(topic_name))))
                    .with_topic_id(if version >= 6 { topic_id } else { Uuid::nil() }),
                Err(e) => DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(e.code.code())
                    .with_error_message(if version >= 5 {
                        e.message.map(str_bytes)
                    } else {
                        None
                    }),
            })
            .collect();
        Reply::Respond(DeleteTopicsResponse::default().with_responses(responses))
    }
}

/// DeleteTopics v0, removed in Kafka 4 and still accepted by Kafka 3.9.
pub struct DeleteTopicsV0Handler;

impl Handler for DeleteTopicsV0Handler {
    type Request = V3<kafka_protocol_v3::messages::DeleteTopicsRequest>;
    type Response = V3<kafka_protocol_v3::messages::DeleteTopicsResponse>;
    const API_KEY: ApiKey = ApiKey::DeleteTopics;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, V3(request): Self::Request) -> Reply<Self::Response> {
        use kafka_protocol_v3::messages::delete_topics_response::DeletableTopicResult as V3Result;
        let names = request.topic_names;
        let refs = names
            .iter()
            .map(|n| TopicRef::Name(n.0.to_string()))
            .collect();
        let results = delete(&ctx, refs, request.timeout_ms).await;
        let responses = names
            .into_iter()
            .zip(results)
            .map(|(name, r)| {
                V3Result::default()
                    .with_name(Some(name))
                    .with_error_code(r.err().map_or(0, |e| e.code.code()))
            })
            .collect();
        Reply::Respond(V3(
            kafka_protocol_v3::messages::DeleteTopicsResponse::default().with_responses(responses),
        ))
    }
}
