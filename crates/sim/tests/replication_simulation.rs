//! A seeded simulation of partition replication: the data
//! plane of the three brokers of [`sim`]'s cluster, under its crashes,
//! cuts, delays and losses. A seed replays the same fault schedule:
//! `STROM_SIM_SEEDS=7,8 cargo test -p strom-sim --test replication_simulation`.
//!
//! Each node's broker is the real thing below the wire protocol: a
//! `ReplicaManager` over its partition logs on disk (in the node's
//! directory, beside its metadata log), kept in step with its own node's
//! metadata image. Its parts run as the broker runs them:
//! - it opens and recovers its logs once registered in this incarnation
//!   and caught up with the metadata up to its registration, and drops
//!   them at a crash (in-flight requests finish, their answers are lost,
//!   as if the crash came a moment later);
//! - followers fetch from leaders over the simulated network (the leader's
//!   `ReplicaManager::fetch` with the follower's replica id, long-polling)
//!   and apply the answers with the fetcher's own rule
//!   (`replica_fetcher::apply_fetched`: append, high watermark, truncation
//!   on a diverging epoch);
//! - leaders propose ISR changes (`replica.lag.time.max.ms` = 2 s of
//!   virtual time on the lag clock) through AlterPartition to the active
//!   controller.
//!
//! Outside the cluster (never cut off, delayed and lossy like everyone), a
//! producer per partition appends numbered records with acks=all to
//! whichever broker its metadata names leader, and a consumer per
//! partition reads from the leader what is below the high watermark. The
//! topic has replication factor 3 and `min.insync.replicas=2`.
//!
//! After the faults everything heals and the cluster must converge: every
//! partition fully in sync, every replica's high watermark at the log end.
//! Invariants checked:
//! - the three replicas of each partition hold the same records at the
//!   same offsets;
//! - every acknowledged acks=all write is there, at the offset it was
//!   acknowledged with;
//! - every record a consumer read is there at the offset it was read at
//!   (nothing below a high watermark ever moved), and no consumer was told
//!   its position was out of range;
//! - the quorum's invariants (see `simulation.rs`) hold too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strom_sim as sim;

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{EpochEndOffset, PartitionData};
use parking_lot::Mutex;
use sim::{Cluster, CLIENT, CLUSTER_ID, NODES};
use strom_config::LogDefaults;
use strom_controller::isr_change::IsrChange;
use strom_controller::ops::{ControllerOp, ControllerOpResult};
use strom_controller::CreateTopic;
use strom_metadata::MetadataImage;
use strom_protocol::batch::{records_payload, BatchIter};
use strom_protocol::batch_builder::BatchBuilder;
use strom_protocol::records::RecordIter;
use strom_protocol::ErrorCode;
use strom_replication::replica_fetcher::apply_fetched;
use strom_replication::{
    FetchParams, FetchPartition, FetchPartitionResult, IsolationLevel, Partition, ReplicaManager,
};
use strom_runtime::clock::lag_clock_ms;
use strom_storage::log::ReadBound;
use strom_storage::{LogManager, TopicPartition};
use tokio::sync::watch;
use tracing::Instrument;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 2;
/// `replica.lag.time.max.ms`.
const REPLICA_LAG_TIME_MAX_MS: i64 = 2_000;
/// How often leaders check their ISRs (the broker: half the lag time).
const ISR_CHECK_EVERY: Duration = Duration::from_millis(500);
/// A follower fetch's long poll.
const FETCH_MAX_WAIT_MS: u64 = 500;
/// Most bytes a fetch returns per partition.
const FETCH_PARTITION_MAX_BYTES: usize = 64 * 1024;
/// An acks=all produce's `timeout_ms`.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(2);
/// Virtual time the faults run for.
const FAULT_PHASE: Duration = Duration::from_secs(60);
/// Virtual time a whole run may take.
const RUN_WITHIN: Duration = Duration::from_secs(600);
/// Virtual time allowed to converge after healing.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);
/// How long a crashed broker's in-flight requests may take to finish.
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

