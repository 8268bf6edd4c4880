//! Fetch (key 1): read whole record batches up to the high watermark, or,
//! for a follower, up to the log end offset: its fetch offsets record its
//! progress (which moves the high watermark and keeps it in the ISR), and
//! a last fetched epoch (v12+) that shows its log diverging from the
//! leader's is answered with the diverging epoch to truncate to.
//!
//! # Only brokers act as replicas
//!
//! A fetch claims to come from replica `r` with `r ≥ 0` in the header's
//! `replica_id` (v4–14) or in ReplicaState (v15+, KIP-903). The claim is
//! taken only from broker `r` itself:
//!
//! - it arrives on the inter-broker listener (`inter.broker.listener.name`).
//!   On any other listener it is refused, every partition with
//!   TOPIC_AUTHORIZATION_FAILED: Kafka's answer to a follower fetch whose
//!   connection may not act for the cluster (its CLUSTER_ACTION check,
//!   which a later security change adds on top of this one). When the
//!   inter-broker listener is also the client listener, this check lets
//!   everything through and the next one decides;
//! - it carries, in ReplicaState (v15+), the broker epoch of `r`'s
//!   registration as this broker's metadata has it. A claim without one
//!   (v4–14, or epoch −1) or with another one is refused, every partition
//!   with STALE_BROKER_EPOCH (Kafka's error for a broker request whose
//!   epoch is not the registered one). Stricter than Kafka, which lets an
//!   epoch of −1 through: Strom's own followers always send theirs. A real
//!   follower refused because this leader has not applied its newest
//!   registration yet retries moments later.
//!
//! A refused fetch reads nothing and never moves the high watermark, the
//! ISR or a follower's lag. A verified follower fetching beyond the log
//! end gets OFFSET_OUT_OF_RANGE and is not recorded either (see
//! `strom_replication::follower_progress`).
//!
//! Byte limits follow Kafka: the response holds at most
//! `min(max_bytes, fetch.max.bytes)`, each partition at most its
//! `partition_max_bytes`, except that the first partition with data may
//! return one whole batch larger than the limits (KIP-74), so consumers
//! always make progress. With fewer than `min_bytes` available the request
//! waits up to `max_wait_ms` for new data (long poll).
//!
//! The records read for a consumer hold room in the broker-wide fetch
//! response budget (`queued.max.fetch.response.bytes`); the handler hands
//! that room to the connection, which keeps it until the response is
//! written ([`crate::fetch_memory`]).
//!
//! Fetch sessions (KIP-227) are declined the way Kafka declines them when
//! its session cache is full: full requests (epoch 0 or −1) are answered in
//! full with session id 0; an incremental request (epoch > 0) names a
//! session this broker never created and gets FETCH_SESSION_ID_NOT_FOUND,
//! after which clients fall back to full requests.
//!
//! Versions 0–3 are advertised (as Kafka 3.9 does, for librdkafka's
//! feature detection) but would need legacy message formats; such a request
//! closes the connection.

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::batch::BatchIter;
use strom_protocol::ErrorCode;
use strom_replication::{FetchParams, FetchPartition, FetchPartitionResult, IsolationLevel};
use strom_storage::TopicPartition;

use super::topic_name_of;
use crate::context::RequestContext;
use crate::registry::{count_partition_errors, Handler, Reply};

/// Fetch.
pub struct FetchHandler;

/// Where one requested partition's answer comes from: a read (index into
/// the replica manager's results) or an error decided up front.
struct ReadSlot {
    partition: i32,
    read: Option<usize>,
    error: Option<ErrorCode>,
}

/// Session epoch of a sessionless (or closing) full fetch.
const FINAL_EPOCH: i32 = -1;
/// Session epoch of a full fetch that asks for a new session.
const INITIAL_EPOCH: i32 = 0;

fn error_partition(index: i32, code: ErrorCode) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(code.code())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(None)
        .with_records(Some(Bytes::new()))
}

