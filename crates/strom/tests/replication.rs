//! Partition replication between real broker processes: a topic with
//! replication factor 3 on three brokers (and a dedicated controller). Followers fetch from the
//! leader and hold byte-identical logs; acks=all waits for the ISR;
//! followers that stop leave the ISR after `replica.lag.time.max.ms`, so
//! writes go on while `min.insync.replicas` holds and get
//! NOT_ENOUGH_REPLICAS when it does not (acks=1 still works); stopped
//! followers catch up and rejoin; a leader deposed while holding records
//! nobody else got truncates them and converges on the new leader's log;
//! partitions move between brokers (AlterPartitionReassignments) without
//! losing a record; a leader whose log fails (writes fail with EIO under
//! the disk-fault shim) hands its leadership to the ISR within seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use strom_test_utils::{wait_until, BrokerProcess, Cluster, Netfilter};

const DEADLINE: Duration = Duration::from_secs(30);

/// (leader, ISR) of partition 0 as `node` sees it.
fn leader_and_isr(node: &BrokerProcess, topic: &str) -> (i32, Vec<i32>) {
    let mut c = connect(node);
    let r = topic_metadata(&mut c, topic);
    let p = &r.topics[0].partitions[0];
    let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
    isr.sort();
    (p.leader_id.0, isr)
}

/// The partition's log file on `node`.
fn log_bytes(node: &BrokerProcess, topic: &str) -> Vec<u8> {
    std::fs::read(
        node.data_dir
            .join(format!("{topic}-0"))
            .join("00000000000000000000.log"),
    )
    .unwrap_or_default()
}

/// CRC32C of the partition's whole log (every segment, in order) on
/// `node`, and its size.
fn log_checksum(node: &BrokerProcess, topic: &str) -> (u32, usize) {
    let dir = node.data_dir.join(format!("{topic}-0"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    segments.retain(|p| p.extension().is_some_and(|e| e == "log"));
    segments.sort();
    let bytes: Vec<u8> = segments
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    (crc32c::crc32c(&bytes), bytes.len())
}

/// Creates `topic` with one partition, replication factor 3 and
/// `min.insync.replicas=2`.
fn create_replicated(node: &BrokerProcess, topic: &str) {
    create_with(node, topic, 3, &[("min.insync.replicas", "2")]);
}

fn create_with(
    node: &BrokerProcess,
    topic: &str,
    replication_factor: i16,
    configs: &[(&str, &str)],
) {
    let mut c = connect(node);
    let configs = configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(k.to_string()))
                .with_value(Some(StrBytes::from_string(v.to_string())))
        })
        .collect();
    let created = c
        .send::<CreateTopicsRequest>(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(1)
                    .with_replication_factor(replication_factor)
                    .with_configs(configs)]),
        )
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
}

/// Base offsets of the batches `node` returns from offset 0.
fn batch_offsets(node: &BrokerProcess, topic: &str) -> Vec<i64> {
    let mut c = connect(node);
    let data = fetch(&mut c, topic, 0, 0, 1 << 20);
    batch_offsets_of(&data.records.unwrap_or_default())
}

#[test]
fn killing_the_leader_moves_leadership_to_an_in_sync_replica_with_every_acknowledged_record() {
    let mut cluster = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &["replica.lag.time.max.ms=1500"],
    )
    .expect("start the cluster");
    create_replicated(cluster.node(2), "failover");
    let (old, _) = leader_and_isr(cluster.node(2), "failover");
    let mut lc = connect(cluster.node(old));
    for i in 0..5 {
        assert_eq!(produce(&mut lc, "failover", 0, &[b"v"]), (0, i));
    }
    cluster.node(old).kill();
    let others: Vec<i32> = [2, 3, 4].into_iter().filter(|b| *b != old).collect();
    // Its session runs out; the controller elects a replica from the ISR.
    let mut new = -1;
    assert!(wait_until(DEADLINE, || {
        new = leader_and_isr(cluster.node(others[0]), "failover").0;
        new != old && new >= 0
    }));
    // A client still writing to a broker that does not lead is told so,
    // refreshes its metadata (above) and writes to the new leader.
    let not_leader = if others[0] == new {
        others[1]
    } else {
        others[0]
    };
    let mut stale = connect(cluster.node(not_leader));
    assert_eq!(
        produce(&mut stale, "failover", 0, &[b"x"]).0,
        ErrorCode::NotLeaderOrFollower.code()
    );
    let mut nc = connect(cluster.node(new));
    assert_eq!(produce(&mut nc, "failover", 0, &[b"w"]), (0, 5));
    // Every acknowledged record is there, in order, nothing more.
    assert_eq!(
        batch_offsets(cluster.node(new), "failover"),
        vec![0, 1, 2, 3, 4, 5]
    );
    // The old leader comes back as a follower and converges.
    cluster.node(old).spawn().unwrap();
    assert!(wait_until(DEADLINE, || {
        let want = log_bytes(cluster.node(new), "failover");
        [2, 3, 4]
            .iter()
            .all(|b| log_bytes(cluster.node(*b), "failover") == want)
    }));
}

