//! OffsetFetch (key 9): a group's committed offsets, for the partitions
//! asked or (topics null, v2+) for every partition with one.
//!
//! A partition without a committed offset has offset −1 and no error, as
//! in Kafka. A group-level error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
//! INVALID_GROUP_ID) is repeated on every requested partition in v1, is
//! the top-level error in v2–7 and the group's error in v8+, where one
//! request asks for several groups. Without transactions no offset is ever
//! pending, so `require_stable` (v7+) needs nothing.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::VersionRange;
use strom_coordinator::outcome::FetchedOffset;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// OffsetFetch.
pub struct OffsetFetchHandler;

/// The response's topics from a group's committed offsets: v8+ (per group)
/// and older responses differ only in their types' names.
macro_rules! committed_offsets {
    ($topic:ident, $partition:ident, $topics:expr) => {
        $topics
            .into_iter()
            .map(|(name, offsets): (TopicName, Vec<FetchedOffset>)| {
                $topic::default().with_name(name).with_partitions(
                    offsets
                        .into_iter()
                        .map(|o| {
                            $partition::default()
                                .with_partition_index(o.partition)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(o.leader_epoch)
                                .with_metadata(Some(str_bytes(o.metadata)))
                        })
                        .collect(),
                )
            })
            .collect()
    };
}

/// Requested partitions by topic; `None` for all.
type Wanted = Option<Vec<(TopicName, Vec<i32>)>>;

/// Committed offsets by topic, in request order (or by name for all).
type GroupOffsets = Result<Vec<(TopicName, Vec<FetchedOffset>)>, ErrorCode>;

async fn fetch_group(ctx: &RequestContext, group_id: &str, wanted: &Wanted) -> GroupOffsets {
    let partitions = wanted.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.0.to_string(), *p)))
            .collect()
    });
    let fetched = ctx
        .broker
        .groups
        .fetch_offsets(group_id, partitions)
        .await?;
    let mut by_topic: Vec<(TopicName, Vec<FetchedOffset>)> = Vec::new();
    for offset in fetched {
        match by_topic.last_mut() {
            Some((name, list)) if name.0.as_str() == offset.topic => list.push(offset),
            _ => by_topic.push((TopicName(str_bytes(offset.topic.clone())), vec![offset])),
        }
    }
    Ok(by_topic)
}

impl Handler for OffsetFetchHandler {
    type Request = OffsetFetchRequest;
    type Response = OffsetFetchResponse;
    const API_KEY: ApiKey = ApiKey::OffsetFetch;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 9 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        count_partition_errors(&r.topics, |t| &t.partitions, |p| p.error_code, count);
        for g in &r.groups {
            count(g.error_code);
            count_partition_errors(&g.topics, |t| &t.partitions, |p| p.error_code, count);
        }
    }

    async fn handle(
        ctx: RequestContext,
        request: OffsetFetchRequest,
    ) -> Reply<OffsetFetchResponse> {
        let version = ctx.api_version;
        if version >= 8 {
            let mut groups = Vec::with_capacity(request.groups.len());
            for group in request.groups {
                let wanted: Wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let response =
                    OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
                groups.push(match fetch_group(&ctx, &group.group_id, &wanted).await {
                    Err(code) => response.with_error_code(code.code()),
                    Ok(topics) => response.with_topics(committed_offsets!(
                        OffsetFetchResponseTopics,
                        OffsetFetchResponsePartitions,
                        topics
                    )),
                });
            }
            return Reply::Respond(OffsetFetchResponse::default().with_groups(groups));
        }
        let wanted: Wanted = request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let group_id: &GroupId = &request.group_id;
        let topics = match fetch_group(&ctx, group_id, &wanted).await {
            Ok(topics) => topics,
            Err(code) if version >= 2 => {
                return Reply::Respond(OffsetFetchResponse::default().with_error_code(code.code()))
            }
            Err(code) => {
                let failed = wanted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, partitions)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(name)
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(str_bytes("")))
                                            .with_error_code(code.code())
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                return Reply::Respond(OffsetFetchResponse::default().with_topics(failed));
            }
        };
        let topics = committed_offsets!(
            OffsetFetchResponseTopic,
            OffsetFetchResponsePartition,
            topics
        );
        Reply::Respond(OffsetFetchResponse::default().with_topics(topics))
    }
}
