//! One partition replica on this broker: its log, its place in the
//! metadata (leader, leader epoch, replicas, ISR) and its high watermark.
//!
//! The high watermark is the offset every in-sync replica has; consumers
//! never read past it. With this broker as the only in-sync replica it
//! follows the log end offset on every append. Waiters (acks=all produces,
//! long-polling fetches) watch it through a `tokio::sync::watch` channel.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use strom_storage::log::{LogAppendInfo, LogReadInfo, ReadBound};
use strom_storage::validate::validate_client_records;
use strom_storage::{Log, StorageError, TopicPartition};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ReplicaError;
use crate::follower_progress::{FollowerFetch, FollowerProgress, Followers};
use strom_runtime::clock::lag_clock_ms;

/// The partition's registration as this broker last applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// Leader broker id (−1: none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch.
    pub partition_epoch: i32,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// A producer's batch appended as leader.
#[derive(Debug, Clone, Copy)]
pub struct LeaderAppend {
    /// What was written.
    pub info: LogAppendInfo,
    /// The leader epoch it was written in: acks=all waits for it to be
    /// replicated within this leadership.
    pub leader_epoch: i32,
}

/// An ISR proposed to the controller and not yet committed.
#[derive(Debug, Clone)]
struct PendingIsrChange {
    proposed_isr: Vec<i32>,
}

/// A partition replica hosted here.
#[derive(Debug)]
pub struct Partition {
    topic_partition: TopicPartition,
    topic_id: Uuid,
    node_id: i32,
    log: Arc<Log>,
    state: RwLock<PartitionState>,
    high_watermark: watch::Sender<i64>,
    /// The log end offset, for followers' long polls.
    log_end_offset: watch::Sender<i64>,
    /// Bytes appended since start-up: lets a waiting fetch estimate how much
    /// new data there is without reading it.
    appended_bytes: std::sync::atomic::AtomicU64,
    /// As leader: what each follower has (reset with every new leadership).
    followers: parking_lot::Mutex<Followers>,
    /// An ISR change waiting for the controller: no second proposal until
    /// the metadata moves, and until then the high watermark counts the
    /// members it adds (Kafka's "maximal ISR"), so a follower joining the
    /// ISR has every record below the high watermark the moment it joins.
    pending_isr_change: parking_lot::Mutex<Option<PendingIsrChange>>,
}

impl Partition {
    /// Wraps a log with its metadata state.
    pub fn new(node_id: i32, topic_id: Uuid, log: Arc<Log>, state: PartitionState) -> Self {
        let hw = log.offsets().high_watermark;
        let (high_watermark, _) = watch::channel(hw);
        let (log_end_offset, _) = watch::channel(log.offsets().log_end_offset);
        let led_epoch = (state.leader == node_id).then_some(state.leader_epoch);
        let p = Self {
            topic_partition: log.topic_partition().clone(),
            topic_id,
            node_id,
            log,
            state: RwLock::new(state),
            high_watermark,
            log_end_offset,
            appended_bytes: std::sync::atomic::AtomicU64::new(0),
            followers: parking_lot::Mutex::new(Followers::default()),
            pending_isr_change: parking_lot::Mutex::new(None),
        };
        if let Some(epoch) = led_epoch {
            p.assign_leader_epoch(epoch);
        }
        p.reset_followers(lag_clock_ms());
        p.maybe_increment_high_watermark();
        p
    }

    /// Topic and partition.
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    /// Topic id.
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Current metadata state.
    pub fn state(&self) -> PartitionState {
        self.state.read().clone()
    }

    /// Applies a new registration from the metadata. A new leadership
    /// here (or a new leader epoch) starts follower tracking afresh.
    ///
    /// A new leader records where its epoch starts (its log end offset)
    /// before anything is appended in it, as Kafka's leader does: a
    /// follower that fetched in an older epoch learns where that epoch
    /// ended here even before this leader writes anything.
    pub fn update_state(&self, state: PartitionState) {
        let leads = state.leader == self.node_id;
        let (previous, leadership_moved) = {
            let mut current = self.state.write();
            let previous = std::mem::replace(&mut *current, state.clone());
            let moved =
                previous.leader != state.leader || previous.leader_epoch != state.leader_epoch;
            if leads && moved {
                self.assign_leader_epoch(state.leader_epoch);
            }
            (previous, moved)
        };
        if previous.partition_epoch != state.partition_epoch || previous.leader != state.leader {
            *self.pending_isr_change.lock() = None;
        }
        if leadership_moved {
            // Produce requests waiting on the old leadership give up.
            self.high_watermark.send_modify(|_| {});
        }
        if leads && leadership_moved {
            self.reset_followers(lag_clock_ms());
        } else if leads && previous.replicas != state.replicas {
            self.followers
                .lock()
                .retain_replicas(self.node_id, &state.replicas);
        }
        self.maybe_increment_high_watermark();
    }

