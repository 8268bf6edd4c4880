//! FindCoordinator (key 10): which broker coordinates a consumer group.
//!
//! A group's coordinator is the leader of its `__consumer_offsets`
//! partition. The first request for any group creates that topic with
//! Kafka's `offsets.topic.*` settings (the replication factor capped by the
//! brokers there are) and waits for this broker to apply it, so a new
//! cluster answers the first request instead of COORDINATOR_NOT_AVAILABLE.
//! Transaction coordinators (key type 1) are not served yet and get
//! COORDINATOR_NOT_AVAILABLE; unknown key types are INVALID_REQUEST.
//! v0–3 ask for one key, v4+ for a batch.

use std::time::Duration;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::offsets_topic::{partition_for, CONSUMER_OFFSETS_TOPIC};
use strom_metadata::MetadataImage;
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

/// How long a request waits for `__consumer_offsets` to be created and
/// applied before answering COORDINATOR_NOT_AVAILABLE.
const OFFSETS_TOPIC_CREATE_WAIT: Duration = Duration::from_secs(10);

/// A coordinator's address, or why there is none.
type Located = Result<(i32, String, i32), (ErrorCode, String)>;

/// The image once `__consumer_offsets` exists in it, creating the topic if
/// needed.
async fn with_offsets_topic(
    ctx: &RequestContext,
) -> Result<std::sync::Arc<MetadataImage>, ErrorCode> {
    let image = ctx.image();
    if image.topic(CONSUMER_OFFSETS_TOPIC).is_some() {
        return Ok(image);
    }
    let broker = &ctx.broker;
    let spec = broker
        .groups
        .offsets_topic_spec(image.unfenced_brokers().count());
    let (results, _) = broker
        .controller
        .create_topics(vec![spec], false, OFFSETS_TOPIC_CREATE_WAIT)
        .await;
    match results.into_iter().next() {
        Some(Ok(created)) => {
            tracing::info!(
                topic = CONSUMER_OFFSETS_TOPIC,
                partitions = created.num_partitions,
                replication_factor = created.replication_factor,
                "created the group coordinator's topic"
            );
        }
        Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => {}
        Some(Err(e)) => {
            tracing::warn!(error = ?e.code, message = ?e.message, "cannot create __consumer_offsets");
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        None => return Err(ErrorCode::CoordinatorNotAvailable),
    }
    broker
        .wait_for_image(
            |img| img.topic(CONSUMER_OFFSETS_TOPIC).is_some(),
            OFFSETS_TOPIC_CREATE_WAIT,
        )
        .await
        .ok_or(ErrorCode::CoordinatorNotAvailable)
}

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
    let image = with_offsets_topic(ctx)
        .await
        .map_err(|code| (code, "The coordinator is not available.".to_string()))?;
    let Some(topic) = image.topic(CONSUMER_OFFSETS_TOPIC) else {
        return Err(not_available("The coordinator is not available."));
    };
    let partition = partition_for(key, topic.partitions.len() as i32);
    let leader = topic.partitions.get(&partition).map_or(-1, |p| p.leader);
    let endpoint = reachable_brokers(&image, &ctx.listener_name, false)
        .find(|(b, _)| b.broker_id == leader)
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
