//! The leader's view of a partition's followers, from their fetches: each
//! one's log end offset and when it was last caught up. From it the leader
//! computes the high watermark (the log end offset every in-sync replica
//! has reached), which in-sync followers fell behind for longer than
//! `replica.lag.time.max.ms` (to be dropped from the ISR) and which
//! out-of-sync followers caught up (to be added back), by Kafka's rules:
//!
//! - A fetch at offset `o` means the follower holds everything below `o`:
//!   its log end offset is `o`. An `o` beyond the leader's log end offset
//!   is not progress: nothing is recorded and the fetch gets
//!   OFFSET_OUT_OF_RANGE, as from Kafka (a replica cannot hold what its
//!   leader never had; a fetch claiming so is a bug or a forgery, and
//!   counting it would move the high watermark over records only the
//!   leader has).
//! - Only fetches the server verified as coming from that broker count
//!   (see the Fetch handler: the inter-broker listener and the broker
//!   epoch of the follower's registration).
//! - It was caught up at this fetch if `o` reached the leader's log end
//!   offset now, or at its previous fetch if `o` reached the leader's log
//!   end offset as it was then. A follower is in sync while it was caught
//!   up within the last `replica.lag.time.max.ms`.
//! - When this broker becomes leader (or its epoch changes) what it knew is
//!   void: every follower's log end offset is unknown until it fetches,
//!   ISR members count as caught up now (so they are not dropped at once),
//!   the others as never. An unknown log end offset holds the high
//!   watermark where it is.

use std::collections::HashMap;

/// A log end offset not yet reported.
pub const UNKNOWN_OFFSET: i64 = -1;

/// One follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// Its log end offset (its last fetch offset), or [`UNKNOWN_OFFSET`].
    pub log_end_offset: i64,
    /// When it last fetched (ms), 0 never.
    pub last_fetch_ms: i64,
    /// When it was last caught up with the leader (ms), 0 never.
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at its last fetch.
    last_fetch_leader_end_offset: i64,
}

impl FollowerProgress {
    fn new(last_caught_up_ms: i64) -> Self {
        Self {
            log_end_offset: UNKNOWN_OFFSET,
            last_fetch_ms: 0,
            last_caught_up_ms,
            last_fetch_leader_end_offset: UNKNOWN_OFFSET,
        }
    }
}

/// What a follower's fetch did to its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerFetch {
    /// Recorded.
    Recorded,
    /// Not one of the partition's followers: nothing recorded.
    NotAReplica,
    /// Beyond the leader's log end offset: nothing recorded.
    BeyondLogEnd,
}

/// Every follower of one partition, as its leader sees them.
#[derive(Debug, Default)]
pub struct Followers {
    by_id: HashMap<i32, FollowerProgress>,
}

impl Followers {
    /// Forgets everything: this broker leads `replicas` anew (in-sync
    /// followers count as caught up at `now_ms`).
    pub fn reset(&mut self, leader: i32, replicas: &[i32], isr: &[i32], now_ms: i64) {
        self.by_id = replicas
            .iter()
            .filter(|r| **r != leader)
            .map(|r| {
                let caught_up = if isr.contains(r) { now_ms } else { 0 };
                (*r, FollowerProgress::new(caught_up))
            })
            .collect();
    }

    /// Keeps the followers still among `replicas` (a reassignment changed
    /// them) and starts tracking new ones.
    pub fn retain_replicas(&mut self, leader: i32, replicas: &[i32]) {
        self.by_id.retain(|id, _| replicas.contains(id));
        for r in replicas.iter().filter(|r| **r != leader) {
            self.by_id
                .entry(*r)
                .or_insert_with(|| FollowerProgress::new(0));
        }
    }

