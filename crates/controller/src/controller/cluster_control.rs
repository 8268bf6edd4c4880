//! Brokers in the metadata (Kafka's `ClusterControlManager`): registration
//! (a broker registers fenced; a restarted one first loses its
//! leadership), heartbeats (unfencing once the broker has applied the
//! metadata up to its registration, a controlled shutdown, replicas whose
//! logs failed), fencing brokers whose session expired, and the blocks of
//! producer ids handed to brokers (Kafka's `ProducerIdControlManager`).
//! Sessions live only on the active controller, in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::{BrokerRegistration, MetadataRecord};
use strom_protocol::ErrorCode;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::{CommitOffset, Controller, CONTROLLER_REQUEST_TIMEOUT};
use crate::election;
use crate::error::ApiError;
use crate::isr_change::check_broker_epoch;
use crate::ops::{BrokerHeartbeat, ControllerOp, HeartbeatReply};

/// Producer ids per block handed to a broker (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// When each broker last heartbeat, as the leader saw it. Sessions restart
/// whenever this node becomes leader (a new leader gives every broker a
/// full session before fencing it).
#[derive(Debug, Default)]
pub(super) struct BrokerSessions {
    term: u64,
    last_heartbeat: HashMap<i32, Instant>,
}

impl Controller {
    /// Registers (or re-registers after a restart) a broker, fenced until
    /// its first heartbeat shows it has caught up with the metadata; returns
    /// its broker epoch.
    pub async fn register_broker(
        &self,
        registration: BrokerRegistration,
    ) -> Result<CommitOffset, ApiError> {
        let op = ControllerOp::RegisterBroker(registration);
        self.route_as(
            op,
            CONTROLLER_REQUEST_TIMEOUT,
            answer!(RegisterBroker(r) => r),
        )
        .await
    }

    /// BrokerHeartbeat: renews the broker's session; unfences it once it has
    /// applied the metadata up to its registration; when it wants to shut
    /// down, fences it and moves its leadership away; moves leadership and
    /// ISR membership off the replicas it reports offline.
    pub async fn heartbeat(&self, heartbeat: BrokerHeartbeat) -> Result<HeartbeatReply, ApiError> {
        let op = ControllerOp::BrokerHeartbeat(heartbeat);
        self.route_as(
            op,
            CONTROLLER_REQUEST_TIMEOUT,
            answer!(BrokerHeartbeat(r) => r),
        )
        .await
    }

