//! Elections of the metadata quorum on the simulated cluster of [`sim`]
//! (virtual time): voters that start at the same instant elect a leader,
//! and the two survivors of a crashed leader elect the next one, round
//! after round; a voter cut off from the others never raises its term
//! (pre-vote), so on rejoining it deposes nobody; and a leader that stops
//! cleanly hands leadership over at once. The rules are in
//! `strom_controller::quorum_election`.
//! `STROM_SIM_SEEDS=7,8 cargo test -p strom-sim --test election_simulation`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strom_sim as sim;

use std::sync::Arc;
use std::time::Duration;

use sim::Cluster;
use strom_controller::ops::{ControllerOp, ControllerOpResult};
use strom_controller::CreateTopic;
use strom_protocol::ErrorCode;
use tokio::sync::watch;

/// The simulated voters' election timeout range is 300 to 600 ms; a
/// leader must be known within a few of the longest.
const ELECT_WITHIN: Duration = Duration::from_millis(4 * 600);
/// Virtual time a whole run may take.
const RUN_WITHIN: Duration = Duration::from_secs(600);

/// Starts every node at the same instant, with a broker on each (topics
/// need registered brokers); the brokers stop when the returned sender
/// does.
async fn start(cluster: &Arc<Cluster>) -> watch::Sender<bool> {
    cluster.start_all().await;
    let (stop, stopped) = watch::channel(false);
    sim::spawn_brokers(cluster, &stopped);
    stop
}

/// Waits until every node follows one leader in one term and every broker
/// registered.
async fn settle(cluster: &Cluster, seed: u64) -> (u64, u64) {
    assert!(
        cluster.converge(ELECT_WITHIN * 4, || true).await,
        "seed {seed}: the cluster did not settle"
    );
    let (leader, term) = cluster.leader().unwrap();
    for (id, node) in cluster.nodes() {
        assert_eq!(node.quorum().term(), term, "seed {seed}: node {id}'s term");
    }
    (leader, term)
}

/// Creates topic `name` through whichever node leads, trying again for a
/// few election timeouts; the last answer when it never succeeds.
async fn create_topic(cluster: &Cluster, name: &str) -> Result<(), String> {
    let op = ControllerOp::CreateTopics {
        topics: vec![CreateTopic {
            name: name.into(),
            num_partitions: 1,
            replication_factor: 1,
            ..CreateTopic::default()
        }],
        validate_only: false,
    };
    let deadline = tokio::time::Instant::now() + ELECT_WITHIN;
    let mut last = String::from("no answer");
    while tokio::time::Instant::now() < deadline {
        match cluster.route(sim::CLIENT, op.clone()).await {
            Some(ControllerOpResult::CreateTopics(results, offset)) => match results.first() {
                Some(Ok(_)) if offset.is_some() => return Ok(()),
                // An earlier try may have created it and lost the answer.
                Some(Err(e)) if e.code == ErrorCode::TopicAlreadyExists => return Ok(()),
                other => last = format!("{other:?}"),
            },
            other => last = format!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(last)
}

#[test]
fn voters_started_together_elect_again_after_every_leader_crash() {
    sim::run_seeds(sim::seeds(1..=6), RUN_WITHIN, |seed| async move {
        let cluster = Arc::new(Cluster::new(seed));
        let _brokers = start(&cluster).await;
        cluster
            .wait_for_leader(None, ELECT_WITHIN)
            .await
            .unwrap_or_else(|| panic!("seed {seed}: voters started together elected no leader"));
        // Every voter has the membership (the first voter's initial entry).
        let (mut leader, _) = settle(&cluster, seed).await;
        for round in 0..8 {
            tracing::info!(round, leader, "crashing the leader");
            cluster.crash_node(leader).await;
            let restart_at_once = round % 2 == 1;
            if restart_at_once {
                cluster.start_node(leader).await;
            }
            // A victim restarted at once may lead again: openraft resumes
            // the leadership of a term it holds a committed vote for.
            let others = (!restart_at_once).then_some(leader);
            let (next, term) = cluster
                .wait_for_leader(others, ELECT_WITHIN)
                .await
                .unwrap_or_else(|| {
                    panic!("seed {seed} round {round}: no new leader after node {leader} crashed")
                });
            if let Err(e) = create_topic(&cluster, &format!("t-{round}")).await {
                panic!("seed {seed} round {round}: CreateTopics failed under leader {next} (term {term}): {e}");
            }
            if !restart_at_once {
                cluster.start_node(leader).await;
            }
            leader = next;
        }
        cluster.check_quorum(seed).await;
        cluster.shutdown().await;
    });
}

#[test]
fn a_voter_cut_off_never_raises_its_term_nor_deposes_the_leader() {
    sim::run_seeds(sim::seeds(1..=4), RUN_WITHIN, |seed| async move {
        let cluster = Arc::new(Cluster::with_loss(seed, 0));
        let _brokers = start(&cluster).await;
        let (leader, term) = settle(&cluster, seed).await;
        let cut_off = sim::NODES.into_iter().find(|id| *id != leader).unwrap();
        for other in sim::NODES.into_iter().filter(|id| *id != cut_off) {
            cluster.net.cut.lock().insert((cut_off, other));
            cluster.net.cut.lock().insert((other, cut_off));
        }
        // Many election timeouts alone.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let isolated_term = cluster.node(cut_off).unwrap().quorum().term();
        assert_eq!(
            isolated_term, term,
            "seed {seed}: node {cut_off}, cut off, raised its term"
        );
        cluster.net.cut.lock().clear();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            cluster.leader(),
            Some((leader, term)),
            "seed {seed}: node {cut_off} rejoining changed the leadership"
        );
        create_topic(&cluster, "after-the-cut")
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        cluster.shutdown().await;
    });
}

#[test]
fn a_leader_that_stops_cleanly_hands_leadership_over_at_once() {
    sim::run_seeds(sim::seeds(1..=4), RUN_WITHIN, |seed| async move {
        let cluster = Arc::new(Cluster::with_loss(seed, 0));
        let _brokers = start(&cluster).await;
        let (mut leader, _) = settle(&cluster, seed).await;
        for round in 0..4 {
            create_topic(&cluster, &format!("before-{round}"))
                .await
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
            let (_, term) = cluster.leader().unwrap();
            let old = cluster.node(leader).unwrap();
            old.quorum().hand_over_leadership().await;
            // Handed over, not elected after a timeout: a new leader in the
            // next term already, before the old one has even stopped.
            let (next, next_term) = cluster
                .leader()
                .filter(|(id, _)| *id != leader)
                .unwrap_or_else(|| panic!("seed {seed} round {round}: node {leader} still leads"));
            assert_eq!(next_term, term + 1, "seed {seed} round {round}");
            cluster.crash_node(leader).await;
            create_topic(&cluster, &format!("after-{round}"))
                .await
                .unwrap_or_else(|e| panic!("seed {seed} round {round}: {e}"));
            cluster.start_node(leader).await;
            settle(&cluster, seed).await;
            leader = next;
        }
        cluster.shutdown().await;
    });
}