#[test]
fn followers_replicate_and_the_isr_follows_them() {
    // A dedicated controller, so the quorum survives two brokers stopping.
    let mut cluster = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &["replica.lag.time.max.ms=1500"],
    )
    .expect("start the cluster");
    let brokers = [2, 3, 4];
    create_replicated(cluster.node(2), "replicated");
    let (leader, isr) = leader_and_isr(cluster.node(2), "replicated");
    assert_eq!(isr, brokers.to_vec());
    let mut lc = connect(cluster.node(leader));
    for i in 0..10 {
        let (code, offset) = produce(&mut lc, "replicated", 0, &[format!("v{i}").as_bytes()]);
        assert_eq!((code, offset), (0, i), "acks=all write {i}");
    }
    // Every replica holds the same bytes.
    let followers: Vec<i32> = brokers.iter().copied().filter(|n| *n != leader).collect();
    assert!(
        wait_until(DEADLINE, || {
            let want = log_bytes(cluster.node(leader), "replicated");
            !want.is_empty()
                && followers
                    .iter()
                    .all(|f| log_bytes(cluster.node(*f), "replicated") == want)
        }),
        "the followers' logs differ from the leader's"
    );
    // One follower stops: it leaves the ISR and acks=all goes on.
    cluster.node(followers[0]).kill();
    assert!(wait_until(DEADLINE, || leader_and_isr(
        cluster.node(leader),
        "replicated"
    )
    .1
    .len()
        == 2));
    assert_eq!(produce(&mut lc, "replicated", 0, &[b"w"]).0, 0);
    // Clients see it: out of the ISR, and offline once fenced.
    let described = |node: &BrokerProcess| {
        let mut c = connect(node);
        let req = DescribeTopicPartitionsRequest::default()
            .with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(name("replicated")),
            ])
            .with_response_partition_limit(10);
        let r: DescribeTopicPartitionsResponse =
            c.send(ApiKey::DescribeTopicPartitions, 0, &req).unwrap();
        let p = &r.topics[0].partitions[0];
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
        (p.leader_id.0, ids(&p.isr_nodes), ids(&p.offline_replicas))
    };
    let mut remaining_isr: Vec<i32> = vec![leader, followers[1]];
    remaining_isr.sort();
    assert!(
        wait_until(DEADLINE, || described(cluster.node(leader))
            == (leader, remaining_isr.clone(), vec![followers[0]])),
        "{:?}",
        described(cluster.node(leader))
    );
    // The second stops too: below min.insync.replicas.
    cluster.node(followers[1]).kill();
    assert!(wait_until(DEADLINE, || leader_and_isr(
        cluster.node(leader),
        "replicated"
    )
    .1 == vec![leader]));
    assert_eq!(
        produce(&mut lc, "replicated", 0, &[b"x"]).0,
        ErrorCode::NotEnoughReplicas.code()
    );
    let r = produce_raw(&mut lc, 9, "replicated", 0, values_batch(&[b"y"]), 1);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    // Both come back, catch up and rejoin; all logs agree again.
    for f in &followers {
        cluster.node(*f).spawn().unwrap();
    }
    assert!(
        wait_until(DEADLINE, || leader_and_isr(
            cluster.node(leader),
            "replicated"
        )
        .1 == brokers.to_vec()),
        "{:?}",
        leader_and_isr(cluster.node(leader), "replicated")
    );
    assert_eq!(produce(&mut lc, "replicated", 0, &[b"z"]).0, 0);
    assert!(wait_until(DEADLINE, || {
        let want = log_bytes(cluster.node(leader), "replicated");
        followers
            .iter()
            .all(|f| log_bytes(cluster.node(*f), "replicated") == want)
    }));
}

