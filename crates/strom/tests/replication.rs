//! Partition replication between real broker processes: a topic with
//! replication factor 3 on three brokers (and a dedicated controller). Followers fetch from the
//! leader and hold byte-identical logs; acks=all waits for the ISR;
//! followers that stop leave the ISR after `replica.lag.time.max.ms`, so
//! writes go on while `min.insync.replicas` holds and get
//! NOT_ENOUGH_REPLICAS when it does not (acks=1 still works); stopped
//! followers catch up and rejoin.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use strom_test_utils::{wait_until, BrokerProcess, Cluster};

const DEADLINE: Duration = Duration::from_secs(30);

/// (leader, ISR) of partition 0 as `node` sees it.
fn leader_and_isr(node: &BrokerProcess, topic: &str) -> (i32, Vec<i32>) {
    let mut c = connect(node);
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let r: MetadataResponse = c.send(ApiKey::Metadata, 12, &req).unwrap();
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

fn create_replicated(node: &BrokerProcess, topic: &str) {
    let mut c = connect(node);
    let created = c
        .send::<CreateTopicsRequest>(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(1)
                    .with_replication_factor(3)
                    .with_configs(vec![
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("min.insync.replicas"))
                            .with_value(Some(StrBytes::from_static_str("2"))),
                    ])]),
        )
        .unwrap();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
}

/// Base offsets of the batches `node` returns from offset 0.
fn batch_offsets(node: &BrokerProcess, topic: &str) -> Vec<i64> {
    let mut c = connect(node);
    let data = fetch(&mut c, topic, 0, 0, 1 << 20);
    let records = data.records.unwrap_or_default();
    strom_protocol::batch::BatchIter::new(&records)
        .filter_map(Result::ok)
        .map(|(_, h)| h.base_offset)
        .collect()
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
