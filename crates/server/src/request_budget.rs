//! The broker-wide budget for requests read but not yet handled: Kafka's
//! `queued.max.requests` (a count) and `queued.max.request.bytes` (bytes,
//! unlimited by default), one budget over every client connection.
//!
//! The rule, kept by `connection.rs`:
//!
//! - A connection reads a frame's 4-byte size prefix without the budget (a
//!   fixed 4 bytes per connection, like Kafka's size buffer). Before it reads
//!   a single byte of the body it takes the frame's whole size (prefix
//!   included) and one request from the budget, and it reads nothing past
//!   the end of that frame: pipelined requests wait in the kernel's buffers,
//!   not in the broker's. Where the budget has no room the connection waits,
//!   not reading its socket, and resumes as soon as room is given back.
//! - The frame's share is given back when its handling ends, or earlier when
//!   the request starts waiting on other clients (a purgatory: acks=all, a
//!   fetch's long poll, a group's rebalance; `strom_runtime::parking`). A
//!   connection holds at most one frame's share, and only while reading or
//!   handling that frame, so whatever holds the budget can always finish
//!   without another connection's request: no deadlock.
//! - Room is taken first fit, not first come: a small request (Metadata,
//!   Heartbeat) goes ahead of a large frame still waiting for room, as
//!   Kafka's memory pool lets whichever connection polls first allocate. The
//!   budget is never exceeded (Kafka's pool is not strict and may overshoot
//!   by one frame); Kafka's start-up check that the bytes budget is at least
//!   `socket.request.max.bytes` (done in strom-config) keeps every frame
//!   admissible. A frame larger than the whole budget (only possible if that
//!   check is bypassed) is admitted when nothing else is held.
//!
//! `strom_request_queue_bytes` and `strom_request_queue_requests` show what
//! is held; `strom_request_queue_waits_total` counts the times a connection
//! had to wait.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::Notify;

/// What the budget allows at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBudgetLimits {
    /// `queued.max.requests`.
    pub max_requests: usize,
    /// `queued.max.request.bytes`; `None` is unlimited.
    pub max_bytes: Option<u64>,
}

/// The metrics the budget keeps up to date.
#[derive(Debug, Clone)]
pub struct RequestBudgetMetrics {
    /// Bytes held.
    pub bytes: IntGauge,
    /// Requests held.
    pub requests: IntGauge,
    /// Times a connection waited for room.
    pub waits: IntCounter,
}

#[derive(Debug, Default)]
struct Held {
    bytes: u64,
    requests: usize,
}

/// The broker-wide budget; see the module documentation.
#[derive(Debug)]
pub struct RequestBudget {
    limits: RequestBudgetLimits,
    held: Mutex<Held>,
    room_given_back: Notify,
    metrics: RequestBudgetMetrics,
}

impl RequestBudget {
    /// A budget with nothing held.
    pub fn new(limits: RequestBudgetLimits, metrics: RequestBudgetMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            held: Mutex::new(Held::default()),
            room_given_back: Notify::new(),
            metrics,
        })
    }

    /// What the budget allows.
    pub fn limits(&self) -> RequestBudgetLimits {
        self.limits
    }

    /// One request of `frame_bytes` if there is room now.
    pub fn try_acquire(self: &Arc<Self>, frame_bytes: u64) -> Option<RequestPermit> {
        let mut held = self.held.lock();
        let requests_fit = held.requests < self.limits.max_requests.max(1);
        let bytes_fit = match self.limits.max_bytes {
            None => true,
            Some(max) => held.bytes == 0 || held.bytes.saturating_add(frame_bytes) <= max,
        };
        if !(requests_fit && bytes_fit) {
            return None;
        }
        held.bytes = held.bytes.saturating_add(frame_bytes);
        held.requests += 1;
        self.metrics.bytes.set(as_i64(held.bytes));
        self.metrics.requests.set(as_i64(held.requests));
        Some(RequestPermit {
            budget: Arc::clone(self),
            bytes: frame_bytes,
        })
    }

    /// One request of `frame_bytes`, waiting for room if there is none.
    pub async fn acquire(self: &Arc<Self>, frame_bytes: u64, peer: SocketAddr) -> RequestPermit {
        if let Some(permit) = self.try_acquire(frame_bytes) {
            return permit;
        }
        self.metrics.waits.inc();
        tracing::debug!(
            %peer,
            frame_bytes,
            queued_max_requests = self.limits.max_requests,
            queued_max_request_bytes = self.limits.max_bytes,
            "request budget full: not reading this connection until room is given back"
        );
        loop {
            let room = self.room_given_back.notified();
            tokio::pin!(room);
            // Registered before looking, so a release in between wakes us.
            room.as_mut().enable();
            if let Some(permit) = self.try_acquire(frame_bytes) {
                return permit;
            }
            room.await;
        }
    }

    fn release(&self, frame_bytes: u64) {
        {
            let mut held = self.held.lock();
            held.bytes = held.bytes.saturating_sub(frame_bytes);
            held.requests = held.requests.saturating_sub(1);
            self.metrics.bytes.set(as_i64(held.bytes));
            self.metrics.requests.set(as_i64(held.requests));
        }
        self.room_given_back.notify_waiters();
    }
}

/// One request's share of the budget, given back on drop.
#[derive(Debug)]
pub struct RequestPermit {
    budget: Arc<RequestBudget>,
    bytes: u64,
}

impl RequestPermit {
    /// Bytes this share holds.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

fn as_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_requests: usize, max_bytes: Option<u64>) -> Arc<RequestBudget> {
        RequestBudget::new(
            RequestBudgetLimits {
                max_requests,
                max_bytes,
            },
            RequestBudgetMetrics {
                bytes: IntGauge::new("b", "b").unwrap(),
                requests: IntGauge::new("r", "r").unwrap(),
                waits: IntCounter::new("w", "w").unwrap(),
            },
        )
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn bytes_and_requests_are_both_bounded() {
        let b = budget(3, Some(100));
        let first = b.try_acquire(60).unwrap();
        assert!(b.try_acquire(50).is_none(), "110 bytes > 100");
        let second = b.try_acquire(40).unwrap();
        assert_eq!(b.metrics.bytes.get(), 100);
        drop(first);
        let third = b.try_acquire(1).unwrap();
        let _fourth = b.try_acquire(1).unwrap();
        assert!(b.try_acquire(1).is_none(), "3 requests held");
        drop((second, third));
        assert_eq!(b.metrics.requests.get(), 1);
        assert_eq!(b.metrics.bytes.get(), 1);
    }

    #[test]
    fn a_frame_larger_than_the_budget_goes_alone() {
        let b = budget(10, Some(100));
        let big = b.try_acquire(500).unwrap();
        assert!(b.try_acquire(1).is_none());
        drop(big);
        assert!(b.try_acquire(1).is_some());
    }

    #[tokio::test]
    async fn a_waiting_connection_resumes_when_room_is_given_back() {
        let b = budget(10, Some(100));
        let held = b.try_acquire(90).unwrap();
        let waiter = tokio::spawn({
            let b = Arc::clone(&b);
            async move { b.acquire(50, peer()).await.bytes() }
        });
        for _ in 0..1000 {
            if b.metrics.waits.get() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(b.metrics.waits.get(), 1);
        assert!(!waiter.is_finished());
        // A small request fits beside the held 90 while the 50 still waits.
        drop(b.acquire(10, peer()).await);
        drop(held);
        assert_eq!(waiter.await.unwrap(), 50);
        assert_eq!(b.metrics.bytes.get(), 0);
    }
}
