//! Keyed deadlines for the group state machine: at most one live deadline
//! per key (a member's session, a group's join or sync phase), so a member
//! that heartbeats a thousand times a second costs one timer, not a
//! thousand.
//!
//! Arming a key that already fires earlier does nothing: when that earlier
//! deadline comes, the owner looks at its state (the member's current
//! session deadline, say) and arms the key again for the later time.
//! Arming earlier replaces the live deadline; the superseded heap entry is
//! skipped when it surfaces, and the heap is rebuilt whenever superseded
//! entries outnumber live ones, so its size stays proportional to the
//! number of keys.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Superseded entries tolerated before the heap is rebuilt.
const SUPERSEDED_SLACK: usize = 64;

/// Deadlines by key.
#[derive(Debug)]
pub(crate) struct KeyedTimers<K: Ord + Hash + Clone> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
    live: HashMap<K, Instant>,
}

impl<K: Ord + Hash + Clone> Default for KeyedTimers<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> KeyedTimers<K> {
    /// Makes `key` fire at `at` unless it already fires at or before then.
    pub(crate) fn arm(&mut self, key: K, at: Instant) {
        if self.live.get(&key).is_some_and(|live| *live <= at) {
            return;
        }
        self.live.insert(key.clone(), at);
        self.heap.push(Reverse((at, key)));
        if self.heap.len() > 2 * self.live.len() + SUPERSEDED_SLACK {
            self.heap = self
                .live
                .iter()
                .map(|(k, at)| Reverse((*at, k.clone())))
                .collect();
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_superseded();
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// A key whose deadline has passed at `now`, disarmed.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        self.drop_superseded();
        if self.heap.peek().is_none_or(|Reverse((at, _))| *at > now) {
            return None;
        }
        let Reverse((_, key)) = self.heap.pop()?;
        self.live.remove(&key);
        Some(key)
    }

    /// Live keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Heap entries, live or superseded.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.heap.len()
    }

    fn drop_superseded(&mut self) {
        while let Some(Reverse((at, key))) = self.heap.peek() {
            if self.live.get(key) == Some(at) {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_live_deadline_per_key_and_the_earliest_wins() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut timers = KeyedTimers::default();
        timers.arm("a", at(10));
        for s in 11..1_000 {
            timers.arm("a", at(s)); // later: no new entry
        }
        assert_eq!(timers.entries(), 1);
        timers.arm("b", at(5));
        timers.arm("a", at(3)); // earlier: replaces
        assert_eq!(timers.len(), 2);
        assert_eq!(timers.next_deadline(), Some(at(3)));
        assert_eq!(timers.pop_due(at(2)), None);
        assert_eq!(timers.pop_due(at(4)), Some("a"));
        assert_eq!(timers.pop_due(at(4)), None);
        assert_eq!(timers.pop_due(at(20)), Some("b"));
        // The superseded entry for "a" at 10 s never fires.
        assert_eq!(timers.pop_due(at(20)), None);
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn superseded_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut timers = KeyedTimers::default();
        for i in 0..10_000u64 {
            // Each arm is earlier than the last: always a new entry.
            timers.arm(i % 3, t0 + Duration::from_secs(1_000_000 - i));
        }
        assert_eq!(timers.len(), 3);
        assert!(timers.entries() <= 2 * 3 + SUPERSEDED_SLACK + 1);
    }
}