/// What clients saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged acks=all writes: (partition, offset, value).
    acknowledged: Vec<(i32, i64, String)>,
    /// Records consumers read: (partition, offset, value).
    consumed: Vec<(i32, i64, String)>,
    /// Broken promises noticed on the way.
    violations: Vec<String>,
}

/// The brokers' data plane and its clients.
struct DataPlane {
    cluster: Arc<Cluster>,
    /// Each running broker's replica manager (this incarnation's).
    brokers: Mutex<BTreeMap<u64, Arc<ReplicaManager>>>,
    seen: Mutex<Seen>,
}

impl DataPlane {
    /// A request from `from` reaching broker `to`: its replica manager and
    /// metadata image, if the message gets there.
    async fn reach(&self, from: u64, to: u64) -> Option<(Arc<ReplicaManager>, Arc<MetadataImage>)> {
        let node = self.cluster.net.deliver(from, to).await?;
        let rm = self.brokers.lock().get(&to).cloned()?;
        Some((rm, node.image()))
    }

    /// The leader of `partition` and its leader epoch, as a random running
    /// node's metadata says.
    fn leader_of(&self, partition: i32) -> Option<(u64, i32)> {
        let nodes = self.cluster.nodes();
        let pick = self.cluster.net.rng.lock().below(nodes.len() as u64) as usize;
        let (_, node) = nodes.get(pick)?;
        let image = node.image();
        let p = image.topic(TOPIC)?.partitions.get(&partition)?;
        Some((u64::try_from(p.leader).ok()?, p.leader_epoch))
    }

    fn violation(&self, what: String) {
        self.seen.lock().violations.push(what);
    }
}

async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = stop.changed() => {}
    }
}

/// The broker on node `id`, through its node's crashes and restarts.
async fn run_data_broker(dp: Arc<DataPlane>, id: u64, mut stop: watch::Receiver<bool>) {
    let cluster = Arc::clone(&dp.cluster);
    loop {
        // Registered in this incarnation, and caught up with the metadata
        // up to the registration (as the broker loads its logs).
        let (controller, incarnation) = loop {
            if *stop.borrow() {
                return;
            }
            if let (Some(c), Some(epoch)) = (cluster.node(id), cluster.broker_epoch(id)) {
                if c.image().offset >= epoch {
                    break (c, cluster.incarnation(id));
                }
            }
            pause(Duration::from_millis(50), &mut stop).await;
        };
        let log_manager = LogManager::open(&[cluster.dirs[&id].clone()], id as i32, CLUSTER_ID)
            .expect("the log directory opens");
        let rm = Arc::new(ReplicaManager::new(
            id as i32,
            Arc::new(log_manager),
            LogDefaults::kafka_defaults(),
        ));
        let image = controller.image();
        rm.load_logs(&image).expect("the logs load");
        rm.reconcile(&image);
        dp.brokers.lock().insert(id, Arc::clone(&rm));

        let (down_tx, down) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(
                apply_metadata(controller.subscribe(), Arc::clone(&rm), down.clone())
                    .in_current_span(),
            ),
            tokio::spawn(
                update_isrs(Arc::clone(&dp), id, Arc::clone(&rm), down.clone()).in_current_span(),
            ),
        ];
        drop(controller);
        for leader in NODES.into_iter().filter(|l| *l != id) {
            tasks.push(tokio::spawn(
                fetch_from(Arc::clone(&dp), id, leader, Arc::clone(&rm), down.clone())
                    .in_current_span(),
            ));
        }
        // Until the node crashes (or the run ends).
        while !*stop.borrow()
            && cluster.node(id).is_some()
            && cluster.incarnation(id) == incarnation
        {
            pause(Duration::from_millis(20), &mut stop).await;
        }
        if *stop.borrow() {
            // The run ends: the final checks read the logs.
            let _ = down_tx.send(true);
            for t in tasks {
                let _ = t.await;
            }
            return;
        }
        dp.brokers.lock().remove(&id);
        let _ = down_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        // Requests in flight finish (their answers are lost); only then may
        // the next incarnation open the directory.
        let gone: Weak<ReplicaManager> = Arc::downgrade(&rm);
        drop(rm);
        let drained = tokio::time::timeout(DRAIN_WITHIN, async {
            while gone.strong_count() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            drained.is_ok(),
            "broker {id}: requests on a crashed broker never finished"
        );
    }
}

