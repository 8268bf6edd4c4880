//! The broker on each simulated node: registration once per node
//! incarnation, heartbeats while the node runs.

use super::*;

/// The broker on node `id`: registers once per node incarnation (again
/// when its registration is refused or expired), heartbeats while its node
/// runs.
pub async fn run_broker(cluster: Arc<Cluster>, id: u64, mut stop: watch::Receiver<bool>) {
    // One incarnation id per start of the node, as a broker process has.
    let mut incarnation_id = (0, Uuid::nil());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
            _ = stop.changed() => return,
        }
        let Some(node) = cluster.node(id) else {
            continue;
        };
        let applied = node.image().offset;
        drop(node);
        let incarnation = cluster.incarnation(id);
        if incarnation_id.0 != incarnation {
            incarnation_id = (incarnation, Uuid::new_v4());
        }
        match cluster.broker_epoch(id) {
            None => {
                let registration = BrokerRegistration {
                    broker_id: id as i32,
                    incarnation_id: incarnation_id.1,
                    broker_epoch: 0,
                    endpoints: Vec::new(),
                    rack: None,
                    fenced: true,
                };
                if let Some(ControllerOpResult::RegisterBroker(Ok(epoch))) = cluster
                    .route(id, ControllerOp::RegisterBroker(registration))
                    .await
                {
                    cluster
                        .registrations
                        .lock()
                        .insert(id, (incarnation, epoch));
                }
            }
            Some(broker_epoch) => {
                let heartbeat = BrokerHeartbeat {
                    broker_id: id as i32,
                    broker_epoch,
                    applied_offset: applied,
                    want_shutdown: false,
                    offline_replicas: Vec::new(),
                };
                if let Some(ControllerOpResult::BrokerHeartbeat(Err(e))) = cluster
                    .route(id, ControllerOp::BrokerHeartbeat(heartbeat))
                    .await
                {
                    if e.code == ErrorCode::StaleBrokerEpoch
                        || e.code == ErrorCode::BrokerIdNotRegistered
                    {
                        cluster.registrations.lock().remove(&id);
                    }
                }
            }
        }
    }
}

/// Starts every node's broker ([`run_broker`]) until `stop`.
pub fn spawn_brokers(
    cluster: &Arc<Cluster>,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    NODES
        .iter()
        .map(|id| tokio::spawn(run_broker(Arc::clone(cluster), *id, stop.clone())))
        .collect()
}
