//! The log manager's periodic work (retention, flushes, offset
//! checkpoints, producer expiration) on its own schedule, as Kafka's
//! LogManager schedules it. This is the storage crate's only async code:
//! each round of work is synchronous disk work and runs on tokio's
//! blocking pool, one kind at a time, so a slow disk delays the next round
//! instead of piling rounds up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::log_manager::LogManager;

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

impl LogManager {
    /// Runs retention, flushes, checkpoints and producer expiration until
    /// `shutdown` fires. A tick missed while a round ran is delayed, not
    /// made up.
    pub async fn run_maintenance(
        self: Arc<Self>,
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
            let lm = Arc::clone(&self);
            tokio::select! {
                _ = shutdown::signalled(&mut shutdown) => return,
                _ = retention.tick() => {
                    let _ = strom_runtime::blocking::run(move || lm.enforce_retention(now_ms())).await;
                }
                _ = flush.tick() => {
                    let _ = strom_runtime::blocking::run(move || lm.flush_due(now_ms())).await;
                }
                _ = producers.tick() => {
                    let ms = intervals.producer_expiration_ms;
                    let _ = strom_runtime::blocking::run(move || lm.remove_expired_producers(now_ms(), ms)).await;
                }
                _ = checkpoint.tick() => {
                    let r = strom_runtime::blocking::run(move || lm.checkpoint()).await;
                    if let Ok(Err(e)) = r {
                        tracing::error!(error = %e, "cannot write offset checkpoints");
                    }
                }
            }
        }
    }
}