/// Applies each new image of the node's metadata.
async fn apply_metadata(
    mut images: watch::Receiver<Arc<MetadataImage>>,
    rm: Arc<ReplicaManager>,
    mut down: watch::Receiver<bool>,
) {
    loop {
        let image = images.borrow_and_update().clone();
        let before: Vec<_> = rm.all_partitions().iter().map(|p| p.state()).collect();
        rm.reconcile(&image);
        for p in rm.all_partitions() {
            let s = p.state();
            if !before.contains(&s) {
                tracing::info!(partition = %p.topic_partition(), leader = s.leader, leader_epoch = s.leader_epoch, isr = ?s.isr, offsets = ?p.log().offsets(), "partition state");
            }
        }
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = down.changed() => return,
        }
    }
}

/// As leader, proposes ISR changes to the controller.
async fn update_isrs(
    dp: Arc<DataPlane>,
    id: u64,
    rm: Arc<ReplicaManager>,
    mut down: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(ISR_CHECK_EVERY) => {}
            _ = down.changed() => return,
        }
        let (Some(node), Some(broker_epoch)) = (dp.cluster.node(id), dp.cluster.broker_epoch(id))
        else {
            continue;
        };
        let image = node.image();
        if image.broker(id as i32).is_none_or(|b| b.fenced) {
            continue;
        }
        let may_join = |b: i32| image.broker(b).is_some_and(|b| !b.fenced);
        for (partition, current, isr) in
            rm.isr_change_proposals(lag_clock_ms(), REPLICA_LAG_TIME_MAX_MS, may_join)
        {
            let tp = partition.topic_partition().clone();
            let change = IsrChange {
                broker_id: id as i32,
                broker_epoch,
                topic: tp.topic.clone(),
                partition: tp.partition,
                leader_epoch: current.leader_epoch,
                partition_epoch: current.partition_epoch,
                isr,
            };
            let cluster = Arc::clone(&dp.cluster);
            tokio::spawn(
                async move {
                    let answer = cluster
                        .route(id, ControllerOp::AlterPartition(change))
                        .await;
                    if !matches!(
                        answer,
                        Some(ControllerOpResult::AlterPartition(Ok((_, Some(_)))))
                    ) {
                        partition.isr_change_failed();
                    }
                }
                .in_current_span(),
            );
        }
    }
}

/// The fetch answer as the wire carries it to the follower.
fn as_wire(r: FetchPartitionResult) -> PartitionData {
    let mut data = PartitionData::default()
        .with_error_code(r.error.map_or(0, |e| e.error_code().code()))
        .with_high_watermark(r.high_watermark)
        .with_last_stable_offset(r.last_stable_offset)
        .with_log_start_offset(r.log_start_offset)
        .with_records(Some(r.records));
    data.diverging_epoch = match r.diverging_epoch {
        Some((epoch, end_offset)) => EpochEndOffset::default()
            .with_epoch(epoch)
            .with_end_offset(end_offset),
        None => EpochEndOffset::default().with_epoch(-1).with_end_offset(-1),
    };
    data
}

