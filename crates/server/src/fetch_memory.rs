//! The fetched records a connection holds until its client reads them, and
//! what happens when clients that do not read hold the whole budget.
//!
//! A consumer's fetch copies records out of the log under the broker-wide
//! fetch response budget (`queued.max.fetch.response.bytes`; the replica
//! manager's fetch takes the room). The room stays taken, in the
//! connection's [`HeldUntilWritten`], until the response has been written
//! to the socket: memory held for clients that never read is bounded by the
//! budget, however many they are.
//!
//! Holding is not enough on its own: a few connections that ask large
//! fetches and never read would hold the budget until
//! `connections.max.idle.ms` closes them, and every other consumer of the
//! broker would get empty fetches meanwhile. So while the budget turns
//! reads away or cuts them short, or fetches wait for its room
//! ([`run_reclaimer`] watches both), every connection
//! whose unwritten response holds room and whose socket has taken no byte
//! for [`STALLED_WRITE_EVICT_AFTER`] is closed, with a log line naming the
//! limit and `strom_fetch_response_evictions_total` counting it, and its
//! room goes to the clients that read. Progress is a write to the socket
//! taking bytes: a client whose socket keeps taking them (at least every two
//! seconds; a reader of a few tens of KB/s or faster, with Kafka's
//! `socket.send.buffer.bytes`) is never evicted; one that stalls while the
//! budget has room keeps its connection (until `connections.max.idle.ms`). Kafka
//! sends fetched records from the page cache and holds none of them in
//! memory; this is Strom's price for copying them, paid by the clients that
//! do not read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus::IntCounter;
use strom_runtime::byte_budget::{ByteBudget, BytePermit};
use strom_runtime::shutdown;
use tokio::sync::{watch, Notify};

/// How long a connection holding fetch response room may go without its
/// socket taking a byte, while other fetches find no room, before it is
/// closed. Far above any pause of a client that reads (its socket drains
/// the moment it reads again), short enough that the consumers it starves
/// see a hiccup, not an outage.
pub const STALLED_WRITE_EVICT_AFTER: Duration = Duration::from_secs(2);
/// How often the reclaimer looks at the budget's shortfalls.
const RECLAIM_INTERVAL: Duration = Duration::from_millis(100);

/// One connection's standing, shared with the registry.
#[derive(Debug)]
struct Holder {
    peer: SocketAddr,
    permits: Mutex<Vec<BytePermit>>,
    held_bytes: AtomicU64,
    write: Mutex<WriteState>,
    /// Wakes the connection's write when `write.evicted` is set.
    evict: Notify,
}

/// Where the connection's current write of responses stands; the
/// reclaimer decides under this lock, so it never evicts a write that has
/// ended.
#[derive(Debug)]
struct WriteState {
    /// A write is under way.
    writing: bool,
    /// When the socket last took bytes (or the write began).
    last_progress: Instant,
    /// The reclaimer closed this write.
    evicted: bool,
}

/// The room a connection's unwritten responses hold; cloned into each
/// request's context. The connection owns the registration: when it drops
/// its [`HeldUntilWritten`] the room is given back.
#[derive(Debug, Clone)]
pub struct HeldUntilWritten(Arc<Holder>);

impl HeldUntilWritten {
    /// Keeps `permit` until the responses encoded so far are written.
    pub fn hold(&self, permit: BytePermit) {
        self.0
            .held_bytes
            .fetch_add(permit.bytes(), Ordering::Relaxed);
        self.0.permits.lock().push(permit);
    }

    /// The responses are written: gives everything held back.
    pub fn release(&self) {
        let released = std::mem::take(&mut *self.0.permits.lock());
        self.0.held_bytes.store(0, Ordering::Relaxed);
        drop(released);
    }

    /// A write of responses begins.
    pub fn write_started(&self) {
        let mut w = self.0.write.lock();
        w.writing = true;
        w.evicted = false;
        w.last_progress = Instant::now();
    }

    /// The socket took bytes.
    pub fn progressed(&self) {
        self.0.write.lock().last_progress = Instant::now();
    }

    /// The write is over (done or failed).
    pub fn write_ended(&self) {
        self.0.write.lock().writing = false;
    }

    /// Resolves when the reclaimer has closed the write under way (a wake-up
    /// left over from an earlier write is ignored).
    pub async fn evicted(&self) {
        loop {
            self.0.evict.notified().await;
            let w = self.0.write.lock();
            if w.writing && w.evicted {
                return;
            }
        }
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.0.held_bytes.load(Ordering::Relaxed)
    }
}

