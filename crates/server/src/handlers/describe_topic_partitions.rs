//! DescribeTopicPartitions (key 75, KIP-966): what Metadata says about
//! topics' partitions (leader, leader epoch, replicas, ISR, offline
//! replicas), in pages. The Java admin client's `describeTopics` uses it.
//!
//! Topics are described in name order: the ones asked for, or every topic
//! when the list is empty. A response holds at most
//! min(`response_partition_limit`, `max.request.partition.size.limit`)
//! partitions; when more remain, `next_cursor` names the first one left
//! out and the client asks again with it as `cursor`. A cursor topic that
//! is not among the topics asked for is INVALID_REQUEST for every topic.
//! Unknown topics asked for by name are UNKNOWN_TOPIC_OR_PARTITION
//! (INVALID_TOPIC_EXCEPTION for illegal names); with an empty list only
//! existing topics are listed. Eligible leader replicas (KIP-966) are not
//! kept, so those lists are empty (never null: the Java client reads them
//! without a null check).

use std::collections::{BTreeSet, HashSet};

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::VersionRange;
use strom_metadata::topic_name::{is_internal_topic, validate_topic_name};
use strom_metadata::{MetadataImage, PartitionRegistration, TopicImage};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::cluster_view::live_broker_ids;
use super::{str_bytes, TOPIC_AUTHORIZED_OPERATIONS};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// DescribeTopicPartitions.
pub struct DescribeTopicPartitionsHandler;

fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

fn error_topic(name: &str, code: ErrorCode) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(code.code())
        .with_name(Some(topic_name(name)))
        .with_topic_id(Uuid::nil())
        .with_is_internal(is_internal_topic(name))
}

fn describe_partition(
    image: &MetadataImage,
    live: &HashSet<i32>,
    index: i32,
    p: &PartitionRegistration,
) -> DescribeTopicPartitionsResponsePartition {
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(if live.contains(&p.leader) {
            p.leader
        } else {
            -1
        }))
        .with_leader_epoch(p.leader_epoch)
        .with_replica_nodes(ids(&p.replicas))
        .with_isr_nodes(ids(&p.isr))
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(ids(&image.offline_replicas(p)))
}

/// Partitions `first..first + max` of `topic` (fewer at its end), and the
/// index of the first one left out, if any.
fn page_of(
    image: &MetadataImage,
    live: &HashSet<i32>,
    topic: &TopicImage,
    first: i32,
    max: i64,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let count = i64::try_from(topic.partitions.len()).unwrap_or(i64::MAX);
    let end = count.min(i64::from(first).saturating_add(max));
    let next = (end < count).then(|| i32::try_from(end).unwrap_or(i32::MAX));
    let partitions = topic
        .partitions
        .range(first..)
        .take_while(|(i, _)| i64::from(**i) < end)
        .map(|(i, p)| describe_partition(image, live, *i, p))
        .collect();
    let described = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS);
    (described, next)
}

impl Handler for DescribeTopicPartitionsHandler {
    type Request = DescribeTopicPartitionsRequest;
    type Response = DescribeTopicPartitionsResponse;
    const API_KEY: ApiKey = ApiKey::DescribeTopicPartitions;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.topics.iter().for_each(|t| count(t.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: DescribeTopicPartitionsRequest,
    ) -> Reply<DescribeTopicPartitionsResponse> {
        let image = ctx.image();
        let cursor = request
            .cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        let cursor_topic = cursor.as_ref().map_or("", |(t, _)| t.as_str());
        let list_all = request.topics.is_empty();
        let names: BTreeSet<String> = if list_all {
            image.topics().map(|t| t.name.clone()).collect()
        } else {
            request
                .topics
                .iter()
                .map(|t| t.name.0.to_string())
                .collect()
        };
        let names: BTreeSet<String> = names
            .into_iter()
            .filter(|n| n.as_str() >= cursor_topic)
            .collect();
        if !list_all && cursor.is_some() && !names.contains(cursor_topic) {
            // Kafka answers an invalid request with the error on every topic.
            let topics = request
                .topics
                .iter()
                .map(|t| error_topic(&t.name.0, ErrorCode::InvalidRequest).with_is_internal(false))
                .collect();
            return Reply::Respond(DescribeTopicPartitionsResponse::default().with_topics(topics));
        }
        let live = live_broker_ids(&image, &ctx.listener_name);
        let mut remaining = i64::from(
            request
                .response_partition_limit
                .min(ctx.broker.config.max_request_partition_size_limit),
        );
        let mut topics = Vec::new();
        let mut next_cursor = None;
        for name in &names {
            if remaining == 0 {
                // Every partition of the topics before fitted: the next
                // page starts at this topic.
                next_cursor = Some((name.clone(), 0));
                break;
            }
            if remaining < 0 {
                break;
            }
            match image.topic(name) {
                Some(topic) => {
                    let first = match &cursor {
                        Some((t, p)) if t == name => *p,
                        _ => 0,
                    };
                    let (described, next) = page_of(&image, &live, topic, first, remaining);
                    remaining -= i64::try_from(described.partitions.len()).unwrap_or(i64::MAX);
                    topics.push(described);
                    if let Some(next) = next {
                        next_cursor = Some((name.clone(), next));
                        break;
                    }
                }
                None if !list_all => {
                    let code = if validate_topic_name(name).is_ok() {
                        ErrorCode::UnknownTopicOrPartition
                    } else {
                        ErrorCode::InvalidTopicException
                    };
                    topics.push(error_topic(name, code));
                }
                None => {}
            }
        }
        Reply::Respond(
            DescribeTopicPartitionsResponse::default()
                .with_topics(topics)
                .with_next_cursor(next_cursor.map(|(t, p)| {
                    Cursor::default()
                        .with_topic_name(topic_name(&t))
                        .with_partition_index(p)
                })),
        )
    }
}
