//! The broker's two clocks.
//!
//! - [`now_ms`], wall-clock milliseconds since the Unix epoch: record
//!   timestamps (`LogAppendTime`), segment times, retention, offset commit
//!   and expiry times — what Kafka measures with `time.milliseconds()` and
//!   users compare with their own clocks.
//! - [`lag_clock_ms`], monotonic milliseconds: how long something has been
//!   behind or quiet (`replica.lag.time.max.ms`). A wall-clock step (NTP, a
//!   skewed host) must neither drop a healthy follower from the ISR nor
//!   keep a dead one in it. It reads tokio's clock, so on a paused runtime
//!   it runs on virtual time.
//!
//! A simulation on a paused runtime calls [`use_virtual_wall_clock`]: from
//! then on the wall clock too is a fixed epoch plus tokio's (virtual)
//! elapsed time, so every timestamp, expiry and retention decision follows
//! the simulated time. Brokers never call it: their wall clock is the
//! system's.

use std::sync::OnceLock;

use parking_lot::Mutex;
use tokio::time::Instant;

/// The virtual wall clock, when one is in use: (epoch ms, tokio instant it
/// counts from).
static VIRTUAL_WALL_CLOCK: Mutex<Option<(i64, Instant)>> = Mutex::new(None);

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    if let Some((epoch_ms, origin)) = *VIRTUAL_WALL_CLOCK.lock() {
        let elapsed = Instant::now().saturating_duration_since(origin);
        return epoch_ms.saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Puts the wall clock on tokio's clock from now on, starting at
/// `epoch_ms` (for simulations on a paused runtime; call it from within
/// that runtime, again for each run).
pub fn use_virtual_wall_clock(epoch_ms: i64) {
    *VIRTUAL_WALL_CLOCK.lock() = Some((epoch_ms, Instant::now()));
}

/// Monotonic milliseconds since this process first asked, plus one (0
/// means "never" to callers that keep such times). Only differences mean
/// anything.
pub fn lag_clock_ms() -> i64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let elapsed = Instant::now().saturating_duration_since(origin);
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

    #[tokio::test(start_paused = true)]
    async fn a_virtual_wall_clock_follows_tokio_time() {
        use_virtual_wall_clock(1_000_000);
        assert_eq!(now_ms(), 1_000_000);
        tokio::time::sleep(std::time::Duration::from_secs(90)).await;
        assert_eq!(now_ms(), 1_090_000);
        *VIRTUAL_WALL_CLOCK.lock() = None;
        assert!(now_ms() > 1_600_000_000_000, "back on the system clock");
    }
}