#[test]
fn a_deposed_leader_truncates_what_only_it_had_and_converges() {
    // A dedicated controller and three brokers, each on its own loopback
    // address (127.0.0.11-14; other fault tests use other addresses) so
    // the leader can be cut off from its followers alone.
    let hosts = ["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"];
    let nodes: Vec<(&str, &str)> = hosts
        .iter()
        .zip(["controller", "broker", "broker", "broker"])
        .map(|(h, r)| (*h, r))
        .collect();
    // ISR changes slower than the test, so the cut-off leader keeps its
    // followers in the ISR and one of them is elected.
    let mut cluster = Cluster::start_nodes(BIN, &nodes, &["replica.lag.time.max.ms=60000"])
        .expect("start the cluster");
    let topic = "divergent";
    create_replicated(cluster.node(2), topic);
    let (old, isr) = leader_and_isr(cluster.node(2), topic);
    assert_eq!(isr, vec![2, 3, 4], "replication factor 3 with a full ISR");
    let mut lc = connect(cluster.node(old));
    for i in 0..5 {
        assert_eq!(produce(&mut lc, topic, 0, &[b"kept"]), (0, i));
    }
    let followers: Vec<i32> = [2, 3, 4].into_iter().filter(|b| *b != old).collect();
    assert!(
        wait_until(DEADLINE, || followers.iter().all(|f| log_checksum(
            cluster.node(*f),
            topic
        ) == log_checksum(
            cluster.node(old),
            topic
        ))),
        "followers did not replicate the first records"
    );

    // Cut off from its followers (not from the controller), the leader
    // takes writes with acks=1 that nobody else gets, then dies.
    let net = Netfilter::new().unwrap();
    for f in &followers {
        net.cut(hosts[(old - 1) as usize], hosts[(*f - 1) as usize])
            .unwrap();
    }
    for i in 5..8 {
        let r = produce_raw(&mut lc, 9, topic, 0, values_batch(&[b"lost"]), 1);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, i), "acks=1 write {i}");
    }
    let divergent = log_checksum(cluster.node(old), topic);
    cluster.node(old).kill();

    // A follower is elected and takes other records at the same offsets.
    let mut new = -1;
    assert!(wait_until(DEADLINE, || {
        new = leader_and_isr(cluster.node(followers[0]), topic).0;
        followers.contains(&new)
    }));
    let mut nc = connect(cluster.node(new));
    for i in 5..7 {
        let r = produce_raw(&mut nc, 9, topic, 0, values_batch(&[b"new"]), 1);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, i),
            "acks=1 write {i} to the new leader"
        );
    }

    // The old leader comes back as a follower: it must drop offsets 5-7
    // of its old epoch and take the new leader's 5-6.
    net.heal().unwrap();
    cluster.node(old).spawn().unwrap();
    assert!(
        wait_until(DEADLINE, || leader_and_isr(cluster.node(new), topic).1
            == vec![2, 3, 4]),
        "the old leader did not rejoin the ISR: {:?}",
        leader_and_isr(cluster.node(new), topic)
    );
    assert_eq!(produce(&mut nc, topic, 0, &[b"after"]), (0, 7));
    let mut sums = Vec::new();
    assert!(
        wait_until(DEADLINE, || {
            sums = [2, 3, 4]
                .iter()
                .map(|b| log_checksum(cluster.node(*b), topic))
                .collect();
            sums.iter().all(|s| *s == sums[0])
        }),
        "replicas' logs differ: {sums:?}"
    );
    assert_ne!(sums[0], divergent);
    // What the new leader serves: 5 kept, 2 new, 1 after; nothing lost.
    let data = fetch(&mut nc, topic, 0, 0, 1 << 20);
    let values: Vec<(i64, Vec<u8>)> = decode_records(&data.records.unwrap_or_default());
    let mut want: Vec<(i64, Vec<u8>)> = (0..5).map(|o| (o, b"kept".to_vec())).collect();
    want.extend([
        (5, b"new".to_vec()),
        (6, b"new".to_vec()),
        (7, b"after".to_vec()),
    ]);
    assert_eq!(values, want);
}

fn reassign(node: &BrokerProcess, topic: &str, target: Option<Vec<i32>>) -> (i16, i16) {
    let mut c = connect(node);
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_allow_replication_factor_change(false)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(0)
                        .with_replicas(target.map(|t| t.into_iter().map(BrokerId).collect())),
                ]),
        ]);
    let r: AlterPartitionReassignmentsResponse = c
        .send(ApiKey::AlterPartitionReassignments, 1, &req)
        .unwrap();
    (r.error_code, r.responses[0].partitions[0].error_code)
}

