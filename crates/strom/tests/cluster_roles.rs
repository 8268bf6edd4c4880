//! Dedicated roles: three controller-only nodes form the quorum and two
//! broker-only nodes follow the metadata log as observers (replicated to
//! them over links they open to the voters; their own listeners answer no
//! quorum RPC). Clients see only the brokers;
//! topics live only on them; the quorum reports the observers; losing the
//! active controller changes nothing for clients; a broker-only node
//! restarted catches up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use strom_test_utils::{wait_until, BrokerProcess, Cluster};

const DEADLINE: Duration = Duration::from_secs(30);

fn metadata(node: &BrokerProcess, topic: &str) -> (Vec<i32>, BTreeMap<i32, i32>) {
    let mut c = connect(node);
    let r = topic_metadata(&mut c, topic);
    let mut brokers: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort();
    (brokers, partition_leaders(&r))
}

fn quorum(node: &BrokerProcess) -> describe_quorum_response::PartitionData {
    let mut c = connect(node);
    let ask = describe_quorum_request("__cluster_metadata", 0);
    let r: DescribeQuorumResponse = c.send(ApiKey::DescribeQuorum, 2, &ask).unwrap();
    r.topics[0].partitions[0].clone()
}

#[test]
fn controller_only_and_broker_only_nodes() {
    let roles = ["controller", "controller", "controller", "broker", "broker"];
    let mut cluster = Cluster::start_with_roles(BIN, &roles, &[]).expect("start the cluster");
    // Clients see the two brokers only.
    assert!(wait_until(DEADLINE, || metadata(cluster.node(4), "x").0
        == vec![4, 5]
        && metadata(cluster.node(5), "x").0 == vec![4, 5]));
    let mut c = connect(cluster.node(4));
    assert_eq!(
        create_topic(&mut c, "on-brokers", 4, &[]).topics[0].error_code,
        0
    );
    // The other broker learns of it as soon as it applies the entry.
    assert!(wait_until(DEADLINE, || metadata(
        cluster.node(5),
        "on-brokers"
    )
    .1
    .len()
        == 4));
    let (_, leaders) = metadata(cluster.node(5), "on-brokers");
    assert!(leaders.values().all(|l| *l == 4 || *l == 5), "{leaders:?}");
    for (p, leader) in &leaders {
        let mut c = connect(cluster.node(*leader));
        let (code, offset) = produce(&mut c, "on-brokers", *p, &[b"v"]);
        assert_eq!((code, offset), (0, 0), "partition {p}");
    }
    // The quorum: three voters, the brokers as observers, caught up.
    let q = quorum(cluster.node(4));
    assert_eq!(q.error_code, 0);
    let mut voters: Vec<i32> = q.current_voters.iter().map(|v| v.replica_id.0).collect();
    voters.sort();
    assert_eq!(voters, vec![1, 2, 3]);
    assert!(wait_until(DEADLINE, || {
        let q = quorum(cluster.node(5));
        let mut observers: Vec<i32> = q.observers.iter().map(|o| o.replica_id.0).collect();
        observers.sort();
        observers == vec![4, 5]
            && q.observers
                .iter()
                .all(|o| o.log_end_offset >= q.high_watermark)
    }));
    // The active controller dies: metadata changes continue.
    let active = q.leader_id.0;
    assert!((1..=3).contains(&active));
    cluster.node(active).kill();
    // As a client would, retry while the election runs (a retry after a
    // timed-out attempt that did commit finds the topic there).
    assert!(wait_until(DEADLINE, || {
        let mut c = connect(cluster.node(5));
        let code = create_topic(&mut c, "after-failover", 2, &[]).topics[0].error_code;
        code == 0 || code == ErrorCode::TopicAlreadyExists.code()
    }));
    assert!(wait_until(DEADLINE, || metadata(
        cluster.node(4),
        "after-failover"
    )
    .1
    .len()
        == 2));
    // A broker-only node restarted catches up and serves again.
    cluster.node(4).terminate().unwrap();
    let mut c = connect(cluster.node(5));
    assert_eq!(
        create_topic(&mut c, "while-4-was-down", 1, &[]).topics[0].error_code,
        0
    );
    cluster.node(4).spawn().unwrap();
    assert!(wait_until(DEADLINE, || metadata(
        cluster.node(4),
        "while-4-was-down"
    )
    .1
    .len()
        == 1
        && metadata(cluster.node(4), "x").0 == vec![4, 5]));
    let (_, leaders) = metadata(cluster.node(4), "on-brokers");
    for (p, leader) in leaders.iter().filter(|(_, l)| **l == 4) {
        let mut c = connect(cluster.node(*leader));
        let (code, offset) = produce(&mut c, "on-brokers", *p, &[b"w"]);
        assert_eq!((code, offset), (0, 1), "partition {p}");
    }
}

/// A controller RPC frame (API key 32100, version 0) with `body`.
fn quorum_rpc_frame(correlation_id: i32, body: &str) -> Vec<u8> {
    let mut frame = ((body.len() + 8) as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&32100i16.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(body.as_bytes());
    frame
}

#[test]
fn a_broker_only_node_answers_no_quorum_rpc_on_its_listener() {
    let roles = ["controller", "broker"];
    let mut cluster = Cluster::start_with_roles(BIN, &roles, &[]).expect("start the cluster");
    assert!(wait_until(DEADLINE, || metadata(cluster.node(2), "x").0 == vec![2]));
    let cluster_id = cluster.cluster_id.clone();
    // Frames a voter would answer: a link offer, and an AppendEntries from
    // a made-up leader in a far term, both with the right cluster id
    // (which Metadata gives anyone).
    let bodies = [
        format!(r#"{{"cluster_id":"{cluster_id}","from":1,"request":"ObserverLink"}}"#),
        format!(
            r#"{{"cluster_id":"{cluster_id}","from":1,"request":{{"AppendEntries":{{"vote":{{"leader_id":{{"term":1000,"node_id":1}},"committed":true}},"prev_log_id":null,"entries":[],"leader_commit":null}}}}}}"#
        ),
        format!(
            r#"{{"cluster_id":"{cluster_id}","from":1,"request":{{"Controller":"DescribeQuorum"}}}}"#
        ),
    ];
    for (i, body) in bodies.iter().enumerate() {
        let mut c = connect(cluster.node(2));
        c.send_raw(&quorum_rpc_frame(7 + i as i32, body)).unwrap();
        // Kafka's treatment of an unknown API key: the connection closes
        // without an answer.
        assert_eq!(
            c.recv_frame().unwrap(),
            None,
            "frame {i} got an answer on a broker listener"
        );
    }
    // The broker still follows the quorum: metadata changes reach it and
    // it serves clients.
    let mut c = connect(cluster.node(2));
    assert_eq!(
        create_topic(&mut c, "after-the-frames", 2, &[]).topics[0].error_code,
        0
    );
    assert!(wait_until(DEADLINE, || metadata(
        cluster.node(2),
        "after-the-frames"
    )
    .1
    .len()
        == 2));
    let mut c = connect(cluster.node(2));
    assert_eq!(
        produce(&mut c, "after-the-frames", 0, &[b"still here"]),
        (0, 0)
    );
    let q = quorum(cluster.node(2));
    assert_eq!(q.leader_id.0, 1);
    assert!(
        q.leader_epoch < 1000,
        "a forged term reached the quorum: {q:?}"
    );
}
