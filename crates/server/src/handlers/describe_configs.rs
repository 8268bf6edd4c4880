//! DescribeConfigs (key 32): every config of a topic or of this broker,
//! with its value, source, read-only and sensitive flags, and (on request)
//! synonyms, types and documentation.
//!
//! Broker resources are named by this broker's id: its static configs and
//! the dynamic ones (the replication throttle rates: this broker's own
//! value, else the cluster default, else Kafka's; DYNAMIC_BROKER_CONFIG,
//! DYNAMIC_DEFAULT_BROKER_CONFIG or DEFAULT_CONFIG). The empty name asks
//! for the cluster-wide dynamic defaults that are set; another id is
//! INVALID_REQUEST, as in Kafka. Broker loggers are not exposed as configs.

use std::collections::HashSet;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_config::throttle::{describe_dynamic_broker_configs, DYNAMIC_BROKER_KEYS};
use strom_config::{describe_topic_configs, ConfigSource, DescribedConfig};
use strom_metadata::topic_name::validate_topic_name;
use strom_metadata::ConfigResourceType;
use strom_protocol::ErrorCode;

use super::{resource_type, str_bytes, str_bytes_v3};
use crate::context::RequestContext;
use crate::legacy::V3;
use crate::registry::{Handler, Reply};

/// DescribeConfigs.
pub struct DescribeConfigsHandler;

fn render(
    config: DescribedConfig,
    version: i16,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(str_bytes(config.name))
        .with_value(config.value.map(str_bytes))
        .with_read_only(config.read_only)
        .with_config_source(config.source.id())
        .with_is_sensitive(config.sensitive);
    if synonyms {
        r = r.with_synonyms(
            config
                .synonyms
                .into_iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(str_bytes(s.name))
                        .with_value(s.value.map(str_bytes))
                        .with_source(s.source.id())
                })
                .collect(),
        );
    }
    if version >= 3 {
        r = r
            .with_config_type(config.config_type)
            .with_documentation(documentation.then(|| str_bytes(config.documentation)));
    } else {
        r = r.with_documentation(None);
    }
    r
}

fn error_result(
    resource_type: i8,
    name: kafka_protocol::protocol::StrBytes,
    code: ErrorCode,
    message: String,
) -> DescribeConfigsResult {
    DescribeConfigsResult::default()
        .with_resource_type(resource_type)
        .with_resource_name(name)
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
}

