//! As partition leader, keeping each ISR right: every half
//! `replica.lag.time.max.ms` (at most every 500 ms) this broker proposes,
//! through AlterPartition to the active controller, to drop followers that
//! fell behind and take back ones that caught up. The new ISR takes effect
//! when the metadata carrying it is applied; a refused proposal is made
//! again at the next check if still needed.

use std::sync::Arc;
use std::time::Duration;

use strom_controller::isr_change::IsrChange;
use strom_runtime::clock::lag_clock_ms;
use strom_runtime::shutdown;
use tokio::sync::watch;

use crate::state::BrokerState;

/// How long one AlterPartition may take.
const ISR_CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most time between two checks.
const MAX_CHECK_INTERVAL_MS: u64 = 500;

/// Runs the checks until `shutdown`.
pub async fn run_isr_updates(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let lag_ms = state.config.replica_fetch.lag_time_max_ms;
    let every = Duration::from_millis((lag_ms / 2).clamp(10, MAX_CHECK_INTERVAL_MS));
    let max_lag_ms = i64::try_from(lag_ms).unwrap_or(i64::MAX);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown::signalled(&mut shutdown) => return,
        }
        if state.lifecycle.is_fenced() {
            continue;
        }
        let now = lag_clock_ms();
        // Fenced followers may fetch but not join (KIP-841): the controller
        // would refuse them.
        let image = state.image();
        let may_join = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
        for (partition, current, isr) in state
            .replica_manager
            .isr_change_proposals(now, max_lag_ms, may_join)
        {
            let tp = partition.topic_partition().clone();
            let change = IsrChange {
                broker_id: state.node_id(),
                broker_epoch: state.lifecycle.broker_epoch(),
                topic: tp.topic.clone(),
                partition: tp.partition,
                leader_epoch: current.leader_epoch,
                partition_epoch: current.partition_epoch,
                isr: isr.clone(),
            };
            let controller = Arc::clone(&state.controller);
            let metrics = Arc::clone(&state.metrics);
            tokio::spawn(async move {
                match controller.alter_partition(change, ISR_CHANGE_TIMEOUT).await {
                    Ok((_, Some(_))) => {
                        metrics.count_isr_change(current.isr.len(), isr.len());
                        tracing::info!(partition = %tp, from = ?current.isr, to = ?isr, "ISR change committed");
                    }
                    Ok((_, None)) => partition.isr_change_failed(),
                    Err(e) => {
                        tracing::info!(partition = %tp, error = %e, "ISR change refused");
                        partition.isr_change_failed();
                    }
                }
            });
        }
    }
}
