//! A seeded simulation of the metadata quorum and the broker
//! lifecycle on the simulated cluster of [`sim`]: three nodes crash,
//! restart and are cut off from each other while their brokers register
//! and heartbeat and a client keeps creating topics. A seed replays the
//! same fault schedule:
//! `STROM_SIM_SEEDS=7,8 cargo test -p strom-sim --test simulation`
//! (default: a fixed set).
//!
//! Invariants checked:
//! - at most one leader per term;
//! - every acknowledged write is in every node's log at the offset it was
//!   acknowledged with, and all nodes' logs agree entry by entry (nothing
//!   committed is lost or reordered), and their images are equal;
//! - no image, on any node, at any time observed, names a fenced broker as
//!   a partition's leader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strom_sim as sim;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sim::Cluster;
use strom_controller::ops::{ControllerOp, ControllerOpResult};
use strom_controller::CreateTopic;
use tokio::sync::watch;

/// Virtual time the faults run for.
const FAULT_PHASE: Duration = Duration::from_secs(90);
/// Virtual time a whole run may take.
const RUN_WITHIN: Duration = Duration::from_secs(600);
/// Virtual time allowed to converge after healing.
const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// A client creating topics through random nodes; records what was
/// acknowledged (name, offset).
async fn run_client(
    cluster: Arc<Cluster>,
    acknowledged: Arc<Mutex<Vec<(String, i64)>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut n = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(150)) => {}
            _ = stop.changed() => return,
        }
        let (from, partitions) = {
            let mut rng = cluster.net.rng.lock();
            (1 + rng.below(3), 1 + rng.below(3) as i32)
        };
        n += 1;
        let name = format!("t-{n}");
        let op = ControllerOp::CreateTopics {
            topics: vec![CreateTopic {
                name: name.clone(),
                num_partitions: partitions,
                replication_factor: 1,
                ..CreateTopic::default()
            }],
            validate_only: false,
        };
        if let Some(ControllerOpResult::CreateTopics(results, Some(offset))) =
            cluster.route(from, op).await
        {
            if results.first().is_some_and(Result::is_ok) {
                acknowledged.lock().push((name, offset));
            }
        }
    }
}

async fn run(seed: u64) {
    let cluster = Arc::new(Cluster::new(seed));
    cluster.start_all().await;
    let (stop, stopped) = watch::channel(false);
    let tasks = sim::spawn_brokers(&cluster, &stopped);
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (stop_client, client_stopped) = watch::channel(false);
    let client = tokio::spawn(run_client(
        Arc::clone(&cluster),
        Arc::clone(&acknowledged),
        client_stopped,
    ));

    sim::run_faults(&cluster, FAULT_PHASE).await;

    // Repair everything; the cluster must converge on one history. No
    // more writes from now on, so what was acknowledged is final.
    let _ = stop_client.send(true);
    let _ = client.await;
    cluster.heal().await;
    let converged = cluster.converge(CONVERGE_WITHIN, || true).await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let nodes = cluster.nodes();
    assert!(
        converged,
        "seed {seed}: no convergence; offsets {:?}, brokers {:?}",
        nodes
            .iter()
            .map(|(id, c)| (*id, c.image().offset))
            .collect::<Vec<_>>(),
        nodes
            .iter()
            .map(|(id, c)| (*id, c.image().unfenced_brokers().count()))
            .collect::<Vec<_>>()
    );
    let log = cluster.check_quorum(seed).await;

    // Every acknowledged creation is in the log at its offset, and in
    // every image.
    let acknowledged = std::mem::take(&mut *acknowledged.lock());
    let at: BTreeMap<u64, &String> = log.iter().map(|(i, p)| (*i, p)).collect();
    for (name, offset) in &acknowledged {
        let entry = at.get(&(*offset as u64)).copied();
        assert!(
            entry.is_some_and(|p| p.contains(&format!("\"name\":\"{name}\""))),
            "seed {seed}: acknowledged {name} at {offset} but the log has {entry:?}"
        );
        for (id, c) in &nodes {
            assert!(
                c.image().topic(name).is_some(),
                "seed {seed}: node {id} lost {name}"
            );
        }
    }
    assert!(
        acknowledged.len() >= 10,
        "seed {seed}: too little progress to mean anything: {} writes",
        acknowledged.len()
    );
    eprintln!(
        "seed {seed}: {} topic creations acknowledged",
        acknowledged.len()
    );
    cluster.shutdown().await;
}

#[test]
fn the_quorum_keeps_its_invariants_under_crashes_partitions_and_loss() {
    sim::run_seeds(sim::seeds(1..=8), RUN_WITHIN, run);
}
