//! The two clocks of the replication layer.
//!
//! - [`now_ms`], wall-clock milliseconds since the Unix epoch: record
//!   timestamps (`LogAppendTime`), segment times, retention — what Kafka
//!   measures with `time.milliseconds()` and users compare with their own
//!   clocks.
//! - [`lag_clock_ms`], monotonic milliseconds: how long a follower has been
//!   behind (`replica.lag.time.max.ms`). A wall-clock step (NTP, a skewed
//!   host) must neither drop a healthy follower from the ISR nor keep a
//!   dead one in it. It reads tokio's clock, so a test on a paused runtime
//!   (the deterministic simulation) runs replica lag on virtual time.

use std::sync::OnceLock;

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Monotonic milliseconds since this process first asked, plus one (0
/// means "never" in follower progress). Only differences mean anything.
pub fn lag_clock_ms() -> i64 {
    static ORIGIN: OnceLock<tokio::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    let elapsed = tokio::time::Instant::now().saturating_duration_since(origin);
    i64::try_from(elapsed.as_millis())
        .unwrap_or(i64::MAX - 1)
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_clock_never_goes_back_and_starts_above_never() {
        let a = lag_clock_ms();
        let b = lag_clock_ms();
        assert!(a >= 1);
        assert!(b >= a);
    }
}
