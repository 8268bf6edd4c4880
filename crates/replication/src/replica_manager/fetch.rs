//! Fetch: consumers read up to the high watermark (or the last stable
//! offset), followers to the log end with their progress recorded; reads
//! follow Kafka's byte limits, and a fetch short of `min_bytes` waits
//! (Kafka's fetch purgatory) for data or `max_wait_ms`.
//!
//! What consumers' reads copy is held against the broker-wide fetch
//! response budget (`queued.max.fetch.response.bytes`) until the response
//! has been written to the client: a read copies only what the budget has
//! room for, and a fetch that found data but no room waits, like one short
//! of `min_bytes`, until room is given back or `max_wait_ms` runs out (then
//! it answers with what it has, possibly nothing, and the consumer fetches
//! again).

use super::*;

/// Which records a consumer may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Up to the high watermark.
    ReadUncommitted,
    /// Up to the last stable offset (the high watermark while there are no
    /// transactions).
    ReadCommitted,
}

impl IsolationLevel {
    /// From the wire value (0 or 1).
    pub fn from_wire(value: i8) -> Self {
        if value == 1 {
            IsolationLevel::ReadCommitted
        } else {
            IsolationLevel::ReadUncommitted
        }
    }
}

/// Request-wide fetch parameters.
#[derive(Debug, Clone, Copy)]
pub struct FetchParams {
    /// Longest wait for `min_bytes`.
    pub max_wait_ms: u64,
    /// Bytes wanted before answering.
    pub min_bytes: usize,
    /// Most bytes in the whole response.
    pub max_bytes: usize,
    /// Isolation level.
    pub isolation: IsolationLevel,
    /// The follower fetching, when a replica fetches (it reads up to the
    /// log end offset and its fetch offsets are its progress). Only a
    /// fetch the caller verified as coming from that broker may name it
    /// (the server checks the listener and the broker epoch).
    pub replica_id: Option<i32>,
}

/// One partition of a fetch.
#[derive(Debug, Clone)]
pub struct FetchPartition {
    /// Partition.
    pub topic_partition: TopicPartition,
    /// First offset wanted.
    pub fetch_offset: i64,
    /// Most bytes for this partition.
    pub partition_max_bytes: usize,
    /// The client's leader epoch (−1: unknown).
    pub current_leader_epoch: i32,
    /// A follower's epoch of its last fetched batch (−1: not sent); a log
    /// that diverges from the leader's there gets a diverging epoch.
    pub last_fetched_epoch: i32,
}

/// What a fetch returns for one partition.
#[derive(Debug)]
pub struct FetchPartitionResult {
    /// The error, if any.
    pub error: Option<ReplicaError>,
    /// Whole batches.
    pub records: Bytes,
    /// High watermark (−1 on error).
    pub high_watermark: i64,
    /// Last stable offset (−1 on error).
    pub last_stable_offset: i64,
    /// Log start offset (−1 on error).
    pub log_start_offset: i64,
    /// For a follower whose log diverges: the epoch and end offset it must
    /// truncate to before fetching again.
    pub diverging_epoch: Option<(i32, i64)>,
    /// The room `records` holds in the fetch response budget: keep it until
    /// the records have been written to the client (`None` when the fetch
    /// is not budgeted or read nothing).
    pub memory: Option<BytePermit>,
}

impl FetchPartitionResult {
    /// An answer without records at `p`'s current offsets.
    fn no_records(p: &Partition, diverging_epoch: Option<(i32, i64)>) -> Self {
        let offsets = p.log().offsets();
        Self {
            error: None,
            records: Bytes::new(),
            high_watermark: offsets.high_watermark,
            last_stable_offset: offsets.high_watermark,
            log_start_offset: offsets.log_start_offset,
            diverging_epoch,
            memory: None,
        }
    }

    fn error(e: ReplicaError) -> Self {
        Self {
            error: Some(e),
            records: Bytes::new(),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            diverging_epoch: None,
            memory: None,
        }
    }
}

