//! The broker's side of its lifecycle with the controller, as in KRaft:
//! register (fenced), heartbeat until the controller unfences it (once it
//! has applied the metadata up to its registration), keep heartbeating,
//! and on shutdown ask the controller to move its leadership away first.
//!
//! Once shutting down, every heartbeat says so: the controller keeps the
//! broker fenced instead of unfencing it again between its controlled
//! shutdown (which may come early, from a Kubernetes preStop hook) and its
//! exit.
//!
//! A broker that cannot heartbeat for `broker.session.timeout.ms` fences
//! itself: the controller will have fenced it and handed its partitions to
//! others, so it must stop acting as their leader (produce requests get
//! NOT_LEADER_OR_FOLLOWER) until a heartbeat gets through again.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_controller::ops::BrokerHeartbeat;
use strom_controller::{ApiError, Controller};
use strom_metadata::MetadataImage;
use tokio::sync::watch;
use tokio::time::Instant;

/// This broker's standing with the controller.
pub struct BrokerLifecycle {
    broker_id: i32,
    broker_epoch: AtomicI64,
    /// Fenced: by the controller, or by itself after losing its session.
    fenced: AtomicBool,
    /// Shutdown has begun: no longer ready, heartbeats ask to shut down.
    shutting_down: AtomicBool,
    /// Was ready once since it started: back in the ISR of its partitions.
    caught_up: AtomicBool,
    heartbeat_interval: Duration,
    session_timeout: Duration,
    /// Lists the replicas whose logs failed, once the logs are loaded.
    offline_replicas: std::sync::OnceLock<OfflineReplicas>,
}

/// Lists a broker's replicas whose logs failed: (topic id, partition).
pub type OfflineReplicas = Box<dyn Fn() -> Vec<(uuid::Uuid, i32)> + Send + Sync>;

impl std::fmt::Debug for BrokerLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerLifecycle")
            .field("broker_id", &self.broker_id)
            .field("broker_epoch", &self.broker_epoch())
            .field("fenced", &self.is_fenced())
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}

impl BrokerLifecycle {
    /// A broker not yet registered (fenced).
    pub fn new(broker_id: i32, heartbeat_interval: Duration, session_timeout: Duration) -> Self {
        Self {
            broker_id,
            broker_epoch: AtomicI64::new(-1),
            fenced: AtomicBool::new(true),
            shutting_down: AtomicBool::new(false),
            caught_up: AtomicBool::new(false),
            heartbeat_interval,
            session_timeout,
            offline_replicas: std::sync::OnceLock::new(),
        }
    }

    /// From now on every heartbeat reports the replicas `offline` lists,
    /// so the controller moves their leadership and ISR membership away.
    pub fn report_offline_replicas(&self, offline: OfflineReplicas) {
        let _ = self.offline_replicas.set(offline);
    }

    /// The broker epoch (−1 before registration).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    /// Whether this broker must not act as a leader now.
    pub fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Marks shutdown as begun (readiness turns false).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Whether this broker was ready once since it started.
    pub fn has_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Records that this broker was ready (see [`crate::readiness`]).
    pub fn caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    /// Records the registration's epoch.
    pub fn registered(&self, broker_epoch: i64) {
        self.broker_epoch.store(broker_epoch, Ordering::Release);
    }

    async fn heartbeat(
        &self,
        controller: &Controller,
        applied_offset: i64,
        want_shutdown: bool,
    ) -> Result<strom_controller::ops::HeartbeatReply, ApiError> {
        controller
            .heartbeat(BrokerHeartbeat {
                broker_id: self.broker_id,
                broker_epoch: self.broker_epoch(),
                applied_offset,
                want_shutdown,
                offline_replicas: self.offline_replicas.get().map(|f| f()).unwrap_or_default(),
            })
            .await
    }

    /// Heartbeats every `broker.heartbeat.interval.ms` until `shutdown`,
    /// tracking whether this broker is fenced.
    pub async fn run_heartbeats(
        self: Arc<Self>,
        controller: Arc<Controller>,
        images: watch::Receiver<Arc<MetadataImage>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut last_ok = Instant::now();
        loop {
            let applied = images.borrow().offset;
            let attempt = tokio::time::timeout(
                self.session_timeout,
                self.heartbeat(&controller, applied, self.is_shutting_down()),
            )
            .await;
            match attempt {
                Ok(Ok(reply)) => {
                    last_ok = Instant::now();
                    let fenced = reply.fenced || self.is_shutting_down();
                    let was = self.fenced.swap(fenced, Ordering::AcqRel);
                    if was != fenced {
                        tracing::info!(fenced, "the controller changed this broker's fencing");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "broker heartbeat refused"),
                Err(_) => tracing::warn!("broker heartbeat timed out"),
            }
            if last_ok.elapsed() >= self.session_timeout
                && !self.fenced.swap(true, Ordering::AcqRel)
            {
                tracing::warn!("no heartbeat reached the controller for a whole session: fencing this broker until one does");
            }
            // Heartbeat at once while fenced and caught up, to be unfenced
            // without waiting a whole interval.
            let pause = if self.is_fenced() {
                self.heartbeat_interval.min(Duration::from_millis(100))
            } else {
                self.heartbeat_interval
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => if *shutdown.borrow() { return },
            }
        }
    }

    /// Asks the controller to move this broker's leadership away, waiting
    /// until it says the broker may stop, at most one session timeout (after
    /// which the controller fences the broker anyway). True when it did.
    pub async fn controlled_shutdown(&self, controller: &Controller, applied_offset: i64) -> bool {
        self.begin_shutdown();
        let deadline = Instant::now() + self.session_timeout;
        while Instant::now() < deadline {
            match tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                self.heartbeat(controller, applied_offset, true),
            )
            .await
            {
                Ok(Ok(reply)) if reply.should_shutdown => {
                    self.fenced.store(true, Ordering::Release);
                    tracing::info!(
                        "controlled shutdown: the controller moved this broker's leadership away"
                    );
                    return true;
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "controlled shutdown refused"),
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!("controlled shutdown did not complete; stopping anyway");
        false
    }
}
