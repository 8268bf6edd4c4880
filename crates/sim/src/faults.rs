//! The faults a simulation injects: crashes and restarts, cut links,
//! isolated nodes, crashed leaders, and healing.

use super::*;

/// One random fault (or repair).
pub async fn inject_fault(cluster: &Cluster) {
    let (action, a, b) = {
        let mut rng = cluster.net.rng.lock();
        (rng.below(10), 1 + rng.below(3), 1 + rng.below(3))
    };
    let down: Vec<u64> = NODES
        .iter()
        .copied()
        .filter(|id| cluster.node(*id).is_none())
        .collect();
    match action {
        // Crash a node (at most one down at a time keeps a majority most
        // of the run; cuts can still take it away).
        0 | 1 if down.is_empty() => cluster.crash_node(a).await,
        0..=2 => {
            for id in down {
                cluster.start_node(id).await;
            }
        }
        // Cut one link, both ways.
        3 | 4 if a != b => {
            let mut cut = cluster.net.cut.lock();
            cut.insert((a, b));
            cut.insert((b, a));
        }
        // Isolate a node.
        5 => {
            let mut cut = cluster.net.cut.lock();
            for other in NODES {
                if other != a {
                    cut.insert((a, other));
                    cut.insert((other, a));
                }
            }
        }
        // Heal everything.
        6 | 7 => cluster.net.cut.lock().clear(),
        // Crash the leader: with pre-vote, faults that hit only followers
        // leave a working leader alone, so leadership moves only when the
        // leader itself is hit.
        8 if down.is_empty() => {
            if let Some((leader, _)) = cluster.leader() {
                cluster.crash_node(leader).await;
            }
        }
        _ => {}
    }
}

/// Injects faults at random intervals for `phase` of virtual time.
pub async fn run_faults(cluster: &Cluster, phase: Duration) {
    let started = tokio::time::Instant::now();
    while started.elapsed() < phase {
        let pause = 300 + cluster.net.rng.lock().below(1_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        inject_fault(cluster).await;
    }
}
