//! The shard's state machine driven through its command channel with
//! tokio's paused clock, so session, join, sync and pending-member timers
//! fire exactly when Kafka's would. Records go to an in-memory partition
//! that can be told to fail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use super::membership::new_member_id;
use super::*;
use crate::offsets_topic::{OffsetCommitValue, MAX_RECORD_STRING_BYTES};

/// The partition the shard writes to.
#[derive(Default)]
struct MemoryPartition {
    records: Mutex<Vec<OffsetsRecord>>,
    failing: AtomicBool,
}

impl OffsetsWriter for MemoryPartition {
    fn append(
        &self,
        records: Vec<OffsetsRecord>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ErrorCode>> + Send + '_>> {
        Box::pin(async move {
            if self.failing.load(Ordering::SeqCst) {
                return Err(ErrorCode::NotEnoughReplicas);
            }
            self.records.lock().unwrap().extend(records);
            Ok(())
        })
    }
}

fn config() -> GroupConfig {
    let mut c = strom_config::BrokerConfig::single_node_defaults()
        .unwrap()
        .config
        .group;
    c.group_initial_rebalance_delay_ms = 0;
    c
}

struct Harness {
    commands: mpsc::Sender<Command>,
    partition: Arc<MemoryPartition>,
    _shutdown: watch::Sender<bool>,
}

impl Harness {
    fn start(config: GroupConfig) -> Self {
        Self::over(config, Arc::new(MemoryPartition::default()))
    }

    /// A shard loaded from what `partition` holds (a new leader).
    fn over(config: GroupConfig, partition: Arc<MemoryPartition>) -> Self {
        let records = partition.records.lock().unwrap().clone();
        let mut shard = Shard::new(Arc::new(config), partition.clone());
        for record in records {
            shard.replay(record);
        }
        shard.start_sessions();
        let (commands, rx) = mpsc::channel(64);
        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(shard.run(rx, shutdown_rx));
        Self {
            commands,
            partition,
            _shutdown: shutdown,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (tx, rx) = oneshot::channel();
        assert!(self.commands.send(make(tx)).await.is_ok());
        rx.await.unwrap()
    }

    /// Starts a JoinGroup; the answer arrives when the join phase ends.
    /// The shard has the request once this returns, so later commands are
    /// handled after it.
    async fn join(&self, p: JoinParams) -> tokio::task::JoinHandle<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        assert!(self.commands.send(Command::Join(p, tx)).await.is_ok());
        tokio::spawn(async move { rx.await.unwrap() })
    }

    /// Starts a SyncGroup, like [`Harness::join`].
    async fn sync(&self, p: SyncParams) -> tokio::task::JoinHandle<SyncOutcome> {
        let (tx, rx) = oneshot::channel();
        assert!(self.commands.send(Command::Sync(p, tx)).await.is_ok());
        tokio::spawn(async move { rx.await.unwrap() })
    }

    async fn heartbeat(&self, member: &str, generation: i32) -> Option<ErrorCode> {
        self.heartbeat_as(member, None, generation).await
    }

