//! AlterConfigs (key 33), the legacy way to change configs: each resource
//! gets the listed configs as its whole set of overrides, and every
//! override not listed is removed (IncrementalAlterConfigs changes single
//! keys). Topics and the dynamic broker configs, with the rules and errors
//! of `strom_controller::config_change`; `validate_only` writes nothing.
//! The answer waits until this broker has applied the change.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kafka_protocol::protocol::VersionRange;
use strom_controller::config_change::{ConfigChange, ConfigOp, ConfigOpKind};

use super::config_changes::{alter_configs, config_resource, resource_responses};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// AlterConfigs.
pub struct AlterConfigsHandler;

impl Handler for AlterConfigsHandler {
    type Request = AlterConfigsRequest;
    type Response = AlterConfigsResponse;
    const API_KEY: ApiKey = ApiKey::AlterConfigs;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.responses.iter().for_each(|c| count(c.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: AlterConfigsRequest,
    ) -> Reply<AlterConfigsResponse> {
        let proposed = request
            .resources
            .iter()
            .map(|r| {
                Ok(ConfigChange {
                    resource: config_resource(r.resource_type, r.resource_name.to_string()),
                    // A null value is refused as a SET without one is.
                    ops: r
                        .configs
                        .iter()
                        .map(|c| ConfigOp {
                            key: c.name.to_string(),
                            kind: ConfigOpKind::Set,
                            value: c.value.as_ref().map(ToString::to_string),
                        })
                        .collect(),
                    replace: true,
                })
            })
            .collect();
        let outcomes = alter_configs(&ctx, proposed, request.validate_only).await;
        let responses =
            resource_responses!(AlterConfigsResourceResponse, request.resources, outcomes);
        Reply::Respond(AlterConfigsResponse::default().with_responses(responses))
    }
}
