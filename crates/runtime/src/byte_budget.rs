//! A broker-wide budget of bytes held in memory for clients: taken before
//! the bytes are allocated, given back when they are gone.
//!
//! The fetch path takes room for each partition's read before copying it
//! from the log and keeps it until the response has left the connection's
//! buffer, so the memory held for clients that do not read their sockets is
//! bounded however many of them there are (`strom_server`'s connections and
//! `strom_replication`'s fetch own the rule; this module only counts).
//!
//! Rules:
//!
//! - [`ByteBudget::try_take`] never waits: it grants as many bytes as there
//!   is room for between a minimum (what the caller cannot do without, such
//!   as one whole record batch) and a maximum, or nothing.
//! - The budget is never exceeded, except by one item alone: when nothing is
//!   held, a minimum larger than the whole budget is granted (no more), so
//!   such an item can still pass, one at a time, as Kafka's memory pool
//!   admits any one request.
//! - Whoever found no room waits on [`ByteBudget::subscribe`] (taken before
//!   trying, so a give-back in between is not missed), bounded by its own
//!   deadline.
//! - A [`BytePermit`] gives its bytes back when dropped, and can give back
//!   early what its holder turned out not to need.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// The budget; see the module documentation.
#[derive(Debug)]
pub struct ByteBudget {
    max_bytes: u64,
    held_bytes: Mutex<u64>,
    /// Bumped on every give-back, so waiters can tell room may exist.
    given_back: watch::Sender<u64>,
    shortfalls: AtomicU64,
    waiting: AtomicUsize,
}

impl ByteBudget {
    /// A budget of `max_bytes` with nothing held.
    pub fn new(max_bytes: u64) -> Arc<Self> {
        let (given_back, _) = watch::channel(0);
        Arc::new(Self {
            max_bytes,
            held_bytes: Mutex::new(0),
            given_back,
            shortfalls: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        })
    }

    /// The most bytes held at once (bar one item alone).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        *self.held_bytes.lock()
    }

    /// Times [`ByteBudget::try_take`] found less room than its maximum (or
    /// none), since start.
    pub fn shortfalls(&self) -> u64 {
        self.shortfalls.load(Ordering::Relaxed)
    }

    /// Counts its holder as waiting for room until dropped.
    pub fn waiter(self: &Arc<Self>) -> RoomWaiter {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        RoomWaiter(Arc::clone(self))
    }

    /// Takers waiting for room now ([`ByteBudget::waiter`]).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A receiver that changes whenever bytes are given back. Subscribe
    /// before trying to take, then wait for a change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.given_back.subscribe()
    }

    /// Room for a taker that needs `at_least` while `held` is held: what is
    /// left, or, when nothing is held, at least `at_least` (one item larger
    /// than the budget passes alone).
    fn room(&self, held: u64, at_least: u64) -> u64 {
        if held == 0 {
            self.max_bytes.max(at_least)
        } else {
            self.max_bytes.saturating_sub(held)
        }
    }

    /// Whether [`ByteBudget::try_take`] with this minimum would succeed now.
    pub fn has_room_for(&self, at_least: u64) -> bool {
        let held = *self.held_bytes.lock();
        self.room(held, at_least) >= at_least
    }

    /// As many bytes as there is room for between `at_least` and `at_most`,
    /// or `None`.
    pub fn try_take(self: &Arc<Self>, at_least: u64, at_most: u64) -> Option<BytePermit> {
        let at_most = at_most.max(at_least);
        let mut held = self.held_bytes.lock();
        let room = self.room(*held, at_least);
        if room < at_least {
            drop(held);
            self.shortfalls.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let granted = at_most.min(room);
        *held = held.saturating_add(granted);
        if granted < at_most {
            self.shortfalls.fetch_add(1, Ordering::Relaxed);
        }
        Some(BytePermit {
            budget: Arc::clone(self),
            bytes: granted,
        })
    }

    fn give_back(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        {
            let mut held = self.held_bytes.lock();
            *held = held.saturating_sub(bytes);
        }
        self.given_back.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One taker waiting for room, counted while it lives.
#[derive(Debug)]
pub struct RoomWaiter(Arc<ByteBudget>);

impl Drop for RoomWaiter {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes held against a [`ByteBudget`] until dropped.
#[derive(Debug)]
pub struct BytePermit {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl BytePermit {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Gives back all but `bytes` (nothing when it already holds less).
    pub fn shrink_to(&mut self, bytes: u64) {
        if bytes < self.bytes {
            self.budget.give_back(self.bytes - bytes);
            self.bytes = bytes;
        }
    }
}

impl Drop for BytePermit {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_what_fits_between_the_minimum_and_the_maximum() {
        let budget = ByteBudget::new(100);
        let a = budget.try_take(10, 60).unwrap();
        assert_eq!(a.bytes(), 60);
        let b = budget.try_take(10, 60).unwrap();
        assert_eq!(b.bytes(), 40, "only the room left");
        assert_eq!(budget.shortfalls(), 1, "40 of 60");
        assert!(budget.try_take(1, 1).is_none());
        assert_eq!(budget.shortfalls(), 2);
        assert_eq!(budget.held_bytes(), 100);
        drop(a);
        assert_eq!(budget.held_bytes(), 40);
        assert!(budget.try_take(61, 70).is_none(), "the minimum must fit");
        assert!(!budget.has_room_for(61) && budget.has_room_for(60));
        assert_eq!(budget.try_take(60, 70).unwrap().bytes(), 60);
    }

    #[test]
    fn one_item_larger_than_the_budget_passes_alone() {
        let budget = ByteBudget::new(100);
        let big = budget.try_take(500, 900).unwrap();
        assert_eq!(big.bytes(), 500, "only what it cannot do without");
        assert_eq!(budget.held_bytes(), 500);
        assert!(budget.try_take(1, 1).is_none());
        drop(big);
        assert_eq!(budget.held_bytes(), 0);
        assert_eq!(
            budget.try_take(50, 900).unwrap().bytes(),
            100,
            "else the budget"
        );
    }

    #[test]
    fn shrinking_gives_back_the_rest_and_waiters_hear_of_it() {
        let budget = ByteBudget::new(100);
        let mut rx = budget.subscribe();
        rx.mark_unchanged();
        let mut p = budget.try_take(0, 100).unwrap();
        assert!(!rx.has_changed().unwrap());
        p.shrink_to(30);
        assert_eq!(budget.held_bytes(), 30);
        assert!(rx.has_changed().unwrap());
        p.shrink_to(50);
        assert_eq!(p.bytes(), 30, "never grows");
        drop(p);
        assert_eq!(budget.held_bytes(), 0);
    }
}
