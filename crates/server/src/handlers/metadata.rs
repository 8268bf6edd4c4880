//! Metadata (key 3): brokers, cluster id, controller, and topics with their
//! partitions' leaders, replicas and ISR, from the applied metadata image.
//!
//! Unknown topics are created with `num.partitions` and
//! `default.replication.factor` when `auto.create.topics.enable` is on and
//! the request allows it (always before v4); the reply then describes the
//! new topic. In v0 an empty topic list means all topics; from v1 that is
//! a null list. From v12 topics may be asked for by id.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::VersionRange;
use strom_controller::CreateTopic;
use strom_metadata::topic_name::{is_internal_topic, validate_topic_name};
use strom_metadata::{MetadataImage, TopicImage};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::cluster_view::{controller_id_for_clients, live_broker_ids, reachable_brokers};
use super::{
    metadata_wait, str_bytes, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_AUTHORIZED_OPERATIONS,
    TOPIC_AUTHORIZED_OPERATIONS,
};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// Metadata.
pub struct MetadataHandler;

fn topic_response(
    image: &MetadataImage,
    topic: &TopicImage,
    listener: &str,
    include_authorized_operations: bool,
) -> MetadataResponseTopic {
    let live = live_broker_ids(image, listener);
    let partitions = topic
        .partitions
        .iter()
        .map(|(index, p)| {
            let leader_reachable = live.contains(&p.leader);
            let offline: Vec<BrokerId> = image
                .offline_replicas(p)
                .into_iter()
                .map(BrokerId)
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(if leader_reachable {
                    0
                } else {
                    ErrorCode::LeaderNotAvailable.code()
                })
                .with_partition_index(*index)
                .with_leader_id(BrokerId(if leader_reachable { p.leader } else { -1 }))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_authorized_operations {
            TOPIC_AUTHORIZED_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

fn error_topic(name: Option<&str>, topic_id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_topic_id(topic_id)
}

/// Creates `names` with the broker's defaults; returns the image the
/// broker applied afterwards and each failed topic's error code.
async fn auto_create(ctx: &RequestContext, names: Vec<String>) -> Vec<(String, ErrorCode)> {
    let requests = names
        .iter()
        .map(|n| CreateTopic {
            name: n.clone(),
            num_partitions: -1,
            replication_factor: -1,
            ..Default::default()
        })
        .collect();
    let (results, offset) = ctx
        .broker
        .controller
        .create_topics(requests, false, super::metadata_wait(0))
        .await;
    if let Some(offset) = offset {
        ctx.broker
            .wait_for_metadata(offset, metadata_wait(30_000))
            .await;
    }
    let mut failed = Vec::new();
    for (name, r) in names.into_iter().zip(results) {
        match r {
            Ok(created) => {
                tracing::info!(topic = %name, partitions = created.num_partitions, "auto-created topic")
            }
            Err(e) if e.code == ErrorCode::TopicAlreadyExists => {}
            Err(e) => {
                tracing::warn!(topic = %name, error = %e, "topic auto-creation failed");
                failed.push((name, e.code));
            }
        }
    }
    failed
}

impl Handler for MetadataHandler {
    type Request = MetadataRequest;
    type Response = MetadataResponse;
    const API_KEY: ApiKey = ApiKey::Metadata;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 13 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        for t in &r.topics {
            count(t.error_code);
            t.partitions.iter().for_each(|p| count(p.error_code));
        }
    }

    async fn handle(ctx: RequestContext, request: MetadataRequest) -> Reply<MetadataResponse> {
        let version = ctx.api_version;
        let include_ops = version >= 8 && request.include_topic_authorized_operations;
        let all_topics = match &request.topics {
            None => true,
            Some(t) => t.is_empty() && version == 0,
        };
        let mut image = ctx.image();
        let mut topics = Vec::new();
        if all_topics {
            topics = image
                .topics()
                .map(|t| topic_response(&image, t, &ctx.listener_name, include_ops))
                .collect();
        } else {
            let requested = request.topics.clone().unwrap_or_default();
            let allow_create = ctx.broker.config.auto_create_topics_enable
                && (version < 4 || request.allow_auto_topic_creation);
            // Topics to create first, so the reply can describe them.
            let missing: Vec<String> = requested
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .filter(|n| image.topic(n).is_none() && validate_topic_name(n).is_ok())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut failed = Vec::new();
            if allow_create && !missing.is_empty() {
                failed = auto_create(&ctx, missing).await;
                image = ctx.image();
            }
            for t in requested {
                let response = match &t.name {
                    Some(name) => {
                        let name = name.0.to_string();
                        if let Some(topic) = image.topic(&name) {
                            topic_response(&image, topic, &ctx.listener_name, include_ops)
                        } else if validate_topic_name(&name).is_err() {
                            error_topic(Some(&name), Uuid::nil(), ErrorCode::InvalidTopicException)
                        } else {
                            let code = failed
                                .iter()
                                .find(|(n, _)| *n == name)
                                .map_or(ErrorCode::UnknownTopicOrPartition, |(_, c)| *c);
                            error_topic(Some(&name), Uuid::nil(), code)
                        }
                    }
                    None => match image.topic_by_id(&t.topic_id) {
                        Some(topic) => {
                            topic_response(&image, topic, &ctx.listener_name, include_ops)
                        }
                        None => error_topic(None, t.topic_id, ErrorCode::UnknownTopicId),
                    },
                };
                topics.push(response);
            }
        }
        let brokers = reachable_brokers(&image, &ctx.listener_name, false)
            .map(|(b, e)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(str_bytes(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(str_bytes))
            })
            .collect();
        let mut response = MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(str_bytes(ctx.broker.cluster_id.clone())))
            .with_controller_id(BrokerId(controller_id_for_clients(&ctx, &image)))
            .with_topics(topics);
        if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
            response.cluster_authorized_operations = CLUSTER_AUTHORIZED_OPERATIONS;
        }
        Reply::Respond(response)
    }
}
