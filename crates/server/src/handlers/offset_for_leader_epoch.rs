//! OffsetForLeaderEpoch (key 23): for each partition, the largest leader
//! epoch not above the one asked for that the leader's log knows, and the
//! offset where that epoch ends (where the next one starts, or the log end
//! offset for the newest). Consumers use it to validate their position
//! after a leader change (KIP-320), followers to find where their log
//! diverges from the leader's. Only the leader answers
//! (NOT_LEADER_OR_FOLLOWER otherwise); `current_leader_epoch` is checked
//! like Fetch's (FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH). An epoch the
//! log cannot place answers epoch −1, offset −1. Versions 2–4, as Kafka 4
//! serves (v0–1 predate KIP-320 and no current client sends them).

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::protocol::VersionRange;
use strom_storage::TopicPartition;

use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// OffsetForLeaderEpoch.
pub struct OffsetForLeaderEpochHandler;

impl Handler for OffsetForLeaderEpochHandler {
    type Request = OffsetForLeaderEpochRequest;
    type Response = OffsetForLeaderEpochResponse;
    const API_KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 4 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count_partition_errors(&r.topics, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(
        ctx: RequestContext,
        request: OffsetForLeaderEpochRequest,
    ) -> Reply<OffsetForLeaderEpochResponse> {
        let image = ctx.image();
        let rm = &ctx.broker.replica_manager;
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let tp = TopicPartition::new(t.topic.0.as_str(), p.partition);
                        let answer = EpochEndOffset::default().with_partition(p.partition);
                        match rm.leader_partition(&image, &tp, p.current_leader_epoch) {
                            Ok(partition) => {
                                let (epoch, end_offset) =
                                    partition.log().end_offset_for_epoch(p.leader_epoch);
                                answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                            }
                            Err(e) => answer
                                .with_error_code(e.error_code().code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1),
                        }
                    })
                    .collect();
                OffsetForLeaderTopicResult::default()
                    .with_topic(t.topic)
                    .with_partitions(partitions)
            })
            .collect();
        Reply::Respond(OffsetForLeaderEpochResponse::default().with_topics(topics))
    }
}
