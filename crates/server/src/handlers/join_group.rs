//! JoinGroup (key 11): a member joins a classic consumer group and waits
//! for the rebalance to end; the leader gets every member's metadata.
//!
//! From v4 a member without an id first gets one with MEMBER_ID_REQUIRED
//! (KIP-394); from v5 members may be static (KIP-345); from v9 a rejoining
//! static leader may skip the assignment (KIP-814). v0 has no rebalance
//! timeout: it is the session timeout, as in Kafka.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::outcome::JoinParams;
use strom_protocol::error_code;

use super::{client_host, protocol_name_for, str_bytes};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// JoinGroup.
pub struct JoinGroupHandler;

impl Handler for JoinGroupHandler {
    type Request = JoinGroupRequest;
    type Response = JoinGroupResponse;
    const API_KEY: ApiKey = ApiKey::JoinGroup;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 9 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(ctx: RequestContext, request: JoinGroupRequest) -> Reply<JoinGroupResponse> {
        let version = ctx.api_version;
        let params = JoinParams {
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            client_id: ctx.client_id.as_deref().unwrap_or_default().to_string(),
            client_host: client_host(&ctx),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: if version == 0 {
                request.session_timeout_ms
            } else {
                request.rebalance_timeout_ms
            },
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
            require_known_member_id: version >= 4,
            supports_skip_assignment: version >= 9,
        };
        let outcome = ctx.broker.groups.join_group(params).await;
        let members = outcome
            .members
            .into_iter()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(str_bytes(m.member_id))
                    .with_group_instance_id(m.group_instance_id.map(str_bytes))
                    .with_metadata(m.metadata)
            })
            .collect();
        Reply::Respond(
            JoinGroupResponse::default()
                .with_error_code(error_code(outcome.error))
                .with_generation_id(outcome.generation_id)
                .with_protocol_type(outcome.protocol_type.map(str_bytes))
                .with_protocol_name(protocol_name_for(version, 7, outcome.protocol_name))
                .with_leader(str_bytes(outcome.leader))
                .with_skip_assignment(version >= 9 && outcome.skip_assignment)
                .with_member_id(str_bytes(outcome.member_id))
                .with_members(members),
        )
    }
}
