//! IncrementalAlterConfigs (key 44): set, delete, append to or subtract
//! from topic configs, and the dynamic broker configs (the replication
//! throttle rates, per broker or cluster-wide); rules and errors in
//! `strom_controller::config_change`. `validate_only` writes nothing. The
//! answer waits until this broker has applied the change.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::VersionRange;
use strom_controller::config_change::{ConfigChange, ConfigOp, ConfigOpKind, ConfigResource};
use strom_controller::ApiError;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// How long the controller and the metadata may take: the request has no
/// timeout of its own.
const ALTER_CONFIGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Kafka's resource type ids.
mod resource_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
}

/// IncrementalAlterConfigs.
pub struct IncrementalAlterConfigsHandler;

impl Handler for IncrementalAlterConfigsHandler {
    type Request = IncrementalAlterConfigsRequest;
    type Response = IncrementalAlterConfigsResponse;
    const API_KEY: ApiKey = ApiKey::IncrementalAlterConfigs;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.responses.iter().for_each(|c| count(c.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: IncrementalAlterConfigsRequest,
    ) -> Reply<IncrementalAlterConfigsResponse> {
        let mut answers: Vec<Option<Result<(), ApiError>>> = Vec::new();
        let mut changes = Vec::new();
        for r in &request.resources {
            let ops: Option<Vec<ConfigOp>> = r
                .configs
                .iter()
                .map(|c| {
                    Some(ConfigOp {
                        key: c.name.to_string(),
                        kind: ConfigOpKind::from_wire(c.config_operation)?,
                        value: c.value.as_ref().map(ToString::to_string),
                    })
                })
                .collect();
            let Some(ops) = ops else {
                answers.push(Some(Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "Unknown config operation.",
                ))));
                continue;
            };
            let name = r.resource_name.to_string();
            let resource = match r.resource_type {
                resource_type::TOPIC => ConfigResource::Topic(name),
                resource_type::BROKER => ConfigResource::Broker(name),
                other => ConfigResource::Unsupported(other),
            };
            answers.push(None);
            changes.push(ConfigChange { resource, ops });
        }
        let (results, offset) = if changes.is_empty() {
            (Vec::new(), None)
        } else {
            ctx.broker
                .controller
                .incremental_alter_configs(changes, request.validate_only, ALTER_CONFIGS_TIMEOUT)
                .await
        };
        if let Some(offset) = offset {
            ctx.broker
                .wait_for_metadata(offset, ALTER_CONFIGS_TIMEOUT)
                .await;
        }
        let mut results = results.into_iter();
        let responses = request
            .resources
            .iter()
            .zip(answers)
            .map(|(r, answer)| {
                let outcome = answer.or_else(|| results.next()).unwrap_or_else(|| {
                    Err(ApiError::new(ErrorCode::UnknownServerError, "no answer"))
                });
                let base = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                match outcome {
                    Ok(()) => base.with_error_message(None),
                    Err(e) => base
                        .with_error_code(e.code.code())
                        .with_error_message(e.message.map(str_bytes)),
                }
            })
            .collect();
        Reply::Respond(IncrementalAlterConfigsResponse::default().with_responses(responses))
    }
}
