//! Followers fetching from leaders: one task per leader broker fetches
//! every partition this broker follows there, with Kafka's own Fetch (v15,
//! topics by id, and KIP-903's ReplicaState naming this broker and the
//! broker epoch of its registration: the leader counts a fetch as a
//! replica's progress only with the epoch its metadata has for that
//! broker), over the leader's inter-broker listener, and applies the
//! answers:
//!
//! - records are appended as they are ([`Partition::append_as_follower`]),
//!   then the leader's high watermark is taken as far as the log reaches;
//! - a diverging epoch (the follower's log went on past where the leader's
//!   epoch ended) truncates to the smaller of the leader's end offset for
//!   that epoch and this log's, before fetching again;
//! - OFFSET_OUT_OF_RANGE (the leader sends its log start offset and high
//!   watermark with it to followers): a log behind the leader's log start
//!   restarts empty there; one ahead of the leader's log (only possible
//!   without a diverging epoch to go by) truncates to the leader's high
//!   watermark;
//! - NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_TOPIC_OR_PARTITION,
//!   STALE_BROKER_EPOCH (the leader has not applied this broker's latest
//!   registration yet) and the like wait for the metadata to catch up:
//!   the fetch is asked again after a short pause (a failed connection
//!   waits the full `replica.fetch.backoff.ms`).
//!
//! Replicas the topic lists in `follower.replication.throttled.replicas`
//! and out of the ISR count against the follower quota and are left out
//! of fetches while it is spent (see [`crate::replication_quota`]).
//!
//! The set of partitions comes through a watch channel from
//! [`crate::ReplicaManager::sync_fetchers`], which starts and stops these
//! tasks as leadership moves.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest};
use strom_client::BrokerClient;
use strom_config::ReplicaFetchConfig;
use strom_protocol::ErrorCode;
use strom_runtime::clock::now_ms;
use tokio::sync::watch;
use uuid::Uuid;

use crate::partition::Partition;
use crate::replication_quota::ReplicationQuota;

/// How soon a fetch is retried after the leader refused a partition.
const PARTITION_ERROR_RETRY: Duration = Duration::from_millis(50);

/// How soon a fetcher whose every partition is throttled looks again.
const THROTTLED_RETRY: Duration = Duration::from_millis(100);

/// The Fetch version followers send (diverging epochs, topic ids, the
/// replica's id and broker epoch in ReplicaState).
const FOLLOWER_FETCH_VERSION: i16 = 15;

/// How a fetcher reaches its leader.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// This broker.
    pub node_id: i32,
    /// This broker's epoch: the one its registration got.
    pub broker_epoch: i64,
    /// The address outgoing connections leave from, if a specific one.
    pub local_address: Option<IpAddr>,
    /// `replica.*` settings.
    pub fetch: ReplicaFetchConfig,
}