    async fn heartbeat_as(
        &self,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Option<ErrorCode> {
        let p = HeartbeatParams {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: instance.map(Into::into),
        };
        self.ask(|r| Command::Heartbeat(p, r)).await
    }

    async fn describe(&self) -> Option<GroupDescription> {
        self.ask(|r| Command::Describe("g".into(), r)).await
    }

    async fn commit(
        &self,
        generation: i32,
        member: &str,
        offset: i64,
    ) -> Result<Vec<Option<ErrorCode>>, ErrorCode> {
        let p = CommitParams {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            offsets: vec![OffsetToCommit {
                topic: "t".into(),
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: String::new(),
            }],
        };
        self.ask(|r| Command::Commit(p, r)).await
    }

    async fn committed(&self) -> i64 {
        let fetched = self
            .ask(|r| Command::FetchOffsets("g".into(), Some(vec![("t".into(), 0)]), r))
            .await;
        fetched[0].offset
    }

    /// A member joins an empty group and syncs as its leader, assigning
    /// itself "mine"; returns (member id, generation).
    async fn join_and_sync_alone(&self, client: &str) -> (String, i32) {
        let first = self.join(params(client, "", None)).await.await.unwrap();
        assert_eq!(first.error, Some(ErrorCode::MemberIdRequired));
        let joined = self
            .join(params(client, &first.member_id, None))
            .await
            .await
            .unwrap();
        assert_eq!(joined.error, None);
        let mine = vec![(joined.member_id.clone(), "mine")];
        let synced = self
            .sync(sync_params(&joined.member_id, joined.generation_id, mine))
            .await
            .await
            .unwrap();
        assert_eq!(synced.error, None);
        (joined.member_id, joined.generation_id)
    }
}

fn params(client: &str, member: &str, instance: Option<&str>) -> JoinParams {
    JoinParams {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: instance.map(Into::into),
        client_id: client.into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 20_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::from_static(b"subscription"))],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn sync_params(
    member: &str,
    generation: i32,
    assignments: Vec<(String, &'static str)>,
) -> SyncParams {
    SyncParams {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .into_iter()
            .map(|(m, a)| (m, Bytes::from_static(a.as_bytes())))
            .collect(),
    }
}

/// Heartbeats every second for `seconds` and returns the last answer.
async fn keep_alive(h: &Harness, member: &str, generation: i32, seconds: u64) -> Option<ErrorCode> {
    let mut last = None;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        last = h.heartbeat(member, generation).await;
    }
    last
}

#[tokio::test(start_paused = true)]
async fn initial_delay_collects_members_that_join_within_it() {
    let mut c = config();
    c.group_initial_rebalance_delay_ms = 3_000;
    let h = Harness::start(c);
    let a = h.join(params("a", "", None)).await.await.unwrap();
    let a = h.join(params("a", &a.member_id, None)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let b = h.join(params("b", "", None)).await.await.unwrap();
    let started = Instant::now();
    let b = h.join(params("b", &b.member_id, None)).await;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    // b's arrival extended the delay by another 3 s.
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!((a.error, b.error), (None, None));
    assert_eq!((a.generation_id, b.generation_id), (1, 1));
    assert_eq!(a.leader, a.member_id, "the first member leads");
    assert_eq!(a.members.len(), 2);
    assert!(b.members.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_removes_the_member_and_rebalances_the_rest() {
    let h = Harness::start(config());
    let (a, generation) = h.join_and_sync_alone("a").await;
    // b joins; a rejoins when its heartbeat says so.
    let first = h.join(params("b", "", None)).await.await.unwrap();
    let b_join = h.join(params("b", &first.member_id, None)).await;
    assert_eq!(
        h.heartbeat(&a, generation).await,
        Some(ErrorCode::RebalanceInProgress)
    );
    let a_join = h.join(params("a", &a, None)).await.await.unwrap();
    let b_join = b_join.await.unwrap();
    assert_eq!(a_join.generation_id, generation + 1);
    let both = vec![(a.clone(), "for-a"), (b_join.member_id.clone(), "for-b")];
    let b_sync = h
        .sync(sync_params(&b_join.member_id, a_join.generation_id, vec![]))
        .await;
    let a_sync = h
        .sync(sync_params(&a, a_join.generation_id, both))
        .await
        .await
        .unwrap();
    assert_eq!(&a_sync.assignment[..], b"for-a");
    assert_eq!(&b_sync.await.unwrap().assignment[..], b"for-b");

    // Only a heartbeats: once b's 10 s session ends the group rebalances.
    assert_eq!(keep_alive(&h, &a, a_join.generation_id, 9).await, None);
    assert_eq!(
        keep_alive(&h, &a, a_join.generation_id, 2).await,
        Some(ErrorCode::RebalanceInProgress)
    );
    let rejoined = h.join(params("a", &a, None)).await.await.unwrap();
    assert_eq!(rejoined.generation_id, a_join.generation_id + 1);
    assert_eq!(rejoined.members.len(), 1);
    assert_eq!(
        h.heartbeat(&b_join.member_id, a_join.generation_id).await,
        Some(ErrorCode::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn members_that_do_not_rejoin_by_the_rebalance_timeout_are_dropped() {
    let h = Harness::start(config());
    let (a, generation) = h.join_and_sync_alone("a").await;
    let first = h.join(params("b", "", None)).await.await.unwrap();
    let started = Instant::now();
    let b = h.join(params("b", &first.member_id, None)).await;
    // a never rejoins (nor heartbeats): b waits out the 20 s rebalance timeout.
    let b = b.await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.error, None);
    assert_eq!(b.generation_id, generation + 1);
    assert_eq!(b.leader, b.member_id, "the only member left leads");
    assert_eq!(b.members.len(), 1);
    assert_eq!(
        h.heartbeat(&a, generation).await,
        Some(ErrorCode::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_never_syncs_is_dropped_at_the_sync_deadline() {
    let h = Harness::start(config());
    let (a, generation) = h.join_and_sync_alone("a").await;
    let first = h.join(params("b", "", None)).await.await.unwrap();
    let b_join = h.join(params("b", &first.member_id, None)).await;
    assert_eq!(
        h.heartbeat(&a, generation).await,
        Some(ErrorCode::RebalanceInProgress)
    );
    let a_join = h.join(params("a", &a, None)).await.await.unwrap();
    let b_join = b_join.await.unwrap();
    // b syncs and waits; the leader (a) heartbeats but never sends the
    // assignment, so the sync phase ends at the 20 s rebalance timeout.
    // (Heartbeats every 1.5 s never coincide with that deadline.)
    let started = Instant::now();
    let mut b_sync = h
        .sync(sync_params(&b_join.member_id, b_join.generation_id, vec![]))
        .await;
    let b_sync = loop {
        tokio::select! {
            outcome = &mut b_sync => break outcome.unwrap(),
            _ = tokio::time::sleep(Duration::from_millis(1_500)) => {
                assert_eq!(h.heartbeat(&a, a_join.generation_id).await, None);
            }
        }
    };
    assert!(
        started.elapsed() >= Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b_sync.error, Some(ErrorCode::RebalanceInProgress));
    // b rejoins alone and becomes the leader.
    let again = h
        .join(params("b", &b_join.member_id, None))
        .await
        .await
        .unwrap();
    assert_eq!(again.error, None);
    assert_eq!(again.generation_id, a_join.generation_id + 1);
    assert_eq!(again.leader, b_join.member_id);
    assert_eq!(
        h.heartbeat(&a, a_join.generation_id).await,
        Some(ErrorCode::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unused_pending_member_id_expires_after_the_session_timeout() {
    let h = Harness::start(config());
    let first = h.join(params("a", "", None)).await.await.unwrap();
    assert_eq!(first.error, Some(ErrorCode::MemberIdRequired));
    tokio::time::sleep(Duration::from_secs(11)).await;
    let late = h
        .join(params("a", &first.member_id, None))
        .await
        .await
        .unwrap();
    assert_eq!(late.error, Some(ErrorCode::UnknownMemberId));
}

#[tokio::test(start_paused = true)]
async fn a_static_member_that_comes_back_keeps_its_assignment_without_a_rebalance() {
    let h = Harness::start(config());
    let first = h
        .join(params("a", "", Some("instance-a")))
        .await
        .await
        .unwrap();
    assert_eq!(
        first.error, None,
        "static members get no MEMBER_ID_REQUIRED"
    );
    let old_a = first.member_id.clone();
    let b_first = h.join(params("b", "", None)).await.await.unwrap();
    let b_join = h.join(params("b", &b_first.member_id, None)).await;
    assert_eq!(
        h.heartbeat_as(&old_a, Some("instance-a"), 1).await,
        Some(ErrorCode::RebalanceInProgress)
    );
    let mut rejoin = params("a", &old_a, Some("instance-a"));
    rejoin.member_id = old_a.clone();
    let a_join = h.join(rejoin).await.await.unwrap();
    let b_join = b_join.await.unwrap();
    let generation = a_join.generation_id;
    let b_id = b_join.member_id.clone();
    let b_sync = h.sync(sync_params(&b_id, generation, vec![])).await;
    let mut a_sync = sync_params(
        &old_a,
        generation,
        vec![(old_a.clone(), "for-a"), (b_id.clone(), "for-b")],
    );
    a_sync.group_instance_id = Some("instance-a".into());
    assert_eq!(h.sync(a_sync).await.await.unwrap().error, None);
    assert_eq!(b_sync.await.unwrap().error, None);

    // a restarts: a new JoinGroup with no member id but the same instance.
    let back = h
        .join(params("a", "", Some("instance-a")))
        .await
        .await
        .unwrap();
    assert_eq!(back.error, None);
    assert_ne!(back.member_id, old_a);
    assert_eq!(back.generation_id, generation, "no new generation");
    let mut a_sync = sync_params(&back.member_id, generation, vec![]);
    a_sync.group_instance_id = Some("instance-a".into());
    let a_sync = h.sync(a_sync).await.await.unwrap();
    assert_eq!(&a_sync.assignment[..], b"for-a", "the old assignment");
    // b saw nothing; the old incarnation is fenced.
    assert_eq!(h.heartbeat(&b_id, generation).await, None);
    assert_eq!(
        h.heartbeat_as(&old_a, Some("instance-a"), generation).await,
        Some(ErrorCode::FencedInstanceId)
    );
    let d = h.describe().await.unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn failed_writes_change_nothing() {
    let h = Harness::start(config());
    assert_eq!(h.commit(-1, "", 5).await, Ok(vec![None]));
    h.partition.failing.store(true, Ordering::SeqCst);
    assert_eq!(
        h.commit(-1, "", 9).await,
        Ok(vec![Some(ErrorCode::CoordinatorNotAvailable)])
    );
    assert_eq!(h.committed().await, 5);
    let deleted = h.ask(|r| Command::Delete("g".into(), r)).await;
    assert_eq!(deleted, Some(ErrorCode::CoordinatorNotAvailable));
    h.partition.failing.store(false, Ordering::SeqCst);
    assert_eq!(h.committed().await, 5);
    assert!(h.describe().await.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_rebuilds_groups_and_offsets_from_the_partition() {
    let h = Harness::start(config());
    let (a, generation) = h.join_and_sync_alone("a").await;
    assert_eq!(h.commit(generation, &a, 42).await, Ok(vec![None]));
    let p = CommitParams {
        group_id: "gone".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![OffsetToCommit {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            leader_epoch: 3,
            metadata: "m".into(),
        }],
    };
    assert_eq!(h.ask(|r| Command::Commit(p, r)).await, Ok(vec![None]));
    assert_eq!(h.ask(|r| Command::Delete("gone".into(), r)).await, None);

    let moved = Harness::over(config(), Arc::clone(&h.partition));
    assert_eq!(moved.committed().await, 42);
    let d = moved.describe().await.unwrap();
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members[0].member_id, a);
    assert_eq!(&d.members[0].assignment[..], b"mine");
    assert_eq!(moved.heartbeat(&a, generation).await, None);
    let listed = moved.ask(Command::List).await;
    assert_eq!(
        listed
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        vec!["g"]
    );
    // Without heartbeats the member's session ends on the new leader too.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(moved.describe().await.unwrap().state, "Empty");
}

#[tokio::test(start_paused = true)]
async fn overlong_strings_are_refused_before_anything_is_written() {
    let h = Harness::start(config());
    let mut p = params("a", "", Some(&"i".repeat(MAX_RECORD_STRING_BYTES + 1)));
    p.require_known_member_id = false;
    assert_eq!(
        h.join(p).await.await.unwrap().error,
        Some(ErrorCode::InvalidRequest)
    );
    let mut p = params("a", "", None);
    p.group_id = "g".repeat(MAX_RECORD_STRING_BYTES + 1);
    assert_eq!(
        h.join(p).await.await.unwrap().error,
        Some(ErrorCode::InvalidGroupId)
    );
    // A client id at the limit still gets a member id that fits.
    let id = new_member_id(&"c".repeat(MAX_RECORD_STRING_BYTES), None);
    assert!(id.len() <= MAX_RECORD_STRING_BYTES);
    let id = new_member_id(&"é".repeat(MAX_RECORD_STRING_BYTES / 2), None);
    assert!(id.len() <= MAX_RECORD_STRING_BYTES);
    assert!(h.partition.records.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn offsets_expire_after_the_retention_of_empty_and_simple_groups() {
    const DAY_MS: i64 = 24 * 3_600_000;
    let wall = now_ms();
    let offset = |group: &str, partition: i32, committed_days_ago: i64| OffsetsRecord::Offset {
        group: group.into(),
        topic: "t".into(),
        partition,
        value: Some(OffsetCommitValue {
            offset: 10,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: wall - committed_days_ago * DAY_MS,
        }),
    };
    let empty_since = |group: &str, days_ago: i64| OffsetsRecord::Group {
        group: group.into(),
        value: Some(crate::offsets_topic::GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: None,
            leader: None,
            current_state_timestamp: wall - days_ago * DAY_MS,
            members: Vec::new(),
        }),
    };
    let partition = Arc::new(MemoryPartition::default());
    partition.records.lock().unwrap().extend([
        // A consumer group empty for 8 days: everything expires, even an
        // offset an admin committed recently.
        empty_since("abandoned", 8),
        offset("abandoned", 0, 9),
        offset("abandoned", 1, 1),
        // Empty for a day: nothing expires.
        empty_since("resting", 1),
        offset("resting", 0, 9),
        // A group that only stores offsets: each by its commit time.
        offset("simple", 0, 8),
        offset("simple", 1, 1),
    ]);
    let h = Harness::over(config(), Arc::clone(&partition));
    let fetch = |group: &'static str| {
        let h = &h;
        async move {
            h.ask(|r| Command::FetchOffsets(group.into(), None, r))
                .await
                .into_iter()
                .map(|o| o.partition)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(fetch("abandoned").await, vec![0, 1]);
    // offsets.retention.check.interval.ms (10 minutes) later:
    tokio::time::sleep(Duration::from_secs(601)).await;
    assert_eq!(fetch("abandoned").await, Vec::<i32>::new());
    assert_eq!(fetch("resting").await, vec![0]);
    assert_eq!(fetch("simple").await, vec![1]);
    let listed: Vec<String> = h
        .ask(Command::List)
        .await
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["resting".to_string(), "simple".to_string()]);
    // The expiry is in the partition: a new leader agrees.
    let moved = Harness::over(config(), partition);
    let listed: Vec<String> = moved
        .ask(Command::List)
        .await
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, vec!["resting".to_string(), "simple".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn group_max_size_counts_members_not_pending_ids() {
    let mut c = config();
    c.group_max_size = 1;
    let h = Harness::start(c);
    // With a maximum of one, the one dynamic member still gets in (its
    // pending id does not count against it).
    let (a, generation) = h.join_and_sync_alone("a").await;
    // A second one is turned away at once, before any member id round trip.
    let b = h.join(params("b", "", None)).await.await.unwrap();
    assert_eq!(b.error, Some(ErrorCode::GroupMaxSizeReached));
    assert_eq!(b.member_id, "");
    assert_eq!(
        h.heartbeat(&a, generation).await,
        None,
        "no rebalance for a refused member"
    );
    assert_eq!(h.describe().await.unwrap().members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_new_member_outlasts_its_session_timeout_while_others_rejoin() {
    let h = Harness::start(config());
    let (a, generation) = h.join_and_sync_alone("a").await;
    let first = h.join(params("b", "", None)).await.await.unwrap();
    let b = h.join(params("b", &first.member_id, None)).await;
    // a keeps heartbeating but takes 15 s (past b's 10 s session, within
    // its rebalance timeout) to rejoin, as a consumer busy processing does.
    assert_eq!(
        keep_alive(&h, &a, generation, 15).await,
        Some(ErrorCode::RebalanceInProgress)
    );
    let a_join = h.join(params("a", &a, None)).await.await.unwrap();
    let b = b.await.unwrap();
    assert_eq!((a_join.error, b.error), (None, None));
    assert_eq!(a_join.members.len(), 2, "b is still a member");
}

#[tokio::test(start_paused = true)]
async fn a_static_replacement_that_cannot_be_written_leaves_the_old_member_mortal() {
    let h = Harness::start(config());
    let first = h
        .join(params("a", "", Some("instance-a")))
        .await
        .await
        .unwrap();
    let old = first.member_id.clone();
    let mut s = sync_params(&old, first.generation_id, vec![(old.clone(), "for-a")]);
    s.group_instance_id = Some("instance-a".into());
    assert_eq!(h.sync(s).await.await.unwrap().error, None);

    h.partition.failing.store(true, Ordering::SeqCst);
    let back = h
        .join(params("a2", "", Some("instance-a")))
        .await
        .await
        .unwrap();
    assert_eq!(back.error, Some(ErrorCode::CoordinatorNotAvailable));
    assert_eq!(back.member_id, "");
    h.partition.failing.store(false, Ordering::SeqCst);
    // The old incarnation is still the member, with its own client id...
    let d = h.describe().await.unwrap();
    assert_eq!(d.members[0].member_id, old);
    assert_eq!(d.members[0].client_id, "a");
    // ...and its session still ends.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(h.describe().await.unwrap().state, "Empty");
}

#[tokio::test(start_paused = true)]
async fn a_member_that_never_syncs_is_removed_after_the_group_is_stable() {
    let h = Harness::start(config());
    let (a, generation) = h.join_and_sync_alone("a").await;
    let first = h.join(params("b", "", None)).await.await.unwrap();
    let b_join = h.join(params("b", &first.member_id, None)).await;
    assert_eq!(
        h.heartbeat(&a, generation).await,
        Some(ErrorCode::RebalanceInProgress)
    );
    let a_join = h.join(params("a", &a, None)).await.await.unwrap();
    let b = b_join.await.unwrap().member_id;
    let g = a_join.generation_id;
    let both = vec![(a.clone(), "for-a"), (b.clone(), "for-b")];
    assert_eq!(
        h.sync(sync_params(&a, g, both)).await.await.unwrap().error,
        None
    );
    assert_eq!(h.describe().await.unwrap().state, "Stable");
    // b heartbeats but never asks for its assignment: at the 20 s
    // deadline it is removed and the group rebalances.
    let mut answers = Vec::new();
    for _ in 0..16 {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        answers.push((h.heartbeat(&a, g).await, h.heartbeat(&b, g).await));
    }
    assert_eq!(answers[0], (None, None));
    assert_eq!(
        answers.last().copied().unwrap(),
        (
            Some(ErrorCode::RebalanceInProgress),
            Some(ErrorCode::UnknownMemberId)
        )
    );
}

/// A `__consumer_offsets` record may carry any generation: one at
/// `i32::MAX` must not make the next rebalance overflow (a panic would
/// kill the shard, again after every reload). The next generation is 1.
#[tokio::test(start_paused = true)]
async fn a_rebalance_after_generation_i32_max_starts_again_at_one() {
    use crate::offsets_topic::{GroupMetadataValue, MemberMetadataValue};
    let partition = Arc::new(MemoryPartition::default());
    partition
        .records
        .lock()
        .unwrap()
        .push(OffsetsRecord::Group {
            group: "g".into(),
            value: Some(GroupMetadataValue {
                protocol_type: "consumer".into(),
                generation: i32::MAX,
                protocol: Some("range".into()),
                leader: Some("a-1".into()),
                current_state_timestamp: 0,
                members: vec![MemberMetadataValue {
                    member_id: "a-1".into(),
                    group_instance_id: None,
                    client_id: "a".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 20_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(b"subscription"),
                    assignment: Bytes::from_static(b"old"),
                }],
            }),
        });
    let h = Harness::over(config(), Arc::clone(&partition));
    assert_eq!(h.heartbeat("a-1", i32::MAX).await, None);
    // The leader rejoins: the group rebalances at once.
    let joined = h.join(params("a", "a-1", None)).await.await.unwrap();
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, "a-1");
    let synced = h
        .sync(sync_params("a-1", 1, vec![("a-1".into(), "new")]))
        .await
        .await
        .unwrap();
    assert_eq!(synced.error, None);
    assert_eq!(&synced.assignment[..], b"new");
    assert_eq!(
        h.heartbeat("a-1", i32::MAX).await,
        Some(ErrorCode::IllegalGeneration)
    );
    assert_eq!(h.heartbeat("a-1", 1).await, None);
    // What was written reloads, and the group goes on from there.
    let moved = Harness::over(config(), Arc::clone(&partition));
    assert_eq!(moved.heartbeat("a-1", 1).await, None);
    let rejoined = moved.join(params("a", "a-1", None)).await.await.unwrap();
    assert_eq!(
        (rejoined.error, rejoined.generation_id),
        (None, 2),
        "the generation after 1"
    );
}