    /// A follower fetched at `fetch_offset` while the leader's log ended
    /// at `leader_end_offset`.
    pub fn on_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end_offset: i64,
        now_ms: i64,
    ) -> FollowerFetch {
        let Some(f) = self.by_id.get_mut(&replica) else {
            return FollowerFetch::NotAReplica;
        };
        if fetch_offset > leader_end_offset {
            return FollowerFetch::BeyondLogEnd;
        }
        if fetch_offset >= leader_end_offset {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end_offset
            && f.last_fetch_leader_end_offset != UNKNOWN_OFFSET
        {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_end_offset = leader_end_offset;
        f.last_fetch_ms = now_ms;
        FollowerFetch::Recorded
    }

    /// A follower's progress.
    pub fn get(&self, replica: i32) -> Option<FollowerProgress> {
        self.by_id.get(&replica).copied()
    }

    /// The offset every member of `isr` has reached, the leader's log
    /// ending at `leader_end_offset`. An in-sync follower that has not
    /// fetched yet pins it to [`UNKNOWN_OFFSET`] (the caller keeps the
    /// high watermark where it is).
    pub fn high_watermark(&self, leader: i32, isr: &[i32], leader_end_offset: i64) -> i64 {
        isr.iter()
            .filter(|r| **r != leader)
            .map(|r| {
                self.by_id
                    .get(r)
                    .map_or(UNKNOWN_OFFSET, |f| f.log_end_offset)
            })
            .fold(leader_end_offset, i64::min)
    }

    /// In-sync followers that were not caught up within `max_lag_ms`.
    pub fn lagging(
        &self,
        leader: i32,
        isr: &[i32],
        leader_end_offset: i64,
        now_ms: i64,
        max_lag_ms: i64,
    ) -> Vec<i32> {
        isr.iter()
            .copied()
            .filter(|r| *r != leader)
            .filter(|r| match self.by_id.get(r) {
                Some(f) => {
                    f.log_end_offset != leader_end_offset
                        && now_ms.saturating_sub(f.last_caught_up_ms) > max_lag_ms
                }
                None => true,
            })
            .collect()
    }

    /// Followers outside `isr` that have reached the high watermark and
    /// the start of the current leader epoch, so they may join it, and
    /// still fetch: their last fetch is at most `max_lag_ms` old. (Kafka
    /// expands the ISR only on a follower's fetch; without this, a
    /// follower that stopped fetching at the high watermark, dropped for
    /// lagging, would be taken back at once, and a leader cut off from its
    /// followers would swap one stalled follower for the other forever
    /// instead of shrinking the ISR to itself.)
    pub fn caught_up(
        &self,
        isr: &[i32],
        high_watermark: i64,
        epoch_start_offset: i64,
        now_ms: i64,
        max_lag_ms: i64,
    ) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .by_id
            .iter()
            .filter(|(id, f)| {
                !isr.contains(id)
                    && f.log_end_offset != UNKNOWN_OFFSET
                    && f.log_end_offset >= high_watermark
                    && f.log_end_offset >= epoch_start_offset
                    && now_ms.saturating_sub(f.last_fetch_ms) <= max_lag_ms
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_what_every_in_sync_replica_has() {
        let mut f = Followers::default();
        f.reset(1, &[1, 2, 3], &[1, 2, 3], 1_000);
        // Nobody fetched yet: unknown pins it.
        assert_eq!(f.high_watermark(1, &[1, 2, 3], 10), UNKNOWN_OFFSET);
        assert_eq!(f.on_fetch(2, 7, 10, 1_001), FollowerFetch::Recorded);
        assert_eq!(f.on_fetch(3, 10, 10, 1_001), FollowerFetch::Recorded);
        assert_eq!(f.high_watermark(1, &[1, 2, 3], 10), 7);
        // Out of the ISR, a slow follower no longer holds it back.
        assert_eq!(f.high_watermark(1, &[1, 3], 10), 10);
        // Alone in the ISR, the leader's end is the high watermark.
        assert_eq!(f.high_watermark(1, &[1], 12), 12);
        // Strangers are refused.
        assert_eq!(f.on_fetch(9, 0, 10, 1_002), FollowerFetch::NotAReplica);
    }

    #[test]
    fn a_fetch_beyond_the_leaders_log_end_is_not_progress() {
        let mut f = Followers::default();
        f.reset(1, &[1, 2, 3], &[1, 2, 3], 0);
        assert_eq!(f.on_fetch(2, 4, 10, 100), FollowerFetch::Recorded);
        // Claiming more than the leader has changes nothing: not its log
        // end offset, not when it was caught up, so neither the high
        // watermark nor whether it lags.
        assert_eq!(f.on_fetch(2, 99, 10, 50_000), FollowerFetch::BeyondLogEnd);
        assert_eq!(f.on_fetch(3, 11, 10, 50_000), FollowerFetch::BeyondLogEnd);
        let two = f.get(2).unwrap();
        assert_eq!(
            (two.log_end_offset, two.last_fetch_ms, two.last_caught_up_ms),
            (4, 100, 0)
        );
        assert_eq!(f.get(3).unwrap().log_end_offset, UNKNOWN_OFFSET);
        assert_eq!(f.high_watermark(1, &[1, 2, 3], 10), UNKNOWN_OFFSET);
        assert_eq!(f.lagging(1, &[1, 2, 3], 10, 50_000, 30_000), vec![2, 3]);
        // At the leader's end exactly, it is caught up.
        assert_eq!(f.on_fetch(3, 10, 10, 50_001), FollowerFetch::Recorded);
        assert_eq!(f.get(3).unwrap().last_caught_up_ms, 50_001);
    }

    #[test]
    fn followers_lag_by_time_since_they_were_last_caught_up() {
        let mut f = Followers::default();
        f.reset(1, &[1, 2, 3], &[1, 2, 3], 0);
        // 2 keeps up; 3 fetches but stays behind a growing log.
        f.on_fetch(2, 10, 10, 100);
        f.on_fetch(3, 5, 10, 100);
        f.on_fetch(2, 20, 20, 5_000);
        f.on_fetch(3, 8, 20, 5_000);
        // Caught up at its previous fetch? 8 < 10 (the leader's end then): no.
        assert_eq!(f.get(3).unwrap().last_caught_up_ms, 0);
        assert_eq!(
            f.lagging(1, &[1, 2, 3], 20, 20_000, 30_000),
            Vec::<i32>::new()
        );
        assert_eq!(f.lagging(1, &[1, 2, 3], 20, 40_000, 30_000), vec![3]);
        // Reaching what the leader had at its previous fetch counts as
        // caught up then.
        f.on_fetch(3, 20, 25, 41_000);
        assert_eq!(f.get(3).unwrap().last_caught_up_ms, 5_000);
        f.on_fetch(3, 25, 25, 42_000);
        assert_eq!(f.get(3).unwrap().last_caught_up_ms, 42_000);
        // Now 2, silent since 5 s, is the one behind.
        assert_eq!(f.lagging(1, &[1, 2, 3], 25, 42_000, 30_000), vec![2]);
        // An in-sync follower at the leader's end never lags, however long
        // nothing is written.
        assert!(f.lagging(1, &[1, 3], 25, 500_000, 30_000).is_empty());
    }

    #[test]
    fn out_of_sync_followers_rejoin_once_at_the_high_watermark() {
        let mut f = Followers::default();
        f.reset(1, &[1, 2, 3], &[1, 2], 0);
        assert!(f.caught_up(&[1, 2], 10, 0, 0, 30_000).is_empty());
        f.on_fetch(3, 9, 12, 10);
        assert!(f.caught_up(&[1, 2], 10, 0, 10, 30_000).is_empty());
        f.on_fetch(3, 10, 12, 20);
        assert_eq!(f.caught_up(&[1, 2], 10, 0, 20, 30_000), vec![3]);
        // It must also hold the start of the current epoch.
        assert!(f.caught_up(&[1, 2], 10, 11, 20, 30_000).is_empty());
        // And still fetch: at the high watermark but silent for longer than
        // the lag time, it stays out.
        assert!(f.caught_up(&[1, 2], 10, 0, 30_021, 30_000).is_empty());
        // A new leadership forgets offsets; ISR members count as caught up.
        f.reset(1, &[1, 2, 3], &[1, 2, 3], 500);
        assert_eq!(f.get(3).unwrap().log_end_offset, UNKNOWN_OFFSET);
        assert_eq!(f.get(3).unwrap().last_caught_up_ms, 500);
        // Reassignment keeps known followers and adds new ones.
        f.on_fetch(2, 4, 12, 600);
        f.retain_replicas(1, &[1, 2, 4]);
        assert_eq!(f.get(2).unwrap().log_end_offset, 4);
        assert!(f.get(3).is_none());
        assert_eq!(f.get(4).unwrap().log_end_offset, UNKNOWN_OFFSET);
    }
}
