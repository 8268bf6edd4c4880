//! The metadata quorum: openraft over the durable log
//! ([`crate::raft_log`]), the image state machine
//! ([`crate::state_machine`]) and the controller RPC
//! ([`crate::raft_network`], [`crate::rpc_server`]).
//!
//! Voters come from `controller.quorum.voters`; with none configured this
//! node is a one-voter quorum. On the first start every voter initializes
//! the quorum with the same voter set (openraft accepts identical
//! initializations), so no node has to be special. Only the leader writes;
//! a write first waits until the leader has applied everything committed
//! before it (a linearizable read), so operations validate against the
//! newest image.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{Config, Raft, ServerState, SnapshotPolicy};
use strom_metadata::{MetadataImage, MetadataRecord};
use strom_storage::log_manager::METADATA_LOG_DIR_NAME;
use tokio::sync::watch;

use crate::error::ControllerError;
use crate::raft_log::RaftLogStore;
use crate::raft_network::ControllerNetwork;
use crate::raft_types::{ControllerNode, MetadataBatch, MetadataRaft};
use crate::state_machine::MetadataStateMachine;

/// Entries between snapshots.
const SNAPSHOT_EVERY_ENTRIES: u64 = 10_000;

/// Entries kept in the log behind the newest snapshot, so a briefly lagging
/// voter catches up from the log instead of a snapshot transfer.
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1_000;

/// How the quorum runs.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node.
    pub node_id: u64,
    /// The voters with their controller endpoints; empty for a one-voter
    /// quorum of this node.
    pub voters: BTreeMap<u64, ControllerNode>,
    /// Heartbeat interval of the leader.
    pub heartbeat_interval: Duration,
    /// Election timeout range.
    pub election_timeout: (Duration, Duration),
}

impl QuorumConfig {
    /// Whether this node votes.
    pub fn is_voter(&self) -> bool {
        self.voters.is_empty() || self.voters.contains_key(&self.node_id)
    }

    fn voter_set(&self) -> BTreeMap<u64, ControllerNode> {
        if self.voters.is_empty() {
            [(self.node_id, ControllerNode::default())]
                .into_iter()
                .collect()
        } else {
            self.voters.clone()
        }
    }
}

/// The quorum as this node sees it.
#[derive(Clone)]
pub struct MetadataQuorum {
    raft: Raft<MetadataRaft>,
    log: RaftLogStore,
    images: watch::Receiver<Arc<MetadataImage>>,
    node_id: u64,
}

impl std::fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.node_id)
            .field("log", &self.log)
            .finish()
    }
}

fn unavailable(e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Unavailable(e.to_string())
}

impl MetadataQuorum {
    /// Opens the log and snapshots under `log_dir`, starts Raft and, on a
    /// voter's first start, initializes the quorum.
    pub async fn start(
        log_dir: &Path,
        had_clean_shutdown: bool,
        cluster_id: &str,
        config: QuorumConfig,
    ) -> Result<Self, ControllerError> {
        let log = RaftLogStore::open(log_dir, had_clean_shutdown)?;
        let (publish, images) = watch::channel(Arc::new(MetadataImage::empty()));
        let state_machine =
            MetadataStateMachine::open(&log_dir.join(METADATA_LOG_DIR_NAME), publish)?;
        let raft_config = Config {
            cluster_name: cluster_id.to_string(),
            heartbeat_interval: config.heartbeat_interval.as_millis() as u64,
            election_timeout_min: config.election_timeout.0.as_millis() as u64,
            election_timeout_max: config.election_timeout.1.as_millis() as u64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY_ENTRIES),
            max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT,
            ..Config::default()
        }
        .validate()
        .map_err(|e| ControllerError::Corrupt(format!("quorum configuration: {e}")))?;
        let network = ControllerNetwork::new(cluster_id.to_string(), config.node_id);
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log.clone(),
            state_machine,
        )
        .await
        .map_err(unavailable)?;
        let quorum = Self {
            raft,
            log,
            images,
            node_id: config.node_id,
        };
        if config.is_voter() && !quorum.raft.is_initialized().await.map_err(unavailable)? {
            let voters = config.voter_set();
            tracing::info!(voters = ?voters.keys().collect::<Vec<_>>(), "initializing the metadata quorum");
            match quorum.raft.initialize(voters).await {
                Ok(()) => {}
                Err(RaftError::APIError(e)) => {
                    tracing::info!(reason = %e, "the metadata quorum was already initialized")
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        if config.voter_set().len() == 1 && config.is_voter() {
            // A lone voter need not wait out an election timeout.
            let _ = quorum.raft.trigger().elect().await;
        }
        Ok(quorum)
    }

    /// Logs this node's view of the quorum whenever it changes (leader,
    /// term, own role); runs until the quorum stops.
    pub async fn log_changes(self) {
        let mut metrics = self.raft.metrics();
        let mut seen: Option<(Option<u64>, u64, ServerState)> = None;
        loop {
            let now = {
                let m = metrics.borrow_and_update();
                (m.current_leader, m.current_term, m.state)
            };
            if seen != Some(now) {
                let (leader, term, state) = now;
                match leader {
                    Some(leader) => tracing::info!(leader, term, role = ?state, "metadata quorum"),
                    None => tracing::warn!(term, role = ?state, "metadata quorum has no leader"),
                }
                seen = Some(now);
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// The openraft handle (for the RPC server).
    pub fn raft(&self) -> &Raft<MetadataRaft> {
        &self.raft
    }

    /// The newest image this node applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Receives every new image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The current term (KRaft's epoch).
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this node leads the quorum.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }

    /// Waits until some node leads the quorum and this node applied what
    /// it committed, at most `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<u64, ControllerError> {
        let mut metrics = self.raft.metrics();
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(leader) = metrics.borrow_and_update().current_leader {
                    return Ok(leader);
                }
                if metrics.changed().await.is_err() {
                    return Err(unavailable("the quorum stopped"));
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            Err(unavailable(format!(
                "no quorum leader within {} ms",
                timeout.as_millis()
            )))
        })
    }

    /// As leader: waits until everything committed before now is applied,
    /// so the image is current. Elsewhere: [`ControllerError::NotLeader`].
    pub async fn ensure_current(&self) -> Result<(), ControllerError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(e) => match e.forward_to_leader::<ControllerNode>() {
                Some(f) => Err(ControllerError::NotLeader(f.leader_id)),
                None => Err(unavailable(e)),
            },
        }
    }

    /// As leader: commits `records` as one entry and waits until it is
    /// applied; returns the metadata offset it got.
    pub async fn write(&self, records: Vec<MetadataRecord>) -> Result<i64, ControllerError> {
        match self.raft.client_write(MetadataBatch(records)).await {
            Ok(response) => match response.data.refused {
                None => Ok(response.data.offset),
                Some(why) => Err(ControllerError::Corrupt(why)),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotLeader(f.leader_id))
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Stops Raft and closes the log.
    pub async fn shutdown(&self) -> Result<(), ControllerError> {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "the metadata quorum did not stop cleanly");
        }
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.close())
            .await
            .map_err(unavailable)?
    }
}
