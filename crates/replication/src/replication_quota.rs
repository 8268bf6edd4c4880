//! The byte-rate quota of throttled replication (KIP-73): bytes recorded
//! per one-second sample over the last [`QUOTA_WINDOW_SAMPLES`] samples;
//! the quota is exceeded while their rate — bytes over the time since the
//! oldest sample began, at least one sample long — is above the limit. A
//! throttled partition is left out of a fetch (follower) or answered empty
//! (leader) while it is exceeded, so throttled replication averages the
//! limit without ever holding back replicas in the ISR.
//!
//! The limit comes from `leader.replication.throttled.rate` /
//! `follower.replication.throttled.rate` (see `strom_config::throttle`);
//! [`UNLIMITED_BYTES_PER_SEC`] switches it off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use strom_config::throttle::UNLIMITED_BYTES_PER_SEC;
use tokio::time::Instant;

/// Samples in the window (Kafka's `replication.quota.window.num`).
pub const QUOTA_WINDOW_SAMPLES: usize = 11;
/// One sample's length (Kafka's `replication.quota.window.size.seconds`).
pub const QUOTA_SAMPLE: Duration = Duration::from_secs(1);

/// One direction's quota (what a leader sends, or a follower fetches).
#[derive(Debug)]
pub struct ReplicationQuota {
    bytes_per_sec: AtomicI64,
    /// (sample start, bytes), oldest first.
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Default for ReplicationQuota {
    fn default() -> Self {
        Self {
            bytes_per_sec: AtomicI64::new(UNLIMITED_BYTES_PER_SEC),
            samples: Mutex::new(VecDeque::new()),
        }
    }
}

impl ReplicationQuota {
    /// Sets the limit in bytes per second.
    pub fn set_rate(&self, bytes_per_sec: i64) {
        self.bytes_per_sec.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// The limit in bytes per second.
    pub fn rate(&self) -> i64 {
        self.bytes_per_sec.load(Ordering::Relaxed)
    }

    /// Counts `bytes` of throttled replication now.
    pub fn record(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let now = Instant::now();
        let mut samples = self.samples.lock();
        match samples.back_mut() {
            Some((start, total)) if now.duration_since(*start) < QUOTA_SAMPLE => {
                *total = total.saturating_add(bytes as u64);
            }
            _ => samples.push_back((now, bytes as u64)),
        }
        while samples.len() > QUOTA_WINDOW_SAMPLES {
            samples.pop_front();
        }
    }

    /// Whether throttled replication must wait now.
    pub fn is_exceeded(&self) -> bool {
        let limit = self.rate();
        if limit == UNLIMITED_BYTES_PER_SEC {
            return false;
        }
        let now = Instant::now();
        let window = QUOTA_SAMPLE * QUOTA_WINDOW_SAMPLES as u32;
        let mut samples = self.samples.lock();
        while samples
            .front()
            .is_some_and(|(start, _)| now.duration_since(*start) >= window)
        {
            samples.pop_front();
        }
        let Some((oldest, _)) = samples.front() else {
            return false;
        };
        let elapsed = now.duration_since(*oldest).max(QUOTA_SAMPLE);
        let bytes: u64 = samples.iter().map(|(_, b)| *b).sum();
        bytes as f64 / elapsed.as_secs_f64() > limit as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_rate_averages_the_limit_over_the_window() {
        let q = ReplicationQuota::default();
        q.record(10_000_000);
        assert!(!q.is_exceeded(), "unlimited by default");
        q.set_rate(1_000_000);
        // 10 MB at 1 MB/s: exceeded until 10 s have passed.
        assert!(q.is_exceeded());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(q.is_exceeded());
        tokio::time::advance(Duration::from_millis(5_100)).await;
        assert!(!q.is_exceeded());
        // Old samples leave the window.
        tokio::time::advance(Duration::from_secs(30)).await;
        q.record(500_000);
        assert!(!q.is_exceeded());
        q.record(600_000);
        assert!(q.is_exceeded());
    }
}