    fn assign_leader_epoch(&self, leader_epoch: i32) {
        if let Err(e) = self.log.assign_epoch_start_offset(leader_epoch) {
            tracing::error!(partition = %self.topic_partition, leader_epoch, error = %e, "cannot record where the leader epoch starts");
        }
    }

    fn reset_followers(&self, lag_clock_ms: i64) {
        let s = self.state.read();
        self.followers
            .lock()
            .reset(self.node_id, &s.replicas, &s.isr, lag_clock_ms);
    }

    /// As leader: follower `replica` fetched at `fetch_offset`, so it holds
    /// everything below it; the high watermark may move. Refused when this
    /// broker does not lead or `replica` is not one of the replicas, and
    /// OFFSET_OUT_OF_RANGE (nothing recorded) when `fetch_offset` is
    /// beyond the log end offset. `lag_clock_ms` is
    /// [`strom_runtime::clock::lag_clock_ms`] now.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        lag_clock_ms: i64,
    ) -> Result<(), ReplicaError> {
        if !self.is_leader() {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        let offsets = self.log.offsets();
        let fetched = self.followers.lock().on_fetch(
            replica,
            fetch_offset,
            offsets.log_end_offset,
            lag_clock_ms,
        );
        match fetched {
            FollowerFetch::Recorded => {}
            FollowerFetch::NotAReplica => return Err(ReplicaError::NotLeaderOrFollower),
            FollowerFetch::BeyondLogEnd => {
                return Err(StorageError::OffsetOutOfRange {
                    offset: fetch_offset,
                    log_start_offset: offsets.log_start_offset,
                    log_end_offset: offsets.log_end_offset,
                }
                .into())
            }
        }
        self.maybe_increment_high_watermark();
        Ok(())
    }

    /// Runs `f` as follower: refused while this broker leads, and with the
    /// state read-locked, so leadership cannot move while it runs.
    fn as_follower<T>(
        &self,
        f: impl FnOnce() -> Result<T, ReplicaError>,
    ) -> Result<T, ReplicaError> {
        let s = self.state.read();
        if s.leader == self.node_id {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        f()
    }

    /// As follower: appends batches fetched from the leader. Blocking
    /// (disk I/O).
    pub fn append_as_follower(&self, records: &[u8], now_ms: i64) -> Result<i64, ReplicaError> {
        let end = self.as_follower(|| Ok(self.log.append_as_follower(records, now_ms)?))?;
        self.log_end_offset.send_if_modified(|old| {
            let moved = end != *old;
            *old = end;
            moved
        });
        Ok(end)
    }

    /// As follower: the leader's high watermark, as far as this replica's
    /// log reaches.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let Ok(hw) = self.as_follower(|| {
            let end = self.log.offsets().log_end_offset;
            Ok(self
                .log
                .update_high_watermark(leader_high_watermark.min(end)))
        }) else {
            return;
        };
        self.high_watermark.send_if_modified(|old| {
            let moved = hw != *old;
            *old = hw;
            moved
        });
    }

    /// As follower: drops records from `offset` on (a divergent tail).
    /// Blocking (disk I/O).
    pub fn truncate_to(&self, offset: i64, now_ms: i64) -> Result<i64, ReplicaError> {
        let end = self.as_follower(|| Ok(self.log.truncate_to(offset, now_ms)?))?;
        self.log_end_offset.send_replace(end);
        self.high_watermark
            .send_replace(self.log.offsets().high_watermark);
        Ok(end)
    }

    /// As follower: empties the log to start at `offset` (the leader no
    /// longer has what this replica would fetch next). Blocking.
    pub fn truncate_fully_and_start_at(
        &self,
        offset: i64,
        now_ms: i64,
    ) -> Result<(), ReplicaError> {
        self.as_follower(|| Ok(self.log.truncate_fully_and_start_at(offset, now_ms)?))?;
        self.log_end_offset.send_replace(offset);
        self.high_watermark.send_replace(offset);
        Ok(())
    }

    /// As leader: a follower's progress.
    pub fn follower_progress(&self, replica: i32) -> Option<FollowerProgress> {
        self.followers.lock().get(replica)
    }

    /// As leader: in-sync followers behind for longer than `max_lag_ms`
    /// (`replica.lag.time.max.ms`), which the ISR should drop.
    /// `lag_clock_ms` is [`strom_runtime::clock::lag_clock_ms`] now.
    pub fn lagging_followers(&self, lag_clock_ms: i64, max_lag_ms: i64) -> Vec<i32> {
        let s = self.state.read();
        if s.leader != self.node_id {
            return Vec::new();
        }
        let end = self.log.offsets().log_end_offset;
        self.followers
            .lock()
            .lagging(self.node_id, &s.isr, end, lag_clock_ms, max_lag_ms)
    }

    /// As leader: the ISR this partition should have (lagging followers
    /// out, caught-up ones in), with the state it is based on, unless it
    /// is already right or a change is waiting for the controller. The
    /// proposal stays pending until the metadata changes or
    /// [`Partition::isr_change_failed`]. Only followers `may_join` (per
    /// the metadata: registered and not fenced, as the controller demands)
    /// are taken back. `lag_clock_ms` is [`strom_runtime::clock::lag_clock_ms`]
    /// now.
    pub fn propose_isr_change(
        &self,
        lag_clock_ms: i64,
        max_lag_ms: i64,
        may_join: impl Fn(i32) -> bool,
    ) -> Option<(PartitionState, Vec<i32>)> {
        let state = self.state();
        if state.leader != self.node_id {
            return None;
        }
        let mut pending = self.pending_isr_change.lock();
        if pending.is_some() {
            return None;
        }
        let lagging = self.lagging_followers(lag_clock_ms, max_lag_ms);
        let joining = self
            .caught_up_followers(lag_clock_ms, max_lag_ms)
            .into_iter()
            .filter(|r| may_join(*r));
        let mut isr: Vec<i32> = state
            .isr
            .iter()
            .copied()
            .filter(|r| !lagging.contains(r))
            .chain(joining)
            .collect();
        isr.sort_unstable();
        isr.dedup();
        let mut current = state.isr.clone();
        current.sort_unstable();
        if isr == current || isr.is_empty() {
            return None;
        }
        *pending = Some(PendingIsrChange {
            proposed_isr: isr.clone(),
        });
        Some((state, isr))
    }

    /// The controller refused (or never answered) the pending ISR change:
    /// the next check may propose again.
    pub fn isr_change_failed(&self) {
        *self.pending_isr_change.lock() = None;
    }

    /// As leader: followers outside the ISR that caught up and still
    /// fetch (within `max_lag_ms` of `lag_clock_ms`), which it should take
    /// back.
    pub fn caught_up_followers(&self, lag_clock_ms: i64, max_lag_ms: i64) -> Vec<i32> {
        let s = self.state.read();
        if s.leader != self.node_id {
            return Vec::new();
        }
        let hw = self.high_watermark();
        let epoch_start = self
            .log
            .leader_epochs()
            .iter()
            .find(|(e, _)| *e == s.leader_epoch)
            .map_or(0, |(_, start)| *start);
        self.followers
            .lock()
            .caught_up(&s.isr, hw, epoch_start, lag_clock_ms, max_lag_ms)
    }

    /// This broker's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Whether `replica` is in the ISR.
    pub fn is_in_sync(&self, replica: i32) -> bool {
        self.state.read().isr.contains(&replica)
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.state.read().leader == self.node_id
    }

    /// Checks a request's `current_leader_epoch` (−1 skips the check).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), ReplicaError> {
        let current = self.state.read().leader_epoch;
        match requested {
            -1 => Ok(()),
            r if r < current => Err(ReplicaError::FencedLeaderEpoch {
                request: r,
                current,
            }),
            r if r > current => Err(ReplicaError::UnknownLeaderEpoch {
                request: r,
                current,
            }),
            _ => Ok(()),
        }
    }

    /// Leader-only check used by produce, fetch and list offsets.
    pub fn ensure_leader(&self, current_leader_epoch: i32) -> Result<(), ReplicaError> {
        self.check_leader_epoch(current_leader_epoch)?;
        if !self.is_leader() {
            return Err(ReplicaError::NotLeaderOrFollower);
        }
        Ok(())
    }

    /// Validates and appends a producer's batch, returning what was
    /// written and the leader epoch it was written in. Blocking (disk I/O).
    ///
    /// The state stays read-locked for the append: leadership cannot move
    /// (and a fetcher cannot start truncating or appending as follower)
    /// halfway through, as Kafka's `leaderIsrUpdateLock`.
    pub fn append_as_leader(
        &self,
        records: &Bytes,
        required_acks: i16,
        produce_version: i16,
        now_ms: i64,
    ) -> Result<LeaderAppend, ReplicaError> {
        let info = {
            let s = self.state.read();
            if s.leader != self.node_id {
                return Err(ReplicaError::NotLeaderOrFollower);
            }
            let config = self.log.config();
            let isr = s.isr.len();
            if required_acks == -1 && (isr as i64) < i64::from(config.min_insync_replicas) {
                return Err(ReplicaError::NotEnoughReplicas {
                    isr,
                    min_isr: config.min_insync_replicas,
                });
            }
            let batch = validate_client_records(records, &config, produce_version, now_ms)?;
            let info = self.log.append_as_leader(batch, s.leader_epoch, now_ms)?;
            LeaderAppend {
                info,
                leader_epoch: s.leader_epoch,
            }
        };
        self.appended_bytes
            .fetch_add(info.info.bytes as u64, std::sync::atomic::Ordering::Relaxed);
        let end = info.info.last_offset.saturating_add(1);
        self.log_end_offset.send_if_modified(|old| {
            let forward = end > *old;
            if forward {
                *old = end;
            }
            forward
        });
        if info.info.duplicate {
            tracing::debug!(
                partition = %self.topic_partition,
                base_offset = info.info.base_offset,
                "duplicate batch of an idempotent producer: answered with its original offsets"
            );
        }
        self.maybe_increment_high_watermark();
        Ok(info)
    }

    /// acks=all: waits until the high watermark reaches `offset` while this
    /// broker still leads in `leader_epoch` (Kafka's delayed produce).
    /// NOT_LEADER_OR_FOLLOWER as soon as leadership moves (the records may
    /// be truncated by the new leader, and a later high watermark at that
    /// offset would cover other records); REQUEST_TIMED_OUT at `deadline`;
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below
    /// `min.insync.replicas` meanwhile.
    pub async fn wait_for_replication(
        &self,
        offset: i64,
        leader_epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), ReplicaError> {
        let mut hw = self.high_watermark.subscribe();
        loop {
            let reached = *hw.borrow_and_update() >= offset;
            {
                let s = self.state.read();
                if s.leader != self.node_id || s.leader_epoch != leader_epoch {
                    return Err(ReplicaError::NotLeaderOrFollower);
                }
                if reached {
                    let min_isr = i64::from(self.log.config().min_insync_replicas);
                    return if (s.isr.len() as i64) < min_isr {
                        Err(ReplicaError::NotEnoughReplicasAfterAppend)
                    } else {
                        Ok(())
                    };
                }
            }
            match tokio::time::timeout_at(deadline, hw.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ReplicaError::NotLeaderOrFollower),
                Err(_) => return Err(ReplicaError::RequestTimedOut),
            }
        }
    }

    /// As leader, moves the high watermark up to what every in-sync
    /// replica has (never down: a follower that has not fetched since this
    /// leadership began holds it where it is).
    pub fn maybe_increment_high_watermark(&self) {
        // Kafka's maximal ISR: members a pending change adds count as in
        // sync until it is decided (a pending removal still counts too).
        // Taken and released before the state: proposals hold it while
        // reading the state.
        let proposed = self
            .pending_isr_change
            .lock()
            .as_ref()
            .map(|p| p.proposed_isr.clone());
        let s = self.state.read();
        if s.leader != self.node_id {
            return;
        }
        let end = self.log.offsets().log_end_offset;
        let candidate = {
            let followers = self.followers.lock();
            let committed = followers.high_watermark(self.node_id, &s.isr, end);
            proposed.map_or(committed, |p| {
                committed.min(followers.high_watermark(self.node_id, &p, end))
            })
        };
        drop(s);
        if candidate <= self.log.offsets().high_watermark {
            return;
        }
        let hw = self.log.update_high_watermark(candidate);
        // Only forward: a racing append may have published a higher value.
        self.high_watermark.send_if_modified(|old| {
            let forward = hw > *old;
            if forward {
                *old = hw;
            }
            forward
        });
    }

    /// Bytes appended since start-up.
    pub fn appended_bytes(&self) -> u64 {
        self.appended_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The high watermark now.
    pub fn high_watermark(&self) -> i64 {
        self.log.offsets().high_watermark
    }

    /// A receiver that wakes when the log grows.
    pub fn subscribe_log_end_offset(&self) -> watch::Receiver<i64> {
        self.log_end_offset.subscribe()
    }

    /// A receiver that wakes when the high watermark moves.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Reads from the log. Blocking (disk I/O).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one_batch: bool,
    ) -> Result<LogReadInfo, ReplicaError> {
        Ok(self.log.read(offset, max_bytes, bound, min_one_batch)?)
    }

    /// Reads from the log, the bytes copied granted by `grant` first
    /// ([`strom_storage::log::Log::read_within`]). Blocking (disk I/O).
    pub fn read_within(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
        min_one_batch: bool,
        grant: impl FnOnce(usize, usize) -> Option<usize>,
    ) -> Result<LogReadInfo, ReplicaError> {
        Ok(self
            .log
            .read_within(offset, max_bytes, bound, min_one_batch, grant)?)
    }
}