/// Fetches `partitions` from `leader` at `address` until `stop` turns
/// true or the leader's partition set runs empty and is dropped.
pub async fn run_replica_fetcher(
    leader: i32,
    address: String,
    config: FetcherConfig,
    quota: Arc<ReplicationQuota>,
    mut partitions: watch::Receiver<Vec<Arc<Partition>>>,
    mut stop: watch::Receiver<bool>,
) {
    let backoff = Duration::from_millis(config.fetch.backoff_ms.max(1));
    let answer_within = Duration::from_millis(
        config
            .fetch
            .socket_timeout_ms
            .max(1)
            .saturating_add(u64::try_from(config.fetch.wait_max_ms).unwrap_or(0)),
    );
    let mut client: Option<BrokerClient> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let mut followed = partitions.borrow_and_update().clone();
        if followed.is_empty() {
            tokio::select! {
                changed = partitions.changed() => if changed.is_err() { return },
                _ = stop.changed() => {}
            }
            continue;
        }
        // Throttled replicas wait while the quota is spent.
        if quota.is_exceeded() {
            followed.retain(|p| !follower_throttles(p));
            if followed.is_empty() {
                pause(THROTTLED_RETRY.min(backoff), &mut stop).await;
                continue;
            }
        }
        if client.is_none() {
            let client_id = format!("strom-replica-fetcher-{}-{leader}", config.node_id);
            match BrokerClient::connect(&address, config.local_address, client_id, answer_within)
                .await
            {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::debug!(leader, error = %e, "cannot reach the leader to fetch");
                    pause(backoff, &mut stop).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else {
            continue;
        };
        let request = fetch_request(&followed, &config);
        let response = tokio::select! {
            r = c.send(FOLLOWER_FETCH_VERSION, &request, answer_within) => r,
            _ = stop.changed() => continue,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(leader, error = %e, "follower fetch failed");
                client = None;
                pause(backoff, &mut stop).await;
                continue;
            }
        };
        if response.error_code != 0 {
            tracing::info!(
                leader,
                error_code = response.error_code,
                "follower fetch refused"
            );
            pause(backoff, &mut stop).await;
            continue;
        }
        let by_id: BTreeMap<(Uuid, i32), Arc<Partition>> = followed
            .iter()
            .map(|p| {
                let tp = p.topic_partition();
                ((p.topic_id(), tp.partition), Arc::clone(p))
            })
            .collect();
        let mut answers = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                if let Some(p) = by_id.get(&(topic.topic_id, data.partition_index)) {
                    answers.push((Arc::clone(p), data));
                }
            }
        }
        let quota = Arc::clone(&quota);
        let applied = strom_runtime::blocking::run(move || {
            // Every answer is applied, whatever the others did.
            let applied: Vec<bool> = answers
                .into_iter()
                .map(|(p, data)| {
                    if follower_throttles(&p) {
                        quota.record(data.records.as_ref().map_or(0, |r| r.len()));
                    }
                    apply_fetched(&p, data)
                })
                .collect();
            applied.iter().all(|ok| *ok)
        })
        .await
        .unwrap_or(false);
        if !applied {
            // A partition the leader refused (it has not applied the
            // metadata that makes it leader yet, or this broker has not
            // applied a newer epoch): the metadata catches up within
            // moments, so ask again soon rather than after the full backoff.
            pause(PARTITION_ERROR_RETRY.min(backoff), &mut stop).await;
        }
    }
}

/// Whether this follower throttles its fetches of `p`: the topic lists
/// this replica (`follower.replication.throttled.replicas`) and it is out
/// of the ISR.
fn follower_throttles(p: &Partition) -> bool {
    p.log()
        .config()
        .follower_replication_throttled_replicas
        .contains(p.topic_partition().partition, p.node_id())
        && !p.is_in_sync(p.node_id())
}

async fn pause(backoff: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(backoff) => {}
        _ = stop.changed() => {}
    }
}

