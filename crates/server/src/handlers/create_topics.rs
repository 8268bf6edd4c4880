//! CreateTopics (key 19): validated and placed by the controller; the
//! answer waits until this broker hosts the new partitions, so a produce
//! right after it succeeds. From v5 each created topic is described with
//! its partition count, replication factor and every config with its
//! source; from v7 with its id. `validate_only` runs every check and writes
//! nothing.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_config::describe_topic_configs;
use strom_controller::CreateTopic;

use super::{metadata_wait, str_bytes};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// CreateTopics.
pub struct CreateTopicsHandler;

impl Handler for CreateTopicsHandler {
    type Request = CreateTopicsRequest;
    type Response = CreateTopicsResponse;
    const API_KEY: ApiKey = ApiKey::CreateTopics;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

    async fn handle(
        ctx: RequestContext,
        request: CreateTopicsRequest,
    ) -> Reply<CreateTopicsResponse> {
        let version = ctx.api_version;
        let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
        let creates = request
            .topics
            .into_iter()
            .map(|t| CreateTopic {
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
            })
            .collect();
        let (results, offset) = ctx
            .broker
            .controller
            .create_topics(creates, request.validate_only)
            .await;
        if let Some(offset) = offset {
            ctx.broker
                .wait_for_metadata(offset, metadata_wait(request.timeout_ms))
                .await;
        }
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
                        let overrides: BTreeMap<String, String> = created.configs;
                        let configs = describe_topic_configs(defaults, &overrides)
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
