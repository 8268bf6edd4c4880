//! The periodic log work (retention, flushes, offset checkpoints, producer
//! expiration) on its own schedule.

use std::sync::Arc;
use std::time::Duration;

use strom_storage::LogManager;
use tokio::sync::watch;

use strom_runtime::clock::now_ms;
use strom_runtime::shutdown;

/// How often the periodic log work runs.
#[derive(Debug, Clone, Copy)]
pub struct MaintenanceIntervals {
    /// `log.retention.check.interval.ms`.
    pub retention_check: Duration,
    /// How often `flush.ms` is checked.
    pub flush_check: Duration,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub checkpoint: Duration,
    /// `producer.id.expiration.check.interval.ms`.
    pub producer_expiration_check: Duration,
    /// `producer.id.expiration.ms`.
    pub producer_expiration_ms: i64,
}

/// Runs retention, flushes, checkpoints and producer expiration until
/// `shutdown` fires.
pub async fn run_log_maintenance(
    log_manager: Arc<LogManager>,
    intervals: MaintenanceIntervals,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut retention = tokio::time::interval(intervals.retention_check);
    let mut flush = tokio::time::interval(intervals.flush_check);
    let mut checkpoint = tokio::time::interval(intervals.checkpoint);
    let mut producers = tokio::time::interval(intervals.producer_expiration_check);
    for t in [&mut retention, &mut flush, &mut checkpoint, &mut producers] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.reset();
    }
    loop {
        let lm = Arc::clone(&log_manager);
        tokio::select! {
            _ = shutdown::signalled(&mut shutdown) => return,
            _ = retention.tick() => {
                let _ = tokio::task::spawn_blocking(move || lm.enforce_retention(now_ms())).await;
            }
            _ = flush.tick() => {
                let _ = tokio::task::spawn_blocking(move || lm.flush_due(now_ms())).await;
            }
                        _ = producers.tick() => {
                let ms = intervals.producer_expiration_ms;
                let _ = tokio::task::spawn_blocking(move || lm.remove_expired_producers(now_ms(), ms)).await;
            }
            _ = checkpoint.tick() => {
                let r = tokio::task::spawn_blocking(move || lm.checkpoint()).await;
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "cannot write offset checkpoints");
                }
            }
        }
    }
}