/// As follower, fetches the partitions `leader` leads (per this broker's
/// metadata) from it.
async fn fetch_from(
    dp: Arc<DataPlane>,
    me: u64,
    leader: u64,
    rm: Arc<ReplicaManager>,
    mut down: watch::Receiver<bool>,
) {
    loop {
        if *down.borrow() {
            return;
        }
        let mut followed: Vec<Arc<Partition>> = rm
            .all_partitions()
            .into_iter()
            .filter(|p| p.state().leader == leader as i32)
            .collect();
        if followed.is_empty() {
            pause(Duration::from_millis(50), &mut down).await;
            continue;
        }
        followed.sort_by(|a, b| a.topic_partition().cmp(b.topic_partition()));
        let Some((leader_rm, image)) = dp.reach(me, leader).await else {
            pause(Duration::from_millis(100), &mut down).await;
            continue;
        };
        let requests: Vec<FetchPartition> = followed
            .iter()
            .map(|p| FetchPartition {
                topic_partition: p.topic_partition().clone(),
                fetch_offset: p.log().offsets().log_end_offset,
                partition_max_bytes: FETCH_PARTITION_MAX_BYTES,
                current_leader_epoch: p.state().leader_epoch,
                last_fetched_epoch: p.log().latest_epoch().unwrap_or(-1),
            })
            .collect();
        let params = FetchParams {
            max_wait_ms: FETCH_MAX_WAIT_MS,
            min_bytes: 1,
            max_bytes: 4 * FETCH_PARTITION_MAX_BYTES,
            isolation: IsolationLevel::ReadUncommitted,
            replica_id: Some(me as i32),
        };
        let results = leader_rm.fetch(&image, params, requests).await;
        drop(leader_rm);
        if !dp.cluster.net.answer_arrives(me, leader).await {
            continue;
        }
        let mut applied = true;
        for (p, r) in followed.iter().zip(results) {
            applied &= apply_fetched(p, as_wire(r));
        }
        if !applied {
            pause(Duration::from_millis(50), &mut down).await;
        }
    }
}

/// Every record in `records` (whole batches): (offset, value).
fn decode(records: &[u8]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for item in BatchIter::new(records) {
        let (position, header) = item.expect("well-formed batches");
        let batch = &records[position..position + header.size_bytes()];
        for record in RecordIter::new(records_payload(batch)) {
            let record = record.expect("well-formed records");
            let value = String::from_utf8(record.value.unwrap_or_default().to_vec()).unwrap();
            out.push((header.base_offset + i64::from(record.offset_delta), value));
        }
    }
    out
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Appends numbered records to `partition` with acks=all, one at a time.
async fn produce(dp: Arc<DataPlane>, partition: i32, mut stop: watch::Receiver<bool>) {
    let tp = TopicPartition::new(TOPIC, partition);
    let mut n = 0u64;
    while !*stop.borrow() {
        let wait = 10 + dp.cluster.net.rng.lock().below(40);
        pause(Duration::from_millis(wait), &mut stop).await;
        n += 1;
        let value = format!("{partition}-{n}");
        let Some((leader, _)) = dp.leader_of(partition) else {
            continue;
        };
        let Some((rm, image)) = dp.reach(CLIENT, leader).await else {
            continue;
        };
        let batch =
            Bytes::from(BatchBuilder::of_values(wall_clock_ms(), &[value.as_bytes()]).build());
        let results = rm
            .append_records(&image, vec![(tp.clone(), batch)], -1, PRODUCE_TIMEOUT, 9)
            .await;
        drop(rm);
        if !dp.cluster.net.answer_arrives(CLIENT, leader).await {
            continue;
        }
        if let Some(Ok(info)) = results.into_iter().next() {
            tracing::info!(%tp, leader, offset = info.base_offset, value, "acknowledged");
            dp.seen
                .lock()
                .acknowledged
                .push((partition, info.base_offset, value));
        }
    }
}

/// Reads `partition` from its leader below the high watermark, as a
/// KIP-320 consumer: it never goes back to metadata older than the leader
/// epoch it has seen, and names that epoch in its fetches (so a deposed
/// leader refuses them).
async fn consume(dp: Arc<DataPlane>, partition: i32, mut stop: watch::Receiver<bool>) {
    let tp = TopicPartition::new(TOPIC, partition);
    let mut position = 0;
    let mut known_epoch = -1;
    while !*stop.borrow() {
        pause(Duration::from_millis(30), &mut stop).await;
        let Some((leader, epoch)) = dp.leader_of(partition) else {
            continue;
        };
        if epoch < known_epoch {
            continue;
        }
        known_epoch = epoch;
        let Some((rm, image)) = dp.reach(CLIENT, leader).await else {
            continue;
        };
        let params = FetchParams {
            max_wait_ms: 200,
            min_bytes: 1,
            max_bytes: FETCH_PARTITION_MAX_BYTES,
            isolation: IsolationLevel::ReadUncommitted,
            replica_id: None,
        };
        let fetch = FetchPartition {
            topic_partition: tp.clone(),
            fetch_offset: position,
            partition_max_bytes: FETCH_PARTITION_MAX_BYTES,
            current_leader_epoch: epoch,
            last_fetched_epoch: -1,
        };
        let result = rm.fetch(&image, params, vec![fetch]).await.pop();
        drop(rm);
        if !dp.cluster.net.answer_arrives(CLIENT, leader).await {
            continue;
        }
        let Some(r) = result else { continue };
        match r.error.map(|e| e.error_code()) {
            None => {}
            Some(ErrorCode::OffsetOutOfRange) => {
                dp.violation(format!(
                    "a consumer of {tp} at {position} was told OFFSET_OUT_OF_RANGE by broker {leader}"
                ));
                continue;
            }
            Some(_) => continue,
        }
        for (offset, value) in decode(&r.records) {
            if offset < position {
                continue;
            }
            if offset >= r.high_watermark {
                dp.violation(format!(
                    "broker {leader} served {tp} offset {offset} above its high watermark {}",
                    r.high_watermark
                ));
            }
            dp.seen.lock().consumed.push((partition, offset, value));
            position = offset + 1;
        }
    }
}

/// Creates the topic once every broker is up (replication factor 3 needs
/// three unfenced brokers).
async fn create_topic(cluster: &Cluster) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let op = ControllerOp::CreateTopics {
            topics: vec![CreateTopic {
                name: TOPIC.into(),
                num_partitions: PARTITIONS,
                replication_factor: 3,
                configs: vec![("min.insync.replicas".into(), Some("2".into()))],
                ..CreateTopic::default()
            }],
            validate_only: false,
        };
        if let Some(ControllerOpResult::CreateTopics(results, _)) = cluster.route(CLIENT, op).await
        {
            match results.first() {
                Some(Ok(_)) => return,
                Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => return,
                _ => {}
            }
        }
    }
}

