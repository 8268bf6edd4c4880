//! A three-node cluster of combined broker-and-controller processes on
//! loopback ports: one source of truth for metadata through the Raft
//! quorum, admin requests through any node, produce routed to partition
//! leaders, the active controller killed and replaced, every node
//! restarted, and brokers fenced when they go away.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use strom_test_utils::{wait_until, BrokerProcess, Cluster};

const DEADLINE: Duration = Duration::from_secs(30);

fn start() -> Cluster {
    Cluster::start(BIN, 3, &[]).expect("start a 3-node cluster")
}

/// Metadata for `topic` as `node` sees it: partition → leader.
fn leaders(node: &BrokerProcess, topic: &str) -> BTreeMap<i32, i32> {
    let mut c = connect(node);
    partition_leaders(&topic_metadata(&mut c, topic))
}

/// The brokers `node` offers clients.
fn brokers(node: &BrokerProcess) -> Vec<i32> {
    let mut c = connect(node);
    let r: MetadataResponse = c
        .send(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![])),
        )
        .unwrap();
    let mut ids: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    ids
}

/// The active controller as DescribeCluster reports it.
fn controller_id(node: &BrokerProcess) -> i32 {
    let mut c = connect(node);
    let r: DescribeClusterResponse = c
        .send(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )
        .unwrap();
    r.controller_id.0
}

/// ElectLeaders of `election_type` for `topic`'s `partitions`: each one's
/// error code.
fn elect(node: &BrokerProcess, election_type: i8, topic: &str, partitions: &[i32]) -> Vec<i16> {
    let mut c = connect(node);
    let req = ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
        )
        .with_topic(name(topic))
        .with_partitions(partitions.to_vec())]));
    let r: ElectLeadersResponse = c.send(ApiKey::ElectLeaders, 2, &req).unwrap();
    assert_eq!(r.error_code, 0);
    r.replica_election_results[0]
        .partition_result
        .iter()
        .map(|p| p.error_code)
        .collect()
}

fn create(node: &BrokerProcess, topic: &str, partitions: i32) -> i16 {
    let mut c = connect(node);
    create_topic(&mut c, topic, partitions, &[]).topics[0].error_code
}

#[test]
fn every_node_serves_one_metadata_and_produce_reaches_the_leaders() {
    let cluster = start();
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    assert!(wait_until(DEADLINE, || brokers(a) == vec![1, 2, 3]));
    // Created through one node, visible from all with the same leaders.
    assert_eq!(create(b, "spread", 6), 0);
    let seen = leaders(b, "spread");
    assert_eq!(seen.len(), 6);
    let used: std::collections::BTreeSet<i32> = seen.values().copied().collect();
    assert_eq!(used.len(), 3, "leaders spread over the brokers: {seen:?}");
    for node in [a, c] {
        assert!(wait_until(DEADLINE, || leaders(node, "spread") == seen));
    }
    // Each partition takes records at its leader and refuses them elsewhere.
    for (partition, leader) in &seen {
        let value = format!("p{partition}");
        let mut at_leader = connect(&cluster.nodes[(*leader - 1) as usize]);
        assert_eq!(
            produce(&mut at_leader, "spread", *partition, &[value.as_bytes()]),
            (0, 0)
        );
        let other = &cluster.nodes[(*leader % 3) as usize];
        let mut elsewhere = connect(other);
        let (err, _) = produce(&mut elsewhere, "spread", *partition, &[b"x"]);
        assert_eq!(err, ErrorCode::NotLeaderOrFollower.code());
        let records = decode_records(
            &fetch(&mut at_leader, "spread", *partition, 0, 1 << 20)
                .records
                .unwrap_or_default(),
        );
        assert_eq!(records, vec![(0, value.into_bytes())]);
    }
    // Topic names are unique cluster-wide, whichever node is asked.
    assert_eq!(create(c, "spread", 1), ErrorCode::TopicAlreadyExists.code());
    // Three replicas fit on three brokers; four do not.
    let mut conn = connect(a);
    assert_eq!(create_topic_rf(&mut conn, "replicated", 1, 3), 0);
    assert_eq!(
        create_topic_rf(&mut conn, "too-replicated", 1, 4),
        ErrorCode::InvalidReplicationFactor.code()
    );
}

#[test]
fn killing_the_active_controller_elects_another_and_it_catches_up_after_restart() {
    let mut cluster = start();
    assert_eq!(create(&cluster.nodes[0], "before", 1), 0);
    let old = controller_id(&cluster.nodes[0]);
    cluster.node(old).kill();
    let survivor = (old % 3) + 1;
    // A new leader is elected and metadata changes go on.
    let mut new = -1;
    assert!(
        wait_until(DEADLINE, || {
            new = controller_id(cluster.node(survivor));
            new != old && new > 0
        }),
        "no new controller"
    );
    assert!(wait_until(DEADLINE, || create(
        cluster.node(survivor),
        "after",
        2
    ) == 0));
    // The killed node comes back and catches up.
    cluster.node(old).spawn().unwrap();
    assert!(wait_until(DEADLINE, || leaders(cluster.node(old), "after")
        .len()
        == 2));
    assert_eq!(leaders(cluster.node(old), "before").len(), 1);
    assert!(wait_until(DEADLINE, || brokers(cluster.node(new)) == vec![1, 2, 3]));
}

