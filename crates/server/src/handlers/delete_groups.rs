//! DeleteGroups (key 42): removes empty groups and their committed
//! offsets. A group with members is NON_EMPTY_GROUP; one that does not
//! exist is GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::error_code;

use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// DeleteGroups.
pub struct DeleteGroupsHandler;

impl Handler for DeleteGroupsHandler {
    type Request = DeleteGroupsRequest;
    type Response = DeleteGroupsResponse;
    const API_KEY: ApiKey = ApiKey::DeleteGroups;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.results.iter().for_each(|g| count(g.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: DeleteGroupsRequest,
    ) -> Reply<DeleteGroupsResponse> {
        let mut results = Vec::with_capacity(request.groups_names.len());
        for group_id in request.groups_names {
            let error = ctx.broker.groups.delete_group(&group_id).await;
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(error_code(error)),
            );
        }
        Reply::Respond(DeleteGroupsResponse::default().with_results(results))
    }
}
