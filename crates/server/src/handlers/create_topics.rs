//! CreateTopics (key 19): validated and placed by the controller; the
//! answer waits until this broker hosts the new partitions, so a produce
//! right after it succeeds. From v5 each created topic is described with
//! its partition count, replication factor and every config with its
//! source; from v7 with its id. `validate_only` runs every check and writes
//! nothing.

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_config::describe_topic_configs;
use strom_controller::{ApiError, CreateTopic, CreatedTopic};

use super::{metadata_wait, str_bytes, str_bytes_v3};
use crate::context::RequestContext;
use crate::legacy::V3;
use crate::registry::{Handler, Reply};

/// CreateTopics.
pub struct CreateTopicsHandler;

/// The controller's request from a `CreatableTopic` of either schema
/// generation (current or Kafka 3.9's): their fields have the same names.
macro_rules! create_topic_from {
    ($t:expr) => {{
        let t = $t;
        CreateTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .into_iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.into_iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                .collect(),
        }
    }};
}

/// Creates (or with `validate_only` checks) topics and waits until this
/// broker hosts the new partitions.
async fn create(
    ctx: &RequestContext,
    creates: Vec<CreateTopic>,
    validate_only: bool,
    timeout_ms: i32,
) -> Vec<Result<CreatedTopic, ApiError>> {
    let (results, offset) = ctx
        .broker
        .controller
        .create_topics(creates, validate_only, metadata_wait(timeout_ms))
        .await;
    if let Some(offset) = offset {
        ctx.broker
            .wait_for_metadata(offset, metadata_wait(timeout_ms))
            .await;
    }
    results
}

impl Handler for CreateTopicsHandler {
    type Request = CreateTopicsRequest;
    type Response = CreateTopicsResponse;
    const API_KEY: ApiKey = ApiKey::CreateTopics;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.topics.iter().for_each(|t| count(t.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: CreateTopicsRequest,
    ) -> Reply<CreateTopicsResponse> {
        let version = ctx.api_version;
        let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
        let creates = request
            .topics
            .into_iter()
            .map(|t| create_topic_from!(t))
            .collect();
        let results = create(&ctx, creates, request.validate_only, request.timeout_ms).await;
        let defaults = &ctx.broker.config.log_defaults;
        let topics = names
            .into_iter()
            .zip(results)
            .map(|(name, result)| match result {
                Ok(created) => {
                    let mut r = CreatableTopicResult::default()
                        .with_name(name)
                        .with_error_message(None);
                    if version >= 5 {
                        let configs = describe_topic_configs(defaults, &created.configs)
                            .into_iter()
                            .map(|c| {
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(c.name))
                                    .with_value(c.value.map(str_bytes))
                                    .with_read_only(c.read_only)
                                    .with_config_source(c.source.id())
                                    .with_is_sensitive(c.sensitive)
                            })
                            .collect();
                        r = r
                            .with_num_partitions(created.num_partitions)
                            .with_replication_factor(created.replication_factor)
                            .with_configs(Some(configs));
                    }
                    if version >= 7 {
                        r = r.with_topic_id(created.topic_id);
                    }
                    r
                }
                Err(e) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(e.code.code())
                    .with_error_message(e.message.map(str_bytes))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_configs(None),
            })
            .collect();
        Reply::Respond(CreateTopicsResponse::default().with_topics(topics))
    }
}

/// CreateTopics v0–1, removed in Kafka 4 and still accepted by Kafka 3.9
/// (v1 adds `validate_only` and error messages).
pub struct CreateTopicsV0Handler;

impl Handler for CreateTopicsV0Handler {
    type Request = V3<kafka_protocol_v3::messages::CreateTopicsRequest>;
    type Response = V3<kafka_protocol_v3::messages::CreateTopicsResponse>;
    const API_KEY: ApiKey = ApiKey::CreateTopics;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    async fn handle(ctx: RequestContext, V3(request): Self::Request) -> Reply<Self::Response> {
        use kafka_protocol_v3::messages::create_topics_response::CreatableTopicResult as V3Result;
        let version = ctx.api_version;
        let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
        let creates = request
            .topics
            .into_iter()
            .map(|t| create_topic_from!(t))
            .collect();
        let results = create(&ctx, creates, request.validate_only, request.timeout_ms).await;
        let topics = names
            .into_iter()
            .zip(results)
            .map(|(name, result)| {
                let r = V3Result::default().with_name(name).with_error_message(None);
                match result {
                    Ok(_) => r,
                    Err(e) => {
                        r.with_error_code(e.code.code())
                            .with_error_message(if version >= 1 {
                                e.message.map(|m| str_bytes_v3(&m))
                            } else {
                                None
                            })
                    }
                }
            })
            .collect();
        Reply::Respond(V3(
            kafka_protocol_v3::messages::CreateTopicsResponse::default().with_topics(topics),
        ))
    }
}