#[test]
fn restarting_every_node_keeps_all_metadata() {
    let mut cluster = start();
    for (i, topic) in ["one", "two", "three"].iter().enumerate() {
        assert_eq!(create(&cluster.nodes[i], topic, (i + 1) as i32), 0);
    }
    let look = || -> Vec<BTreeMap<i32, i32>> {
        ["one", "two", "three"]
            .iter()
            .map(|t| leaders(&cluster.nodes[0], t))
            .collect()
    };
    // Node 1 applies the other nodes' creations a moment later.
    assert!(wait_until(DEADLINE, || look()
        .iter()
        .enumerate()
        .all(|(i, l)| l.len() == i + 1)));
    let before = look();
    // Two crash, one stops cleanly.
    cluster.nodes[0].kill();
    cluster.nodes[1].kill();
    cluster.nodes[2].terminate().unwrap();
    for node in &mut cluster.nodes {
        node.launch().unwrap();
    }
    for node in &mut cluster.nodes {
        node.wait_ready(Duration::from_secs(60)).unwrap();
    }
    for node in &cluster.nodes {
        let now = || {
            ["one", "two", "three"]
                .iter()
                .map(|t| leaders(node, t))
                .collect::<Vec<_>>()
        };
        assert!(
            wait_until(DEADLINE, || now() == before),
            "node {} sees {:?}, not {before:?}; logs:\n{}",
            node.port,
            now(),
            cluster
                .nodes
                .iter()
                .map(|n| n.log())
                .collect::<Vec<_>>()
                .join("\n-----\n")
        );
    }
}

#[test]
fn a_broker_that_goes_away_is_fenced_and_leads_again_when_it_returns() {
    let mut cluster = start();
    assert_eq!(create(&cluster.nodes[0], "owned", 3), 0);
    let seen = leaders(&cluster.nodes[0], "owned");
    // Pick a broker that is not the active controller.
    let active = controller_id(&cluster.nodes[0]);
    let victim = (active % 3) + 1;
    let watcher = (victim % 3) + 1;
    let owned: Vec<i32> = seen
        .iter()
        .filter(|(_, l)| **l == victim)
        .map(|(p, _)| *p)
        .collect();
    assert!(!owned.is_empty(), "{seen:?}");
    cluster.node(victim).kill();
    // After its session (2 s here) the controller fences it: clients no
    // longer see it, and its partitions have no leader (one replica each).
    assert!(wait_until(DEADLINE, || !brokers(cluster.node(watcher))
        .contains(&victim)));
    let now = leaders(cluster.node(watcher), "owned");
    for p in &owned {
        assert_eq!(now[p], -1, "{now:?}");
    }
    // No election can give them a leader while their one replica is away.
    let w = cluster.node(watcher);
    assert!(elect(w, 0, "owned", &owned)
        .iter()
        .all(|c| *c == ErrorCode::PreferredLeaderNotAvailable.code()));
    assert!(elect(w, 1, "owned", &owned)
        .iter()
        .all(|c| *c == ErrorCode::EligibleLeadersNotAvailable.code()));
    cluster.node(victim).spawn().unwrap();
    assert!(wait_until(DEADLINE, || leaders(
        cluster.node(watcher),
        "owned"
    ) == seen));
    assert!(elect(cluster.node(watcher), 0, "owned", &owned)
        .iter()
        .all(|c| *c == ErrorCode::ElectionNotNeeded.code()));
    // A clean stop moves leadership away at once (no session to wait out).
    cluster.node(victim).terminate().unwrap();
    let now = leaders(cluster.node(watcher), "owned");
    for p in &owned {
        assert_eq!(now[p], -1, "{now:?}");
    }
}

