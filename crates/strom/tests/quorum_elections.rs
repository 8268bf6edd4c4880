//! Elections of the metadata quorum with real processes: three combined
//! nodes launched at the same instant (as a StatefulSet with Parallel pod
//! management launches them), the active controller SIGKILLed again and
//! again, each time a new leader and a successful CreateTopics within a few
//! election timeouts; and a leader stopped with SIGTERM hands leadership
//! over before it exits, faster than any election could move it. The rules
//! are in `strom_controller::quorum_election`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::*;
use strom_test_utils::{wait_until, BrokerProcess, Cluster};

/// The test clusters' `controller.quorum.election.timeout.ms`: elections
/// wait 500 to 1,000 ms.
const ELECTION_TIMEOUT_MS: u64 = 500;
/// A new leader, and a CreateTopics it commits, within a few of the
/// longest election timeouts.
const ELECT_WITHIN: Duration = Duration::from_millis(5 * 2 * ELECTION_TIMEOUT_MS);
/// Time for a process to start and answer, or a restarted node to rejoin.
const START_WITHIN: Duration = Duration::from_secs(60);

/// The quorum's leader and epoch as `node` learns them from DescribeQuorum
/// (answered by the active controller); `None` while it has none.
fn quorum_leader(node: &BrokerProcess) -> Option<(i32, i32)> {
    let mut c = strom_test_utils::KafkaConnection::connect(&node.bootstrap()).ok()?;
    c.set_read_timeout(Duration::from_secs(2));
    let r: DescribeQuorumResponse = c
        .send(
            ApiKey::DescribeQuorum,
            1,
            &describe_quorum_request("__cluster_metadata", 0),
        )
        .ok()?;
    let p = r.topics.first()?.partitions.first()?;
    (r.error_code == 0 && p.error_code == 0 && p.leader_id.0 > 0)
        .then_some((p.leader_id.0, p.leader_epoch))
}

/// Waits until `node` reports a leader that `wanted` accepts.
fn wait_for_leader(
    node: &BrokerProcess,
    within: Duration,
    wanted: impl Fn(i32, i32) -> bool,
) -> Option<(i32, i32)> {
    let mut found = None;
    wait_until(within, || {
        found = quorum_leader(node).filter(|(id, epoch)| wanted(*id, *epoch));
        found.is_some()
    });
    found
}

fn create(node: &BrokerProcess, topic: &str) -> bool {
    let Ok(mut c) = strom_test_utils::KafkaConnection::connect(&node.bootstrap()) else {
        return false;
    };
    c.set_read_timeout(Duration::from_secs(5));
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let r: Result<CreateTopicsResponse, _> = c.send(ApiKey::CreateTopics, 5, &request);
    r.is_ok_and(|r| r.topics[0].error_code == 0)
}

/// What the nodes other than `except` logged about the quorum.
fn quorum_logs(cluster: &Cluster, except: i32) -> String {
    cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != except)
        .map(|(i, node)| {
            let log = node.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("quorum") || l.contains("election") || l.contains("vote"))
                .collect();
            format!("node {}:\n{}", i + 1, lines.join("\n"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn start() -> Cluster {
    Cluster::start(
        BIN,
        3,
        &[&format!(
            "controller.quorum.election.timeout.ms={ELECTION_TIMEOUT_MS}"
        )],
    )
    .expect("start a 3-node cluster")
}

/// Waits until the cluster has a leader every node agrees on; returns it.
fn settled_leader(cluster: &Cluster) -> (i32, i32) {
    let mut leader = None;
    assert!(
        wait_until(START_WITHIN, || {
            let seen: Vec<Option<(i32, i32)>> = cluster.nodes.iter().map(quorum_leader).collect();
            leader = seen[0];
            leader.is_some() && seen.iter().all(|s| *s == leader)
        }),
        "the nodes never agreed on a leader"
    );
    leader.unwrap()
}

#[test]
fn voters_started_together_elect_a_new_leader_every_time_the_leader_is_killed() {
    let mut kills = 0;
    let mut slowest = Duration::ZERO;
    // Four clusters launched at once, five leader kills each: twenty
    // elections by two survivors, victims restarted at once or after.
    for cluster_round in 0..4 {
        let mut cluster = start();
        let (mut leader, mut epoch) = settled_leader(&cluster);
        for round in 0..5 {
            let restart_at_once = (cluster_round + round) % 2 == 1;
            let killed_at = Instant::now();
            cluster.node(leader).kill();
            if restart_at_once {
                cluster.node(leader).spawn().unwrap();
            }
            let survivor = leader % 3 + 1;
            // A victim restarted at once may lead again: openraft resumes
            // the leadership of a term it holds a committed vote for.
            let (next, next_epoch) = wait_for_leader(cluster.node(survivor), ELECT_WITHIN, |id, e| {
                if restart_at_once {
                    e >= epoch
                } else {
                    id != leader && e > epoch
                }
            })
            .unwrap_or_else(|| {
                panic!(
                    "cluster {cluster_round} round {round}: no new leader within {ELECT_WITHIN:?} of killing node {leader}; the survivors' quorum logs:\n{}",
                    quorum_logs(&cluster, leader)
                )
            });
            let topic = format!("after-kill-{cluster_round}-{round}");
            assert!(
                wait_until(ELECT_WITHIN.saturating_sub(killed_at.elapsed()), || create(
                    cluster.node(survivor),
                    &topic
                )),
                "cluster {cluster_round} round {round}: CreateTopics failed under leader {next}"
            );
            slowest = slowest.max(killed_at.elapsed());
            kills += 1;
            if !restart_at_once {
                cluster.node(leader).spawn().unwrap();
            }
            cluster.node(leader).wait_ready(START_WITHIN).unwrap();
            (leader, epoch) = settled_leader(&cluster);
            assert!(epoch >= next_epoch);
        }
    }
    eprintln!(
        "{kills} leader kills: new leader and CreateTopics within {slowest:?} at the slowest"
    );
    assert_eq!(kills, 20);
}

#[test]
fn a_leader_stopped_with_sigterm_hands_leadership_over_before_it_exits() {
    // Elections here wait at least 4 s without a leader, so a new leader
    // right after the old one exits can only have been handed over.
    let election_timeout = Duration::from_secs(4);
    let mut cluster = Cluster::start(
        BIN,
        3,
        &[&format!(
            "controller.quorum.election.timeout.ms={}",
            election_timeout.as_millis()
        )],
    )
    .expect("start a 3-node cluster");
    let (mut leader, mut epoch) = settled_leader(&cluster);
    // A rolling restart: each round stops whichever node leads.
    for round in 0..3 {
        assert!(create(cluster.node(leader), &format!("before-{round}")));
        assert_eq!(cluster.node(leader).terminate().unwrap(), Some(0));
        let exited = Instant::now();
        let survivor = leader % 3 + 1;
        let (next, next_epoch) =
            wait_for_leader(cluster.node(survivor), election_timeout, |id, e| {
                id != leader && e > epoch
            })
            .unwrap_or_else(|| {
                panic!(
                    "round {round}: no leader after node {leader} stopped; its log:\n{}",
                    cluster.node(leader).log()
                )
            });
        let took = exited.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "round {round}: node {next} led only {took:?} after node {leader} exited: elected, not handed over"
        );
        assert_eq!(next_epoch, epoch + 1, "round {round}");
        assert!(create(cluster.node(survivor), &format!("after-{round}")));
        cluster.node(leader).spawn().unwrap();
        cluster.node(leader).wait_ready(START_WITHIN).unwrap();
        (leader, epoch) = settled_leader(&cluster);
    }
}
