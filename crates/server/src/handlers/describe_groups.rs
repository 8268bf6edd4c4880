//! DescribeGroups (key 15): state, protocol and members of groups. Member
//! metadata and assignments are filled in for Stable groups only, as in
//! Kafka. A group that does not exist is GROUP_ID_NOT_FOUND from v6 and a
//! "Dead" group without error before.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED, GROUP_AUTHORIZED_OPERATIONS};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// DescribeGroups.
pub struct DescribeGroupsHandler;

impl Handler for DescribeGroupsHandler {
    type Request = DescribeGroupsRequest;
    type Response = DescribeGroupsResponse;
    const API_KEY: ApiKey = ApiKey::DescribeGroups;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.groups.iter().for_each(|g| count(g.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: DescribeGroupsRequest,
    ) -> Reply<DescribeGroupsResponse> {
        let version = ctx.api_version;
        let operations = if version >= 3 && request.include_authorized_operations {
            GROUP_AUTHORIZED_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        };
        let mut groups = Vec::with_capacity(request.groups.len());
        for group_id in request.groups {
            let described = ctx.broker.groups.describe_group(&group_id).await;
            let base = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(operations);
            groups.push(match described {
                Ok(Some(g)) => base
                    .with_group_state(str_bytes(g.state))
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_protocol_data(str_bytes(g.protocol))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(if version >= 4 {
                                        m.group_instance_id.map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                Ok(None) if version >= 6 => base
                    .with_error_code(ErrorCode::GroupIdNotFound.code())
                    .with_error_message(Some(str_bytes(format!("Group {} not found.", group_id.0))))
                    .with_group_state(str_bytes("Dead")),
                Ok(None) => base.with_group_state(str_bytes("Dead")),
                Err(code) => base.with_error_code(code.code()),
            });
        }
        Reply::Respond(DescribeGroupsResponse::default().with_groups(groups))
    }
}