/// Every replica's partition, by node.
fn replicas(dp: &DataPlane, partition: i32) -> Vec<(u64, Arc<Partition>)> {
    let tp = TopicPartition::new(TOPIC, partition);
    dp.brokers
        .lock()
        .iter()
        .filter_map(|(id, rm)| rm.partition(&tp).map(|p| (*id, p)))
        .collect()
}

/// Every partition has all three replicas in sync, led, at one log end
/// offset, with every high watermark there.
fn in_sync(dp: &DataPlane) -> bool {
    (0..PARTITIONS).all(|partition| {
        let replicas = replicas(dp, partition);
        let Some((_, first)) = replicas.first() else {
            return false;
        };
        let end = first.log().offsets().log_end_offset;
        replicas.len() == NODES.len()
            && replicas.iter().all(|(_, p)| {
                let s = p.state();
                let o = p.log().offsets();
                s.leader >= 0
                    && s.isr.len() == NODES.len()
                    && o.log_end_offset == end
                    && o.high_watermark == end
            })
    })
}

/// A replica's whole log: (offset, value).
fn read_all(p: &Partition) -> Vec<(i64, String)> {
    let end = p.log().offsets().log_end_offset;
    let mut offset = p.log().offsets().log_start_offset;
    let mut out = Vec::new();
    while offset < end {
        let read = p.read(offset, 1 << 20, ReadBound::LogEnd, true).unwrap();
        let records = decode(&read.records);
        let Some((last, _)) = records.last() else {
            break;
        };
        offset = last + 1;
        out.extend(records);
    }
    out
}

