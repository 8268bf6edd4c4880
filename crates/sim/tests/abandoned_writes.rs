//! An operation on the active controller whose caller gives up while its
//! write is being committed (a client timeout, a closed connection) must
//! not let the next operation be validated against an image that misses
//! that write: the write goes on and may commit. Here a CreateTopics is
//! abandoned mid-commit and the same topic is created again at once: the
//! second must answer TOPIC_ALREADY_EXISTS, never create it twice. (The
//! same race once let a broker be fenced while a topic it had just been
//! made leader of was still being committed, leaving a fenced leader in
//! the image: `simulation.rs`, seed 6.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use strom_sim as sim;

use std::sync::Arc;
use std::time::Duration;

use sim::Cluster;
use strom_controller::ops::{ControllerOp, ControllerOpResult};
use strom_controller::CreateTopic;
use strom_protocol::ErrorCode;
use tokio::sync::watch;

const ELECT_WITHIN: Duration = Duration::from_millis(4 * 600);
const RUN_WITHIN: Duration = Duration::from_secs(120);

fn create(name: &str) -> ControllerOp {
    ControllerOp::CreateTopics {
        topics: vec![CreateTopic {
            name: name.into(),
            num_partitions: 1,
            replication_factor: 1,
            ..CreateTopic::default()
        }],
        validate_only: false,
    }
}

#[test]
fn an_operation_abandoned_mid_commit_is_seen_by_the_next_one() {
    sim::run_seeds(sim::seeds(1..=3), RUN_WITHIN, |seed| async move {
        let cluster = Arc::new(Cluster::new(seed));
        cluster.start_all().await;
        let (_stop, stopped) = watch::channel(false);
        sim::spawn_brokers(&cluster, &stopped);
        assert!(
            cluster.converge(ELECT_WITHIN * 4, || true).await,
            "seed {seed}: no settled cluster"
        );
        let (leader, _) = cluster.leader().unwrap();
        let controller = cluster.node(leader).unwrap();
        // A first topic, so brokers are known to place replicas on.
        let mut placed = false;
        for _ in 0..100 {
            if let ControllerOpResult::CreateTopics(r, Some(_)) =
                controller.execute_here(create("warm-up")).await
            {
                placed = r.first().is_some_and(Result::is_ok);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(placed, "seed {seed}: the warm-up topic was not created");

        // Poll the operation until its write is under way, then drop it.
        let mut abandoned = Box::pin(controller.execute_here(create("abandoned")));
        let mut started = false;
        for _ in 0..10_000 {
            tokio::select! {
                biased;
                answer = &mut abandoned => panic!("seed {seed}: finished before it could be abandoned: {answer:?}"),
                _ = tokio::task::yield_now() => {}
            }
            if controller.write_in_progress() {
                started = true;
                break;
            }
        }
        assert!(started, "seed {seed}: the write never started");
        drop(abandoned);
        assert!(
            controller.write_in_progress(),
            "seed {seed}: the write ended with its caller"
        );

        match controller.execute_here(create("abandoned")).await {
            ControllerOpResult::CreateTopics(results, _) => {
                let first = results.into_iter().next().unwrap();
                assert_eq!(
                    first.err().map(|e| e.code),
                    Some(ErrorCode::TopicAlreadyExists),
                    "seed {seed}: the abandoned write was not seen"
                );
            }
            other => panic!("seed {seed}: {other:?}"),
        }
        cluster.shutdown().await;
    });
}