/// Every connection's [`HeldUntilWritten`], for the reclaimer.
#[derive(Debug, Default)]
pub struct ResponseHolders {
    holders: Mutex<HashMap<u64, Arc<Holder>>>,
    next_id: AtomicU64,
}

/// A connection's place in [`ResponseHolders`]; leaving it gives back what
/// the connection held.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    holders: Arc<ResponseHolders>,
    held: HeldUntilWritten,
}

impl Registration {
    /// The connection's holder.
    pub fn held(&self) -> &HeldUntilWritten {
        &self.held
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.holders.holders.lock().remove(&self.id);
        self.held.release();
    }
}

impl ResponseHolders {
    /// A new connection from `peer`.
    pub fn register(self: &Arc<Self>, peer: SocketAddr) -> Registration {
        let holder = Arc::new(Holder {
            peer,
            permits: Mutex::new(Vec::new()),
            held_bytes: AtomicU64::new(0),
            write: Mutex::new(WriteState {
                writing: false,
                last_progress: Instant::now(),
                evicted: false,
            }),
            evict: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.holders.lock().insert(id, Arc::clone(&holder));
        Registration {
            id,
            holders: Arc::clone(self),
            held: HeldUntilWritten(holder),
        }
    }

    /// Closes every connection holding room whose socket has taken nothing
    /// for `stalled_for` as of `now`; how many.
    fn evict_stalled(&self, now: Instant, stalled_for: Duration) -> usize {
        let holders: Vec<Arc<Holder>> = self.holders.lock().values().cloned().collect();
        let mut closed = 0;
        for h in holders {
            let held_bytes = h.held_bytes.load(Ordering::Relaxed);
            let stalled_ms = {
                let mut w = h.write.lock();
                let stalled = now.saturating_duration_since(w.last_progress);
                if !w.writing || w.evicted || held_bytes == 0 || stalled < stalled_for {
                    continue;
                }
                w.evicted = true;
                stalled.as_millis() as u64
            };
            tracing::info!(
                peer = %h.peer,
                held_bytes,
                stalled_ms,
                "closing connection: its client has not read its fetch response while \
                 queued.max.fetch.response.bytes turns other fetches away"
            );
            h.evict.notify_one();
            closed += 1;
        }
        closed
    }
}

/// While `budget` turns reads away, closes the connections that hold its
/// room without reading (see the module documentation).
pub async fn run_reclaimer(
    budget: Arc<ByteBudget>,
    holders: Arc<ResponseHolders>,
    evictions: IntCounter,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut seen = budget.shortfalls();
    let mut tick = tokio::time::interval(RECLAIM_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown::signalled(&mut shutdown) => return,
            _ = tick.tick() => {}
        }
        // Under pressure: a read was cut short since the last look, or a
        // fetch is waiting for room.
        let shortfalls = budget.shortfalls();
        if shortfalls == seen && budget.waiting() == 0 {
            continue;
        }
        seen = shortfalls;
        let closed = holders.evict_stalled(Instant::now(), STALLED_WRITE_EVICT_AFTER);
        evictions.inc_by(closed as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stalled_holders_of_room_are_evicted_and_leaving_gives_the_room_back() {
        let budget = ByteBudget::new(100);
        let holders = Arc::new(ResponseHolders::default());
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let (stalled, reading, idle) = (
            holders.register(peer),
            holders.register(peer),
            holders.register(peer),
        );
        stalled.held().hold(budget.try_take(10, 10).unwrap());
        reading.held().hold(budget.try_take(10, 10).unwrap());
        for r in [&stalled, &reading] {
            r.held().write_started();
        }
        // A connection that holds nothing is never evicted.
        idle.held().write_started();
        let later = Instant::now() + Duration::from_secs(3);
        reading.held().0.write.lock().last_progress = later;
        assert_eq!(holders.evict_stalled(later, Duration::from_secs(2)), 1);
        assert!(stalled.held().0.write.lock().evicted);
        assert!(!reading.held().0.write.lock().evicted);
        assert_eq!(
            holders.evict_stalled(later, Duration::from_secs(2)),
            0,
            "once"
        );
        // A write that ended is never evicted; a new write starts clean.
        stalled.held().write_ended();
        stalled.held().write_started();
        assert!(!stalled.held().0.write.lock().evicted);
        stalled.held().write_ended();
        reading.held().write_ended();
        let much_later = later + Duration::from_secs(10);
        assert_eq!(holders.evict_stalled(much_later, Duration::from_secs(2)), 0);
        assert_eq!(budget.held_bytes(), 20);
        drop(stalled);
        assert_eq!(budget.held_bytes(), 10);
        reading.held().release();
        assert_eq!(budget.held_bytes(), 0);
        assert_eq!(holders.holders.lock().len(), 2);
    }
}
