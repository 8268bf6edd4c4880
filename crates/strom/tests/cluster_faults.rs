//! The metadata quorum under network partitions and pauses, with real
//! processes: each node on its own loopback address (127.0.0.x, a
//! different three for each test, since cuts match addresses) and links
//! cut with iptables rules (needs root and iptables, which tests/run
//! installs), or the active controller stopped with SIGSTOP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use strom_test_utils::{pause_process, wait_until, BrokerProcess, Cluster, Netfilter};

const DEADLINE: Duration = Duration::from_secs(30);
/// Starts three nodes on `127.0.0.{first}`, `{first + 1}` and `{first + 2}`;
/// returns them with their hosts, node i + 1 on `hosts[i]`.
fn start(first: u8) -> (Cluster, [String; 3]) {
    let hosts = [0, 1, 2].map(|i| format!("127.0.0.{}", first + i));
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cluster = Cluster::start_on(BIN, &refs, &[]).expect("start a 3-node cluster");
    (cluster, hosts)
}

fn controller_id(node: &BrokerProcess) -> Option<i32> {
    let mut c = strom_test_utils::KafkaConnection::connect(&node.bootstrap()).ok()?;
    c.set_read_timeout(Duration::from_secs(5));
    let r: DescribeClusterResponse = c
        .send(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .ok()?;
    // −1: an election is under way.
    Some(r.controller_id.0).filter(|id| *id >= 0)
}

/// The cluster's metadata as `node` sees it: brokers offered to clients and
/// every topic's partition leaders.
fn view(node: &BrokerProcess) -> (Vec<i32>, BTreeMap<String, BTreeMap<i32, i32>>) {
    let mut c = match strom_test_utils::KafkaConnection::connect(&node.bootstrap()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect to {}: {e}", node.bootstrap());
            return (Vec::new(), BTreeMap::new());
        }
    };
    c.set_read_timeout(Duration::from_secs(5));
    let all_topics = MetadataRequest::default().with_topics(None);
    let r = match c.send::<MetadataRequest>(ApiKey::Metadata, 12, &all_topics) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("metadata from {}: {e}", node.bootstrap());
            return (Vec::new(), BTreeMap::new());
        }
    };
    let mut brokers: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort();
    let topics = r
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id.0))
                    .collect(),
            )
        })
        .collect();
    (brokers, topics)
}

fn create(node: &BrokerProcess, topic: &str, partitions: i32) -> i16 {
    let Ok(mut c) = strom_test_utils::KafkaConnection::connect(&node.bootstrap()) else {
        return -1;
    };
    c.set_read_timeout(Duration::from_secs(40));
    create_topic(&mut c, topic, partitions, &[]).topics[0].error_code
}

fn produce_error(node: &BrokerProcess, topic: &str, partition: i32) -> i16 {
    let mut c = strom_test_utils::KafkaConnection::connect(&node.bootstrap()).unwrap();
    produce(&mut c, topic, partition, &[b"v"]).0
}

