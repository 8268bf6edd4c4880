//! ListGroups (key 16): the groups this broker coordinates. v4+ filter by
//! state and v5+ by type, both case-insensitively; every group here is a
//! "classic" group. While a partition's groups are still loading the
//! answer carries COORDINATOR_LOAD_IN_PROGRESS.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// ListGroups.
pub struct ListGroupsHandler;

/// The type of every group this broker keeps.
const CLASSIC_GROUP_TYPE: &str = "classic";

/// Whether `value` passes a filter (an empty filter passes everything).
fn passes(filter: &[kafka_protocol::protocol::StrBytes], value: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
}

impl Handler for ListGroupsHandler {
    type Request = ListGroupsRequest;
    type Response = ListGroupsResponse;
    const API_KEY: ApiKey = ApiKey::ListGroups;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(ctx: RequestContext, request: ListGroupsRequest) -> Reply<ListGroupsResponse> {
        let version = ctx.api_version;
        let (listings, error) = ctx.broker.groups.list_groups().await;
        let groups = listings
            .into_iter()
            .filter(|g| passes(&request.states_filter, g.state))
            .filter(|_| passes(&request.types_filter, CLASSIC_GROUP_TYPE))
            .map(|g| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(g.group_id)))
                    .with_protocol_type(str_bytes(g.protocol_type));
                let listed = if version >= 4 {
                    listed.with_group_state(str_bytes(g.state))
                } else {
                    listed
                };
                if version >= 5 {
                    listed.with_group_type(str_bytes(CLASSIC_GROUP_TYPE))
                } else {
                    listed
                }
            })
            .collect();
        Reply::Respond(
            ListGroupsResponse::default()
                .with_error_code(strom_protocol::error_code(error))
                .with_groups(groups),
        )
    }
}
