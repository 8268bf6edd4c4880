//! IncrementalAlterConfigs (key 44): set, delete, append to or subtract
//! from topic configs, and the dynamic broker configs (the replication
//! throttle rates, per broker or cluster-wide); rules and errors in
//! `strom_controller::config_change`. `validate_only` writes nothing. The
//! answer waits until this broker has applied the change.

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use strom_controller::config_change::{ConfigChange, ConfigOp, ConfigOpKind, ConfigResource};
use strom_controller::ApiError;
use strom_protocol::ErrorCode;

use super::{resource_type, str_bytes};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// How long the controller and the metadata may take: the request has no
/// timeout of its own.
const ALTER_CONFIGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
        let proposed = request
            .resources
            .iter()
            .map(|r| {
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
                let ops = ops.ok_or_else(|| {
                    ApiError::new(ErrorCode::InvalidRequest, "Unknown config operation.")
                })?;
                Ok(ConfigChange {
                    resource: config_resource(r.resource_type, r.resource_name.to_string()),
                    ops,
                    replace: false,
                })
            })
            .collect();
        let outcomes = alter_configs(&ctx, proposed, request.validate_only).await;
        let responses = request
            .resources
            .iter()
            .zip(outcomes)
            .map(|(r, outcome)| {
                let (code, message) = error_parts(outcome);
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
        Reply::Respond(IncrementalAlterConfigsResponse::default().with_responses(responses))
    }
}

/// A resource's error code and message in a response (0 and null when it
/// succeeded).
pub(super) fn error_parts(outcome: Result<(), ApiError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code.code(), e.message.map(str_bytes)),
    }
}

/// The resource a request names by Kafka's type id and name.
pub(super) fn config_resource(resource_type: i8, name: String) -> ConfigResource {
    match resource_type {
        resource_type::TOPIC => ConfigResource::Topic(name),
        resource_type::BROKER => ConfigResource::Broker(name),
        other => ConfigResource::Unsupported(other),
    }
}

/// Carries out the changes that could be read (`Ok`) through the controller
/// (nothing with `validate_only`), waiting until this broker has applied
/// them; each resource's outcome, in order.
pub(super) async fn alter_configs(
    ctx: &RequestContext,
    proposed: Vec<Result<ConfigChange, ApiError>>,
    validate_only: bool,
) -> Vec<Result<(), ApiError>> {
    let mut refused: Vec<Option<ApiError>> = Vec::with_capacity(proposed.len());
    let mut changes = Vec::new();
    for p in proposed {
        match p {
            Ok(change) => {
                refused.push(None);
                changes.push(change);
            }
            Err(e) => refused.push(Some(e)),
        }
    }
    let (results, offset) = if changes.is_empty() {
        (Vec::new(), None)
    } else {
        ctx.broker
            .controller
            .incremental_alter_configs(changes, validate_only, ALTER_CONFIGS_TIMEOUT)
            .await
    };
    if let Some(offset) = offset {
        ctx.broker
            .wait_for_metadata(offset, ALTER_CONFIGS_TIMEOUT)
            .await;
    }
    let mut results = results.into_iter();
    refused
        .into_iter()
        .map(|refusal| match refusal {
            Some(e) => Err(e),
            None => results
                .next()
                .unwrap_or_else(|| Err(ApiError::new(ErrorCode::UnknownServerError, "no answer"))),
        })
        .collect()
}