/// (replicas, adding, removing) of every partition still moving.
fn moving(node: &BrokerProcess) -> Vec<(Vec<i32>, Vec<i32>, Vec<i32>)> {
    let mut c = connect(node);
    let r: ListPartitionReassignmentsResponse = c
        .send(
            ApiKey::ListPartitionReassignments,
            0,
            &ListPartitionReassignmentsRequest::default().with_topics(None),
        )
        .unwrap();
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            )
        })
        .collect()
}

fn replicas_of(node: &BrokerProcess, topic: &str) -> Vec<i32> {
    let mut c = connect(node);
    topic_metadata(&mut c, topic).topics[0].partitions[0]
        .replica_nodes
        .iter()
        .map(|b| b.0)
        .collect()
}

#[test]
fn a_reassignment_moves_a_partition_and_can_be_cancelled() {
    let mut cluster = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &[
            "replica.lag.time.max.ms=1500",
            "default.replication.factor=2",
        ],
    )
    .expect("start the cluster");
    let topic = "moving";
    create_with(cluster.node(2), topic, 2, &[]);
    let original = replicas_of(cluster.node(2), topic);
    let spare = [2, 3, 4]
        .into_iter()
        .find(|b| !original.contains(b))
        .unwrap();
    let (leader, _) = leader_and_isr(cluster.node(2), topic);
    let mut lc = connect(cluster.node(leader));
    for i in 0..20 {
        assert_eq!(
            produce(&mut lc, topic, 0, &[format!("r{i}").as_bytes()]),
            (0, i)
        );
    }
    // Bad targets are refused per partition.
    assert_eq!(
        reassign(cluster.node(2), topic, Some(vec![original[0], 99])),
        (0, ErrorCode::InvalidReplicaAssignment.code())
    );
    assert_eq!(
        reassign(cluster.node(2), topic, Some(vec![spare])),
        (0, ErrorCode::InvalidReplicationFactor.code())
    );
    assert_eq!(
        reassign(cluster.node(2), topic, None),
        (0, ErrorCode::NoReassignmentInProgress.code())
    );

    // Move the first replica (the preferred leader) to the spare broker,
    // which is down: the move waits for it, and can be cancelled.
    cluster.node(spare).kill();
    let target = vec![spare, original[1]];
    assert_eq!(
        reassign(cluster.node(2), topic, Some(target.clone())),
        (0, 0)
    );
    let under_way = (
        vec![spare, original[1], original[0]],
        vec![spare],
        vec![original[0]],
    );
    assert!(wait_until(DEADLINE, || moving(cluster.node(original[1]))
        == vec![under_way.clone()]));
    assert_eq!(reassign(cluster.node(2), topic, None), (0, 0));
    assert!(wait_until(DEADLINE, || moving(cluster.node(original[1])).is_empty()));
    let mut sorted = replicas_of(cluster.node(original[1]), topic);
    sorted.sort();
    let mut want = original.clone();
    want.sort();
    assert_eq!(sorted, want, "back on the original replicas");

    // With the spare broker up the move completes: it catches up, joins
    // the ISR, and the removed broker drops the partition.
    cluster.node(spare).spawn().unwrap();
    assert!(wait_until(DEADLINE, || {
        reassign(cluster.node(original[1]), topic, Some(target.clone())) == (0, 0)
    }));
    assert!(
        wait_until(DEADLINE, || moving(cluster.node(original[1])).is_empty()
            && replicas_of(cluster.node(original[1]), topic) == target),
        "{:?}",
        moving(cluster.node(original[1]))
    );
    let (leader, isr) = leader_and_isr(cluster.node(original[1]), topic);
    let mut want_isr = target.clone();
    want_isr.sort();
    assert_eq!(isr, want_isr);
    assert!(target.contains(&leader));
    assert!(
        wait_until(DEADLINE, || !cluster
            .node(original[0])
            .data_dir
            .join(format!("{topic}-0"))
            .exists()),
        "broker {} kept the partition it no longer hosts",
        original[0]
    );
    // Nothing lost; writes go on at the new leader; replicas agree.
    let mut nc = connect(cluster.node(leader));
    assert_eq!(produce(&mut nc, topic, 0, &[b"after"]), (0, 20));
    let values: Vec<Vec<u8>> = decode_records(
        &fetch(&mut nc, topic, 0, 0, 1 << 20)
            .records
            .unwrap_or_default(),
    )
    .into_iter()
    .map(|(_, v)| v)
    .collect();
    let mut want: Vec<Vec<u8>> = (0..20).map(|i| format!("r{i}").into_bytes()).collect();
    want.push(b"after".to_vec());
    assert_eq!(values, want);
    assert!(wait_until(DEADLINE, || log_checksum(
        cluster.node(target[0]),
        topic
    ) == log_checksum(
        cluster.node(target[1]),
        topic
    )));
}