/// Every config of one resource, or the error for it.
fn describe(
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
) -> Result<Vec<DescribedConfig>, (ErrorCode, String)> {
    let node_id = ctx.broker.node_id();
    match resource_type {
        resource_type::TOPIC => {
            let image = ctx.image();
            if let Err(m) = validate_topic_name(name) {
                Err((ErrorCode::InvalidTopicException, m))
            } else if image.topic(name).is_none() {
                Err((
                    ErrorCode::UnknownTopicOrPartition,
                    format!("Topic '{name}' does not exist."),
                ))
            } else {
                Ok(describe_topic_configs(
                    &ctx.broker.config.log_defaults,
                    &image.topic_configs(name),
                ))
            }
        }
        resource_type::BROKER => match name.parse::<i32>() {
            _ if name.is_empty() => {
                let image = ctx.image();
                let cluster_default = image.configs(ConfigResourceType::Broker, "");
                Ok(describe_dynamic_broker_configs(None, &cluster_default))
            }
            Ok(id) if id == node_id => {
                let image = ctx.image();
                let own = image.configs(ConfigResourceType::Broker, name);
                let cluster_default = image.configs(ConfigResourceType::Broker, "");
                let mut configs = ctx.broker.config.describe();
                configs.retain(|c| !DYNAMIC_BROKER_KEYS.contains(&c.name.as_str()));
                configs.extend(describe_dynamic_broker_configs(
                    Some(&own),
                    &cluster_default,
                ));
                Ok(configs)
            }
            Ok(id) => Err((
                ErrorCode::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {node_id} or empty string, but received {id}"
                ),
            )),
            Err(_) => Err((
                ErrorCode::InvalidRequest,
                format!("Broker id must be an integer, but it is: {name}"),
            )),
        },
        resource_type::BROKER_LOGGER => match name.parse::<i32>() {
            Ok(id) if id == node_id => Ok(Vec::new()),
            _ => Err((
                ErrorCode::InvalidRequest,
                format!("Unexpected broker id, expected {node_id}, but received {name}"),
            )),
        },
        other => Err((
            ErrorCode::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// Keeps the configs named in `keys` (all when `keys` is null or empty).
fn filtered<'a, S: std::ops::Deref<Target = str> + 'a>(
    configs: Vec<DescribedConfig>,
    keys: Option<&'a [S]>,
) -> impl Iterator<Item = DescribedConfig> + 'a {
    let keys: Option<HashSet<String>> = keys
        .filter(|k| !k.is_empty())
        .map(|k| k.iter().map(|s| s.to_string()).collect());
    configs
        .into_iter()
        .filter(move |c| keys.as_ref().is_none_or(|k| k.contains(&c.name)))
}

impl Handler for DescribeConfigsHandler {
    type Request = DescribeConfigsRequest;
    type Response = DescribeConfigsResponse;
    const API_KEY: ApiKey = ApiKey::DescribeConfigs;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.results.iter().for_each(|c| count(c.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: DescribeConfigsRequest,
    ) -> Reply<DescribeConfigsResponse> {
        let version = ctx.api_version;
        let synonyms = request.include_synonyms;
        let documentation = version >= 3 && request.include_documentation;
        let results = request
            .resources
            .into_iter()
            .map(
                |res| match describe(&ctx, res.resource_type, &res.resource_name) {
                    Ok(configs) => DescribeConfigsResult::default()
                        .with_resource_type(res.resource_type)
                        .with_error_message(None)
                        .with_configs(
                            filtered(configs, res.configuration_keys.as_deref())
                                .map(|c| render(c, version, synonyms, documentation))
                                .collect(),
                        )
                        .with_resource_name(res.resource_name),
                    Err((code, message)) => {
                        error_result(res.resource_type, res.resource_name, code, message)
                    }
                },
            )
            .collect();
        Reply::Respond(DescribeConfigsResponse::default().with_results(results))
    }
}

/// DescribeConfigs v0, removed in Kafka 4 and still accepted by Kafka 3.9:
/// `is_default` instead of a source, no synonyms.
pub struct DescribeConfigsV0Handler;

impl Handler for DescribeConfigsV0Handler {
    type Request = V3<kafka_protocol_v3::messages::DescribeConfigsRequest>;
    type Response = V3<kafka_protocol_v3::messages::DescribeConfigsResponse>;
    const API_KEY: ApiKey = ApiKey::DescribeConfigs;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    async fn handle(ctx: RequestContext, V3(request): Self::Request) -> Reply<Self::Response> {
        use kafka_protocol_v3::messages::describe_configs_response as v3;
        let results = request
            .resources
            .into_iter()
            .map(|res| {
                let r = v3::DescribeConfigsResult::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
                match describe(&ctx, res.resource_type, &res.resource_name) {
                    Ok(configs) => r.with_error_message(None).with_configs(
                        filtered(configs, res.configuration_keys.as_deref())
                            .map(|c| {
                                v3::DescribeConfigsResourceResult::default()
                                    .with_name(str_bytes_v3(&c.name))
                                    .with_value(c.value.as_deref().map(str_bytes_v3))
                                    .with_read_only(c.read_only)
                                    .with_is_default(c.source == ConfigSource::DefaultConfig)
                                    .with_is_sensitive(c.sensitive)
                            })
                            .collect(),
                    ),
                    Err((code, message)) => r
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes_v3(&message))),
                }
            })
            .collect();
        Reply::Respond(V3(
            kafka_protocol_v3::messages::DescribeConfigsResponse::default().with_results(results),
        ))
    }
}