    /// Hands `broker_id` the next block of producer ids; returns its first
    /// id. Blocks are recorded in the metadata log, so no id is given out
    /// twice, across restarts and controller changes too.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<i64, ApiError> {
        let op = ControllerOp::AllocateProducerIds {
            broker_id,
            broker_epoch,
        };
        self.route_as(
            op,
            CONTROLLER_REQUEST_TIMEOUT,
            answer!(AllocateProducerIds(r) => r),
        )
        .await
    }

    fn session_alive(&self, broker_id: i32) -> bool {
        let sessions = self.sessions.lock();
        sessions
            .last_heartbeat
            .get(&broker_id)
            .is_some_and(|t| t.elapsed() < self.config.broker_session_timeout)
    }

    pub(super) async fn register_broker_here(
        &self,
        mut registration: BrokerRegistration,
    ) -> Result<CommitOffset, ApiError> {
        let _guard = self.write_lock.lock().await;
        let image = self.current_image().await.map_err(|e| e.to_api_error())?;
        let id = registration.broker_id;
        if let Some(existing) = image.broker(id) {
            if existing.incarnation_id != registration.incarnation_id
                && !existing.fenced
                && self.session_alive(id)
            {
                return Err(ApiError::new(
                    ErrorCode::DuplicateBrokerRegistration,
                    format!("Another broker is registered with that broker id: {id}"),
                ));
            }
        }
        registration.fenced = true;
        let mut records = Vec::new();
        if image.broker(id).is_some_and(|b| !b.fenced) {
            // A restarted broker leads nothing until it has caught up.
            records.extend(election::on_broker_leaving(
                &image,
                id,
                self.config.unclean_leader_election_enable,
            ));
        }
        records.insert(0, MetadataRecord::RegisterBroker(registration));
        let offset = self.commit(records).await.map_err(|e| e.to_api_error())?;
        self.sessions
            .lock()
            .last_heartbeat
            .insert(id, Instant::now());
        tracing::info!(broker = id, broker_epoch = offset, "registered broker");
        Ok(offset)
    }

    pub(super) async fn heartbeat_here(
        &self,
        hb: BrokerHeartbeat,
    ) -> Result<HeartbeatReply, ApiError> {
        let _guard = self.write_lock.lock().await;
        let image = self.current_image().await.map_err(|e| e.to_api_error())?;
        let registration = check_broker_epoch(
            &image,
            hb.broker_id,
            hb.broker_epoch,
            ErrorCode::BrokerIdNotRegistered,
        )?;
        self.sessions
            .lock()
            .last_heartbeat
            .insert(hb.broker_id, Instant::now());
        if hb.want_shutdown {
            if !registration.fenced {
                let mut records = vec![MetadataRecord::BrokerFencing {
                    broker_id: hb.broker_id,
                    fenced: true,
                }];
                records.extend(election::on_broker_leaving(
                    &image,
                    hb.broker_id,
                    self.config.unclean_leader_election_enable,
                ));
                self.commit(records).await.map_err(|e| e.to_api_error())?;
                tracing::info!(
                    broker = hb.broker_id,
                    "broker is shutting down: moved its leadership away"
                );
            }
            return Ok(HeartbeatReply {
                fenced: true,
                should_shutdown: true,
            });
        }
        if registration.fenced && hb.applied_offset >= registration.broker_epoch {
            let mut records = vec![MetadataRecord::BrokerFencing {
                broker_id: hb.broker_id,
                fenced: false,
            }];
            records.extend(election::on_broker_joining(&image, hb.broker_id));
            self.commit(records).await.map_err(|e| e.to_api_error())?;
            tracing::info!(
                broker = hb.broker_id,
                "unfenced broker: it has caught up with the metadata"
            );
            return Ok(HeartbeatReply {
                fenced: false,
                should_shutdown: false,
            });
        }
        if !hb.offline_replicas.is_empty() {
            let offline: std::collections::HashSet<(Uuid, i32)> =
                hb.offline_replicas.iter().copied().collect();
            let records = election::on_replicas_offline(
                &image,
                hb.broker_id,
                &offline,
                self.config.unclean_leader_election_enable,
            );
            if !records.is_empty() {
                let moved = records.len();
                self.commit(records).await.map_err(|e| e.to_api_error())?;
                tracing::warn!(
                    broker = hb.broker_id,
                    partitions = moved,
                    "the broker's logs of some partitions failed: moved their leadership and ISR membership away"
                );
            }
        }
        Ok(HeartbeatReply {
            fenced: registration.fenced,
            should_shutdown: false,
        })
    }

    /// On the leader, fences brokers whose session expired and moves their
    /// leadership away; runs until `shutdown`.
    pub async fn run_broker_sessions(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => if *shutdown.borrow() { return },
            }
            if !self.quorum.is_leader() {
                continue;
            }
            let term = self.quorum.term();
            let image = self.image();
            let expired: Vec<i32> = {
                let mut sessions = self.sessions.lock();
                if sessions.term != term {
                    // Newly leader: every broker gets a full session.
                    sessions.term = term;
                    let now = Instant::now();
                    sessions.last_heartbeat = image.brokers().map(|b| (b.broker_id, now)).collect();
                }
                image
                    .unfenced_brokers()
                    .map(|b| b.broker_id)
                    .filter(|id| {
                        sessions
                            .last_heartbeat
                            .get(id)
                            .is_none_or(|t| t.elapsed() >= self.config.broker_session_timeout)
                    })
                    .collect()
            };
            for broker_id in expired {
                let _guard = self.write_lock.lock().await;
                let Ok(image) = self.current_image().await else {
                    break;
                };
                if image.broker(broker_id).is_none_or(|b| b.fenced) {
                    continue;
                }
                let mut records = vec![MetadataRecord::BrokerFencing {
                    broker_id,
                    fenced: true,
                }];
                records.extend(election::on_broker_leaving(
                    &image,
                    broker_id,
                    self.config.unclean_leader_election_enable,
                ));
                match self.commit(records).await {
                    Ok(_) => tracing::warn!(
                        broker = broker_id,
                        "fenced a broker whose session expired; its partitions have new leaders"
                    ),
                    Err(e) => {
                        tracing::warn!(broker = broker_id, error = %e, "cannot fence a broker")
                    }
                }
            }
        }
    }

    pub(super) async fn allocate_producer_ids_here(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<i64, ApiError> {
        let _guard = self.write_lock.lock().await;
        let first = self
            .current_image()
            .await
            .map_err(|e| e.to_api_error())?
            .next_producer_id();
        let next = first.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or_else(|| {
            ApiError::new(ErrorCode::UnknownServerError, "producer ids are exhausted")
        })?;
        self.commit(vec![MetadataRecord::ProducerIds {
            broker_id,
            broker_epoch,
            next_producer_id: next,
        }])
        .await
        .map_err(|e| e.to_api_error())?;
        Ok(first)
    }
}