/// Partitions on real logs in temporary directories, for tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use strom_config::TopicConfig;
    use strom_protocol::batch_builder::BatchBuilder;

    /// Broker 1 leading partition `t-0` in leader epoch 3 with `replicas`
    /// and `isr`, on an empty log.
    pub(crate) fn leader_partition(
        replicas: Vec<i32>,
        isr: Vec<i32>,
    ) -> (tempfile::TempDir, Partition) {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::create(
            dir.path().join("t-0"),
            TopicPartition::new("t", 0),
            Uuid::new_v4(),
            Arc::new(TopicConfig::kafka_defaults()),
            0,
        )
        .unwrap();
        let state = PartitionState {
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 0,
            replicas,
            isr,
        };
        (dir, Partition::new(1, Uuid::new_v4(), Arc::new(log), state))
    }

    /// Appends one batch of `values` as a producer with acks=1 would.
    pub(crate) fn append(p: &Partition, values: &[&[u8]]) {
        let batch = BatchBuilder::of_values(0, values).build();
        p.append_as_leader(&Bytes::from(batch.to_vec()), 1, 9, 0)
            .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{append, leader_partition};
    use super::*;
    use strom_protocol::batch_builder::BatchBuilder;

    fn leader_of(isr: Vec<i32>) -> (tempfile::TempDir, Partition) {
        leader_partition(vec![1, 2, 3], isr)
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower() {
        let (_dir, p) = leader_of(vec![1, 2, 3]);
        append(&p, &[b"a", b"b"]);
        append(&p, &[b"c"]);
        assert_eq!(p.high_watermark(), 0, "no follower has fetched");
        p.record_follower_fetch(2, 3, 1_000).unwrap();
        assert_eq!(p.high_watermark(), 0, "3 has not fetched");
        p.record_follower_fetch(3, 2, 1_000).unwrap();
        assert_eq!(p.high_watermark(), 2);
        p.record_follower_fetch(3, 3, 1_001).unwrap();
        assert_eq!(p.high_watermark(), 3);
        // Never backwards, and strangers are refused.
        p.record_follower_fetch(3, 1, 1_002).unwrap();
        assert_eq!(p.high_watermark(), 3);
        assert!(p.record_follower_fetch(7, 3, 1_003).is_err());
        // Dropping the slow follower from the ISR lets it move on.
        append(&p, &[b"d"]);
        p.record_follower_fetch(2, 4, 1_004).unwrap();
        assert_eq!(p.high_watermark(), 3);
        let mut state = p.state();
        state.isr = vec![1, 2];
        state.partition_epoch += 1;
        p.update_state(state.clone());
        assert_eq!(p.high_watermark(), 4);
        // 3 catches up and may rejoin.
        assert!(p.caught_up_followers(1_005, 30_000).is_empty());
        p.record_follower_fetch(3, 4, 1_005).unwrap();
        assert_eq!(p.caught_up_followers(1_005, 30_000), vec![3]);
        // A new leader epoch forgets what followers had.
        state.leader_epoch += 1;
        state.isr = vec![1, 2, 3];
        p.update_state(state);
        append(&p, &[b"e"]);
        assert_eq!(p.high_watermark(), 4);
        assert_eq!(
            p.follower_progress(2).unwrap().log_end_offset,
            crate::follower_progress::UNKNOWN_OFFSET
        );
    }

    #[tokio::test]
    async fn acks_all_gives_up_when_leadership_moves() {
        let (_dir, p) = leader_of(vec![1, 2]);
        let p = Arc::new(p);
        let batch = Bytes::from(BatchBuilder::of_values(0, &[b"a"]).build());
        let appended = p.append_as_leader(&batch, -1, 9, 0).unwrap();
        assert_eq!(appended.leader_epoch, 3);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let waiter = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                p.wait_for_replication(1, appended.leader_epoch, deadline)
                    .await
            })
        };
        tokio::task::yield_now().await;
        // Broker 2 leads now; as its follower, this replica's high
        // watermark passes the offset, but the record may not be the one
        // the producer sent: the produce must fail.
        let mut state = p.state();
        state.leader = 2;
        state.leader_epoch = 4;
        p.update_state(state);
        p.follow_high_watermark(1);
        let answer = waiter.await.unwrap();
        assert!(
            matches!(answer, Err(ReplicaError::NotLeaderOrFollower)),
            "{answer:?}"
        );
        // Within the same leadership it completes once replicated, and
        // times out otherwise.
        let (_dir, p) = leader_of(vec![1, 2]);
        let appended = p.append_as_leader(&batch, -1, 9, 0).unwrap();
        let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(matches!(
            p.wait_for_replication(1, appended.leader_epoch, soon).await,
            Err(ReplicaError::RequestTimedOut)
        ));
        p.record_follower_fetch(2, 1, 1_000).unwrap();
        p.wait_for_replication(1, appended.leader_epoch, soon)
            .await
            .unwrap();
    }

    #[test]
    fn a_new_leader_records_where_its_epoch_starts() {
        let (_dir, p) = leader_of(vec![1, 2, 3]);
        append(&p, &[b"a", b"b"]);
        assert_eq!(p.log().leader_epochs(), vec![(3, 0)]);
        let mut state = p.state();
        state.leader = 2;
        state.leader_epoch = 4;
        p.update_state(state.clone());
        assert_eq!(
            p.log().leader_epochs(),
            vec![(3, 0)],
            "followers record nothing"
        );
        state.leader = 1;
        state.leader_epoch = 5;
        p.update_state(state);
        // Before any append: a follower of epoch 3 or 4 learns here that
        // epoch 3 ended at 2.
        assert_eq!(p.log().leader_epochs(), vec![(3, 0), (5, 2)]);
        assert_eq!(p.log().end_offset_for_epoch(4), (3, 2));
    }

    #[test]
    fn a_follower_joining_the_isr_holds_the_high_watermark_until_committed() {
        let (_dir, p) = leader_of(vec![1, 2]);
        append(&p, &[b"a"]);
        p.record_follower_fetch(2, 1, 1_000).unwrap();
        assert_eq!(p.high_watermark(), 1);
        // 3 catches up to the high watermark: the leader proposes it.
        p.record_follower_fetch(3, 1, 1_000).unwrap();
        // Not while the metadata says 3 is fenced.
        assert!(p.propose_isr_change(1_000, 30_000, |r| r != 3).is_none());
        let (_, proposed) = p.propose_isr_change(1_000, 30_000, |_| true).unwrap();
        assert_eq!(proposed, vec![1, 2, 3]);
        // Until the controller commits, the high watermark waits for 3
        // too: were it to move past 3, 3 could join the ISR without it.
        append(&p, &[b"b"]);
        p.record_follower_fetch(2, 2, 1_001).unwrap();
        assert_eq!(p.high_watermark(), 1);
        p.record_follower_fetch(3, 2, 1_001).unwrap();
        assert_eq!(p.high_watermark(), 2);
        // Refused: back to the committed ISR.
        p.isr_change_failed();
        append(&p, &[b"c"]);
        p.record_follower_fetch(2, 3, 1_002).unwrap();
        assert_eq!(p.high_watermark(), 3);
    }

    #[test]
    fn alone_in_the_isr_the_high_watermark_follows_the_log_end() {
        let (_dir, p) = leader_of(vec![1]);
        append(&p, &[b"a", b"b"]);
        assert_eq!(p.high_watermark(), 2);
        assert!(p.lagging_followers(10_000_000, 30_000).is_empty());
    }
}