async fn run(seed: u64) {
    let cluster = Arc::new(Cluster::new(seed));
    cluster.start_all().await;
    let dp = Arc::new(DataPlane {
        cluster: Arc::clone(&cluster),
        brokers: Mutex::new(BTreeMap::new()),
        seen: Mutex::new(Seen::default()),
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = sim::spawn_brokers(&cluster, &stopped);
    for id in NODES {
        tasks.push(tokio::spawn(
            run_data_broker(Arc::clone(&dp), id, stopped.clone())
                .instrument(tracing::info_span!("broker", id)),
        ));
    }
    create_topic(&cluster).await;
    tracing::info!("topic created");
    let (stop_clients, clients_stopped) = watch::channel(false);
    let mut clients = Vec::new();
    for partition in 0..PARTITIONS {
        clients.push(tokio::spawn(produce(
            Arc::clone(&dp),
            partition,
            clients_stopped.clone(),
        )));
        clients.push(tokio::spawn(consume(
            Arc::clone(&dp),
            partition,
            clients_stopped.clone(),
        )));
    }

    sim::run_faults(&cluster, FAULT_PHASE).await;
    tracing::info!("faults over");

    // Repair everything; no more writes, so what was acknowledged is final.
    let _ = stop_clients.send(true);
    for c in clients {
        let _ = c.await;
    }
    cluster.heal().await;
    tracing::info!("healed");
    let converged = cluster.converge(CONVERGE_WITHIN, || in_sync(&dp)).await;
    let states: Vec<String> = (0..PARTITIONS)
        .flat_map(|partition| replicas(&dp, partition))
        .map(|(id, p)| format!("broker {id}: {:?} {:?}", p.state(), p.log().offsets()))
        .collect();
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    assert!(converged, "seed {seed}: no convergence: {states:#?}");
    cluster.check_quorum(seed).await;

    let seen = std::mem::take(&mut *dp.seen.lock());
    assert!(
        seen.violations.is_empty(),
        "seed {seed}: {} violations, first: {:#?}",
        seen.violations.len(),
        seen.violations.iter().take(5).collect::<Vec<_>>()
    );
    let mut leader_epochs = 0;
    for partition in 0..PARTITIONS {
        let replicas = replicas(&dp, partition);
        let logs: Vec<(u64, Vec<(i64, String)>)> =
            replicas.iter().map(|(id, p)| (*id, read_all(p))).collect();
        for (id, log) in &logs[1..] {
            assert!(
                *log == logs[0].1,
                "seed {seed}: partition {partition}: broker {id}'s log differs from broker {}'s",
                logs[0].0
            );
        }
        let log: BTreeMap<i64, &String> = logs[0].1.iter().map(|(o, v)| (*o, v)).collect();
        for (what, list) in [
            ("acknowledged", &seen.acknowledged),
            ("consumed", &seen.consumed),
        ] {
            for (_, offset, value) in list.iter().filter(|(p, _, _)| *p == partition) {
                let found = log.get(offset).copied();
                assert!(
                    found == Some(value),
                    "seed {seed}: {value} {what} at {TOPIC}-{partition} offset {offset}, but the log has {found:?} there"
                );
            }
        }
        leader_epochs += replicas[0].1.state().leader_epoch;
        eprintln!(
            "seed {seed}: {TOPIC}-{partition}: {} records, leader epoch {}",
            log.len(),
            replicas[0].1.state().leader_epoch
        );
    }
    assert!(
        seen.acknowledged.len() >= 100,
        "seed {seed}: too little progress to mean anything: {} acknowledged writes",
        seen.acknowledged.len()
    );
    assert!(
        leader_epochs > 0,
        "seed {seed}: the faults never moved partition leadership"
    );
    eprintln!(
        "seed {seed}: {} writes acknowledged, {} records consumed",
        seen.acknowledged.len(),
        seen.consumed.len()
    );
    dp.brokers.lock().clear();
    cluster.shutdown().await;
}

#[test]
fn no_acknowledged_write_is_lost_under_crashes_partitions_and_loss() {
    sim::run_seeds(sim::seeds(1..=8), RUN_WITHIN, run);
}
