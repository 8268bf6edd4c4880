//! SyncGroup (key 14): the leader hands in the assignment; every member
//! waits for its own part. From v5 the protocol type and name are checked
//! against the group's and echoed back.

use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::outcome::SyncParams;
use strom_protocol::error_code;

use super::{protocol_name_for, str_bytes};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// SyncGroup.
pub struct SyncGroupHandler;

impl Handler for SyncGroupHandler {
    type Request = SyncGroupRequest;
    type Response = SyncGroupResponse;
    const API_KEY: ApiKey = ApiKey::SyncGroup;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(ctx: RequestContext, request: SyncGroupRequest) -> Reply<SyncGroupResponse> {
        let version = ctx.api_version;
        let params = SyncParams {
            group_id: request.group_id.0.to_string(),
            generation_id: request.generation_id,
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            protocol_type: request.protocol_type.map(|t| t.to_string()),
            protocol_name: request.protocol_name.map(|n| n.to_string()),
            assignments: request
                .assignments
                .into_iter()
                .map(|a| (a.member_id.to_string(), a.assignment))
                .collect(),
        };
        let outcome = ctx.broker.groups.sync_group(params).await;
        let mut response = SyncGroupResponse::default()
            .with_error_code(error_code(outcome.error))
            .with_assignment(outcome.assignment);
        if version >= 5 {
            response = response
                .with_protocol_type(outcome.protocol_type.map(str_bytes))
                .with_protocol_name(protocol_name_for(version, 5, outcome.protocol_name));
        }
        Reply::Respond(response)
    }
}
