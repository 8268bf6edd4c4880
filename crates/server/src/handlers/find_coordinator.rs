//! FindCoordinator (key 10): which broker coordinates a consumer group.
//!
//! The group coordinator names the broker (the leader of the group's
//! `__consumer_offsets` partition, creating that topic on the first
//! request); this handler answers with its endpoint on the client's
//! listener. Transaction coordinators (key type 1) are not served yet and
//! get COORDINATOR_NOT_AVAILABLE; unknown key types are INVALID_REQUEST.
//! v0–3 ask for one key, v4+ for a batch.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use super::cluster_view::reachable_brokers;
use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// FindCoordinator.
pub struct FindCoordinatorHandler;

/// Key types.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// A coordinator's address, or why there is none.
type Located = Result<(i32, String, i32), (ErrorCode, String)>;

/// The coordinator of one key.
async fn locate(ctx: &RequestContext, key_type: i8, key: &str) -> Located {
    let not_available = |why: &str| (ErrorCode::CoordinatorNotAvailable, why.to_string());
    match key_type {
        KEY_TYPE_GROUP => {}
        KEY_TYPE_TRANSACTION => {
            return Err(not_available(
                "Transactions are not supported by this broker yet.",
            ))
        }
        other => {
            return Err((
                ErrorCode::InvalidRequest,
                format!("Unknown coordinator type {other}."),
            ))
        }
    }
    let broker = &ctx.broker;
    let coordinator = broker
        .groups
        .coordinator_for(&broker.controller, key)
        .await
        .map_err(|code| (code, "The coordinator is not available.".to_string()))?;
    let endpoint = reachable_brokers(&coordinator.image, &ctx.listener_name, false)
        .find(|(b, _)| b.broker_id == coordinator.node_id)
        .map(|(b, e)| (b.broker_id, e.host.clone(), i32::from(e.port)));
    endpoint.ok_or_else(|| not_available("The coordinator is not available."))
}

impl Handler for FindCoordinatorHandler {
    type Request = FindCoordinatorRequest;
    type Response = FindCoordinatorResponse;
    const API_KEY: ApiKey = ApiKey::FindCoordinator;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 6 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        r.coordinators.iter().for_each(|c| count(c.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: FindCoordinatorRequest,
    ) -> Reply<FindCoordinatorResponse> {
        if ctx.api_version < 4 {
            let response = match locate(&ctx, request.key_type, &request.key).await {
                Ok((node_id, host, port)) => FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(node_id))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((code, message)) => FindCoordinatorResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1),
            };
            return Reply::Respond(response);
        }
        let mut coordinators = Vec::with_capacity(request.coordinator_keys.len());
        for key in request.coordinator_keys {
            let located = locate(&ctx, request.key_type, &key).await;
            let coordinator = Coordinator::default().with_key(key);
            coordinators.push(match located {
                Ok((node_id, host, port)) => coordinator
                    .with_node_id(BrokerId(node_id))
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((code, message)) => coordinator
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1),
            });
        }
        Reply::Respond(FindCoordinatorResponse::default().with_coordinators(coordinators))
    }
}