impl ReplicaManager {
    /// Reads partitions for a fetch, waiting for data as Kafka's delayed
    /// fetch does.
    pub async fn fetch(
        &self,
        image: &MetadataImage,
        params: FetchParams,
        partitions: Vec<FetchPartition>,
    ) -> Vec<FetchPartitionResult> {
        let targets: Vec<Result<Arc<Partition>, ReplicaError>> = partitions
            .iter()
            .map(|fp| self.leader_partition(image, &fp.topic_partition, fp.current_leader_epoch))
            .collect();
        let deadline = Instant::now() + Duration::from_millis(params.max_wait_ms);
        let partitions = Arc::new(partitions);
        // Consumers wait for the high watermark to move; followers for the
        // log to grow (the high watermark waits for them).
        let mut watchers: Vec<watch::Receiver<i64>> = targets
            .iter()
            .flatten()
            .map(|p| match params.replica_id {
                Some(_) => p.subscribe_log_end_offset(),
                None => p.subscribe_high_watermark(),
            })
            .collect();
        let live: Arc<Vec<Option<Arc<Partition>>>> =
            Arc::new(targets.iter().map(|t| t.as_ref().ok().cloned()).collect());
        let mut errors: Vec<Option<ReplicaError>> = targets.into_iter().map(Result::err).collect();
        let appended = |live: &[Option<Arc<Partition>>]| -> u64 {
            live.iter().flatten().map(|p| p.appended_bytes()).sum()
        };
        let budget = self.fetch_response_budget.clone();
        loop {
            for w in &mut watchers {
                w.mark_unchanged();
            }
            // Taken before reading: bytes appended while the read runs count
            // as new (after it, they would be lost to the estimate below and
            // the wait would run to its deadline).
            let baseline = appended(&live);
            let (live_for_read, partitions_for_read) = (Arc::clone(&live), Arc::clone(&partitions));
            let quota = Arc::clone(&self.leader_quota);
            let budget_for_read = budget.clone();
            let ReadPass {
                results,
                refused_bytes,
            } = strom_runtime::blocking::run(move || {
                read_pass(
                    &live_for_read,
                    &partitions_for_read,
                    params,
                    &quota,
                    budget_for_read.as_ref(),
                )
            })
            .await
            .unwrap_or_default();
            let total: usize = results.iter().flatten().map(|r| r.records.len()).sum();
            let any_error = errors.iter().any(Option::is_some)
                || results.iter().flatten().any(|r| r.error.is_some());
            let now = Instant::now();
            if params.max_wait_ms == 0
                || total >= params.min_bytes
                || any_error
                || now >= deadline
                || watchers.is_empty()
            {
                return results
                    .into_iter()
                    .zip(errors.iter_mut())
                    .map(|(r, e)| match (r, e.take()) {
                        (Some(r), _) => r,
                        (None, Some(e)) => FetchPartitionResult::error(e),
                        (None, None) => {
                            FetchPartitionResult::error(ReplicaError::UnknownTopicOrPartition)
                        }
                    })
                    .collect();
            }
            // Not enough to answer: read again later, holding nothing
            // meanwhile.
            let held_by_pass: u64 = results
                .iter()
                .flatten()
                .filter_map(|r| r.memory.as_ref().map(|m| m.bytes()))
                .sum();
            drop(results);
            // Some partition had data but no room in the budget: read again
            // once there is room for what this pass held plus what it
            // lacked (less would only repeat this pass), now or on a
            // give-back (subscribed before looking, so none is missed).
            let mut room = match (&budget, refused_bytes) {
                (Some(b), Some(least)) => {
                    let needed = least.saturating_add(held_by_pass);
                    let rx = b.subscribe();
                    if b.has_room_for(needed) {
                        continue;
                    }
                    Some((rx, Arc::clone(b), needed, b.waiter()))
                }
                _ => None,
            };
            // Wait for high watermarks to move until enough bytes could have
            // arrived for min_bytes (estimated from what was appended, as
            // Kafka's delayed fetch estimates from positions), for room in
            // the budget, or for the deadline; then read again (and answer
            // if past the deadline).
            let _delayed = Delayed::enter(&self.delayed_fetches);
            loop {
                let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
                let room_given_back = async {
                    match &mut room {
                        Some((rx, b, needed, _waiting)) => {
                            while rx.changed().await.is_ok() {
                                if b.has_room_for(*needed) {
                                    return;
                                }
                            }
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = room_given_back => break,
                    _ = changed => {}
                }
                let estimate = total as u64 + appended(&live).saturating_sub(baseline);
                if estimate >= params.min_bytes as u64 {
                    break;
                }
                for w in &mut watchers {
                    w.mark_unchanged();
                }
            }
        }
    }
}

/// What one read pass found: a result per live partition, and, when some
/// partition had data the fetch response budget had no room for, the
/// smallest room that would have let one read more (beyond what the pass
/// held).
#[derive(Debug, Default)]
struct ReadPass {
    results: Vec<Option<FetchPartitionResult>>,
    refused_bytes: Option<u64>,
}

/// One read of every live partition under Kafka's limits: each partition
/// gets `min(partition_max_bytes, bytes left)`; until some partition returns
/// data, a partition may return one whole batch over its limit (KIP-74).
///
/// For a follower out of the ISR whose replica this leader throttles
/// (`leader.replication.throttled.replicas`), the read counts against
/// `leader_quota`, and while that is exceeded the partition answers empty.
///
/// A consumer's read copies only what `budget` (the broker-wide fetch
/// response budget) has room for: at least the first batch, else nothing
/// for that partition; the room taken stays with the result
/// ([`FetchPartitionResult::memory`]).
fn read_pass(
    live: &[Option<Arc<Partition>>],
    partitions: &[FetchPartition],
    params: FetchParams,
    leader_quota: &ReplicationQuota,
    budget: Option<&Arc<ByteBudget>>,
) -> ReadPass {
    let mut left = params.max_bytes;
    let mut min_one = true;
    let mut refused_bytes: Option<u64> = None;
    // Only consumers' reads are held against the budget: followers are
    // brokers, and starving them would shrink the ISR.
    let budget = budget.filter(|_| params.replica_id.is_none());
    let bound = match params.replica_id {
        Some(_) => ReadBound::LogEnd,
        None => ReadBound::HighWatermark,
    };
    let now = lag_clock_ms();
    let results = live
        .iter()
        .zip(partitions)
        .map(|(p, fp)| {
            let p = p.as_ref()?;
            if let Some(replica) = params.replica_id {
                match follower_fetch_check(p, replica, fp, now) {
                    Ok(None) => {}
                    Ok(Some(diverging)) => return Some(diverging),
                    Err(e) => return Some(fetch_error(p, e, true)),
                }
            }
            let throttled = params
                .replica_id
                .is_some_and(|replica| leader_throttles(p, replica));
            if throttled && leader_quota.is_exceeded() {
                return Some(FetchPartitionResult::no_records(p, None));
            }
            let limit = fp.partition_max_bytes.min(left);
            // The copy's room in the budget, taken once the read knows its
            // size and before it copies.
            let mut memory: Option<BytePermit> = None;
            let mut refused: Option<u64> = None;
            // Granted less than the read wanted: this much.
            let mut cut_short: Option<u64> = None;
            let grant = |least: usize, most: usize| -> Option<usize> {
                let Some(budget) = budget else {
                    return Some(most);
                };
                match budget.try_take(least as u64, most as u64) {
                    Some(permit) => {
                        let granted = usize::try_from(permit.bytes()).unwrap_or(most);
                        if granted < most {
                            cut_short = Some(permit.bytes());
                        }
                        memory = Some(permit);
                        Some(granted)
                    }
                    None => {
                        refused = Some(least as u64);
                        None
                    }
                }
            };
            let read =
                panic_boundary(|| p.read_within(fp.fetch_offset, limit, bound, min_one, grant));
            if let (Some(granted), Ok(r)) = (cut_short, &read) {
                // Data left behind for want of room: reading more needs more
                // room than was granted, beyond the whole batches kept.
                refused = Some((granted + 1).saturating_sub(r.records.len() as u64));
            }
            if let Some(least) = refused {
                refused_bytes = Some(refused_bytes.map_or(least, |r| r.min(least)));
            }
            Some(match read {
                Ok(r) => {
                    if throttled {
                        leader_quota.record(r.records.len());
                    }
                    if !r.records.is_empty() {
                        min_one = false;
                    }
                    left = left.saturating_sub(r.records.len());
                    if let Some(m) = &mut memory {
                        m.shrink_to(r.records.len() as u64);
                    }
                    FetchPartitionResult {
                        error: None,
                        records: r.records,
                        high_watermark: r.high_watermark,
                        last_stable_offset: r.high_watermark,
                        log_start_offset: r.log_start_offset,
                        diverging_epoch: None,
                        memory: memory.filter(|m| m.bytes() > 0),
                    }
                }
                Err(e) => fetch_error(p, e, params.replica_id.is_some()),
            })
        })
        .collect();
    ReadPass {
        results,
        refused_bytes,
    }
}

/// Whether this leader throttles what it sends `replica` of `p`: the
/// topic lists this leader's replica of the partition and `replica` is out
/// of the ISR.
fn leader_throttles(p: &Partition, replica: i32) -> bool {
    p.log()
        .config()
        .leader_replication_throttled_replicas
        .contains(p.topic_partition().partition, p.node_id())
        && !p.is_in_sync(replica)
}

/// A partition's failed read. A follower out of range learns where this
/// log starts and what is committed, to restart or truncate by (consumers
/// get −1, as from Kafka).
fn fetch_error(p: &Partition, e: ReplicaError, follower: bool) -> FetchPartitionResult {
    let out_of_range = e.error_code() == ErrorCode::OffsetOutOfRange;
    let mut r = FetchPartitionResult::error(e);
    if out_of_range && follower {
        let o = p.log().offsets();
        r.log_start_offset = o.log_start_offset;
        r.high_watermark = o.high_watermark;
    }
    r
}

/// A follower's fetch of `fp`: when its last fetched epoch shows its log
/// diverges from this leader's, the answer that tells it where to truncate
/// (Kafka's diverging epoch, KIP-595's fetch-based truncation); otherwise
/// its fetch offset is recorded as its progress.
fn follower_fetch_check(
    p: &Partition,
    replica: i32,
    fp: &FetchPartition,
    lag_clock_ms: i64,
) -> Result<Option<FetchPartitionResult>, ReplicaError> {
    if fp.last_fetched_epoch >= 0 {
        let (epoch, end_offset) = p.log().end_offset_for_epoch(fp.last_fetched_epoch);
        if epoch < 0 || end_offset < 0 {
            // An epoch newer than any here: nothing to go by (Kafka answers
            // the same); the follower falls back to the high watermark.
            let offsets = p.log().offsets();
            return Err(StorageError::OffsetOutOfRange {
                offset: fp.fetch_offset,
                log_start_offset: offsets.log_start_offset,
                log_end_offset: offsets.log_end_offset,
            }
            .into());
        }
        if epoch < fp.last_fetched_epoch || end_offset < fp.fetch_offset {
            return Ok(Some(FetchPartitionResult::no_records(
                p,
                Some((epoch, end_offset)),
            )));
        }
    }
    p.record_follower_fetch(replica, fp.fetch_offset, lag_clock_ms)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::test_support::{append, leader_partition};

    /// Broker 1 leads `t-0` with follower 2 in the ISR, three batches of
    /// two records written.
    fn leader() -> (tempfile::TempDir, Arc<Partition>) {
        let (dir, p) = leader_partition(vec![1, 2], vec![1, 2]);
        for _ in 0..3 {
            append(&p, &[b"a", b"b"]);
        }
        (dir, Arc::new(p))
    }

    fn fetch_at(offset: i64, last_fetched_epoch: i32) -> FetchPartition {
        FetchPartition {
            topic_partition: TopicPartition::new("t", 0),
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: 3,
            last_fetched_epoch,
        }
    }

    /// One read pass without a memory budget.
    fn pass(
        live: &[Option<Arc<Partition>>],
        partitions: &[FetchPartition],
        params: FetchParams,
        quota: &ReplicationQuota,
    ) -> Vec<Option<FetchPartitionResult>> {
        read_pass(live, partitions, params, quota, None).results
    }

    fn params(replica_id: Option<i32>) -> FetchParams {
        FetchParams {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            isolation: IsolationLevel::ReadUncommitted,
            replica_id,
        }
    }

    #[test]
    fn followers_read_to_the_log_end_and_move_the_high_watermark() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        // A consumer sees nothing: the follower has not confirmed anything.
        let r = pass(
            &live,
            &[fetch_at(0, -1)],
            params(None),
            &ReplicationQuota::default(),
        );
        assert!(r[0].as_ref().unwrap().records.is_empty());
        assert_eq!(p.high_watermark(), 0);
        // The follower reads everything.
        let r = pass(
            &live,
            &[fetch_at(0, -1)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert!(r.error.is_none() && r.diverging_epoch.is_none());
        assert_eq!(
            strom_protocol::batch::BatchIter::new(&r.records).count(),
            3,
            "all three batches"
        );
        // Its next fetch says it has them: the high watermark follows.
        pass(
            &live,
            &[fetch_at(6, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 6);
        // A broker that is not a replica is refused.
        let r = pass(
            &live,
            &[fetch_at(0, -1)],
            params(Some(9)),
            &ReplicationQuota::default(),
        );
        assert_eq!(
            r[0].as_ref()
                .unwrap()
                .error
                .as_ref()
                .map(ReplicaError::error_code),
            Some(strom_protocol::ErrorCode::NotLeaderOrFollower)
        );
    }

    #[test]
    fn a_follower_in_an_epoch_unknown_here_is_out_of_range_with_the_leaders_offsets() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        pass(
            &live,
            &[fetch_at(4, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 4);
        // Epoch 7 is newer than anything this log knows: nothing tells
        // where it ended (Kafka answers OFFSET_OUT_OF_RANGE too). The
        // follower gets this log's start and high watermark to truncate to.
        let r = pass(
            &live,
            &[fetch_at(9, 7)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!(
            r.error.as_ref().map(ReplicaError::error_code),
            Some(ErrorCode::OffsetOutOfRange)
        );
        assert_eq!((r.log_start_offset, r.high_watermark), (0, 4));
        // A consumer out of range gets −1, as from Kafka.
        let r = pass(
            &live,
            &[fetch_at(9, -1)],
            params(None),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!((r.log_start_offset, r.high_watermark), (-1, -1));
    }

    #[test]
    fn a_follower_fetch_beyond_the_log_end_is_out_of_range_and_not_progress() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        // The log ends at 6; a fetch at 1 000 000 claims what the leader
        // never had (Kafka answers OFFSET_OUT_OF_RANGE and records nothing).
        let r = pass(
            &live,
            &[fetch_at(1_000_000, -1)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!(
            r.error.as_ref().map(ReplicaError::error_code),
            Some(ErrorCode::OffsetOutOfRange)
        );
        assert_eq!((r.log_start_offset, r.high_watermark), (0, 0));
        assert_eq!(p.high_watermark(), 0, "the high watermark stays");
        assert_eq!(p.follower_progress(2).unwrap().log_end_offset, -1);
        // At the log end exactly, it is progress.
        pass(
            &live,
            &[fetch_at(6, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 6);
    }

    #[test]
    fn a_throttled_out_of_sync_follower_waits_for_the_leader_quota() {
        let (_dir, p) = leader_partition(vec![1, 2, 3], vec![1, 2]);
        for _ in 0..3 {
            append(&p, &[b"a", b"b"]);
        }
        let overrides = [(
            "leader.replication.throttled.replicas".to_string(),
            "*".to_string(),
        )]
        .into();
        let config = TopicConfig::resolve(&LogDefaults::kafka_defaults(), &overrides).unwrap();
        p.log().set_config(Arc::new(config));
        let live = vec![Some(Arc::new(p))];
        let quota = ReplicationQuota::default();
        quota.set_rate(1);
        // 3 is out of the ISR: its first read is counted, then it waits.
        let r = pass(&live, &[fetch_at(0, -1)], params(Some(3)), &quota);
        assert!(!r[0].as_ref().unwrap().records.is_empty());
        let r = pass(&live, &[fetch_at(0, -1)], params(Some(3)), &quota);
        let r = r[0].as_ref().unwrap();
        assert!(r.records.is_empty() && r.error.is_none());
        // 2 is in the ISR: never throttled.
        let r = pass(&live, &[fetch_at(0, -1)], params(Some(2)), &quota);
        assert!(!r[0].as_ref().unwrap().records.is_empty());
    }

    #[test]
    fn a_diverging_follower_is_told_where_to_truncate() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        // It claims records of epoch 2 up to offset 5; this leader's log
        // starts epoch 3 at 0, so epoch 2 ended at 0.
        let r = pass(
            &live,
            &[fetch_at(5, 2)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        let r = r[0].as_ref().unwrap();
        assert_eq!(r.diverging_epoch, Some((2, 0)));
        assert!(r.records.is_empty());
        // Not counted as progress.
        assert_eq!(p.follower_progress(2).unwrap().log_end_offset, -1);
        // Asking within the current epoch is fine.
        let r = pass(
            &live,
            &[fetch_at(2, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(r[0].as_ref().unwrap().diverging_epoch, None);
        assert_eq!(p.follower_progress(2).unwrap().log_end_offset, 2);
    }

    #[test]
    fn a_consumers_read_holds_its_bytes_in_the_budget_and_waits_when_there_is_no_room() {
        let (_dir, p) = leader();
        let live = vec![Some(Arc::clone(&p))];
        pass(
            &live,
            &[fetch_at(6, 3)],
            params(Some(2)),
            &ReplicationQuota::default(),
        );
        assert_eq!(p.high_watermark(), 6);
        let quota = ReplicationQuota::default();
        let budget = ByteBudget::new(1 << 20);
        let read = read_pass(
            &live,
            &[fetch_at(0, -1)],
            params(None),
            &quota,
            Some(&budget),
        );
        let r = read.results[0].as_ref().unwrap();
        let held = r.memory.as_ref().map(BytePermit::bytes);
        assert_eq!(held, Some(r.records.len() as u64), "exactly the records");
        assert_eq!(budget.held_bytes(), r.records.len() as u64);
        assert_eq!(read.refused_bytes, None);
        drop(read);
        assert_eq!(budget.held_bytes(), 0, "given back with the result");

        // Someone else holds all but 10 bytes: no batch fits, nothing is
        // copied, and the pass says how much room one batch needs.
        let other = budget.try_take(1, (1 << 20) - 10).unwrap();
        let read = read_pass(
            &live,
            &[fetch_at(0, -1)],
            params(None),
            &quota,
            Some(&budget),
        );
        let r = read.results[0].as_ref().unwrap();
        assert!(r.records.is_empty() && r.error.is_none() && r.memory.is_none());
        let least = read.refused_bytes.expect("refused for room");
        assert!(least > 10 && least < 200, "one batch: {least}");
        // Room for exactly one batch: one batch is read, not three.
        drop(other);
        let _other = budget.try_take(1, (1 << 20) - least).unwrap();
        let read = read_pass(
            &live,
            &[fetch_at(0, -1)],
            params(None),
            &quota,
            Some(&budget),
        );
        let r = read.results[0].as_ref().unwrap();
        assert_eq!(strom_protocol::batch::BatchIter::new(&r.records).count(), 1);
        assert_eq!(budget.held_bytes(), 1 << 20);
        // Followers are not held against it.
        let read = read_pass(
            &live,
            &[fetch_at(0, 3)],
            params(Some(2)),
            &quota,
            Some(&budget),
        );
        let r = read.results[0].as_ref().unwrap();
        assert_eq!(strom_protocol::batch::BatchIter::new(&r.records).count(), 3);
        assert!(r.memory.is_none());
    }
}