#[test]
fn describe_quorum_reports_the_leader_and_every_voter_from_any_node() {
    let cluster = start();
    assert_eq!(create(&cluster.nodes[0], "quorum-load", 2), 0);
    let active = controller_id(&cluster.nodes[0]);
    let ask = describe_quorum_request("__cluster_metadata", 0);
    for node in &cluster.nodes {
        let mut c = connect(node);
        let mut last = None;
        // Followers catch up with the leader's log within a few heartbeats.
        let caught_up = wait_until(DEADLINE, || {
            let r: DescribeQuorumResponse = c.send(ApiKey::DescribeQuorum, 2, &ask).unwrap();
            let p = r.topics[0].partitions[0].clone();
            let done = p.error_code == 0
                && p.current_voters.len() == 3
                && p.current_voters.iter().all(|v| {
                    v.log_end_offset == p.current_voters[0].log_end_offset
                        && v.last_caught_up_timestamp > 0
                });
            last = Some((r, p));
            done
        });
        let (r, p) = last.unwrap();
        assert!(caught_up, "{p:?}");
        assert_eq!(r.topics[0].topic_name.0.as_str(), "__cluster_metadata");
        assert_eq!(p.leader_id.0, active);
        assert!(p.leader_epoch >= 1);
        assert_eq!(p.current_voters[0].replica_id.0, active);
        assert!(p.high_watermark > 0 && p.high_watermark <= p.current_voters[0].log_end_offset);
        let mut voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        voters.sort();
        assert_eq!(voters, vec![1, 2, 3]);
        // v2 lists the voters' controller endpoints.
        let mut ids: Vec<i32> = r.nodes.iter().map(|n| n.node_id.0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(r
            .nodes
            .iter()
            .all(|n| n.listeners[0].name.as_str() == "CONTROLLER" && n.listeners[0].port > 0));
    }
    // Any other partition is unknown.
    let mut c = connect(&cluster.nodes[1]);
    let other = describe_quorum_request("__cluster_metadata", 1);
    let r: DescribeQuorumResponse = c.send(ApiKey::DescribeQuorum, 1, &other).unwrap();
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
}

#[test]
fn the_sample_cluster_starts_from_its_config_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster");
    let files: Vec<std::path::PathBuf> = (1..=3)
        .map(|i| root.join(format!("node-{i}.properties")))
        .collect();
    let cluster = Cluster::start_from_files(BIN, &files, &[9092, 9093, 9094])
        .expect("start config/cluster/node-{1,2,3}.properties");
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    assert!(wait_until(DEADLINE, || [a, b, c].iter().all(|n| brokers(
        n
    ) == vec![
        1, 2, 3
    ])));
    assert_eq!(create(a, "from-files", 3), 0);
    assert!(wait_until(DEADLINE, || leaders(c, "from-files").len() == 3));
    for (p, leader) in leaders(c, "from-files") {
        let node = [a, b, c][(leader - 1) as usize];
        assert_eq!(
            produce(&mut connect(node), "from-files", p, &[b"v"]),
            (0, 0)
        );
    }
}

/// A node whose metadata log belongs to a one-voter quorum refuses a
/// configuration naming three voters (as a Helm release scaled from one
/// replica to three would): the new voters could otherwise elect a leader
/// among themselves and overwrite its log.
#[test]
fn a_node_refuses_voters_other_than_its_metadata_logs() {
    let mut node = broker(&[]);
    let mut c = connect(&node);
    assert_eq!(create_topic(&mut c, "kept", 1, &[]).topics[0].error_code, 0);
    drop(c);
    assert_eq!(node.terminate().unwrap(), Some(0));
    let ports: Vec<u16> = (0..3).map(|_| strom_test_utils::free_port()).collect();
    node.overrides.extend([
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            node.port, ports[0]
        ),
        format!(
            "controller.quorum.voters=1@127.0.0.1:{},2@127.0.0.1:{},3@127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        ),
    ]);
    node.launch().unwrap();
    assert!(
        wait_until(DEADLINE, || !node.is_running()),
        "started with other voters: {}",
        node.log()
    );
    let log = node.log();
    assert!(
        log.contains("the voters of an existing quorum cannot change")
            && log.contains("[1, 2, 3]")
            && log.contains("[1]"),
        "{log}"
    );
    // The two new voters, empty, must not set up a quorum of their own
    // without the first voter: they wait for it.
    let cluster_id = strom_test_utils::random_cluster_id();
    let mut newcomers: Vec<BrokerProcess> = (2..=3)
        .map(|id: usize| {
            let overrides = [
                format!("node.id={id}"),
                format!("cluster.id={cluster_id}"),
                format!(
                    "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    strom_test_utils::free_port(),
                    ports[id - 1]
                ),
                format!(
                    "controller.quorum.voters=1@127.0.0.1:{},2@127.0.0.1:{},3@127.0.0.1:{}",
                    ports[0], ports[1], ports[2]
                ),
                "controller.quorum.election.timeout.ms=300".to_string(),
            ];
            let refs: Vec<&str> = overrides.iter().map(String::as_str).collect();
            let mut n =
                BrokerProcess::prepare(BIN, strom_test_utils::free_port(), &refs, "info").unwrap();
            n.launch().unwrap();
            n
        })
        .collect();
    assert!(wait_until(DEADLINE, || newcomers
        .iter()
        .all(|n| n.log().contains("waiting for the first voter"))));
    // Ten election timeouts.
    let watched = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < watched {
        for n in &newcomers {
            assert!(
                !n.log().contains("the metadata quorum has a leader"),
                "{}",
                n.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in &mut newcomers {
        n.kill();
    }
}