impl Handler for FetchHandler {
    type Request = FetchRequest;
    type Response = FetchResponse;
    const API_KEY: ApiKey = ApiKey::Fetch;
    const VERSIONS: VersionRange = VersionRange { min: 4, max: 18 };
    const ADVERTISED_MIN_VERSION: i16 = 0;

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
        count_partition_errors(&r.responses, |t| &t.partitions, |p| p.error_code, count);
    }

    async fn handle(ctx: RequestContext, request: FetchRequest) -> Reply<FetchResponse> {
        let version = ctx.api_version;
        if version >= 7
            && request.session_epoch != FINAL_EPOCH
            && request.session_epoch != INITIAL_EPOCH
        {
            return Reply::Respond(
                FetchResponse::default()
                    .with_error_code(ErrorCode::FetchSessionIdNotFound.code())
                    .with_session_id(0),
            );
        }
        let image = ctx.image();
        let fetcher = fetcher(
            &ReplicaClaim::of(version, &request),
            &ctx.listener_name,
            &ctx.broker.config.inter_broker_listener_name,
            |id| image.broker(id).map(|b| b.broker_epoch),
        );
        if let Fetcher::Refused { claimed, code } = fetcher {
            tracing::debug!(replica = claimed, listener = %ctx.listener_name, peer = %ctx.peer, error = %code, "fetch as a replica refused");
        }
        let replica_id = match fetcher {
            Fetcher::Replica(id) => Some(id),
            Fetcher::Consumer | Fetcher::Refused { .. } => None,
        };
        let refusal = match fetcher {
            Fetcher::Refused { code, .. } => Some(code),
            Fetcher::Consumer | Fetcher::Replica(_) => None,
        };
        let isolation = IsolationLevel::from_wire(request.isolation_level);
        // Resolve topics; remember where each partition's answer goes.
        let mut layout: Vec<(FetchableTopicResponse, Option<String>, Vec<ReadSlot>)> = Vec::new();
        let mut wanted: Vec<FetchPartition> = Vec::new();
        for topic in request.topics {
            let name = topic_name_of(&image, version >= 13, &topic.topic, &topic.topic_id);
            let mut parts = Vec::with_capacity(topic.partitions.len());
            for p in topic.partitions {
                let refused = |code| ReadSlot {
                    partition: p.partition,
                    read: None,
                    error: Some(code),
                };
                let slot = match (&name, refusal) {
                    (_, Some(code)) => refused(code),
                    (None, None) => refused(ErrorCode::UnknownTopicId),
                    (Some(n), None) => {
                        wanted.push(FetchPartition {
                            topic_partition: TopicPartition::new(n.clone(), p.partition),
                            fetch_offset: p.fetch_offset,
                            partition_max_bytes: p.partition_max_bytes.max(0) as usize,
                            current_leader_epoch: p.current_leader_epoch,
                            last_fetched_epoch: if version >= 12 {
                                p.last_fetched_epoch
                            } else {
                                -1
                            },
                        });
                        ReadSlot {
                            partition: p.partition,
                            read: Some(wanted.len() - 1),
                            error: None,
                        }
                    }
                };
                parts.push(slot);
            }
            layout.push((
                FetchableTopicResponse::default()
                    .with_topic(topic.topic)
                    .with_topic_id(topic.topic_id),
                name,
                parts,
            ));
        }
        let params = FetchParams {
            max_wait_ms: request.max_wait_ms.max(0) as u64,
            min_bytes: request.min_bytes.max(0) as usize,
            max_bytes: request
                .max_bytes
                .clamp(0, ctx.broker.config.fetch_max_bytes) as usize,
            isolation,
            // A broker fetching as a follower: it reads to the log end and
            // its fetch offsets are its progress.
            replica_id,
        };
        let mut results: Vec<Option<FetchPartitionResult>> = ctx
            .broker
            .replica_manager
            .fetch(&image, params, wanted)
            .await
            .into_iter()
            .map(Some)
            .collect();
        let aborted = (isolation == IsolationLevel::ReadCommitted).then(Vec::new);
        let responses = layout
            .into_iter()
            .map(|(mut topic, name, parts)| {
                topic.partitions = parts
                    .into_iter()
                    .map(
                        |ReadSlot {
                             partition: index,
                             read,
                             error,
                         }| {
                            match (read.and_then(|i| results.get_mut(i)?.take()), error) {
                                (_, Some(code)) => error_partition(index, code),
                                (Some(mut r), None) => match r.error {
                                    Some(e) => error_partition(index, e.error_code()),
                                    None => {
                                        if let Some(memory) = r.memory.take() {
                                            ctx.held_until_written.hold(memory);
                                        }
                                        count_sent(
                                            &ctx,
                                            name.as_deref(),
                                            &r.records,
                                            replica_id.is_some(),
                                        );
                                        let mut data = PartitionData::default()
                                            .with_partition_index(index)
                                            .with_high_watermark(r.high_watermark)
                                            .with_last_stable_offset(r.last_stable_offset)
                                            .with_log_start_offset(r.log_start_offset)
                                            .with_aborted_transactions(aborted.clone())
                                            .with_records(Some(r.records));
                                        if let Some((epoch, end_offset)) = r.diverging_epoch {
                                            data.diverging_epoch = EpochEndOffset::default()
                                                .with_epoch(epoch)
                                                .with_end_offset(end_offset);
                                        }
                                        data
                                    }
                                },
                                (None, None) => {
                                    error_partition(index, ErrorCode::UnknownServerError)
                                }
                            }
                        },
                    )
                    .collect();
                topic
            })
            .collect();
        Reply::Respond(
            FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses),
        )
    }
}

/// Counts what a fetch sends: records and bytes by topic to consumers,
/// bytes to followers. Only whole v2 batches' records are counted.
fn count_sent(ctx: &RequestContext, topic: Option<&str>, records: &[u8], to_follower: bool) {
    let metrics = &ctx.broker.metrics;
    if to_follower {
        metrics.count_replication_out(records.len() as u64);
        return;
    }
    let Some(topic) = topic else { return };
    if records.is_empty() {
        return;
    }
    let count: u64 = BatchIter::new(records)
        .map_while(Result::ok)
        .filter(|(_, h)| !h.is_control())
        .map(|(_, h)| u64::try_from(h.records_count).unwrap_or(0))
        .sum();
    metrics.count_out(topic, records.len() as u64, count);
}

