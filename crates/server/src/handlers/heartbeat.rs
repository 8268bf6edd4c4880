//! Heartbeat (key 12): a member of a classic group is alive; the answer
//! tells it when to rejoin (REBALANCE_IN_PROGRESS) or that it was removed.

use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::outcome::HeartbeatParams;
use strom_protocol::error_code;

use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// Heartbeat.
pub struct HeartbeatHandler;

impl Handler for HeartbeatHandler {
    type Request = HeartbeatRequest;
    type Response = HeartbeatResponse;
    const API_KEY: ApiKey = ApiKey::Heartbeat;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(ctx: RequestContext, request: HeartbeatRequest) -> Reply<HeartbeatResponse> {
        let error = ctx
            .broker
            .groups
            .heartbeat(HeartbeatParams {
                group_id: request.group_id.0.to_string(),
                generation_id: request.generation_id,
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.map(|i| i.to_string()),
            })
            .await;
        Reply::Respond(HeartbeatResponse::default().with_error_code(error_code(error)))
    }
}
