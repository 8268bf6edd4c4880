//! ListPartitionReassignments (key 46): the partitions still moving, with
//! all their replicas and the ones being added and removed, from this
//! broker's metadata image. A null topic list means every partition; named
//! topics or partitions that do not exist or are not moving are left out,
//! as in Kafka.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use kafka_protocol::protocol::VersionRange;
use strom_metadata::TopicImage;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// ListPartitionReassignments.
pub struct ListPartitionReassignmentsHandler;

/// The moving partitions of `topic` among `wanted` (all when `None`).
fn ongoing(topic: &TopicImage, wanted: Option<&[i32]>) -> Option<OngoingTopicReassignment> {
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let partitions: Vec<OngoingPartitionReassignment> = topic
        .partitions
        .iter()
        .filter(|(i, p)| p.is_reassigning() && wanted.is_none_or(|w| w.contains(i)))
        .map(|(i, p)| {
            OngoingPartitionReassignment::default()
                .with_partition_index(*i)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding_replicas))
                .with_removing_replicas(ids(&p.removing_replicas))
        })
        .collect();
    (!partitions.is_empty()).then(|| {
        OngoingTopicReassignment::default()
            .with_name(TopicName(str_bytes(topic.name.clone())))
            .with_partitions(partitions)
    })
}

impl Handler for ListPartitionReassignmentsHandler {
    type Request = ListPartitionReassignmentsRequest;
    type Response = ListPartitionReassignmentsResponse;
    const API_KEY: ApiKey = ApiKey::ListPartitionReassignments;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(
        ctx: RequestContext,
        request: ListPartitionReassignmentsRequest,
    ) -> Reply<ListPartitionReassignmentsResponse> {
        let image = ctx.image();
        let topics = match &request.topics {
            None => image.topics().filter_map(|t| ongoing(t, None)).collect(),
            Some(asked) => asked
                .iter()
                .filter_map(|t| {
                    let topic = image.topic(&t.name.0)?;
                    ongoing(topic, Some(&t.partition_indexes))
                })
                .collect(),
        };
        Reply::Respond(ListPartitionReassignmentsResponse::default().with_topics(topics))
    }
}