/// Who a fetch says it comes from, as the request's version carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReplicaClaim {
    /// The replica id (< 0: a consumer).
    replica_id: i32,
    /// The broker epoch in ReplicaState (v15+), −1 when not sent.
    replica_epoch: i64,
}

impl ReplicaClaim {
    fn of(version: i16, request: &FetchRequest) -> Self {
        if version >= 15 {
            Self {
                replica_id: request.replica_state.replica_id.0,
                replica_epoch: request.replica_state.replica_epoch,
            }
        } else {
            Self {
                replica_id: request.replica_id.0,
                replica_epoch: NO_BROKER_EPOCH,
            }
        }
    }
}

/// The broker epoch of a request that carries none.
const NO_BROKER_EPOCH: i64 = -1;

/// Who the fetch is served as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetcher {
    /// A consumer: reads up to the high watermark.
    Consumer,
    /// Broker `id`, verified as the replica it claims to be.
    Replica(i32),
    /// Claims to be replica `claimed` but cannot be: every partition gets
    /// `code`.
    Refused { claimed: i32, code: ErrorCode },
}

/// The rules of the module docs: a claim to be replica `r` holds only on
/// the inter-broker listener and with the broker epoch `registered_epoch(r)`
/// gives (`None`: `r` is not a registered broker).
fn fetcher(
    claim: &ReplicaClaim,
    listener: &str,
    inter_broker_listener: &str,
    registered_epoch: impl Fn(i32) -> Option<i64>,
) -> Fetcher {
    let claimed = claim.replica_id;
    if claimed < 0 {
        return Fetcher::Consumer;
    }
    if listener != inter_broker_listener {
        return Fetcher::Refused {
            claimed,
            code: ErrorCode::TopicAuthorizationFailed,
        };
    }
    match registered_epoch(claimed) {
        Some(epoch) if claim.replica_epoch != NO_BROKER_EPOCH && epoch == claim.replica_epoch => {
            Fetcher::Replica(claimed)
        }
        _ => Fetcher::Refused {
            claimed,
            code: ErrorCode::StaleBrokerEpoch,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(replica_id: i32, replica_epoch: i64) -> ReplicaClaim {
        ReplicaClaim {
            replica_id,
            replica_epoch,
        }
    }

    /// Broker 2 is registered with epoch 40, broker 3 with epoch 0.
    fn registered(id: i32) -> Option<i64> {
        match id {
            2 => Some(40),
            3 => Some(0),
            _ => None,
        }
    }

    #[test]
    fn only_a_registered_broker_with_its_epoch_on_the_inter_broker_listener_is_a_replica() {
        let decide =
            |c: ReplicaClaim, listener: &str| fetcher(&c, listener, "REPLICATION", registered);
        let stale = |claimed| Fetcher::Refused {
            claimed,
            code: ErrorCode::StaleBrokerEpoch,
        };
        assert_eq!(decide(claim(2, 40), "REPLICATION"), Fetcher::Replica(2));
        assert_eq!(decide(claim(3, 0), "REPLICATION"), Fetcher::Replica(3));
        // Consumers are consumers wherever they come from.
        assert_eq!(decide(claim(-1, -1), "CLIENTS"), Fetcher::Consumer);
        assert_eq!(decide(claim(-1, 40), "REPLICATION"), Fetcher::Consumer);
        // Another listener than the inter-broker one: refused, even with
        // the right epoch.
        assert_eq!(
            decide(claim(2, 40), "CLIENTS"),
            Fetcher::Refused {
                claimed: 2,
                code: ErrorCode::TopicAuthorizationFailed,
            }
        );
        // No epoch (v4-14, or -1), a made-up one, an old one, or a broker
        // that is not registered.
        assert_eq!(decide(claim(2, -1), "REPLICATION"), stale(2));
        assert_eq!(decide(claim(2, 987_654_321), "REPLICATION"), stale(2));
        assert_eq!(decide(claim(2, 39), "REPLICATION"), stale(2));
        assert_eq!(decide(claim(9, 40), "REPLICATION"), stale(9));
    }

    #[test]
    fn the_claim_is_read_where_the_version_carries_it() {
        use kafka_protocol::messages::fetch_request::ReplicaState;
        use kafka_protocol::messages::BrokerId;
        let old = FetchRequest::default().with_replica_id(BrokerId(2));
        assert_eq!(ReplicaClaim::of(11, &old), claim(2, NO_BROKER_EPOCH));
        let new = FetchRequest::default().with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(2))
                .with_replica_epoch(40),
        );
        assert_eq!(ReplicaClaim::of(15, &new), claim(2, 40));
        assert_eq!(
            ReplicaClaim::of(15, &FetchRequest::default()),
            claim(-1, -1)
        );
    }
}
