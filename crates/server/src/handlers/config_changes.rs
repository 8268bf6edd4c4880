//! What AlterConfigs (the legacy, replacing form) and
//! IncrementalAlterConfigs share: naming a resource, carrying the changes
//! out through the controller (and waiting until this broker applied
//! them), and putting each resource's outcome in a response.

use kafka_protocol::protocol::StrBytes;
use strom_controller::config_change::{ConfigChange, ConfigResource};
use strom_controller::ApiError;
use strom_protocol::ErrorCode;

use super::{resource_type, str_bytes};
use crate::context::RequestContext;

/// How long the controller and the metadata may take: the requests have no
/// timeout of their own.
const ALTER_CONFIGS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A resource's error code and message in a response (0 and null when it
/// succeeded).
pub(super) fn error_parts(outcome: Result<(), ApiError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code.code(), e.message.map(str_bytes)),
    }
}

/// Each resource's answer from its outcome, in request order: AlterConfigs
/// and IncrementalAlterConfigs answer alike in types of their own.
macro_rules! resource_responses {
    ($response:ident, $resources:expr, $outcomes:expr) => {
        $resources
            .iter()
            .zip($outcomes)
            .map(|(r, outcome)| {
                let (code, message) = $crate::handlers::config_changes::error_parts(outcome);
                $response::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect()
    };
}
pub(super) use resource_responses;

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
