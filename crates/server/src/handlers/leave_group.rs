//! LeaveGroup (key 13): members leave a classic group, which rebalances
//! the others. v0–2 carry one member id and one error; v3+ (KIP-345) leave
//! several members, named by member id or instance id, each with its own
//! error.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::outcome::LeavingMember;
use strom_protocol::{error_code, ErrorCode};

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// LeaveGroup.
pub struct LeaveGroupHandler;

impl Handler for LeaveGroupHandler {
    type Request = LeaveGroupRequest;
    type Response = LeaveGroupResponse;
    const API_KEY: ApiKey = ApiKey::LeaveGroup;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        r.members.iter().for_each(|m| count(m.error_code));
    }

    async fn handle(ctx: RequestContext, request: LeaveGroupRequest) -> Reply<LeaveGroupResponse> {
        let version = ctx.api_version;
        let leaving: Vec<LeavingMember> = if version < 3 {
            vec![LeavingMember {
                member_id: request.member_id.to_string(),
                group_instance_id: None,
            }]
        } else {
            request
                .members
                .iter()
                .map(|m| LeavingMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                })
                .collect()
        };
        let result = ctx
            .broker
            .groups
            .leave_group(&request.group_id, leaving.clone())
            .await;
        let response = match result {
            Err(code) => LeaveGroupResponse::default().with_error_code(code.code()),
            Ok(errors) if version < 3 => {
                let first: Option<ErrorCode> = errors.into_iter().flatten().next();
                LeaveGroupResponse::default().with_error_code(error_code(first))
            }
            Ok(errors) => LeaveGroupResponse::default().with_members(
                leaving
                    .into_iter()
                    .zip(errors)
                    .map(|(m, e)| {
                        MemberResponse::default()
                            .with_member_id(str_bytes(m.member_id))
                            .with_group_instance_id(m.group_instance_id.map(str_bytes))
                            .with_error_code(error_code(e))
                    })
                    .collect(),
            ),
        };
        Reply::Respond(response)
    }
}