fn fetch_request(followed: &[Arc<Partition>], config: &FetcherConfig) -> FetchRequest {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    for p in followed {
        let offsets = p.log().offsets();
        let tp = p.topic_partition();
        topics.entry(p.topic_id()).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(p.state().leader_epoch)
                .with_fetch_offset(offsets.log_end_offset)
                .with_last_fetched_epoch(p.log().latest_epoch().unwrap_or(-1))
                .with_log_start_offset(offsets.log_start_offset)
                .with_partition_max_bytes(config.fetch.max_bytes),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(config.node_id))
                .with_replica_epoch(config.broker_epoch),
        )
        .with_max_wait_ms(config.fetch.wait_max_ms)
        .with_min_bytes(1)
        .with_max_bytes(config.fetch.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Applies one partition's answer to a follower fetch, by the rules above;
/// false when the partition must wait (an error that only the metadata or
/// time can fix). Public for fetchers over other transports (the
/// simulated cluster of `strom-sim`).
pub fn apply_fetched(p: &Partition, data: PartitionData) -> bool {
    let now = now_ms();
    let tp = p.topic_partition();
    match data.error_code {
        0 => {}
        code if code == ErrorCode::OffsetOutOfRange.code() => {
            if data.log_start_offset < 0 || data.high_watermark < 0 {
                tracing::warn!(partition = %tp, "OFFSET_OUT_OF_RANGE without the leader's offsets; asking again");
                return false;
            }
            let end = p.log().offsets().log_end_offset;
            let result = if data.log_start_offset > end {
                p.truncate_fully_and_start_at(data.log_start_offset, now)
                    .map(|()| data.log_start_offset)
            } else {
                p.truncate_to(data.high_watermark.max(0), now)
            };
            match result {
                Ok(at) => {
                    tracing::info!(partition = %tp, at, "follower log reset after OFFSET_OUT_OF_RANGE")
                }
                Err(e) => {
                    tracing::warn!(partition = %tp, error = %e, "cannot reset the follower log")
                }
            }
            return true;
        }
        _ => {
            tracing::info!(partition = %tp, error_code = data.error_code, "follower fetch of a partition refused");
            return false;
        }
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        let (local_epoch, local_end) = p.log().end_offset_for_epoch(diverging.epoch);
        let target = if local_epoch == diverging.epoch {
            diverging.end_offset.min(local_end)
        } else {
            diverging.end_offset
        };
        match p.truncate_to(target.max(0), now) {
            Ok(end) => {
                tracing::info!(partition = %tp, epoch = diverging.epoch, log_end_offset = end, "truncated a divergent follower log")
            }
            Err(e) => {
                tracing::warn!(partition = %tp, error = %e, "cannot truncate the follower log");
                return false;
            }
        }
        return true;
    }
    if let Some(records) = data.records.as_ref().filter(|r| !r.is_empty()) {
        if let Err(e) = p.append_as_follower(records, now) {
            tracing::warn!(partition = %tp, error = %e, "cannot append fetched batches");
            return false;
        }
    }
    p.follow_high_watermark(data.high_watermark);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::test_support::{append, leader_partition};

    fn out_of_range(log_start_offset: i64, high_watermark: i64) -> PartitionData {
        PartitionData::default()
            .with_error_code(ErrorCode::OffsetOutOfRange.code())
            .with_log_start_offset(log_start_offset)
            .with_high_watermark(high_watermark)
    }

    #[test]
    fn followers_fetch_by_topic_id_as_this_broker_in_its_epoch() {
        let (_dir, p) = leader_partition(vec![1, 2], vec![1, 2]);
        let config = FetcherConfig {
            node_id: 2,
            broker_epoch: 41,
            local_address: None,
            fetch: ReplicaFetchConfig::default(),
        };
        let request = fetch_request(&[Arc::new(p)], &config);
        // KIP-903: the header's replica id is −1 from v15 on; the replica
        // and its broker epoch travel in ReplicaState.
        assert_eq!(request.replica_id.0, -1);
        assert_eq!(request.replica_state.replica_id.0, 2);
        assert_eq!(request.replica_state.replica_epoch, 41);
        assert_ne!(request.topics[0].topic_id, Uuid::nil());
        // The whole request encodes at the version sent.
        let mut buf = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&request, &mut buf, FOLLOWER_FETCH_VERSION)
            .unwrap();
    }

    #[test]
    fn out_of_range_truncates_only_by_the_leaders_offsets() {
        let (_dir, p) = leader_partition(vec![1, 2], vec![1, 2]);
        for _ in 0..3 {
            append(&p, &[b"a"]);
        }
        let mut state = p.state();
        state.leader = 2;
        state.leader_epoch += 1;
        p.update_state(state);
        // Without the leader's offsets nothing is known: the log stays.
        assert!(!apply_fetched(&p, out_of_range(-1, -1)));
        assert_eq!(p.log().offsets().log_end_offset, 3);
        // Ahead of the leader: back to its high watermark.
        assert!(apply_fetched(&p, out_of_range(0, 2)));
        assert_eq!(p.log().offsets().log_end_offset, 2);
        // Behind the leader's log start: start afresh there.
        assert!(apply_fetched(&p, out_of_range(10, 12)));
        let offsets = p.log().offsets();
        assert_eq!((offsets.log_start_offset, offsets.log_end_offset), (10, 10));
    }
}
