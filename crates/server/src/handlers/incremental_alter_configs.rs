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
use strom_controller::config_change::{ConfigChange, ConfigOp, ConfigOpKind};
use strom_controller::ApiError;
use strom_protocol::ErrorCode;

use super::config_changes::{alter_configs, config_resource, resource_responses};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

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
        let responses =
            resource_responses!(AlterConfigsResourceResponse, request.resources, outcomes);
        Reply::Respond(IncrementalAlterConfigsResponse::default().with_responses(responses))
    }
}