const TOPIC_RESOURCE: i8 = 2;
const BROKER_RESOURCE: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// IncrementalAlterConfigs of one resource: its error code.
#[test]
fn a_throttled_reassignment_moves_no_faster_than_its_rate() {
    let mut cluster = Cluster::start_with_roles(
        BIN,
        &["controller", "broker", "broker", "broker"],
        &["replica.lag.time.max.ms=1500"],
    )
    .expect("start the cluster");
    let topic = "throttled";
    create_with(cluster.node(2), topic, 1, &[]);
    let (leader, _) = leader_and_isr(cluster.node(2), topic);
    let spare = [2, 3, 4].into_iter().find(|b| *b != leader).unwrap();
    // 2 MB in 40 batches.
    let value = vec![b'x'; 50_000];
    let mut lc = connect(cluster.node(leader));
    for i in 0..40 {
        assert_eq!(produce(&mut lc, topic, 0, &[&value]), (0, i));
    }
    // Bad changes get Kafka's errors and change nothing.
    let spare_id = spare.to_string();
    assert_eq!(
        alter_configs(
            cluster.node(2),
            BROKER_RESOURCE,
            &spare_id,
            &[("log.retention.ms", SET, Some("1"))]
        ),
        ErrorCode::InvalidRequest.code()
    );
    assert_eq!(
        alter_configs(
            cluster.node(2),
            TOPIC_RESOURCE,
            topic,
            &[("follower.replication.throttled.replicas", SET, Some("zero"))]
        ),
        ErrorCode::InvalidConfig.code()
    );
    // The spare broker fetches the topic's replicas at 100 kB/s.
    assert_eq!(
        alter_configs(
            cluster.node(2),
            TOPIC_RESOURCE,
            topic,
            &[("follower.replication.throttled.replicas", SET, Some("*"))]
        ),
        0
    );
    assert_eq!(
        alter_configs(
            cluster.node(2),
            BROKER_RESOURCE,
            &spare_id,
            &[("follower.replication.throttled.rate", SET, Some("100000"))]
        ),
        0
    );
    assert_eq!(reassign(cluster.node(2), topic, Some(vec![spare])), (0, 0));
    // Unthrottled, 2 MB move in well under a second on loopback; at
    // 100 kB/s the first 1 MB fetch is followed by a 10 s wait.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        moving(cluster.node(2)).len(),
        1,
        "the throttled move is still under way"
    );
    // Lifting the throttle lets it finish.
    assert_eq!(
        alter_configs(
            cluster.node(2),
            BROKER_RESOURCE,
            &spare_id,
            &[("follower.replication.throttled.rate", DELETE, None)]
        ),
        0
    );
    assert!(
        wait_until(DEADLINE, || moving(cluster.node(2)).is_empty()
            && replicas_of(cluster.node(2), topic) == vec![spare]),
        "{:?}",
        moving(cluster.node(2))
    );
    // Every record made it: the last batch is there, below the high
    // watermark.
    let mut c = connect(cluster.node(spare));
    let last = fetch(&mut c, topic, 0, 39, 1 << 20);
    assert_eq!(last.high_watermark, 40);
    assert_eq!(
        batch_offsets_of(&last.records.unwrap_or_default()),
        vec![39]
    );
}

/// Base offsets of the batches in `records`.
fn batch_offsets_of(records: &[u8]) -> Vec<i64> {
    strom_protocol::batch::BatchIter::new(records)
        .filter_map(Result::ok)
        .map(|(_, h)| h.base_offset)
        .collect()
}