/// The last lines each node logged, for failure messages.
fn log_tails(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            format!("--- node {} ---\n{tail}", i + 1)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// After healing, every node converges on one history: the same brokers
/// and the same topics with the same leaders.
fn assert_one_history(cluster: &Cluster, must_have: &[&str]) {
    let agreed = wait_until(Duration::from_secs(60), || {
        // Each look opens three connections: look a few times a second.
        std::thread::sleep(Duration::from_millis(100));
        let views: Vec<_> = cluster.nodes.iter().map(view).collect();
        views.iter().all(|v| *v == views[0])
            && views[0].0 == vec![1, 2, 3]
            && must_have.iter().all(|t| views[0].1.contains_key(*t))
    });
    assert!(
        agreed,
        "nodes disagree: {:?}",
        cluster.nodes.iter().map(view).collect::<Vec<_>>()
    );
}

#[test]
fn an_isolated_controller_gives_way_and_its_broker_fences_itself() {
    let (mut cluster, hosts) = start(2);
    let old = controller_id(&cluster.nodes[0]).unwrap();
    assert_eq!(create(&cluster.nodes[0], "spread", 3), 0);
    let (_, topics) = view(&cluster.nodes[0]);
    let owned: Vec<i32> = topics["spread"]
        .iter()
        .filter(|(_, l)| **l == old)
        .map(|(p, _)| *p)
        .collect();
    assert!(!owned.is_empty(), "node {old} leads none of {topics:?}");
    let others: Vec<i32> = (1..=3).filter(|n| *n != old).collect();

    let net = Netfilter::new().unwrap();
    for o in &others {
        net.cut(&hosts[(old - 1) as usize], &hosts[(*o - 1) as usize])
            .unwrap();
    }
    // The majority elects a new controller and keeps changing metadata.
    let majority = others[0];
    let mut new = None;
    assert!(
        wait_until(DEADLINE, || {
            new = controller_id(cluster.node(majority)).filter(|c| *c != old);
            new.is_some()
        }),
        "the majority elected no new controller"
    );
    assert_eq!(create(cluster.node(majority), "during", 1), 0);
    // It fences the isolated broker and its partitions lose their leader.
    assert!(
        wait_until(DEADLINE, || !view(cluster.node(majority)).0.contains(&old)),
        "node {old} was not fenced"
    );
    // The isolated broker stops acting as their leader on its own.
    assert!(
        wait_until(DEADLINE, || owned.iter().all(|p| produce_error(
            cluster.node(old),
            "spread",
            *p
        )
            == ErrorCode::NotLeaderOrFollower.code())),
        "isolated node {old} still accepts produce"
    );

    net.heal().unwrap();
    assert_one_history(&cluster, &["spread", "during"]);
    // The old controller follows whoever leads now (the new one, unless
    // leadership moved again), like every other node.
    assert!(
        wait_until(DEADLINE, || {
            let seen: BTreeSet<Option<i32>> = cluster.nodes.iter().map(controller_id).collect();
            seen.len() == 1 && !seen.contains(&None)
        }),
        "nodes disagree on the controller (new was {new:?})"
    );
    // It leads its partitions again once it hears it is unfenced.
    assert!(
        wait_until(DEADLINE, || owned.iter().all(|p| produce_error(
            cluster.node(old),
            "spread",
            *p
        ) == 0)),
        "node {old} did not lead {owned:?} again"
    );
}

#[test]
fn a_paused_controller_is_replaced_and_rejoins_as_a_follower() {
    let (mut cluster, _) = start(5);
    let old = controller_id(&cluster.nodes[0]).unwrap();
    let majority = (old % 3) + 1;
    let pid = cluster.node(old).pid().unwrap();
    pause_process(pid, true);
    let mut new = None;
    let elected = wait_until(DEADLINE, || {
        new = controller_id(cluster.node(majority)).filter(|c| *c != old);
        new.is_some()
    });
    if !elected {
        pause_process(pid, false);
        panic!("no new controller while {old} was paused");
    }
    let created = create(cluster.node(majority), "while-paused", 2);
    pause_process(pid, false);
    assert_eq!(created, 0, "{}", log_tails(&cluster));
    assert_one_history(&cluster, &["while-paused"]);
    let leaders: BTreeSet<Option<i32>> = cluster.nodes.iter().map(controller_id).collect();
    assert_eq!(leaders.len(), 1, "one controller: {leaders:?}");
}

#[test]
fn a_minority_cannot_change_metadata_and_loses_nothing_it_was_not_promised() {
    let (mut cluster, hosts) = start(8);
    let leader = controller_id(&cluster.nodes[0]).unwrap();
    let follower = (leader % 3) + 1;
    let other = (follower % 3) + 1;
    // Cut one follower off: the other two still make a majority.
    let net = Netfilter::new().unwrap();
    net.cut(
        &hosts[(follower - 1) as usize],
        &hosts[(leader - 1) as usize],
    )
    .unwrap();
    net.cut(
        &hosts[(follower - 1) as usize],
        &hosts[(other - 1) as usize],
    )
    .unwrap();
    assert_eq!(create(cluster.node(leader), "majority", 1), 0);
    // A request through the cut-off node cannot be committed.
    let refused = create(cluster.node(follower), "minority", 1);
    assert_ne!(refused, 0, "a node without a majority must not commit");
    net.heal().unwrap();
    assert_one_history(&cluster, &["majority"]);
    assert!(!view(cluster.node(leader)).1.contains_key("minority"));
}