/// Builds the disk-fault shim (tests/faults/libfaultfs.c) into `dir`; its
/// path. Needs gcc, as the Rust toolchain does.
fn build_fault_shim(dir: &std::path::Path) -> std::path::PathBuf {
    let source =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/faults/libfaultfs.c");
    let shim = dir.join("libfaultfs.so");
    let status = std::process::Command::new("gcc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .status()
        .expect("gcc is required to build the disk-fault shim");
    assert!(status.success(), "cannot build {}", source.display());
    shim
}

#[test]
fn a_leader_whose_log_fails_hands_its_leadership_to_the_isr_within_seconds() {
    let faults = tempfile::tempdir().unwrap();
    let shim = build_fault_shim(faults.path());
    let control = |node_id: i32| faults.path().join(format!("node-{node_id}.faults"));
    for node_id in 2..=4 {
        std::fs::write(control(node_id), "write=ok\n").unwrap();
    }
    // Every broker runs under the shim, armed only for the partition's
    // own directory: writes there fail once its control file says so.
    let nodes = [
        ("127.0.0.1", "controller"),
        ("127.0.0.1", "broker"),
        ("127.0.0.1", "broker"),
        ("127.0.0.1", "broker"),
    ];
    let mut cluster = Cluster::start_nodes_with_env(BIN, &nodes, &[], |node| {
        let id = node
            .overrides
            .iter()
            .find_map(|o| o.strip_prefix("node.id="))
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap();
        vec![
            ("LD_PRELOAD".into(), shim.display().to_string()),
            ("FI_CTL".into(), control(id).display().to_string()),
            (
                "FI_PREFIX".into(),
                node.data_dir.join("failing-0").display().to_string(),
            ),
        ]
    })
    .expect("start the cluster");
    create_replicated(cluster.node(2), "failing");
    let (old, isr) = leader_and_isr(cluster.node(2), "failing");
    assert_eq!(isr, vec![2, 3, 4]);
    let mut lc = connect(cluster.node(old));
    for i in 0..5 {
        assert_eq!(
            produce(&mut lc, "failing", 0, &[format!("v{i}").as_bytes()]),
            (0, i)
        );
    }
    // The leader's disk fails under that partition.
    std::fs::write(control(old), "write=eio\n").unwrap();
    let failed_at = std::time::Instant::now();
    assert_eq!(
        produce(&mut lc, "failing", 0, &[b"lost"]).0,
        ErrorCode::KafkaStorageError.code(),
        "a failed append is KAFKA_STORAGE_ERROR"
    );
    // Its heartbeats report the log offline; the controller moves the
    // leadership to an in-sync replica and takes it out of the ISR.
    let other = [2, 3, 4].into_iter().find(|b| *b != old).unwrap();
    let mut moved = (old, vec![]);
    assert!(
        wait_until(Duration::from_secs(5), || {
            moved = leader_and_isr(cluster.node(other), "failing");
            moved.0 != old && moved.0 > 0 && !moved.1.contains(&old)
        }),
        "leadership stayed with the failed broker {old}: {moved:?}"
    );
    eprintln!(
        "leadership left the failed broker after {:?}",
        failed_at.elapsed()
    );
    let (new, isr) = moved;
    assert_eq!(isr.len(), 2);
    // Writes go on with the other two replicas; nothing acknowledged was
    // lost.
    let mut nc = connect(cluster.node(new));
    assert_eq!(produce(&mut nc, "failing", 0, &[b"v5"]), (0, 5));
    let records = decode_records(
        &fetch(&mut nc, "failing", 0, 0, 1 << 20)
            .records
            .unwrap_or_default(),
    );
    let expected: Vec<(i64, Vec<u8>)> = (0..6).map(|i| (i, format!("v{i}").into_bytes())).collect();
    assert_eq!(records, expected);
    // The failed broker stays up, registered and serving.
    let (brokers, _) = {
        let mut c = connect(cluster.node(old));
        let r = topic_metadata(&mut c, "failing");
        let mut b: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
        b.sort();
        (b, ())
    };
    assert_eq!(brokers, vec![2, 3, 4]);
    // Once the disk is healthy and the broker restarts, its log loads and
    // it catches up into the ISR again.
    std::fs::write(control(old), "write=ok\n").unwrap();
    cluster.node(old).terminate().unwrap();
    cluster.node(old).spawn().unwrap();
    assert!(
        wait_until(DEADLINE, || leader_and_isr(cluster.node(new), "failing").1
            == vec![2, 3, 4]),
        "the restarted broker did not rejoin the ISR"
    );
}
